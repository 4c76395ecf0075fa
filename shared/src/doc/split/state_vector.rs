//! The state vector of a v1 update, read with this module's parser instead of yrs' decoder.
//!
//! yrs builds every block of the update (strings copied, `Any` values allocated) only to read
//! clocks and lengths; for a 10 MB room state that was most of the time of answering a client's
//! sync step 1 (benches/MICROBENCHMARKS.md). Reading the structs in place gives the same numbers.
use std::collections::HashMap;

use yrs::updates::encoder::Encode;
use yrs::StateVector;

use super::parse::{read_struct, StructKind};
use super::SplitError;
use crate::codec::Reader;

/// What the sections read so far say of one client's structs.
struct Counted {
    /// The clock after the last struct counted.
    end: u32,
    /// A gap was met (the first struct did not start at 0, or a Skip): nothing after it counts.
    stopped: bool,
}

/// The state vector (encoded v1) of an update, as yrs' `encode_state_vector_from_update_v1`
/// computes it: per client, the end of its structs counted from clock 0 up to the first Skip
/// (a client whose structs start later counts 0 and is left out). Sections of the same client
/// count as one run, in the order written, as yrs reads them. The delete set is not read.
pub fn state_vector_v1(update: &[u8]) -> Result<Vec<u8>, SplitError> {
    let mut reader = Reader::new(update);
    let section_count = reader.read_var_u32("number of clients")?;
    let mut clients: HashMap<u64, Counted> = HashMap::new();
    for _ in 0..section_count {
        let struct_count = reader.read_var_u32("number of structs")?;
        let client = reader.read_var_u64("client id")?;
        let mut clock = reader.read_var_u32("first clock")?;
        for _ in 0..struct_count {
            let parsed = read_struct(&mut reader)?;
            let next_clock = clock
                .checked_add(parsed.len)
                .ok_or_else(|| reader.invalid("struct", "clock overflows 32 bits"))?;
            let counted = clients.entry(client).or_insert(Counted {
                end: 0,
                stopped: clock != 0,
            });
            if matches!(parsed.kind, StructKind::Skip) {
                counted.stopped = true;
            }
            if !counted.stopped {
                counted.end = next_clock;
            }
            clock = next_clock;
        }
    }
    let mut state_vector = StateVector::default();
    for (client, counted) in clients {
        if counted.end != 0 {
            state_vector.set_max(yrs::ClientID::new(client), counted.end);
        }
    }
    Ok(state_vector.encode_v1())
}
