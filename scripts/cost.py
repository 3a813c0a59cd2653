#!/usr/bin/env python3
"""AWS charges per million customer messages, computed from the design and measured figures.

    python3 scripts/cost.py                   # the table (template defaults)
    python3 scripts/cost.py --json            # {"faq_per_million_usd", "ai_per_million_usd", "items": [...]}
    python3 scripts/cost.py --levers          # what each lever saved, from the previous set-up
    python3 scripts/cost.py --webhook-front api --status-path queue --responder-memory 512 ...

Every input is a named constant below, in one of four kinds, and the table says which:

* design   request counts per message, from how the pipeline works (README, "How a message
           is answered exactly once");
* measured figures from this repository's benchmarks, load runs and tests (each names the
           command or test that produced it);
* assumed  network latencies and byte counts we cannot measure without a deployment: replace
           them with CloudWatch figures (Duration p50, IncomingBytes) once deployed;
* price    AWS list prices, us-east-1, as of 2026-11, no free tier, no Savings Plans; each
           cites its pricing page. Check them before quoting these numbers.

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

MILLION = 1_000_000

# ----------------------------------------------------------------------------- prices
PRICES_AS_OF = "2026-11"
REGION = "us-east-1"
LAMBDA_PRICING = "https://aws.amazon.com/lambda/pricing/"
APIGW_PRICING = "https://aws.amazon.com/api-gateway/pricing/"
SQS_PRICING = "https://aws.amazon.com/sqs/pricing/"
CLOUDWATCH_PRICING = "https://aws.amazon.com/cloudwatch/pricing/"
SECRETS_PRICING = "https://aws.amazon.com/secrets-manager/pricing/"
TRANSFER_PRICING = "https://aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer"

PRICE = {
    # Lambda arm64: per request, per GB-second (first 7.5 billion GB-s a month). A function URL
    # has no charge of its own: its requests are Lambda requests.
    "lambda_request": 0.20 / MILLION,
    "lambda_gb_s": 0.0000133334,
    # API Gateway HTTP API, per request (first 300 million a month; metered per 512 KB).
    "http_api_request": 1.00 / MILLION,
    # SQS FIFO, per request, each 64 KB of payload one request.
    "sqs_fifo_request": 0.50 / MILLION,
    # CloudWatch Logs ingestion (standard class), per GB; storage per GB-month; alarms.
    "logs_ingest_gb": 0.50,
    "logs_store_gb_month": 0.03,
    "alarm_month": 0.10,
    # Secrets Manager.
    "secret_month": 0.40,
    "secrets_call": 0.05 / 10_000,
    # Data transfer out to the internet (first 10 TB a month).
    "data_out_gb": 0.09,
}
PRICE_SOURCE = {
    "lambda_request": LAMBDA_PRICING,
    "lambda_gb_s": LAMBDA_PRICING,
    "http_api_request": APIGW_PRICING,
    "sqs_fifo_request": SQS_PRICING,
    "logs_ingest_gb": CLOUDWATCH_PRICING,
    "logs_store_gb_month": CLOUDWATCH_PRICING,
    "alarm_month": CLOUDWATCH_PRICING,
    "secret_month": SECRETS_PRICING,
    "secrets_call": SECRETS_PRICING,
    "data_out_gb": TRANSFER_PRICING,
}

# ----------------------------------------------------------------------------- design
# Meta calls the webhook once per customer message and once per status of each reply
# (sent, delivered, read); a FAQ answer is one reply. Each delivery is one invocation.
STATUSES_PER_REPLY = 3
REPLIES_PER_MESSAGE = 1
# The responder's database round trips: an FAQ answer is recorded with its claim, then marked
# sent (migration 0030); an AI answer is claimed, recorded, marked sent (migration 0009); a
# status the responder applies (the queue path) is one; the webhook writes a delivery's
# statuses in one.
DB_TRIPS_PER_FAQ = 2
DB_TRIPS_PER_AI = 3
DB_TRIPS_PER_STATUS = 1
# SQS per job: one SendMessageBatch per delivery; Lambda's poller receives and deletes per batch.
# At a million messages a month (0.4 a second) a poll finds about one job: batches of one.
DEFAULT_BATCH = 1
# Lambda gives a function one vCPU at 1,769 MB and proportionally less below.
MB_PER_VCPU = 1769
# CloudWatch Logs bills 26 bytes of metadata per log event on top of its text.
LOG_EVENT_OVERHEAD = 26

# ----------------------------------------------------------------------------- measured
# CPU (one core of this 2-core machine, release build), README "Performance":
WEBHOOK_CPU_US = 4.6  # cargo bench -p alphadome --bench webhook_ingress (verify + parse + route)
RESPONDER_CPU_US = 10.5  # cargo bench -p alphadome --bench responder_path (decode, intents, FAQ, decide)
# The whole pipeline's CPU per message, bounded by a measured throughput: this 2-core machine
# answered 2,200 FAQ messages a second through `alphadome serve --dry-run` under `alphadome
# loadtest` (README "The whole pipeline under load"), Postgres and the load generator on the
# same cores: 2 core-seconds / 2,200 messages = 909 µs of CPU per message at most, HTTP, JSON,
# the Postgres client and the queue included. The model charges all of it to each step of each
# function (an upper bound twice over: the benchmarks above are the decisions alone).
PIPELINE_CPU_US_PER_MESSAGE = 2 * 1_000_000 / 2_200
# Peak RSS of `alphadome serve --dry-run` (webhook and responder in one process, 4 workers,
# batches of up to 200) under `alphadome loadtest --tenants 5 --messages 3000 --concurrency 32`,
# from /usr/bin/time -v: 43.9 MB, debug build (release binaries are smaller). One Lambda
# instance holds less (one batch of at most 10); the template's 128 MB leaves about 3x.
# The same run used 2.44 s of CPU (user + sys) for 3,000 messages: 813 µs a message unoptimised,
# within the bound above.
PEAK_RSS_MB = 43.9
# Log bytes per message at `info`, in the functions' JSON format, measured by tests that run
# the code under the functions' subscriber (`cargo test -p webhook --test webhook
# a_delivery_logs -- --nocapture`; `cargo test -p responder --test log_volume -- --nocapture`):
# the webhook's one line for a message delivery; none for a status delivery (debug since
# issue 16; before, the same line as a message's); the responder's one line for a warm FAQ answer.
WEBHOOK_LOG_BYTES_MESSAGE = 280
WEBHOOK_LOG_BYTES_STATUS = 0
WEBHOOK_LOG_BYTES_STATUS_BEFORE = 280
RESPONDER_LOG_BYTES_MESSAGE = 221
RESPONDER_LOG_BYTES_STATUS = 200  # "job handled" for a status job (the queue path), estimated
# Init (process start to the first Runtime API poll), release build, README "Lambda binaries".
INIT_CPU_MS = 4.3

# ----------------------------------------------------------------------------- assumed
# In-region network latencies (replace with CloudWatch Duration once deployed):
SQS_SEND_MS = 12.0  # one SendMessageBatch
DB_RTT_MS = 4.0  # one call through Supabase's pooler in the same region
GRAPH_MS = 300.0  # one Graph send (Meta's servers are not in the region)
OPENAI_MS = 1500.0  # one short gpt-4o-mini answer
SECRET_FETCH_MS = 30.0  # one GetSecretValue at a cold start
# Lambda's own log lines per invocation when the system log level is INFO (platform.start,
# platform.runtimeDone, platform.report in JSON), bytes:
PLATFORM_LOG_BYTES = 700
# API Gateway access log line (the template's format), bytes.
ACCESS_LOG_BYTES = 330
# Cold starts per million messages (environments recycled every few hours, scale-outs), each
# fetching the platform secret and, in the responder, one data key per tenant it serves.
COLD_STARTS = 10_000
SECRETS_CALLS_PER_COLD_START = 2
# Bytes leaving AWS per message: the webhook's answer to Meta (per delivery), the Graph send
# and the read receipt (FAQ), the OpenAI request (AI), and Postgres calls to Supabase (charged
# as internet egress here: an upper bound when Supabase runs in the same region).
WEBHOOK_RESPONSE_BYTES = 250
GRAPH_BYTES_PER_MESSAGE = 2_000
OPENAI_BYTES_PER_MESSAGE = 4_000
DB_BYTES_PER_MESSAGE = 1_500
DB_BYTES_PER_STATUS = 400

# ----------------------------------------------------------------------------- fixed monthly
LOG_RETENTION_DAYS = 30
# Lambda's SQS pollers long-poll (20 s) even when the queue is empty.
SQS_IDLE_POLLERS = 5
ALARMS = {  # template.yaml: which exist for each front
    "url": ["DLQ", "queue age", "webhook errors", "responder errors", "admin errors",
            "webhook URL 5xx", "webhook throttles", "HTTP API 5xx"],
    "api": ["DLQ", "queue age", "webhook errors", "responder errors", "admin errors",
            "webhook throttles", "HTTP API 5xx"],
}


# ----------------------------------------------------------------------------- model

DEFAULTS = {
    "webhook_front": "url",
    "status_path": "webhook",
    "webhook_memory": 128,
    "responder_memory": 128,
    "batch": DEFAULT_BATCH,
    "sends": "parallel",
    "system_logs": "off",
    "access_logs": "on",
    "status_log": "debug",
    "tenants": 10,
}

# The set-up before issue 16 (README of that time): HTTP API in front, status jobs through the
# queue and the responder, 256 / 512 MB, Lambda's own log lines, one info line per status.
BEFORE = {
    **DEFAULTS,
    "webhook_front": "api",
    "status_path": "queue",
    "webhook_memory": 256,
    "responder_memory": 512,
    "sends": "parallel",
    "system_logs": "on",
    "status_log": "info",
}

# The levers, applied one after the other from BEFORE to the defaults.
LEVERS = [
    ("webhook behind a Lambda function URL (no API Gateway request charge)", {"webhook_front": "url"}),
    ("statuses written by the webhook (no queue job, no responder invocation)", {"status_path": "webhook"}),
    ("responder memory from peak RSS: 512 -> 128 MB", {"responder_memory": 128}),
    ("webhook memory: 256 -> 128 MB", {"webhook_memory": 128}),
    ("Lambda's own log lines off (SystemLogLevel WARN)", {"system_logs": "off"}),
    ("status deliveries log at debug", {"status_log": "debug"}),
]


def cpu_ms(cpu_us: float, memory_mb: int) -> float:
    """CPU time at full core, stretched by Lambda's share of a vCPU at this memory."""
    return cpu_us / 1000.0 * max(1.0, MB_PER_VCPU / memory_mb)


def billed_ms(ms: float) -> int:
    """Lambda bills duration per invocation, rounded up to the millisecond."""
    return max(1, math.ceil(ms))


def item(name, unit, count, unit_price, applies="both", kind=""):
    return {"name": name, "unit": unit, "count": count, "unit_price": unit_price,
            "usd": round(count * unit_price, 6), "applies": applies, "kind": kind}


def model(o: dict) -> dict:
    """The items per million customer messages for options `o`, and both totals."""
    m = MILLION
    replies = m * REPLIES_PER_MESSAGE
    statuses = replies * STATUSES_PER_REPLY
    deliveries = m + statuses
    status_jobs = statuses if o["status_path"] == "queue" else 0
    jobs = m + status_jobs
    batch = max(1, int(o["batch"]))
    wh_gb = o["webhook_memory"] / 1024
    rs_gb = o["responder_memory"] / 1024
    pipeline_cpu = cpu_ms(PIPELINE_CPU_US_PER_MESSAGE, o["webhook_memory"])
    items = []

    # -- front door
    if o["webhook_front"] == "api":
        items.append(item("HTTP API requests (webhook)", "request", deliveries,
                          PRICE["http_api_request"], kind="design x price"))
    items.append(item("webhook invocations", "request", deliveries, PRICE["lambda_request"],
                      kind="design x price"))
    msg_ms = billed_ms(pipeline_cpu + SQS_SEND_MS)
    if o["status_path"] == "webhook":
        status_ms = billed_ms(pipeline_cpu + DB_TRIPS_PER_STATUS * DB_RTT_MS)
    else:
        status_ms = billed_ms(pipeline_cpu + SQS_SEND_MS)
    wh_gbs = (m * msg_ms + statuses * status_ms) / 1000 * wh_gb
    items.append(item(f"webhook duration ({o['webhook_memory']} MB; {msg_ms} ms a message, "
                      f"{status_ms} ms a status)", "GB-s", wh_gbs, PRICE["lambda_gb_s"],
                      kind="measured CPU + assumed latency"))

    # -- queue: a send per delivery that carries a job, a receive and a delete per batch
    sends = m + status_jobs
    polls = math.ceil(jobs / batch)
    items.append(item(f"SQS FIFO requests (send per job, receive + delete per batch of {batch})",
                      "request", sends + 2 * polls, PRICE["sqs_fifo_request"], kind="design x price"))

    # -- responder
    invocations = math.ceil(m / batch) + (math.ceil(status_jobs / batch) if status_jobs else 0)
    items.append(item("responder invocations", "request", invocations, PRICE["lambda_request"],
                      kind="design x price"))
    r_cpu = cpu_ms(PIPELINE_CPU_US_PER_MESSAGE, o["responder_memory"])
    graph_waits = 1 if o["sends"] == "parallel" else batch
    faq_invocation_ms = billed_ms(DB_TRIPS_PER_FAQ * DB_RTT_MS + graph_waits * GRAPH_MS + batch * r_cpu)
    ai_invocation_ms = billed_ms(DB_TRIPS_PER_AI * DB_RTT_MS + OPENAI_MS + graph_waits * GRAPH_MS
                                 + batch * r_cpu)
    faq_gbs = math.ceil(m / batch) * faq_invocation_ms / 1000 * rs_gb
    ai_gbs = math.ceil(m / batch) * ai_invocation_ms / 1000 * rs_gb
    items.append(item(f"responder duration, FAQ answers ({o['responder_memory']} MB; "
                      f"{faq_invocation_ms} ms a batch of {batch})", "GB-s", faq_gbs,
                      PRICE["lambda_gb_s"], applies="faq", kind="measured CPU + assumed latency"))
    items.append(item(f"responder duration, AI answers ({o['responder_memory']} MB; "
                      f"{ai_invocation_ms} ms a batch of {batch})", "GB-s", ai_gbs,
                      PRICE["lambda_gb_s"], applies="ai", kind="measured CPU + assumed latency"))
    if status_jobs:
        st_ms = billed_ms(DB_TRIPS_PER_STATUS * DB_RTT_MS + batch * r_cpu)
        items.append(item(f"responder duration, status jobs ({st_ms} ms a batch)", "GB-s",
                          math.ceil(status_jobs / batch) * st_ms / 1000 * rs_gb, PRICE["lambda_gb_s"],
                          kind="measured CPU + assumed latency"))

    # -- cold starts: init is billed for provided.al2023; secrets fetched once per cold start
    init_ms = billed_ms(cpu_ms(INIT_CPU_MS * 1000, min(o["webhook_memory"], o["responder_memory"]))
                        + SECRET_FETCH_MS * SECRETS_CALLS_PER_COLD_START)
    items.append(item(f"cold starts ({COLD_STARTS:,} x {init_ms} ms init)", "GB-s",
                      COLD_STARTS * init_ms / 1000 * max(wh_gb, rs_gb), PRICE["lambda_gb_s"],
                      kind="assumed count, measured init"))
    items.append(item("Secrets Manager calls (cold starts)", "call",
                      COLD_STARTS * SECRETS_CALLS_PER_COLD_START, PRICE["secrets_call"], kind="assumed"))

    # -- logs (bytes per event + CloudWatch's 26 bytes of metadata)
    def lines(n, b):
        return n * (b + LOG_EVENT_OVERHEAD) if b else 0

    status_line = WEBHOOK_LOG_BYTES_STATUS if o["status_log"] == "debug" else WEBHOOK_LOG_BYTES_STATUS_BEFORE
    log_bytes = (lines(m, WEBHOOK_LOG_BYTES_MESSAGE) + lines(statuses, status_line)
                 + lines(m, RESPONDER_LOG_BYTES_MESSAGE) + lines(status_jobs, RESPONDER_LOG_BYTES_STATUS))
    items.append(item("function logs at info (measured bytes per line)", "GB", log_bytes / 1e9,
                      PRICE["logs_ingest_gb"], kind="measured"))
    if o["system_logs"] == "on":
        platform = (deliveries + invocations) * 3 * LOG_EVENT_OVERHEAD + (deliveries + invocations) * PLATFORM_LOG_BYTES
        items.append(item("Lambda platform logs (START/END/REPORT)", "GB", platform / 1e9,
                          PRICE["logs_ingest_gb"], kind="assumed"))
    if o["webhook_front"] == "api" and o["access_logs"] == "on":
        items.append(item("HTTP API access logs (webhook)", "GB", lines(deliveries, ACCESS_LOG_BYTES) / 1e9,
                          PRICE["logs_ingest_gb"], kind="assumed"))

    # -- data out
    db_out = m * DB_BYTES_PER_MESSAGE + statuses * DB_BYTES_PER_STATUS
    faq_out = deliveries * WEBHOOK_RESPONSE_BYTES + m * GRAPH_BYTES_PER_MESSAGE + db_out
    items.append(item("data out, FAQ answers (Meta, Graph, Postgres)", "GB", faq_out / 1e9,
                      PRICE["data_out_gb"], applies="faq", kind="assumed"))
    items.append(item("data out, AI answers (+ OpenAI)", "GB",
                      (faq_out + m * OPENAI_BYTES_PER_MESSAGE) / 1e9, PRICE["data_out_gb"],
                      applies="ai", kind="assumed"))

    faq = round(sum(i["usd"] for i in items if i["applies"] in ("faq", "both")), 6)
    ai = round(sum(i["usd"] for i in items if i["applies"] in ("ai", "both")), 6)
    return {"faq_per_million_usd": faq, "ai_per_million_usd": ai, "items": items}


def fixed_monthly(o: dict, log_gb_per_month: float = 0.0) -> list[tuple[str, float]]:
    """What a month costs whatever the volume (and the log storage a volume leaves)."""
    alarms = ALARMS[o["webhook_front"]]
    idle_polls = SQS_IDLE_POLLERS * 30 * 24 * 3600 / 20
    return [
        (f"platform secret + {o['tenants']} tenant data keys", PRICE["secret_month"] * (1 + o["tenants"])),
        (f"{len(alarms)} alarms", PRICE["alarm_month"] * len(alarms)),
        (f"idle SQS long polls ({SQS_IDLE_POLLERS} pollers x 20 s)", idle_polls * PRICE["sqs_fifo_request"]),
        (f"log storage, {LOG_RETENTION_DAYS}-day retention, per million messages a month",
         log_gb_per_month * PRICE["logs_store_gb_month"] * LOG_RETENTION_DAYS / 30),
    ]


# ----------------------------------------------------------------------------- output

def options(args) -> dict:
    o = dict(DEFAULTS)
    for key in DEFAULTS:
        v = getattr(args, key, None)
        if v is not None:
            o[key] = v
    return o


def log_gb(result) -> float:
    return sum(i["count"] for i in result["items"] if i["unit"] == "GB" and "logs" in i["name"])


def table(o: dict) -> str:
    r = model(o)
    out = [f"AWS charges per 1,000,000 customer messages ({REGION} list prices as of {PRICES_AS_OF}; "
           f"front {o['webhook_front']}, statuses via {o['status_path']}, webhook {o['webhook_memory']} MB, "
           f"responder {o['responder_memory']} MB, batch {o['batch']})", ""]
    out.append("| item | quantity | unit price | FAQ | AI |")
    out.append("|---|---|---|---|---|")
    for i in r["items"]:
        faq = f"${i['usd']:.2f}" if i["applies"] in ("faq", "both") else ""
        ai = f"${i['usd']:.2f}" if i["applies"] in ("ai", "both") else ""
        out.append(f"| {i['name']} | {fmt_count(i['count'])} {i['unit']} | {fmt_price(i['unit_price'], i['unit'])} "
                   f"| {faq} | {ai} |")
    out.append(f"| **total per million messages** | | | **${r['faq_per_million_usd']:.2f}** "
               f"| **${r['ai_per_million_usd']:.2f}** (+ OpenAI tokens) |")
    out.append("")
    out.append("Fixed monthly, whatever the volume:")
    out.append("")
    out.append("| item | per month |")
    out.append("|---|---|")
    for name, usd in fixed_monthly(o, log_gb(r)):
        out.append(f"| {name} | ${usd:.2f} |")
    return "\n".join(out)


def levers_table() -> str:
    o = dict(BEFORE)
    r = model(o)
    out = ["| lever | FAQ total after | saved per million | AI total after |", "|---|---|---|---|",
           f"| before (HTTP API, statuses through the queue, 256/512 MB, platform logs on) "
           f"| ${r['faq_per_million_usd']:.2f} | | ${r['ai_per_million_usd']:.2f} |"]
    prev = r["faq_per_million_usd"]
    for name, change in LEVERS:
        o.update(change)
        r = model(o)
        out.append(f"| {name} | ${r['faq_per_million_usd']:.2f} | ${prev - r['faq_per_million_usd']:.2f} "
                   f"| ${r['ai_per_million_usd']:.2f} |")
        prev = r["faq_per_million_usd"]
    # At peak a batch holds several customers: the parallel sends' lever.
    for sends in ("sequential", "parallel"):
        r = model({**DEFAULTS, "batch": 10, "sends": sends})
        out.append(f"| at peak, batches of 10 customers, sends {sends} | ${r['faq_per_million_usd']:.2f} | | "
                   f"${r['ai_per_million_usd']:.2f} |")
    return "\n".join(out)


def fmt_count(n: float) -> str:
    if n >= 1000:
        return f"{n:,.0f}"
    return f"{n:,.2f}"


def fmt_price(p: float, unit: str) -> str:
    if unit in ("request", "call"):
        return f"${p * MILLION:.2f}/M"
    if unit == "GB-s":
        return f"${p:.10f}".rstrip("0")
    return f"${p:.2f}/{unit}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the items and totals as JSON")
    ap.add_argument("--levers", action="store_true", help="print what each lever saved")
    ap.add_argument("--webhook-front", dest="webhook_front", choices=["url", "api"])
    ap.add_argument("--status-path", dest="status_path", choices=["webhook", "queue"])
    ap.add_argument("--webhook-memory", dest="webhook_memory", type=int, metavar="MB")
    ap.add_argument("--responder-memory", dest="responder_memory", type=int, metavar="MB")
    ap.add_argument("--batch", type=int, metavar="N", help="messages per responder invocation (1..10)")
    ap.add_argument("--sends", choices=["parallel", "sequential"])
    ap.add_argument("--system-logs", dest="system_logs", choices=["on", "off"])
    ap.add_argument("--access-logs", dest="access_logs", choices=["on", "off"])
    ap.add_argument("--status-log", dest="status_log", choices=["debug", "info"])
    ap.add_argument("--tenants", type=int, metavar="N", help="tenants (data keys) for the fixed costs")
    args = ap.parse_args(argv)
    o = options(args)
    for key in ("webhook_memory", "responder_memory"):
        if not 128 <= o[key] <= 10240:
            ap.error(f"--{key.replace('_', '-')} must be 128..10240 MB")
    if not 1 <= o["batch"] <= 10:
        ap.error("--batch must be 1..10 (the FIFO maximum)")
    if args.json:
        r = model(o)
        print(json.dumps({"faq_per_million_usd": r["faq_per_million_usd"],
                          "ai_per_million_usd": r["ai_per_million_usd"],
                          "items": r["items"]}, indent=2))
    elif args.levers:
        print(levers_table())
    else:
        print(table(o))
    return 0


if __name__ == "__main__":
    sys.exit(main())
