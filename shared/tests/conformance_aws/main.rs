//! The AWS adapters against the port conformance suites, on moto (or any emulator named by
//! `AWS_ENDPOINT_URL`), plus the behaviour the suites cannot see: pagination, expiry, batching,
//! racing snapshot writers, no Scan, and the management API's error mapping.
//!
//! ```sh
//! eval "$(bash scripts/local-aws.sh start)"
//! YLAMBDA_TEST_AWS=1 cargo test -p ylambda-shared --test conformance_aws
//! bash scripts/local-aws.sh stop
//! ```
//! Without `YLAMBDA_TEST_AWS` the backend tests say so on stderr and return; under `CI` that is a
//! failure (`ci_runs_the_aws_suites`), so a misconfigured CI cannot hide them.
mod docs;
mod dynamodb;
mod harness;
mod management;
mod s3;

use ylambda_shared::conformance::backends::{in_ci, AWS_TESTS_VAR};

#[test]
fn ci_runs_the_aws_suites() {
    assert!(
        !in_ci() || std::env::var_os(AWS_TESTS_VAR).is_some(),
        "CI is set but YLAMBDA_TEST_AWS is not: the AWS adapter suites would be skipped. \
         Start moto with `eval \"$(bash scripts/local-aws.sh start)\"` and set YLAMBDA_TEST_AWS=1."
    );
}
