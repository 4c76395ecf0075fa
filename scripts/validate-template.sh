#!/usr/bin/env bash
# Validates template.yaml offline with `sam validate --lint` (aws-sam-cli from PyPI, in a venv
# under .ci-work; cfn-lint comes with it, and any error or warning fails; it checks every
# combination of conditions, so a reference to a resource of one Profile from another fails),
# then with scripts/check-template.py (no wildcard IAM actions, log retention, secrets and
# storage hardening, and each Profile resolved: doc store, Redis URL, VPC; on the template as
# SAM expands it). Dummy credentials and a region: nothing is sent to AWS.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${YLAMBDA_SAM_VENV:-.ci-work/sam-venv}"
if [ ! -x "$venv/bin/sam" ]; then
  echo "installing aws-sam-cli into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'aws-sam-cli>=1.120,<2' >&2
fi
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
SAM_CLI_TELEMETRY=0 "$venv/bin/sam" validate --lint --template template.yaml --region us-east-1
"$venv/bin/python" scripts/check-template.py template.yaml
