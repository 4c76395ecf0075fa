//! ylambda's library: the y-websocket / y-webrtc protocol, the handler logic shared by the Lambdas
//! and the local gateway, the storage ports, and their embedded adapters.
pub mod adapters;
pub mod api;
pub mod auth;
pub mod backends;
pub mod codec;
pub mod config;
pub mod doc;
pub mod handler;
pub mod lambda;
pub mod lambda_api;
pub mod ports;
pub mod protocol;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
