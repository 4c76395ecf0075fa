//! Work on stored Yjs updates without a long-lived `Doc` per room: validation, merging, diffing,
//! state vectors, and cutting an update into pieces that fit a message.
pub mod split;
mod state;

pub use state::{diff, guard, merge, state_vector, validate_update, DocError, Validated};
