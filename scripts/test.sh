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

step "build everything (the Lambda binaries too: the --lambdas tests run them)"
cargo build --workspace

step "cargo test (embedded, moto, redis-server, real Lambda binaries)"
cargo test --workspace

step "client adapter tests"
(cd client && npm test)  # no dependencies, so nothing to install

bin="$PWD/target/debug/ylambda"
(cd tests/e2e && npm ci --no-audit --no-fund)

step "end-to-end: real y-websocket / signaling clients against ylambda dev (embedded backend)"
(cd tests/e2e && YLAMBDA_BIN="$bin" npm test)

# The load test runs at half rate here (10 rooms x 5 clients, ~250 inserts/s): single-threaded
# moto is the bottleneck, and at ~500/s transient store errors left some updates unrelayed
# (see the README's known limits). The embedded pass above runs it at full rate.
step "end-to-end again on DynamoDB + Redis + S3 (moto, redis-server)"
(cd tests/e2e && YLAMBDA_BACKEND=aws LOAD_ROOMS=10 YLAMBDA_BIN="$bin" npm test)

# Through the real Lambda binaries: the document, restart, bad-input, Redis-loss and signaling
# suites. Not yet the awareness-timing and 500-inserts/s load suites: on a 2-core machine with
# single-threaded moto the invocation queue outgrows their deadlines, and the Runtime API's
# crash detection can misfire under that load (see the README's known limits).
step "end-to-end through the real Lambda binaries (ylambda dev --lambdas, aws backend)"
(cd tests/e2e && YLAMBDA_BACKEND=aws YLAMBDA_LAMBDAS_DIR="$PWD/../../target/debug" YLAMBDA_BIN="$bin" \
  node --test --test-concurrency=1 --test-timeout=180000 \
  test/sync.test.js test/restart.test.js test/bad-input.test.js test/redis-loss.test.js \
  test/signaling.test.js test/management.test.js)

step "y-webrtc in headless Chromium (embedded and aws backends, in a network namespace)"
bash scripts/browser-tests.sh

step "all tests passed"
