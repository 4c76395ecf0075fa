//! Pieces of the delete set: no structs, and as many (client, ranges) entries as fit. yrs keeps
//! only the last entry of a client in an update, so a client appears at most once per piece.
use std::collections::HashSet;

use super::parse::DeleteSetEntry;
use super::{SplitError, EMPTY_UPDATE};
use crate::codec::{var_uint_len, write_var_uint};

/// A piece with no structs and part of the delete set. `size` is always its exact encoded size.
struct DeleteSetPiece {
    entries: Vec<DeleteSetEntry>,
    clients: HashSet<u64>,
    /// Whether the next range of the client of the last entry may join that entry.
    last_entry_open: bool,
    size: usize,
}

impl DeleteSetPiece {
    fn new() -> Self {
        DeleteSetPiece {
            entries: Vec::new(),
            clients: HashSet::new(),
            last_entry_open: false,
            // No sections, no delete set clients.
            size: EMPTY_UPDATE.len(),
        }
    }

    /// The piece's size with one more range; `None` if the client already has a closed entry
    /// here (yrs keeps only the last entry of a client, so it must not appear twice).
    fn size_with(&self, client: u64, range: (u32, u32)) -> Option<usize> {
        let range_len = var_uint_len(u64::from(range.0)) + var_uint_len(u64::from(range.1));
        match self.entries.last() {
            Some(last) if self.last_entry_open && last.client == client => {
                let count = last.ranges.len();
                Some(
                    self.size - var_uint_len(count as u64)
                        + var_uint_len((count + 1) as u64)
                        + range_len,
                )
            }
            _ if self.clients.contains(&client) => None,
            _ => {
                let count = self.entries.len();
                Some(
                    self.size - var_uint_len(count as u64)
                        + var_uint_len((count + 1) as u64)
                        + var_uint_len(client)
                        + var_uint_len(1)
                        + range_len,
                )
            }
        }
    }

    /// Ends the last entry: the next range starts an entry of its own.
    fn close_entry(&mut self) {
        self.last_entry_open = false;
    }

    /// Adds a range; `size` is what `size_with` said for it on this piece as it is.
    fn push(&mut self, client: u64, range: (u32, u32), size: usize) {
        self.size = size;
        match self.entries.last_mut() {
            Some(last) if self.last_entry_open && last.client == client => last.ranges.push(range),
            _ => {
                self.clients.insert(client);
                self.entries.push(DeleteSetEntry {
                    client,
                    ranges: vec![range],
                });
                self.last_entry_open = true;
            }
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size);
        write_var_uint(&mut out, 0);
        write_var_uint(&mut out, self.entries.len() as u64);
        for entry in &self.entries {
            write_var_uint(&mut out, entry.client);
            write_var_uint(&mut out, entry.ranges.len() as u64);
            for &(clock, len) in &entry.ranges {
                write_var_uint(&mut out, u64::from(clock));
                write_var_uint(&mut out, u64::from(len));
            }
        }
        debug_assert_eq!(out.len(), self.size);
        out
    }
}

pub(super) fn pack_delete_set(
    entries: &[DeleteSetEntry],
    max: usize,
    pieces: &mut Vec<Vec<u8>>,
) -> Result<(), SplitError> {
    let mut piece = DeleteSetPiece::new();
    for entry in entries {
        // Each input entry starts an entry of its own.
        piece.close_entry();
        for &range in &entry.ranges {
            let mut size = piece.size_with(entry.client, range);
            if size.is_none_or(|size| size > max) && !piece.entries.is_empty() {
                pieces.push(piece.encode());
                piece = DeleteSetPiece::new();
                size = piece.size_with(entry.client, range);
            }
            match size {
                Some(size) if size <= max => piece.push(entry.client, range, size),
                // An empty piece takes any client, so `size` is known here.
                size => {
                    return Err(SplitError::Indivisible {
                        size: size.unwrap_or(usize::MAX),
                        max,
                    })
                }
            }
        }
    }
    if !piece.entries.is_empty() {
        pieces.push(piece.encode());
    }
    Ok(())
}
