#!/usr/bin/env python3
"""Tests of scripts/cost.py (standard library unittest; run by scripts/test.sh):

* `--json` prints exactly {"faq_per_million_usd", "ai_per_million_usd", "items"}, every item
  with its name, unit, count, unit price and usd, and each total is the sum of its items;
* the defaults meet the goal: at most $5 per million FAQ-answered messages;
* each lever moves its own line the way it should (the API front adds API Gateway requests,
  the queue path adds responder invocations, memory scales duration, sequential sends cost
  more than parallel ones in a batch of ten);
* the model's defaults are template.yaml's defaults (so the README's table describes what
  `sam deploy` creates).
"""

import json
import re
import subprocess
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import cost  # noqa: E402


def run(*args):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "cost.py"), *args],
                         check=True, capture_output=True, text=True).stdout
    return out


class JsonShape(unittest.TestCase):
    def test_json_has_exactly_the_contract_keys_and_totals_are_sums(self):
        for args in ([], ["--webhook-front", "api", "--status-path", "queue", "--responder-memory", "512"],
                     ["--batch", "10", "--sends", "sequential", "--system-logs", "on"]):
            doc = json.loads(run("--json", *args))
            self.assertEqual(set(doc), {"faq_per_million_usd", "ai_per_million_usd", "items"}, args)
            self.assertTrue(doc["items"])
            for i in doc["items"]:
                self.assertLessEqual({"name", "unit", "count", "unit_price", "usd"}, set(i), i)
                self.assertIsInstance(i["name"], str)
                self.assertGreaterEqual(i["count"], 0)
                self.assertGreaterEqual(i["unit_price"], 0)
                self.assertAlmostEqual(i["usd"], i["count"] * i["unit_price"], places=5)
                self.assertIn(i["applies"], ("faq", "ai", "both"))
            faq = sum(i["usd"] for i in doc["items"] if i["applies"] in ("faq", "both"))
            ai = sum(i["usd"] for i in doc["items"] if i["applies"] in ("ai", "both"))
            self.assertAlmostEqual(doc["faq_per_million_usd"], faq, places=5)
            self.assertAlmostEqual(doc["ai_per_million_usd"], ai, places=5)

    def test_the_table_prints_both_totals(self):
        out = run()
        r = cost.model(cost.DEFAULTS)
        self.assertIn(f"**${r['faq_per_million_usd']:.2f}**", out)
        self.assertIn(f"**${r['ai_per_million_usd']:.2f}**", out)

    def test_bad_options_are_refused(self):
        for args in (["--batch", "11"], ["--responder-memory", "64"], ["--webhook-front", "alb"]):
            p = subprocess.run([sys.executable, str(ROOT / "scripts" / "cost.py"), *args],
                               capture_output=True, text=True)
            self.assertNotEqual(p.returncode, 0, args)


class Goal(unittest.TestCase):
    def test_a_million_faq_answers_cost_at_most_five_dollars(self):
        self.assertLessEqual(cost.model(cost.DEFAULTS)["faq_per_million_usd"], 5.0)

    def test_the_set_up_before_did_not(self):
        self.assertGreater(cost.model(cost.BEFORE)["faq_per_million_usd"], 5.0)


def usd(o, word):
    return sum(i["usd"] for i in cost.model(o)["items"] if word in i["name"])


class Levers(unittest.TestCase):
    def test_the_api_front_adds_api_gateway_requests(self):
        self.assertEqual(usd(cost.DEFAULTS, "HTTP API requests"), 0)
        self.assertAlmostEqual(usd({**cost.DEFAULTS, "webhook_front": "api"}, "HTTP API requests"), 4.0)

    def test_the_queue_path_adds_a_responder_invocation_per_status(self):
        o = {**cost.DEFAULTS, "status_path": "queue"}
        self.assertAlmostEqual(usd(o, "responder invocations"), 4 * usd(cost.DEFAULTS, "responder invocations"))

    def test_responder_duration_scales_with_memory(self):
        # Four times the memory, a little less than four times the charge: more CPU share.
        ratio = usd({**cost.DEFAULTS, "responder_memory": 512}, "responder duration, FAQ") / usd(
            cost.DEFAULTS, "responder duration, FAQ")
        self.assertTrue(3.5 < ratio <= 4.0, ratio)

    def test_parallel_sends_wait_one_graph_latency_per_batch(self):
        par = usd({**cost.DEFAULTS, "batch": 10}, "responder duration, FAQ")
        seq = usd({**cost.DEFAULTS, "batch": 10, "sends": "sequential"}, "responder duration, FAQ")
        self.assertGreater(seq, 5 * par)

    def test_every_lever_saves_something(self):
        o = dict(cost.BEFORE)
        prev = cost.model(o)["faq_per_million_usd"]
        for name, change in cost.LEVERS:
            o.update(change)
            now = cost.model(o)["faq_per_million_usd"]
            self.assertLess(now, prev, name)
            prev = now
        self.assertEqual(o, cost.DEFAULTS)


class TemplateDefaults(unittest.TestCase):
    def setUp(self):
        self.text = (ROOT / "template.yaml").read_text()

    def param_default(self, name):
        m = re.search(rf"^  {name}:\n(?:    .*\n)*?    Default: \"?([^\"\n]+)\"?$", self.text, re.M)
        self.assertIsNotNone(m, name)
        return m.group(1).strip()

    def function_memory(self, logical_id):
        block = self.text.split(f"\n  {logical_id}:\n", 1)[1].split("\n  # ----", 1)[0]
        return re.search(r"^      MemorySize: (.+)$", block, re.M).group(1).strip()

    def test_the_model_describes_what_sam_deploy_creates(self):
        front = {"FunctionUrl": "url", "HttpApi": "api"}[self.param_default("WebhookFront")]
        self.assertEqual(front, cost.DEFAULTS["webhook_front"])
        self.assertEqual(self.function_memory("ResponderFunction"), "!Ref ResponderMemorySize")
        self.assertEqual(int(self.param_default("ResponderMemorySize")), cost.DEFAULTS["responder_memory"])
        self.assertEqual(int(self.function_memory("WebhookFunction")), cost.DEFAULTS["webhook_memory"])
        system = self.param_default("LambdaSystemLogLevel")
        self.assertEqual("off" if system == "WARN" else "on", cost.DEFAULTS["system_logs"])
        self.assertEqual(self.param_default("ApiAccessLogs").lower(), cost.DEFAULTS["access_logs"])
        self.assertEqual(int(self.param_default("LogRetentionDays")), cost.LOG_RETENTION_DAYS)


if __name__ == "__main__":
    unittest.main(verbosity=1)
