#!/usr/bin/env python3
"""Measures a Lambda binary's init time locally: process start -> first `GET .../invocation/next`.

A tiny stand-in for the Lambda Runtime API listens on 127.0.0.1 (random port). Each run starts
the binary with AWS_LAMBDA_RUNTIME_API pointing at it and the variables Lambda itself sets,
records when the first /next request arrives (the runtime has finished its init and asks for
work), holds that request open without an event, then kills the process. After N runs it
prints the median and p90 per binary, and each median as a multiple of the first binary's
(put the hello-world first). Runs go round-robin across the binaries, so a change in the
machine's load during the measurement touches all of them alike.

This is what a cold start costs *inside* the function (our code + the runtime crate), on this
machine: Lambda adds its own sandbox/download time on top, and a Lambda vCPU share at 256 MB is
much smaller than a core here, so compare binaries with each other rather than with the
Init Duration reported by CloudWatch.

Usage:
    python3 scripts/init_time.py [--runs 20] [--warmup 1] [--env K=V ...] [--json] BINARY [BINARY ...]

Example:
    python3 scripts/init_time.py --env DATABASE_URL=postgres://... target/release/webhook

Standard library only. Exit status 1 if any run of any binary failed to reach /next.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

NEXT_PATH = "/2018-06-01/runtime/invocation/next"
INIT_ERROR_PATH = "/2018-06-01/runtime/init/error"


class RuntimeApiStandIn:
    """One run's fake Runtime API: remembers when /next first arrived and never hands out an event."""

    def __init__(self) -> None:
        self.first_next: float | None = None
        self.init_error: str | None = None
        self.arrived = threading.Event()
        self.release = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (http.server's naming)
                if self.path == NEXT_PATH:
                    if stand_in.first_next is None:
                        stand_in.first_next = time.perf_counter()
                    stand_in.arrived.set()
                    # Hold the long poll open, as Lambda does while no event is queued.
                    stand_in.release.wait(timeout=600)
                    self.close_connection = True
                    return
                self.send_error(404)

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path == INIT_ERROR_PATH:
                    stand_in.init_error = body.decode("utf-8", "replace")[:500]
                    stand_in.arrived.set()
                self.send_response(202)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):  # keep the table readable
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def lambda_env(port: int, name: str, memory: int, extra: dict[str, str], inherit: bool) -> dict[str, str]:
    env = dict(os.environ) if inherit else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/29/[$LATEST]00000000000000000000000000000000",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "LAMBDA_TASK_ROOT": "/var/task",
        }
    )
    env.update(extra)
    return env


def measure_once(binary: Path, memory: int, extra: dict[str, str], inherit: bool, timeout: float):
    """Returns (milliseconds, None) or (None, reason)."""
    api = RuntimeApiStandIn()
    with tempfile.TemporaryFile() as out:
        env = lambda_env(api.port, binary.name, memory, extra, inherit)
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(binary)], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a wrapper's children die with it
        )
        try:
            deadline = start + timeout
            while not api.arrived.is_set():
                if proc.poll() is not None:
                    break
                if time.perf_counter() > deadline:
                    break
                api.arrived.wait(0.005)
            if api.first_next is not None:
                return (api.first_next - start) * 1000.0, None
            if api.init_error is not None:
                return None, f"reported an init error: {api.init_error}"
            if proc.poll() is not None:
                out.seek(0)
                tail = out.read()[-800:].decode("utf-8", "replace").strip()
                return None, f"exited with status {proc.returncode} before asking for an event: {tail}"
            return None, f"did not ask for an event within {timeout:g} s"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            api.close()


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(rank) - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description="Local Lambda init-time harness (process start -> first /next).")
    ap.add_argument("binaries", nargs="+", type=Path, help="executables built for this machine")
    ap.add_argument("--runs", type=int, default=20, help="measured runs per binary (default 20)")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured runs first, to warm the page cache (default 1)")
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="extra environment (repeatable)")
    ap.add_argument("--memory", type=int, default=256, help="AWS_LAMBDA_FUNCTION_MEMORY_SIZE (default 256)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for /next per run (default 10)")
    ap.add_argument("--inherit-env", action="store_true",
                    help="start from this shell's environment instead of PATH alone (Lambda starts nearly empty)")
    ap.add_argument("--json", action="store_true", help="print JSON on stdout (the table goes to stderr)")
    args = ap.parse_args()

    extra: dict[str, str] = {}
    for kv in args.env:
        if "=" not in kv:
            ap.error(f"--env wants K=V, got {kv!r}")
        k, v = kv.split("=", 1)
        extra[k] = v
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    binaries = []
    for binary in args.binaries:
        binary = binary.resolve()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            print(f"init_time: {binary} is not an executable file", file=sys.stderr)
            return 2
        binaries.append(binary)
    for _ in range(args.warmup):
        for binary in binaries:
            measure_once(binary, args.memory, extra, args.inherit_env, args.timeout)
    # Round-robin: each round starts every binary once, so a change in the machine's load
    # during the measurement touches all of them alike.
    samples = {b: [] for b in binaries}
    failures = {b: [] for b in binaries}
    for _ in range(args.runs):
        for binary in binaries:
            ms, why = measure_once(binary, args.memory, extra, args.inherit_env, args.timeout)
            if ms is None:
                failures[binary].append(why)
            else:
                samples[binary].append(ms)

    results = []
    any_failed = False
    baseline = None
    for binary in binaries:
        got, failed = samples[binary], failures[binary]
        any_failed |= bool(failed)
        entry = {
            "binary": str(binary),
            "size_bytes": binary.stat().st_size,
            "runs": args.runs,
            "ok": len(got),
            "failed": len(failed),
            "failures": sorted(set(failed))[:3],
            "samples_ms": [round(s, 3) for s in got],
        }
        if got:
            entry.update(
                median_ms=round(statistics.median(got), 3),
                p90_ms=round(percentile(got, 90), 3),
                min_ms=round(min(got), 3),
                max_ms=round(max(got), 3),
            )
            if baseline is None:
                baseline = entry["median_ms"]
            entry["vs_first"] = round(entry["median_ms"] / baseline, 2)
        results.append(entry)

    table = sys.stderr if args.json else sys.stdout
    header = (f"{'binary':<32} {'size':>9} {'ok/runs':>8} {'median ms':>10} {'p90 ms':>9} {'min ms':>8}"
              f" {'max ms':>8} {'vs first':>9}")
    print(header, file=table)
    print("-" * len(header), file=table)
    for r in results:
        name = Path(r["binary"]).name if len(Path(r["binary"]).name) <= 32 else Path(r["binary"]).name[:31] + "…"
        size = f"{r['size_bytes'] / 1024 / 1024:.1f} MiB"
        if r["ok"]:
            print(f"{name:<32} {size:>9} {r['ok']:>3}/{r['runs']:<4} {r['median_ms']:>10.2f} {r['p90_ms']:>9.2f}"
                  f" {r['min_ms']:>8.2f} {r['max_ms']:>8.2f} {r['vs_first']:>8.2f}x", file=table)
        else:
            print(f"{name:<32} {size:>9} {0:>3}/{r['runs']:<4} {'-':>10} {'-':>9} {'-':>8} {'-':>8}", file=table)
        for why in r["failures"]:
            print(f"  failure: {why}", file=table)
    if args.json:
        json.dump(
            {"runs": args.runs, "warmup": args.warmup, "memory_mb": args.memory,
             "extra_env": sorted(extra), "results": results},
            sys.stdout, indent=2,
        )
        print()
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
