//! Work on stored Yjs updates without a long-lived `Doc` per room: validation, merging, diffing,
//! state vectors, and cutting an update into pieces that fit a message.
mod json;
pub mod split;
mod state;
mod sync;

pub use json::state_to_json;
pub use state::{
    diff, guard, merge, merge_room, state_vector, validate_update, DocError, MergedRoom, Validated,
};
pub use sync::{answer_sync_step1, cut_or_keep_whole, OverLimit, SyncAnswer};
