#!/usr/bin/env bash
# The whole test suite: starts PgBouncer and moto if they are not running, then runs every
# test of the workspace against the real PostgreSQL (a fresh database per test), and ends
# with one summary line over all test binaries.
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
# Sum every binary's "test result:" line into one closing line.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
