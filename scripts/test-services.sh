#!/usr/bin/env bash
# Starts the services the test suite needs beside PostgreSQL, on loopback only:
#   * PgBouncer in transaction mode on 127.0.0.1:6432 (stands in for Supabase's pooler)
#   * moto (AWS emulator: SQS, Secrets Manager) on 127.0.0.1:5000
# Idempotent: a service already answering is left alone. Installs what is missing (Debian's
# pgbouncer, PyPI's moto[server]) so a fresh machine needs nothing done by hand.
set -euo pipefail

if ! command -v pgbouncer >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  echo "installing pgbouncer, postgresql-client, curl (apt)" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer postgresql-client curl >/dev/null
fi
if ! command -v moto_server >/dev/null 2>&1; then
  echo "installing moto[server] (pip)" >&2
  python3 -m pip install -q 'moto[server]'
  hash -r
fi

PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
BOUNCER_PORT=${BOUNCER_PORT:-6432}
MOTO_PORT=${MOTO_PORT:-5000}
RUN_DIR=${RUN_DIR:-/tmp/alphadome-test-services}
mkdir -p "$RUN_DIR"

if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
  echo "PostgreSQL is not answering on $PG_HOST:$PG_PORT; trying to start it" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 1; done
  pg_isready -h "$PG_HOST" -p "$PG_PORT"
fi

if ! pg_isready -q -h 127.0.0.1 -p "$BOUNCER_PORT"; then
  cat > "$RUN_DIR/pgbouncer.ini" <<INI
[databases]
* = host=$PG_HOST port=$PG_PORT user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
auth_type = any
pool_mode = transaction
admin_users = postgres
server_idle_timeout = 10
max_client_conn = 500
default_pool_size = 20
max_db_connections = 40
ignore_startup_parameters = extra_float_digits,options,application_name
logfile = $RUN_DIR/pgbouncer.log
pidfile = $RUN_DIR/pgbouncer.pid
unix_socket_dir =
INI
  chown -R postgres "$RUN_DIR" 2>/dev/null || true
  if [ "$(id -u)" = 0 ]; then
    pgbouncer -d -u postgres "$RUN_DIR/pgbouncer.ini"
  else
    pgbouncer -d "$RUN_DIR/pgbouncer.ini"
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "$BOUNCER_PORT" && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p "$BOUNCER_PORT"
fi

if ! curl -fsS "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1; then
  nohup moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$RUN_DIR/moto.log" 2>&1 &
  echo $! >"$RUN_DIR/moto.pid"
  for _ in $(seq 1 60); do curl -fsS "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1 && break; sleep 0.5; done
  curl -fsS "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null
fi
echo "test services ready: postgres $PG_HOST:$PG_PORT, pgbouncer 127.0.0.1:$BOUNCER_PORT (transaction mode), moto 127.0.0.1:$MOTO_PORT"
