#!/usr/bin/env bash
# The Lambda path under faults (issue 15): `alphadome soak` runs `alphadome serve` twice (the
# webhook with two SQS consumers, and a consumer-only process it kills with SIGKILL), a queue
# pair on moto with a redrive policy, and stand-ins for Graph and OpenAI that count every
# request, while PostgreSQL restarts twice and Graph, OpenAI and the queue fail in bursts.
#
# It uses its OWN PostgreSQL cluster (port 5439, under $SOAK_DIR) and its own moto (port
# 5055), so restarting them disturbs nothing else on the machine.
#
#   ./scripts/soak.sh                      # 10,000 messages at 50/s (about 4 minutes)
#   ./scripts/soak.sh --messages 2000      # any `alphadome soak` option
#   SOAK_PROFILE=dev ./scripts/soak.sh     # a debug build instead of release
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_DIR=${SOAK_DIR:-/tmp/alphadome-soak}
PG_PORT=${SOAK_PG_PORT:-5439}
MOTO_PORT=${SOAK_MOTO_PORT:-5055}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)}
PROFILE=${SOAK_PROFILE:-release}

./scripts/test-services.sh >/dev/null   # installs moto if missing
mkdir -p "$SOAK_DIR"
chown postgres "$SOAK_DIR" 2>/dev/null || true
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ ! -f "$SOAK_DIR/pg/PG_VERSION" ]; then
  as_postgres "$PG_BIN/initdb" -D "$SOAK_DIR/pg" -U postgres --auth=trust >/dev/null
fi
if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
  as_postgres "$PG_BIN/pg_ctl" -D "$SOAK_DIR/pg" -l "$SOAK_DIR/pg.log" -w \
    -o "-p $PG_PORT -k $SOAK_DIR -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null
fi
PG_RESTART="$( [ "$(id -u)" = 0 ] && echo "runuser -u postgres -- " )$PG_BIN/pg_ctl -D $SOAK_DIR/pg -m fast -w restart -l $SOAK_DIR/pg.log"

moto_pid=
if ! curl -fsS "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1; then
  # moto with its SQS clock made cheap (same value): see scripts/soak-moto.py.
  python3 scripts/soak-moto.py -H 127.0.0.1 -p "$MOTO_PORT" >"$SOAK_DIR/moto.log" 2>&1 &
  moto_pid=$!
  for _ in $(seq 1 60); do curl -fsS "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1 && break; sleep 0.5; done
fi
cleanup() {
  [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true
  as_postgres "$PG_BIN/pg_ctl" -D "$SOAK_DIR/pg" -m fast -w stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [ "$PROFILE" = release ]; then
  cargo build -q --release -p alphadome-cli
  BIN=${CARGO_TARGET_DIR:-target}/release/alphadome
else
  cargo build -q -p alphadome-cli
  BIN=${CARGO_TARGET_DIR:-target}/debug/alphadome
fi

export DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/alphadome_soak
export META_APP_SECRET=alphadome-test-app-secret
"$BIN" soak --moto "http://127.0.0.1:$MOTO_PORT" --pg-restart "$PG_RESTART" --run-dir "$SOAK_DIR/run" "$@"
