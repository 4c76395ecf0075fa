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
    /// Deletions of its own structs it carries (`map_entries`: a deleted entry that kept its
    /// content), (clock, length) by client; usually none.
    deleted: Vec<(u64, Vec<(u32, u32)>)>,
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
            deleted: Vec::new(),
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

    /// `plan` with `deletions` of `client` carried too.
    fn with_deletions(&self, mut plan: Plan, client: u64, deletions: &[(u32, u32)]) -> Plan {
        if !deletions.is_empty() {
            let mut deleted = self.deleted.clone();
            add_deletions(&mut deleted, client, deletions);
            plan.size = plan.size - delete_set_len(&self.deleted) + delete_set_len(&deleted);
        }
        plan
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
        // Deletions travel in pieces of their own, but for the few a struct here needs.
        write_var_uint(&mut out, self.deleted.len() as u64);
        for (client, ranges) in &self.deleted {
            write_var_uint(&mut out, *client);
            write_var_uint(&mut out, ranges.len() as u64);
            for &(clock, len) in ranges {
                write_var_uint(&mut out, u64::from(clock));
                write_var_uint(&mut out, u64::from(len));
            }
        }
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

    /// How a struct would join the current piece, with `deletions` of its own, if it fits there.
    fn plan_within_limit(
        &self,
        client: u64,
        clock: u32,
        struct_len: usize,
        deletions: &[(u32, u32)],
    ) -> Option<Plan> {
        self.piece
            .plan(client, clock, struct_len)
            .map(|plan| self.piece.with_deletions(plan, client, deletions))
            .filter(|plan| plan.size <= self.max)
    }

    /// Places a struct, with `deletions` of it that must travel in its piece (see
    /// `map_entries`; usually none).
    pub(super) fn place(
        &mut self,
        input: &'a [u8],
        client: u64,
        span: &StructSpan,
        deletions: &[(u32, u32)],
    ) -> Result<(), SplitError> {
        let bytes = &input[span.bytes.clone()];
        loop {
            if let Some(plan) = self.plan_within_limit(client, span.clock, bytes.len(), deletions) {
                let bytes = Cow::Borrowed(bytes);
                self.piece.push(plan, client, span.clock, span.len, bytes);
                add_deletions(&mut self.piece.deleted, client, deletions);
                return Ok(());
            }
            if span.cuttable {
                // Fill what is left of this piece with the item's first part rather than start
                // a new piece: fewer pieces, at the price of one more struct.
                return self.place_cut(client, span.clock, bytes);
            }
            if self.piece.is_empty() {
                let alone = StructPiece::new();
                let size = alone
                    .plan(client, span.clock, bytes.len())
                    .map_or(usize::MAX, |plan| {
                        alone.with_deletions(plan, client, deletions).size
                    });
                return Err(SplitError::Indivisible {
                    size,
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

/// Adds `ranges` of `client` to a piece's delete set: yrs keeps only the last entry of a client,
/// so a client has one.
fn add_deletions(deleted: &mut Vec<(u64, Vec<(u32, u32)>)>, client: u64, ranges: &[(u32, u32)]) {
    if ranges.is_empty() {
        return;
    }
    match deleted.iter_mut().find(|(c, _)| *c == client) {
        Some((_, existing)) => existing.extend_from_slice(ranges),
        None => deleted.push((client, ranges.to_vec())),
    }
}

/// The encoded length of a delete set.
fn delete_set_len(deleted: &[(u64, Vec<(u32, u32)>)]) -> usize {
    var_uint_len(deleted.len() as u64)
        + deleted
            .iter()
            .map(|(client, ranges)| {
                var_uint_len(*client)
                    + var_uint_len(ranges.len() as u64)
                    + ranges
                        .iter()
                        .map(|&(clock, len)| {
                            var_uint_len(u64::from(clock)) + var_uint_len(u64::from(len))
                        })
                        .sum::<usize>()
            })
            .sum::<usize>()
}
