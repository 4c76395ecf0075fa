//! Whether a document state integrates whole: every struct it holds, applied to an empty
//! document, finds what it names, so nothing stays pending.
//!
//! A room's state normally does. One that does not holds structs yrs keeps pending (a gap in a
//! client's clocks, an item naming a struct nobody has, or items of two clients naming each
//! other's later structs). How much of the rest yrs then integrates depends on how the state
//! arrives: whole, or cut into several updates, after which yrs retries its pending structs
//! against each new one and integrates some it kept back from the whole (found by fuzzing,
//! fuzz/tests/regressions.rs). A cut of such a state can make another document than the whole,
//! so [`crate::doc::answer_sync_step1`] asks this first and, when the answer is no, sends the
//! pending part whole.
//!
//! The walk follows yrs' rule: a struct integrates once every earlier clock of its own client
//! has, and every struct it names (origin, right origin, parent ID) of another client has. A
//! struct that is blocked waits on the one clock it needs, in a queue per client, and is looked
//! at again only when that client gets past it: each struct is blocked at most once per name, so
//! the walk is linear (with a log for the queues) even on a state made to chain its clients.
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::parse::{parse_update, Id, ParsedUpdate, StructSpan};
use super::SplitError;

/// `true` when every struct of the update (v1) would integrate into an empty document and its
/// delete set names only those structs; `false` when some would stay pending. Malformed input is
/// an error, as for [`super::split_update_v1`].
pub fn integrates_whole(update: &[u8]) -> Result<bool, SplitError> {
    Ok(parsed_integrates_whole(&parse_update(update)?))
}

pub(super) fn parsed_integrates_whole(parsed: &ParsedUpdate) -> bool {
    let mut clients: HashMap<u64, Client> = HashMap::new();
    for section in &parsed.sections {
        clients
            .entry(section.client)
            .or_default()
            .spans
            .extend(section.structs.iter());
    }
    for client in clients.values_mut() {
        client.spans.sort_by_key(|span| span.clock);
        client.last = client
            .spans
            .last()
            .map_or(0, |span| u64::from(span.clock) + u64::from(span.len));
    }
    // Deletions of clocks no struct here has stay pending too.
    for entry in &parsed.delete_set {
        let last = clients.get(&entry.client).map_or(0, |c| c.last);
        if entry
            .ranges
            .iter()
            .any(|&(clock, len)| u64::from(clock) + u64::from(len) > last)
        {
            return false;
        }
    }

    // Blocked clients by the client they wait for, keyed by the clock they need it past.
    let mut waiting: HashMap<u64, BinaryHeap<Reverse<(u32, u64)>>> = HashMap::new();
    let mut ready: Vec<u64> = clients.keys().copied().collect();
    while let Some(id) = ready.pop() {
        match advance(&mut clients, id) {
            Step::Done => {}
            Step::Never => return false,
            Step::Blocked((on, clock)) => waiting.entry(on).or_default().push(Reverse((clock, id))),
        }
        // Whoever waited for this client below where it got to can go on.
        let reached = clients.get(&id).map_or(0, |c| c.integrated);
        if let Some(queue) = waiting.get_mut(&id) {
            while let Some(&Reverse((clock, waiter))) = queue.peek() {
                if u64::from(clock) >= reached {
                    break;
                }
                queue.pop();
                ready.push(waiter);
            }
        }
    }
    clients.values().all(|c| c.next == c.spans.len())
}

#[derive(Default)]
struct Client<'a> {
    /// Its structs in clock order.
    spans: Vec<&'a StructSpan>,
    /// The first of them not integrated yet.
    next: usize,
    /// The clock integration has reached (every clock below it is in).
    integrated: u64,
    /// The clock after its last struct.
    last: u64,
}

enum Step {
    /// Every struct of the client is in.
    Done,
    /// Waits for another client to get past a clock.
    Blocked(Id),
    /// A struct that can never integrate.
    Never,
}

/// Integrates the client's structs in clock order until one has to wait.
fn advance(clients: &mut HashMap<u64, Client>, id: u64) -> Step {
    loop {
        let Some(client) = clients.get(&id) else {
            return Step::Done;
        };
        let Some(span) = client.spans.get(client.next) else {
            return Step::Done;
        };
        // A gap (a Skip, or a clock past the last struct's end) is never filled from here.
        if span.is_skip || u64::from(span.clock) != client.integrated {
            return Step::Never;
        }
        let named = [span.refs.origin, span.refs.right_origin, span.refs.parent];
        for (other, clock) in named.into_iter().flatten() {
            if other == id {
                if clock >= span.clock {
                    return Step::Never;
                }
                continue;
            }
            match clients.get(&other) {
                Some(them) if u64::from(clock) < them.integrated => {}
                Some(them) if u64::from(clock) < them.last => {
                    return Step::Blocked((other, clock));
                }
                _ => return Step::Never,
            }
        }
        let end = u64::from(span.clock) + u64::from(span.len);
        if let Some(client) = clients.get_mut(&id) {
            client.integrated = end;
            client.next += 1;
        }
    }
}
