#!/usr/bin/env bash
# The whole test suite: starts PgBouncer and moto if they are not running, then runs every
# test of the workspace against the real PostgreSQL (a fresh database per test), then the
# dashboard's browser test (headless Debian chromium + Playwright, when both are installed),
# and ends with one summary line over all test binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/test-services.sh
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export ALPHADOME_TEST_AWS_ENDPOINT=${ALPHADOME_TEST_AWS_ENDPOINT:-http://127.0.0.1:5000}
export ALPHADOME_TEST_PGBOUNCER=${ALPHADOME_TEST_PGBOUNCER:-postgres://postgres@127.0.0.1:6432}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?
# The cost model (scripts/cost.py) and its contract.
if python3 scripts/test_cost.py 2>&1 | tee -a "$log" | tail -n 3; then
  echo "test result: ok. 1 passed; 0 failed; 0 ignored (scripts/test_cost.py)" >>"$log"
else
  echo "test result: FAILED. 0 passed; 1 failed; 0 ignored (scripts/test_cost.py)" >>"$log"
  status=1
fi
# The browser test (scripts/browser_test.py) drives a real `alphadome serve --dry-run`.
if [ -x /usr/bin/chromium ] && python3 -c 'import playwright' 2>/dev/null; then
  if cargo build -q -p alphadome-cli && python3 scripts/browser_test.py; then
    echo "test result: ok. 1 passed; 0 failed; 0 ignored (browser test)" >>"$log"
  else
    echo "test result: FAILED. 0 passed; 1 failed; 0 ignored (browser test)" >>"$log"
    status=1
  fi
else
  echo "browser test: skipped (needs /usr/bin/chromium and 'pip install playwright'; .ci/run installs both)"
  echo "test result: ok. 0 passed; 0 failed; 1 ignored (browser test)" >>"$log"
fi
# Sum every binary's "test result:" line into one closing line.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
