#!/usr/bin/env bash
# Real browsers against `ylambda dev`: two headless Chromium contexts become WebRTC peers
# through its y-webrtc signaling, y-websocket pages send and receive documents far larger
# than API Gateway's 32 KB frame (in pieces), the dashboard follows rooms live, and two
# pixel-board pages see each other's clicks, on the embedded backend and on DynamoDB + Redis + S3
# (moto, redis-server), the documents also through the real Lambda binaries. Needs root (apt for
# Chromium, and a network namespace).
#
# The browsers and every server they talk to run inside a network namespace made here, with
# loopback and a veth pair of its own and no route out: WebRTC needs a non-loopback interface
# to gather ICE candidates, and this way its traffic (and any mDNS or STUN attempt) cannot
# leave the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${YLAMBDA_BIN:-$PWD/target/debug/ylambda}"

bash scripts/install-chromium.sh
(cd tests/browser && npm ci --no-audit --no-fund)
# The pixel-board example the browser tests open (served by ylambda dev at /examples/).
(cd examples/pixel-board && npm ci --no-audit --no-fund && npm run build)
# The venv for moto must exist before entering the namespace (PyPI is outside it).
YLAMBDA_VENV="$PWD/.ci-work/venv" YLAMBDA_STATE_DIR=.ci-work/venv-check \
  bash scripts/local-aws.sh start >/dev/null
YLAMBDA_STATE_DIR=.ci-work/venv-check bash scripts/local-aws.sh stop

unshare --net env YLAMBDA_BIN="$bin" LAMBDAS_DIR="$(dirname "$bin")" bash -euo pipefail -c '
  ip link set lo up
  ip link add ylb0 type veth peer name ylb1
  ip addr add 10.203.0.1/24 dev ylb0
  ip addr add 10.203.0.2/24 dev ylb1
  ip link set ylb0 up
  ip link set ylb1 up
  # Chromium gathers host candidates on the interface of the default route.
  ip route add default dev ylb0

  echo "==> browsers, embedded backend"
  # The outer moto/redis addresses are unreachable in here; the aws pass below (same script,
  # always run) is the aws check, so this pass is plainly the embedded one.
  (cd tests/browser && env -u CI -u YLAMBDA_BACKEND -u AWS_ENDPOINT_URL -u YLAMBDA_REDIS_URL \
    -u YLAMBDA_TABLE -u YLAMBDA_BUCKET npm test)

  echo "==> browsers, aws backend (moto + redis-server inside the namespace)"
  export YLAMBDA_STATE_DIR=.ci-work/netns YLAMBDA_VENV="$PWD/.ci-work/venv"
  mkdir -p "$YLAMBDA_STATE_DIR"
  trap "bash scripts/local-redis.sh stop || true; bash scripts/local-aws.sh stop || true" EXIT
  eval "$(bash scripts/local-aws.sh start)"
  eval "$(bash scripts/local-redis.sh start)"
  (cd tests/browser && YLAMBDA_BACKEND=aws npm test)

  echo "==> browsers, documents in pieces through the real Lambda binaries (aws backend, 4 processes per function)"
  (cd tests/browser && YLAMBDA_BACKEND=aws YLAMBDA_LAMBDAS_DIR="$LAMBDAS_DIR" YLAMBDA_LAMBDA_CONCURRENCY=4 \
    node --experimental-websocket --test --test-concurrency=1 --test-timeout=240000 test/pieces.test.js)
'
