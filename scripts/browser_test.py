#!/usr/bin/env python3
"""Browser test of the owners' dashboard in headless Chromium (Debian's /usr/bin/chromium,
driven by Playwright for Python; never a downloaded browser).

Against a real `alphadome serve --dry-run` over a fresh database with two businesses and a
local stand-in for the Graph API, as Kassangas's owner on a 390 px wide phone screen:
signs in with a development token, sees A's conversations and not B's, opens a transcript
whose customer wrote `<script>` (shown as text, not run), replies as a person (the stand-in
receives it at A's number with A's token), sees the assistant stay quiet on the customer's
next message, sees it among the hand-overs, adds and edits an FAQ entry on the Knowledge page
(a simulated customer then gets the new answer, and "Try it" shows it), opens the unanswered
messages, the Assistant and Settings pages, switches the assistant off there (the next message
is not answered), and saves a screenshot of every page to docs/screenshots/.

Usage: python3 scripts/browser_test.py [--alphadome target/debug/alphadome]
Needs: DATABASE_URL (a Postgres superuser URL; a database is created and dropped), the
`alphadome` binary (cargo build -p alphadome-cli), chromium, `pip install playwright`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
A_PNID, B_PNID = "110000000001", "110000000002"
A_TOKEN, B_TOKEN = "EAAGbrowserKassangasSECRET", "EAAGbrowserSalonSECRET"
A_CUSTOMER, B_CUSTOMER = "254711000111", "254722000999"
WIDTH = 390


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Graph(BaseHTTPRequestHandler):
    """The Graph API stand-in: records every request and accepts it."""

    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Graph.received.append({"path": self.path, "auth": self.headers.get("authorization"),
                               "body": json.loads(body or b"{}")})
        out = json.dumps({"messaging_product": "whatsapp",
                          "messages": [{"id": f"wamid.browser.{secrets.token_hex(8)}"}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def psql(url: str, sql: str) -> str:
    return subprocess.run(["psql", url, "-Atqc", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def wait_for(check, what: str, timeout: float = 20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"browser test: timed out waiting for {what}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alphadome", default=str(ROOT / os.environ.get("CARGO_TARGET_DIR", "target")
                                               / "debug" / "alphadome"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright  # imported late: --help works without it

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    server_url = base.rsplit("/", 1)[0]
    db = f"alphadome_browser_{secrets.token_hex(4)}"
    psql(base, f"create database {db}")
    db_url = f"{server_url}/{db}"
    work = Path(tempfile.mkdtemp(prefix="alphadome-browser-"))
    graph = ThreadingHTTPServer(("127.0.0.1", 0), Graph)
    threading.Thread(target=graph.serve_forever, daemon=True).start()
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("SUPABASE_URL", "REPLY_QUEUE_URL", "PLATFORM_SECRET_ID", "ADMIN_DATABASE_URL")}
    env.update(DATABASE_URL=db_url, KEY_PROVIDER="local", LOCAL_KEY_DIR=str(work / "keys"),
               META_APP_SECRET="alphadome-test-app-secret", META_VERIFY_TOKEN="browser-verify",
               WHATSAPP_API_BASE_URL=f"http://127.0.0.1:{graph.server_port}", RUST_LOG="warn",
               # Settings edited on the dashboard reach the responder within a second.
               TENANT_CACHE_TTL_SECS="1")
    env.pop("OPENAI_API_KEY", None)

    def cli(*argv: str) -> str:
        return subprocess.run([args.alphadome, *argv], env=env, check=True, capture_output=True,
                              text=True).stdout

    serve = None
    try:
        cli("migrate")
        for name, phone, pnid, token in (("Kassangas Music Shop", "254702245555", A_PNID, A_TOKEN),
                                         ("Nyota Salon", "254711000222", B_PNID, B_TOKEN)):
            (work / f"{pnid}.token").write_text(token)
            cli("tenant", "add", "--name", name, "--client-phone", phone, "--phone-number-id", pnid,
                "--whatsapp-token-file", str(work / f"{pnid}.token"), "--json")
        serve_log = open(work / "serve.log", "w")
        serve = subprocess.Popen([args.alphadome, "serve", "--dry-run", "--addr", f"127.0.0.1:{port}"],
                                 env=env, stdout=serve_log, stderr=subprocess.STDOUT)
        origin = f"http://127.0.0.1:{port}"

        def healthy():
            try:
                return urllib.request.urlopen(f"{origin}/healthz", timeout=1).status == 200
            except OSError:
                return False

        wait_for(healthy, "serve to answer /healthz")

        def write(pnid, customer, text):
            cli("simulate", "--tenant", pnid, "--url", f"{origin}/webhook", "--from", customer, text)

        def handled() -> int:
            return int(psql(db_url, "select count(*) from public.conversations where direction = 'incoming'"
                                    " and status is distinct from 'processing'"))

        write(A_PNID, A_CUSTOMER, "<script>alert(1)</script> Do you have guitars?")
        write(A_PNID, "254711000333", "Hello")
        write(B_PNID, B_CUSTOMER, "Do you do braids?")
        wait_for(lambda: handled() >= 3, "the three messages to be handled")
        token = cli("admin", "token", "--tenant", A_PNID, "--email", "gideon@kassangas.example").strip()

        SHOTS.mkdir(parents=True, exist_ok=True)
        failures = []

        def expect(ok: bool, what: str):
            print(("ok   " if ok else "FAIL ") + what)
            if not ok:
                failures.append(what)

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu",
                                              "--disable-background-networking"])
            page = browser.new_page(viewport={"width": WIDTH, "height": 844}, device_scale_factor=2)
            dialogs = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            def fits() -> bool:
                return page.evaluate("document.documentElement.scrollWidth") <= WIDTH

            page.goto(f"{origin}/admin/login")
            page.screenshot(path=str(SHOTS / "admin-sign-in.png"), full_page=True)
            page.fill("textarea[name=access_token]", token)
            page.click("button[type=submit]")
            page.wait_for_url(f"{origin}/admin")
            expect("Kassangas Music Shop" in page.inner_text("h1"), "signed in as Kassangas's owner")
            expect(fits(), "overview fits 390 px")
            page.screenshot(path=str(SHOTS / "admin-overview.png"), full_page=True)

            page.click("nav >> text=Usage")
            page.wait_for_url(f"{origin}/admin/usage")
            expect(page.locator("svg.chart").count() == 1, "the usage chart renders")
            expect(fits(), "usage fits 390 px")
            page.screenshot(path=str(SHOTS / "admin-usage.png"), full_page=True)

            page.click("nav >> text=Conversations")
            page.wait_for_url(f"{origin}/admin/conversations")
            listing = page.inner_text("main")
            expect(A_CUSTOMER in listing and "254711000333" in listing, "A's customers listed")
            expect(B_CUSTOMER not in listing and "braids" not in listing, "B's customer not listed")
            expect(fits(), "conversations fit 390 px")
            page.screenshot(path=str(SHOTS / "admin-conversations.png"), full_page=True)

            page.click(f"text={A_CUSTOMER}")
            page.wait_for_selector("ul.msgs")
            expect("<script>alert(1)</script> Do you have guitars?" in page.inner_text("ul.msgs"),
                   "the customer's <script> shows as text")
            expect(not dialogs, "no script of a customer's ran")
            expect(fits(), "transcript fits 390 px")
            page.screenshot(path=str(SHOTS / "admin-transcript.png"), full_page=True)

            before = len(Graph.received)
            page.fill("textarea[name=text]", "Habari! Gideon here - yes, come by the shop today.")
            page.click("text=Send")
            page.wait_for_selector("text=Resume assistant")
            sent = Graph.received[before:]
            expect(len(sent) == 1 and sent[0]["path"] == f"/{A_PNID}/messages"
                   and sent[0]["auth"] == f"Bearer {A_TOKEN}" and sent[0]["body"].get("to") == A_CUSTOMER,
                   "Graph got the reply at A's number with A's token")
            expect("you · sent" in page.inner_text("ul.msgs"), "the reply shows as yours, sent")
            page.screenshot(path=str(SHOTS / "admin-reply-sent.png"), full_page=True)

            # The customer writes again: the assistant stays quiet (nothing recorded to send).
            outgoing = lambda: int(psql(db_url, "select count(*) from public.conversations"  # noqa: E731
                                                " where direction = 'outgoing'"))
            out_before = outgoing()
            write(A_PNID, A_CUSTOMER, "Thanks! What time do you close?")
            wait_for(lambda: handled() >= 4, "the next message to be handled")
            note = psql(db_url, "select note from public.conversations where direction = 'incoming'"
                                " order by created_at desc limit 1")
            expect(outgoing() == out_before and note == "paused_for_human",
                   f"the assistant stayed quiet (note {note!r})")

            page.click("nav >> text=Hand-overs")
            page.wait_for_url(f"{origin}/admin/handovers")
            expect(A_CUSTOMER in page.inner_text("main") and B_CUSTOMER not in page.inner_text("main"),
                   "the paused conversation waits among the hand-overs, B's does not")
            expect(fits(), "hand-overs fit 390 px")
            page.screenshot(path=str(SHOTS / "admin-handovers.png"), full_page=True)

            # Knowledge: add an FAQ, then edit its answer.
            page.click("nav >> text=Knowledge")
            page.wait_for_url(f"{origin}/admin/knowledge")
            page.fill("form[action='/admin/knowledge/entries'] input[name=question]",
                      "What time do you open?")
            page.fill("form[action='/admin/knowledge/entries'] textarea[name=answer]",
                      "We open at 9 AM.")
            page.click("form[action='/admin/knowledge/entries'] button[type=submit]")
            page.wait_for_selector("text=Other phrasings")
            page.fill("input[name=phrasing]", "mnafungua saa ngapi")
            page.click("form[action='/admin/knowledge/phrasings'] button[type=submit]")
            page.wait_for_selector("text=Phrasing added")
            page.fill("textarea[name=answer]", "We open at 8 AM, Monday to Saturday.")
            page.click("button:has-text('Save')")
            page.wait_for_selector("text=Saved")
            expect(fits(), "an entry fits 390 px")
            page.screenshot(path=str(SHOTS / "admin-knowledge-entry.png"), full_page=True)

            page.click("text=← Knowledge")
            page.fill("input[name=text]", "what time do you open")
            page.click("button:has-text('What would the assistant say?')")
            page.wait_for_selector("text=From your FAQ")
            expect("We open at 8 AM, Monday to Saturday." in page.inner_text("main"),
                   "Try it shows the edited answer")
            expect(fits(), "knowledge fits 390 px")
            page.screenshot(path=str(SHOTS / "admin-knowledge.png"), full_page=True)

            customer2 = "254711000444"
            handled_before = handled()
            write(A_PNID, customer2, "What time do you open?")
            wait_for(lambda: handled() > handled_before, "the FAQ question to be handled")
            answer = psql(db_url, "select message_text || '|' || reply_source from public.conversations"
                                  " where direction = 'outgoing' order by created_at desc limit 1")
            expect(answer == "We open at 8 AM, Monday to Saturday.|faq",
                   f"the customer got the edited answer ({answer!r})")

            page.click("text=Messages the FAQ did not answer")
            page.wait_for_url(f"{origin}/admin/knowledge/unanswered*")
            expect("guitars" in page.inner_text("main") and "braids" not in page.inner_text("main"),
                   "A's unanswered messages only")
            expect(fits(), "unanswered fits 390 px")
            page.screenshot(path=str(SHOTS / "admin-unanswered.png"), full_page=True)
            page.click("text=Do you have guitars?")
            page.wait_for_selector("text=Add as a new FAQ")
            expect(fits(), "teach fits 390 px")
            page.screenshot(path=str(SHOTS / "admin-teach.png"), full_page=True)

            page.click("nav >> text=Settings")
            page.wait_for_url(f"{origin}/admin/settings")
            expect(A_TOKEN not in page.content(), "the token is never shown")
            expect(fits(), "settings fit 390 px")
            page.screenshot(path=str(SHOTS / "admin-settings.png"), full_page=True)

            # Assistant: switch it off; the next message is not answered.
            page.click("nav >> text=Assistant")
            page.wait_for_url(f"{origin}/admin/assistant")
            expect(fits(), "assistant fits 390 px")
            page.screenshot(path=str(SHOTS / "admin-assistant.png"), full_page=True)
            page.click("button:has-text('Switch the assistant off')")
            page.wait_for_selector("text=Switch the assistant on")
            time.sleep(1.2)  # the responder's tenant cache (TENANT_CACHE_TTL_SECS=1)
            out_before = outgoing()
            handled_before = handled()
            write(A_PNID, customer2, "What time do you open?")
            wait_for(lambda: handled() > handled_before, "the message after switching off")
            note = psql(db_url, "select note from public.conversations where direction = 'incoming'"
                                " order by created_at desc limit 1")
            expect(outgoing() == out_before and note == "bot_disabled",
                   f"switched off, the next message is not answered (note {note!r})")
            browser.close()
        print(f"browser test: {len(failures)} failed; screenshots in {SHOTS.relative_to(ROOT)}/")
        return 1 if failures else 0
    finally:
        if serve:
            serve.terminate()
            try:
                serve.wait(timeout=10)
            except subprocess.TimeoutExpired:
                serve.kill()
        graph.shutdown()
        psql(base, f"drop database if exists {db} with (force)")


if __name__ == "__main__":
    sys.exit(main())
