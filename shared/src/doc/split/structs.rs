//! Pieces of structs: runs of one client's consecutive structs copied byte for byte under a new
//! section header, each piece filled up to the limit, items too big for what is left cut.
use std::borrow::Cow;
use std::collections::HashSet;

use yrs::block::BLOCK_SKIP_REF_NUMBER;

use super::cut::{CuttableItem, Position};
use super::parse::StructSpan;
use super::{SplitError, EMPTY_UPDATE};
use crate::codec::{var_uint_len, write_var_uint};

/// Consecutive structs of one client inside a piece.
struct Run<'a> {
    client: u64,
    first_clock: u32,
    /// Clock right after the last struct.
    end_clock: u32,
    structs: Vec<Cow<'a, [u8]>>,
}

/// A piece of structs being filled. `size` is always its exact encoded size.
struct StructPiece<'a> {
    runs: Vec<Run<'a>>,
    clients: HashSet<u64>,
    size: usize,
}

/// How a struct joins a piece, and the piece's size with it.
#[derive(Clone, Copy)]
struct Plan {
    /// `Some(gap)`: after the last run's structs, a gap (left by a Skip in the input) bridged by
    /// a Skip; `None`: as the first struct of a new run.
    continue_after: Option<u32>,
    size: usize,
}

impl<'a> StructPiece<'a> {
    fn new() -> Self {
        StructPiece {
            runs: Vec::new(),
            clients: HashSet::new(),
            // No sections, empty delete set.
            size: EMPTY_UPDATE.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// How a struct of `struct_len` bytes at `clock` would join this piece; `None` if its client
    /// already has a run here that it cannot continue. yrs gathers one client's structs from all
    /// of an update's sections into one list, so a second section of that client would not be
    /// read at its own clock: such a struct goes to another piece.
    fn plan(&self, client: u64, clock: u32, struct_len: usize) -> Option<Plan> {
        match self.runs.last() {
            Some(last) if last.client == client && clock >= last.end_clock => {
                let gap = clock - last.end_clock;
                let count = last.structs.len();
                let (added, skip_len) = if gap > 0 {
                    (2, 1 + var_uint_len(u64::from(gap)))
                } else {
                    (1, 0)
                };
                Some(Plan {
                    continue_after: Some(gap),
                    size: self.size - var_uint_len(count as u64)
                        + var_uint_len((count + added) as u64)
                        + skip_len
                        + struct_len,
                })
            }
            _ if self.clients.contains(&client) => None,
            _ => {
                let runs = self.runs.len();
                Some(Plan {
                    continue_after: None,
                    size: self.size - var_uint_len(runs as u64)
                        + var_uint_len((runs + 1) as u64)
                        + var_uint_len(1)
                        + var_uint_len(client)
                        + var_uint_len(u64::from(clock))
                        + struct_len,
                })
            }
        }
    }

    /// Adds a struct as `plan`, made by `plan()` for this struct on this piece as it is, says.
    fn push(&mut self, plan: Plan, client: u64, clock: u32, len: u32, bytes: Cow<'a, [u8]>) {
        self.size = plan.size;
        match (plan.continue_after, self.runs.last_mut()) {
            (Some(gap), Some(run)) => {
                if gap > 0 {
                    let mut skip = vec![BLOCK_SKIP_REF_NUMBER];
                    write_var_uint(&mut skip, u64::from(gap));
                    run.structs.push(Cow::Owned(skip));
                }
                run.structs.push(bytes);
                run.end_clock = clock + len;
            }
            _ => {
                self.clients.insert(client);
                self.runs.push(Run {
                    client,
                    first_clock: clock,
                    end_clock: clock + len,
                    structs: vec![bytes],
                });
            }
        }
    }

    fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size);
        write_var_uint(&mut out, self.runs.len() as u64);
        for run in &self.runs {
            write_var_uint(&mut out, run.structs.len() as u64);
            write_var_uint(&mut out, run.client);
            write_var_uint(&mut out, u64::from(run.first_clock));
            for bytes in &run.structs {
                out.extend_from_slice(bytes);
            }
        }
        // Empty delete set: deletions travel in pieces of their own.
        write_var_uint(&mut out, 0);
        debug_assert_eq!(out.len(), self.size);
        out
    }
}

/// Fills pieces with structs in input order, starting a new piece when the next struct does
/// not fit, and cutting items that are worth cutting.
pub(super) struct StructPacker<'a> {
    max: usize,
    piece: StructPiece<'a>,
    pieces: Vec<Vec<u8>>,
}

impl<'a> StructPacker<'a> {
    pub(super) fn new(max: usize) -> Self {
        StructPacker {
            max,
            piece: StructPiece::new(),
            pieces: Vec::new(),
        }
    }

    fn flush(&mut self) {
        let piece = std::mem::replace(&mut self.piece, StructPiece::new());
        if !piece.is_empty() {
            self.pieces.push(piece.encode());
        }
    }

    pub(super) fn finish(mut self) -> Vec<Vec<u8>> {
        self.flush();
        self.pieces
    }

    /// How a struct would join the current piece, if it fits there.
    fn plan_within_limit(&self, client: u64, clock: u32, struct_len: usize) -> Option<Plan> {
        self.piece
            .plan(client, clock, struct_len)
            .filter(|plan| plan.size <= self.max)
    }

    pub(super) fn place(
        &mut self,
        input: &'a [u8],
        client: u64,
        span: &StructSpan,
    ) -> Result<(), SplitError> {
        let bytes = &input[span.bytes.clone()];
        loop {
            if let Some(plan) = self.plan_within_limit(client, span.clock, bytes.len()) {
                let bytes = Cow::Borrowed(bytes);
                self.piece.push(plan, client, span.clock, span.len, bytes);
                return Ok(());
            }
            if span.cuttable {
                // Fill what is left of this piece with the item's first part rather than start
                // a new piece: fewer pieces, at the price of one more struct.
                return self.place_cut(client, span.clock, bytes);
            }
            if self.piece.is_empty() {
                return Err(SplitError::Indivisible {
                    size: lone_piece_size(client, span.clock, bytes.len()),
                    max: self.max,
                });
            }
            self.flush();
        }
    }

    /// Places a String, Any or JSON item in as many parts as needed.
    fn place_cut(&mut self, client: u64, clock: u32, bytes: &'a [u8]) -> Result<(), SplitError> {
        let item = CuttableItem::parse(client, clock, bytes)?;
        let mut from = Position::default();
        while from.units < item.len {
            let part_clock = clock + from.units;
            // A piece's size grows byte for byte with the struct added: plan for an empty one,
            // and what is left under the limit is the part's budget.
            let base = self.piece.plan(client, part_clock, 0);
            let budget = base.and_then(|base| self.max.checked_sub(base.size));
            let end = match budget {
                Some(budget) => item.largest_part(from, budget)?,
                None => None,
            };
            if let (Some(base), Some(to)) = (base, end) {
                let part = item.encode_part(from, to);
                let plan = Plan {
                    size: base.size + part.len(),
                    ..base
                };
                let units = to.units - from.units;
                self.piece
                    .push(plan, client, part_clock, units, Cow::Owned(part));
                from = to;
            } else if self.piece.is_empty() {
                let part_len = item.smallest_part_len(from)?;
                return Err(SplitError::Indivisible {
                    size: lone_piece_size(client, part_clock, part_len),
                    max: self.max,
                });
            } else {
                self.flush();
            }
        }
        Ok(())
    }
}

/// Size of a piece holding nothing but one struct of `struct_len` bytes.
fn lone_piece_size(client: u64, clock: u32, struct_len: usize) -> usize {
    StructPiece::new()
        .plan(client, clock, struct_len)
        .map_or(usize::MAX, |plan| plan.size)
}
