//! The `ylambda` command line's library side: the `ylambda dev` gateway, callable in-process by
//! tests and by the binary alike.
pub mod bench;
pub mod cost;
pub mod gateway;
pub mod invoker;
pub mod lambdas;
pub mod serve;

pub use gateway::{
    management_endpoint, serve, ConnectionSummary, Connections, Gateway, GatewayError, InProcess,
};
pub use invoker::{Invoker, ShutdownReport};
pub use lambdas::{LambdaError, Lambdas, LambdasConfig};
