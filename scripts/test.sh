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

step "Dockerfile: hadolint"
bash scripts/lint-dockerfile.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "build everything (the Lambda binaries too: the --lambdas tests run them)"
cargo build --workspace

step "cargo test (embedded, moto, redis-server, real Lambda binaries)"
cargo test --workspace

step "fuzz smoke: mutation driver over the seed corpus, 15 s per target (long runs: scripts/fuzz.sh)"
bash scripts/fuzz.sh --smoke

step "client adapter tests"
(cd client && npm test)  # no dependencies, so nothing to install

bin="$PWD/target/debug/ylambda"
(cd tests/e2e && npm ci --no-audit --no-fund)

step "end-to-end: real y-websocket / signaling clients against ylambda dev (embedded backend)"
(cd tests/e2e && YLAMBDA_BIN="$bin" npm test)

step "flood benchmark, short (full figures: cd tests/e2e && node bench/flood.mjs)"
(cd tests/e2e && YLAMBDA_BIN="$bin" BENCH_SECONDS=3 BENCH_ROOMS=3 node bench/flood.mjs)

step "load generator smoke: ylambda dev and the reference server, tiny loads (full run: scripts/bench.sh)"
YLAMBDA_BIN="$bin" bash scripts/bench.sh --smoke --out target/bench-smoke

step "micro-benchmarks smoke: criterion and yjs on tiny inputs (full run: scripts/micro-bench.sh)"
bash scripts/micro-bench.sh --smoke

step "cold start smoke: the connect binary started twice (full run: scripts/cold-start.sh)"
"$bin" bench-cold-start --lambdas "$PWD/target/debug" --starts 2 >/dev/null

# The same suite on the aws backend, the load test included at full rate (~500 inserts/s).
# Single-threaded moto serves ~100 requests/s, so the server's backlog takes a minute or two to
# drain; the load test waits while it drains and fails only if delivery stalls.
# Each aws pass gets a fresh moto: the passes before it leave connection rows behind (ylambda dev
# is stopped without running $disconnect; on AWS their TTL removes them, moto never expires
# them), and moto answers the gs1 index Query by scanning the whole table, so every pass would
# run slower than the one before it.
fresh_moto() {
  bash scripts/local-aws.sh stop
  eval "$(bash scripts/local-aws.sh start)"
}

step "end-to-end again on the redis-url profile: DynamoDB + Redis + S3 (moto, redis-server)"
fresh_moto
(cd tests/e2e && YLAMBDA_BACKEND=aws YLAMBDA_DOC_STORE=redis YLAMBDA_BIN="$bin" npm test)

# The dynamodb profile (no Redis: logs, awareness and pieces in the table). Each update costs ~5
# moto requests here and single-threaded moto serves ~100/s, so the load test runs a lighter load
# (3 rooms x 3 clients, an edit every 400 ms: ~23 updates/s) and every wait is 4x longer.
dynamodb_profile=(YLAMBDA_BACKEND=aws YLAMBDA_DOC_STORE=dynamodb E2E_PATIENCE=4
  LOAD_ROOMS=3 LOAD_CLIENTS=3 LOAD_INTERVAL_MS=400)
step "end-to-end again on the dynamodb profile: DynamoDB + S3 only (moto)"
fresh_moto
(cd tests/e2e && env "${dynamodb_profile[@]}" YLAMBDA_BIN="$bin" npm test)

# The whole suite once more through the real Lambda binaries (bootstrap processes under the
# Runtime API that ylambda dev serves), four processes per function as a warm Lambda fleet would
# have more. The servers' logs go to this output (E2E_VERBOSE): a failure here involves several
# processes, and their logs are what explains it.
# Four processes per function also means four room caches, so more index Queries than in
# process: moto serves ~50 of these requests/s here, so the load test types at half the rate (an
# edit every 400 ms, ~250 updates/s), which the in-process pass above already runs at full rate.
lambdas=(YLAMBDA_LAMBDAS_DIR="$PWD/target/debug" YLAMBDA_LAMBDA_CONCURRENCY=4 E2E_VERBOSE=1)
step "end-to-end through the real Lambda binaries (ylambda dev --lambdas, redis-url profile)"
fresh_moto
(cd tests/e2e && env YLAMBDA_BACKEND=aws YLAMBDA_DOC_STORE=redis LOAD_INTERVAL_MS=400 \
  "${lambdas[@]}" YLAMBDA_BIN="$bin" npm test)

step "end-to-end through the real Lambda binaries (ylambda dev --lambdas, dynamodb profile)"
fresh_moto
(cd tests/e2e && env "${dynamodb_profile[@]}" "${lambdas[@]}" YLAMBDA_BIN="$bin" npm test)

step "y-webrtc in headless Chromium (embedded and aws backends, in a network namespace)"
bash scripts/browser-tests.sh

step "all tests passed"
