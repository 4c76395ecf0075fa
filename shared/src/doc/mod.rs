//! Work on stored Yjs updates without a long-lived `Doc` per room: validation, merging, diffing,
//! state vectors, and cutting an update into pieces that fit a message.
mod state;
pub mod split;

pub use state::{diff, guard, merge, state_vector, validate_update, DocError, Validated};
