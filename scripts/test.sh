#!/usr/bin/env bash
# The whole test suite: starts PgBouncer and moto if they are not running, then runs every
# test of the workspace against the real PostgreSQL (a fresh database per test).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/test-services.sh
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export ALPHADOME_TEST_AWS_ENDPOINT=${ALPHADOME_TEST_AWS_ENDPOINT:-http://127.0.0.1:5000}
export ALPHADOME_TEST_PGBOUNCER=${ALPHADOME_TEST_PGBOUNCER:-postgres://postgres@127.0.0.1:6432}
exec cargo test --workspace "$@"
