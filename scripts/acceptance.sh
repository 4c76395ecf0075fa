#!/usr/bin/env bash
# The deployment check: runs the acceptance part of the end-to-end suite (tests/e2e/acceptance)
# against a deployed stage, with real y-websocket providers (through ylambda-client) and raw
# y-webrtc signaling clients. Starts no server; needs node >= 20 and npm (for `npm ci` when
# tests/e2e/node_modules is missing). Exit status: 0 when every check passed, 1 when one failed,
# 2 for a usage error.
#
#   scripts/acceptance.sh wss://abc.execute-api.us-east-1.amazonaws.com/prod
#   YLAMBDA_AUTH_SECRET=... scripts/acceptance.sh URL                  # access-control cases too
#   YLAMBDA_TOKEN_RW=... YLAMBDA_TOKEN_RO=... scripts/acceptance.sh URL
#   scripts/acceptance.sh URL --test-name-pattern signaling           # node --test options
#
# Tested against `ylambda dev` by tests/e2e/test/acceptance.test.js; tests/e2e/README.md says how
# to run it against a deployed stack and how to mint the tokens.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/acceptance.sh URL [NODE_TEST_OPTION...]

Runs the acceptance checks (tests/e2e/acceptance) against the stage at URL, e.g.
wss://abc.execute-api.us-east-1.amazonaws.com/prod (or ws://127.0.0.1:4001 for ylambda dev).
Further arguments go to `node --test` (e.g. --test-name-pattern signaling).

environment:
  YLAMBDA_AUTH_SECRET                 the stage's HS256 secret: tokens are minted for the test rooms
  YLAMBDA_TOKEN_RW, YLAMBDA_TOKEN_RO  or given tokens (access rw / ro) opening 'acceptance-*'
  YLAMBDA_ROOM_PREFIX                 prefix of every test room and topic (default acceptance-)
  E2E_PATIENCE                        multiplies every deadline (default 1)
Without a token source the stage is taken to be open and the access-control checks are skipped.
EOF
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    '') echo "acceptance: no stage URL given" >&2; usage >&2; exit 2 ;;
    ws://*|wss://*) ;;
    *) echo "acceptance: the stage URL must start with ws:// or wss://, got: $1" >&2; usage >&2; exit 2 ;;
esac
url="${1%/}"
shift
case "$url" in
    *'?'*|*'#'*) echo "acceptance: the stage URL takes no query or fragment (tokens go in YLAMBDA_TOKEN_RW / _RO): $url" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/../tests/e2e"
command -v node >/dev/null || { echo "acceptance: node not found (need node >= 20)" >&2; exit 2; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    { echo "acceptance: need node >= 20, have $(node --version)" >&2; exit 2; }
if [ ! -d node_modules ]; then
    echo "acceptance: installing the suite's packages (npm ci in tests/e2e)" >&2
    npm ci --no-audit --no-fund >&2
fi

if [ -n "${YLAMBDA_TOKEN_RW:-}" ] || [ -n "${YLAMBDA_TOKEN_RO:-}" ]; then
    tokens="given tokens (YLAMBDA_TOKEN_RW${YLAMBDA_TOKEN_RO:+, YLAMBDA_TOKEN_RO})"
elif [ -n "${YLAMBDA_AUTH_SECRET:-}" ]; then
    tokens="minted with YLAMBDA_AUTH_SECRET"
else
    tokens="none: the stage is taken to be open, the access-control checks are skipped"
fi
cat <<EOF
ylambda acceptance check
  stage:  $url
  tokens: $tokens
  checks: two providers converge on text edits; a late joiner gets the full state (sync step 2)
          after the writers left; awareness is relayed and removed on close; a 1 MB paste
          (pieces of 32 KB) arrives intact; y-webrtc signaling ping and publish/subscribe;
          with tokens: no token refused (401), a read-only token's edits never applied

EOF

# A TAP copy of the results for the tally below; the spec reporter's output is for reading.
tap="$(mktemp "${TMPDIR:-/tmp}/ylambda-acceptance.XXXXXX")"
trap 'rm -f "$tap"' EXIT
status=0
# NODE_TEST_CONTEXT: set when this script itself runs under node --test (the self-test); the
# inner run would then skip every file and pass with nothing checked.
env -u NODE_TEST_CONTEXT YLAMBDA_URL="$url" \
    node --experimental-websocket --test --test-concurrency=1 --test-timeout=600000 \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" \
    "$@" acceptance/*.test.js || status=$?

count() { sed -n "s/^# $1 \([0-9][0-9]*\)\$/\1/p" "$tap" | tail -n 1; }
tests="$(count tests)"
pass="$(count pass)"
fail="$(count fail)"
skipped="$(count skipped)"
echo
echo "acceptance: ${tests:-0} checks, ${pass:-0} passed, ${fail:-?} failed, ${skipped:-?} skipped"
# why each check skipped for want of tokens was skipped (not those left out by a name pattern)
grep -E '^ok [0-9]+ - .* # SKIP' "$tap" | grep -v '# SKIP test name does not match pattern$' |
    sed -E 's/^ok [0-9]+ - /  skipped: /' || true
if [ "$status" -eq 0 ] && [ "${pass:-0}" -gt 0 ]; then
    echo "acceptance: PASSED against $url"
elif [ "$status" -eq 0 ]; then
    echo "acceptance: FAILED against $url: no check ran"
    exit 1
else
    echo "acceptance: FAILED against $url (node --test exit status $status)"
    exit 1
fi
