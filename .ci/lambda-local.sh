#!/usr/bin/env bash
# Proves that `cargo lambda watch` / `cargo lambda invoke` run both functions with the sample
# events in events/, against local stand-ins only:
#   * a fresh PostgreSQL database, migrated and seeded by `alphadome demo` (the demo tenants own
#     phone_number_id 110000000001 and 110000000002, the numbers the events use);
#   * an SQS FIFO queue on moto (127.0.0.1:5000);
#   * a Graph API stub (python3 http.server) that records POSTs.
# Checks: webhook + webhook-text-message.json -> 200 and one message on the queue;
#         webhook + webhook-bad-signature.json -> 401;
#         webhook + webhook-function-url.json (a Lambda function URL request, the template's
#           default front) -> 200 and a second message on the queue;
#         responder + sqs-text-job.json -> no batch item failures, one text sent to
#         /110000000001/messages with the tenant's token;
#         webhook + webhook-function-url-status.json -> 200, the reply's row in Postgres is
#           `read` (the webhook writes statuses itself), nothing more on the queue.
# Everything it starts is stopped on exit. Needs: PostgreSQL, moto, cargo-lambda, python3+boto3.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
AWS_ENDPOINT=${ALPHADOME_TEST_AWS_ENDPOINT:-http://127.0.0.1:5000}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/alphadome-lambda-local.XXXXXX")
DB="alphadome_lambda_$(date +%s)_$$"
DB_URL="${ADMIN_URL%/*}/$DB"
PIDS=()

log() { printf '[lambda-local %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() {
  log "FAIL: $*"
  for f in "$WORK"/watch.log "$WORK"/stub.log; do
    [ -f "$f" ] && { echo "--- tail of $f" >&2; tail -n 40 "$f" >&2; }
  done
  exit 1
}

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    # Each background job runs in its own process group (setsid): stop the whole group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  psql "$ADMIN_URL" -qc "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
  [ -n "${QUEUE_URL:-}" ] && python3 "$WORK/sqs.py" delete "$QUEUE_URL" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # port, seconds
  for _ in $(seq 1 $(($2 * 10))); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

command -v cargo-lambda >/dev/null || fail "cargo-lambda is not installed (pip install cargo-lambda)"
log "$(cargo lambda --version)"
./scripts/test-services.sh >/dev/null

log "building (debug): alphadome, webhook, responder"
cargo build -q -p alphadome-cli -p webhook -p responder

log "fresh database $DB, seeded by alphadome demo"
DATABASE_URL="$DB_URL" KEY_PROVIDER=local LOCAL_KEY_DIR="$WORK/keys" \
  timeout 60 target/debug/alphadome demo >"$WORK/demo.log" 2>&1 || { cat "$WORK/demo.log" >&2; fail "alphadome demo"; }

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_ENDPOINT_URL="$AWS_ENDPOINT"
cat >"$WORK/sqs.py" <<'PY'
import os, sys, boto3
sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
cmd, arg = sys.argv[1], sys.argv[2]
if cmd == "create":
    print(sqs.create_queue(QueueName=arg, Attributes={"FifoQueue": "true", "VisibilityTimeout": "30"})["QueueUrl"])
elif cmd == "count":
    a = sqs.get_queue_attributes(QueueUrl=arg, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    print(int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"]))
elif cmd == "delete":
    sqs.delete_queue(QueueUrl=arg)
PY
QUEUE_URL=$(timeout 20 python3 "$WORK/sqs.py" create "alphadome-lambda-local-$$-$(date +%s).fifo") || fail "creating the SQS FIFO queue on moto"
log "queue $QUEUE_URL"

STUB_PORT=$(free_port)
cat >"$WORK/stub.py" <<'PY'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, record = int(sys.argv[1]), sys.argv[2]
class Graph(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        with open(record, "a") as f:
            f.write(json.dumps({"path": self.path, "auth": self.headers.get("authorization"),
                                "body": json.loads(body or b"null")}) + "\n")
        out = json.dumps({"messaging_product": "whatsapp", "messages": [{"id": "wamid.stub"}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", port), Graph).serve_forever()
PY
touch "$WORK/graph-posts.jsonl"
setsid python3 "$WORK/stub.py" "$STUB_PORT" "$WORK/graph-posts.jsonl" >"$WORK/stub.log" 2>&1 &
PIDS+=($!)
wait_port "$STUB_PORT" 10 || fail "the Graph stub did not start"

# The functions' environment (documented in the README: cargo lambda watch --env-file FILE).
cat >"$WORK/lambda.env" <<ENV
DATABASE_URL=$DB_URL
REPLY_QUEUE_URL=$QUEUE_URL
AWS_ENDPOINT_URL=$AWS_ENDPOINT
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
AWS_REGION=us-east-1
META_APP_SECRET=alphadome-test-app-secret
META_VERIFY_TOKEN=alphadome-test-verify-token
KEY_PROVIDER=local
LOCAL_KEY_DIR=$WORK/keys
WHATSAPP_API_BASE_URL=http://127.0.0.1:$STUB_PORT
RUST_LOG=info
ENV

INVOKE_PORT=$(free_port)
log "cargo lambda watch on 127.0.0.1:$INVOKE_PORT"
setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$INVOKE_PORT" \
  --env-file "$WORK/lambda.env" >"$WORK/watch.log" 2>&1 &
PIDS+=($!)
wait_port "$INVOKE_PORT" 120 || fail "cargo lambda watch did not start listening"

invoke() { # function, event file -> JSON response on stdout
  timeout 180 cargo lambda invoke "$1" --invoke-address 127.0.0.1 --invoke-port "$INVOKE_PORT" \
    --data-file "$2" --output-format json 2>>"$WORK/invoke.err"
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

log "invoke webhook with events/webhook-text-message.json"
out=$(invoke webhook events/webhook-text-message.json) || fail "invoke webhook (text message): $(tail -n 5 "$WORK/invoke.err")"
status=$(echo "$out" | json 'd["statusCode"]')
[ "$status" = 200 ] || fail "webhook answered $status to a signed message: $out"
queued=$(python3 "$WORK/sqs.py" count "$QUEUE_URL")
[ "$queued" = 1 ] || fail "expected 1 message on the queue, found $queued"
log "  -> statusCode 200, 1 message on the queue"

log "invoke webhook with events/webhook-bad-signature.json"
out=$(invoke webhook events/webhook-bad-signature.json) || fail "invoke webhook (bad signature)"
status=$(echo "$out" | json 'd["statusCode"]')
[ "$status" = 401 ] || fail "webhook answered $status to a bad signature: $out"
queued=$(python3 "$WORK/sqs.py" count "$QUEUE_URL")
[ "$queued" = 1 ] || fail "a refused delivery changed the queue ($queued messages)"
log "  -> statusCode 401, queue unchanged"

log "invoke webhook with events/webhook-function-url.json (function URL event shape)"
out=$(invoke webhook events/webhook-function-url.json) || fail "invoke webhook (function URL): $(tail -n 5 "$WORK/invoke.err")"
status=$(echo "$out" | json 'd["statusCode"]')
[ "$status" = 200 ] || fail "webhook answered $status to a signed function URL request: $out"
queued=$(python3 "$WORK/sqs.py" count "$QUEUE_URL")
[ "$queued" = 2 ] || fail "expected 2 messages on the queue after the function URL request, found $queued"
log "  -> statusCode 200, 2 messages on the queue"

# The sample job carries a fixed timestamp; WhatsApp's 24-hour window would make the responder
# (rightly) stay silent once it is a day old, so an old copy is refreshed with the current time.
JOB_EVENT=events/sqs-text-job.json
if python3 - "$JOB_EVENT" <<'PY'
import json, sys, time
job = json.loads(json.load(open(sys.argv[1]))["Records"][0]["body"])
sys.exit(0 if time.time() - job["timestamp"] > 23 * 3600 else 1)
PY
then
  python3 - "$JOB_EVENT" "$WORK/sqs-text-job.json" <<'PY'
import json, sys, time
ev = json.load(open(sys.argv[1]))
job = json.loads(ev["Records"][0]["body"]); job["timestamp"] = int(time.time())
ev["Records"][0]["body"] = json.dumps(job, separators=(",", ":"))
json.dump(ev, open(sys.argv[2], "w"))
PY
  log "note: $JOB_EVENT is over 23 h old; invoking a copy with the current timestamp"
  JOB_EVENT="$WORK/sqs-text-job.json"
fi

log "invoke responder with $JOB_EVENT"
out=$(invoke responder "$JOB_EVENT") || fail "invoke responder: $(tail -n 5 "$WORK/invoke.err")"
failures=$(echo "$out" | json 'len(d["batchItemFailures"])')
[ "$failures" = 0 ] || fail "responder reported batch item failures: $out"
texts=$(python3 - "$WORK/graph-posts.jsonl" <<'PY'
import json, sys
posts = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
texts = [p for p in posts if (p["body"] or {}).get("type") == "text"]
ok = [p for p in texts if p["path"] == "/110000000001/messages"
      and p["auth"] == "Bearer demo-placeholder-whatsapp-token-110000000001"]
print(f"{len(texts)} {len(ok)} {len(posts) - len(texts)}")
PY
)
read -r n_texts n_ok n_other <<<"$texts"
[ "$n_texts" = 1 ] && [ "$n_ok" = 1 ] || fail "expected one text POST to /110000000001/messages with the tenant's token, got: $(cat "$WORK/graph-posts.jsonl")"
log "  -> batchItemFailures [], Graph stub got 1 text to /110000000001/messages (+$n_other read receipt)"

log "invoke webhook with events/webhook-function-url-status.json (read, for the reply just sent)"
out=$(invoke webhook events/webhook-function-url-status.json) || fail "invoke webhook (status): $(tail -n 5 "$WORK/invoke.err")"
status=$(echo "$out" | json 'd["statusCode"]')
[ "$status" = 200 ] || fail "webhook answered $status to a signed status delivery: $out"
row=$(psql "$DB_URL" -Atc "select status from public.conversations where wa_message_id = 'wamid.stub' and direction = 'outgoing'")
[ "$row" = read ] || fail "the reply's status is '$row' after the webhook wrote 'read'"
queued=$(python3 "$WORK/sqs.py" count "$QUEUE_URL")
[ "$queued" = 2 ] || fail "a status delivery changed the queue ($queued messages)"
log "  -> statusCode 200, the reply is 'read' in Postgres, queue unchanged"

log "OK: cargo lambda watch/invoke ran webhook and responder with the events in events/"
