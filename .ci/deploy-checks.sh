#!/usr/bin/env bash
# Deployment checks: lints template.yaml three ways and checks it against the code
# (scripts/check_template.py, plus its self-test). Offline: the AWS tools only need a
# region and dummy credentials. Called by .ci/run; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-x}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-x}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export SAM_CLI_TELEMETRY=0 SAM_CLI_UPDATE_NOTIFIER=0 2>/dev/null

if ! command -v sam >/dev/null || ! command -v cfn-lint >/dev/null; then
  echo "deploy-checks: installing aws-sam-cli and cfn-lint"
  python3 -m pip install --quiet aws-sam-cli cfn-lint || { echo "deploy-checks: pip install failed"; exit 1; }
fi

failed=0
step() {
  local name="$1"; shift
  echo "--- $name"
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failed=$((failed + 1)); fi
}

step "cfn-lint"                      cfn-lint template.yaml
step "sam validate --lint"           sam validate --lint --template-file template.yaml --region us-east-1
step "sam validate"                  sam validate --template-file template.yaml --region us-east-1
step "check_template.py"             python3 scripts/check_template.py
step "check_template.py --self-test" python3 scripts/check_template.py --self-test

if [ "$failed" -ne 0 ]; then
  echo "deploy-checks: $failed step(s) failed"
  exit 1
fi
echo "deploy-checks: all 5 steps passed"
