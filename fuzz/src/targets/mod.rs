//! The fuzz targets, one `fn(&[u8])` each. Input layouts are described on each function; they
//! are what the seed corpus (`crate::seeds`, committed under `fuzz/corpus/<target>/`) holds.
mod jwt;
pub mod on_message;
mod pieces;
mod signaling;
mod update;
mod ywebsocket;

pub use jwt::{jwt, JWT_ROOM, JWT_SECRET};
pub use on_message::on_message;
pub use pieces::pieces;
pub use signaling::signaling;
pub use update::update;
pub use ywebsocket::ywebsocket;

/// One fuzz target.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order `scripts/fuzz.sh` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "ywebsocket",
        run: ywebsocket,
    },
    Target {
        name: "update",
        run: update,
    },
    Target {
        name: "pieces",
        run: pieces,
    },
    Target {
        name: "signaling",
        run: signaling,
    },
    Target {
        name: "jwt",
        run: jwt,
    },
    Target {
        name: "on_message",
        run: on_message,
    },
];

pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
