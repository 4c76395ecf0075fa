//! `ylambda dev --lambdas`: the local Runtime API driven by real `lambda_runtime` clients, process
//! supervision (restart, stop), the Lambdas invoker's status mapping, the gateway delivering a
//! Lambda process's `@connections` posts, and, with the AWS backends, the real binaries end to
//! end.
//!
//! The test Lambda is this test binary itself, re-run as a child process with only the ignored
//! `echo_lambda` test selected (see `echo::echo_program`), so it is built by whatever builds these
//! tests, under any test filter.
#[path = "../common/mod.rs"]
mod common;

mod binaries;
mod echo;
mod gateway;
mod real;
mod runtime;

/// Not a test: the entry point of the test Lambda's processes. Ignored so that normal runs skip
/// it; `echo::echo_program` runs this binary with `--ignored --exact echo_lambda`.
#[test]
#[ignore = "entry point of the test Lambda processes the other tests start"]
fn echo_lambda() {
    echo::run();
}
