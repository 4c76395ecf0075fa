#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, Rust unit/integration tests, the JavaScript
# adapter's tests and the end-to-end suite with real y-websocket clients against `ylambda dev`.
# Installs what it needs (npm packages from the committed lock files); needs cargo, node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Real backends for the adapter conformance suites and the aws end-to-end run: moto server
# (DynamoDB, S3) and redis-server on loopback, started here and stopped (by PID) on exit.
cleanup() {
  bash scripts/local-redis.sh stop || true
  bash scripts/local-aws.sh stop || true
}
trap cleanup EXIT

step "start moto server and redis-server on loopback"
eval "$(bash scripts/local-aws.sh start)"
eval "$(bash scripts/local-redis.sh start)"
export YLAMBDA_TEST_AWS=1

step "template.yaml: sam validate --lint (offline)"
bash scripts/validate-template.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

step "build ylambda for the end-to-end suite"
cargo build -p ylambda

step "client adapter tests"
(cd client && npm test)  # no dependencies, so nothing to install

step "end-to-end: real y-websocket / signaling clients against ylambda dev"
(cd tests/e2e && npm ci --no-audit --no-fund && YLAMBDA_BIN="$PWD/../../target/debug/ylambda" npm test)

step "all tests passed"
