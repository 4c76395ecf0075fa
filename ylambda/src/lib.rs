//! The `ylambda` command line's library side: the `ylambda dev` gateway, callable in-process by
//! tests and by the binary alike.
pub mod gateway;
pub mod lambdas;

pub use gateway::{
    serve, ConnectionSummary, Connections, Gateway, GatewayError, InProcess, Invoker,
    ShutdownReport,
};
pub use lambdas::{LambdaError, Lambdas, LambdasConfig};
