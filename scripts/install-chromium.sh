#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium for the browser tests (tests/browser).
# playwright-core drives this system browser; nothing is downloaded from Playwright's CDN.
#
#   bash scripts/install-chromium.sh
#
# Idempotent and quiet when Chromium is already there. Installing needs root (as on CI); anyone
# else gets a clear error and the command to run.
set -euo pipefail

chromium=/usr/bin/chromium

if [ -x "$chromium" ]; then
    exit 0
fi

say() { printf 'install-chromium: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
    say "$chromium is missing and we are not root: install it with"
    say "  sudo apt-get update && sudo apt-get install -y chromium"
    exit 1
fi

say "installing Debian's chromium package (apt-get)"
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { apt-get update -q && apt-get install -y -q chromium; } >"$log" 2>&1; then
    cat "$log" >&2
    say "apt-get failed (see above)"
    exit 1
fi

if [ ! -x "$chromium" ]; then
    say "the chromium package is installed, but $chromium does not exist"
    exit 1
fi
say "installed: $("$chromium" --version 2>/dev/null || echo "$chromium")"
