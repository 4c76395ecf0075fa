//! Fuzz targets for the code that reads network input: y-websocket frames and the updates they
//! carry, the update splitter, messages in pieces and their reassembly, y-webrtc signaling JSON,
//! access tokens, and the whole `$default` handler over the embedded adapters.
//!
//! Each target is a plain `fn(&[u8])` in [`targets`]. A panic escaping one is a crash: the
//! public API must turn every bad input into an error (yrs panics are caught inside, by
//! `ylambda_shared::doc::guard`). Targets also panic when an output breaks a property the code
//! promises (a refused token that should have passed, a reassembled message that differs from
//! its pieces...). The same functions are driven by the afl binaries (`afl/`, feature `afl`), by
//! the mutation driver ([`mutate`], binary `ylambda-fuzz`) and by `cargo test` (the committed
//! corpus and the regression tests).
pub mod mutate;
pub mod panics;
pub mod seeds;
pub mod targets;
