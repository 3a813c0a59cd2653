#!/usr/bin/env python3
"""Checks that template.yaml still fits the code and the design (run by .ci/deploy-checks.sh).

cfn-lint and `sam validate` say whether the template is *valid*; this says whether it is
*right* for Alphadome:

- every environment variable the Rust code reads (the `pub const NAME: &str = "NAME";` lines
  of shared/src/config.rs and shared/src/admin/mod.rs) is set on the function that reads it,
  so a new setting in code fails CI until the template sets it; and no function sets a name
  the code does not know;
- no function carries a secret in its environment (they come from the platform secret);
- the admin function serves GET and POST on /admin and /admin/{proxy+}; no other function
  serves anything under /admin, and the admin function serves nothing else;
- the reply queue is FIFO without content-based deduplication (the code sets
  MessageDeduplicationId = wamid), its VisibilityTimeout is >= 6 x the responder's Timeout,
  and its dead-letter queue is FIFO with maxReceiveCount 5;
- the responder's SQS event: BatchSize <= 10, ReportBatchItemFailures, a MaximumConcurrency;
- every function: arm64, provided.al2023, BuildMethod rust-cargolambda, the right Binary;
- no IAM statement (or SAM policy-template argument) grants Resource "*";
- alarms exist for the DLQ, every function's Errors and the HTTP API's 5xx, wired to SNS;
- the webhook's front: the parameter WebhookFront (FunctionUrl by default, or HttpApi); a
  public function URL on the webhook function only, created exactly when the front is
  FunctionUrl, with both permissions a public URL needs and no public invoke outside it; the
  webhook throttled by reserved concurrency; alarms on the URL's 5xx and the webhook's
  throttles; the WebhookUrl output naming the function URL.

Usage:
    python3 scripts/check_template.py [--template template.yaml] [--config shared/src/config.rs]
                                      [--admin-config shared/src/admin/mod.rs]
    python3 scripts/check_template.py --self-test   # proves each check catches its mutation

Exit status 0 when every check passes, 1 otherwise. Standard library plus a YAML loader that
understands CloudFormation's short tags: cfn-lint's (`cfnlint.decode`) when importable, else
PyYAML with a catch-all tag constructor.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Logical IDs in template.yaml this script relies on.
WEBHOOK = "WebhookFunction"
RESPONDER = "ResponderFunction"
ADMIN = "AdminFunction"
REPLY_QUEUE = "ReplyQueue"
DLQ = "DeadLetterQueue"
HTTP_API = "HttpApi"
WEBHOOK_URL = "WebhookFunctionUrl"
FRONT_PARAM = "WebhookFront"
FUNCTIONS = {WEBHOOK: "webhook", RESPONDER: "responder", ADMIN: "admin"}  # logical id -> cargo binary
# The dashboard's routes on the HTTP API, all served by the admin function only.
ADMIN_ROUTES = {(m, p) for m in ("GET", "POST") for p in ("/admin", "/admin/{proxy+}")}

# Secrets: never in a function's environment (readable by anyone who can read the function's
# configuration); they come from the platform secret.
SECRET_ENV = {
    "DATABASE_URL",
    "META_APP_SECRET",
    "META_VERIFY_TOKEN",
    "OPENAI_API_KEY",
    "SUPABASE_ANON_KEY",
    "SUPABASE_JWT_SECRET",
    "ADMIN_DATABASE_URL",
    "ADMIN_SESSION_KEY",
}

# Names in config.rs that the deployed functions need NOT have in their environment:
OPTIONAL_ENV = {
    # carried inside the platform secret (its `database_url` key), not as a plain variable
    "DATABASE_URL",
    # local overrides of the platform secret; in Lambda the secret is the source
    "META_APP_SECRET",
    "META_VERIFY_TOKEN",
    "OPENAI_API_KEY",
    # only for KEY_PROVIDER=local (developer machines, `alphadome serve`)
    "LOCAL_KEY_DIR",
    # tuning knob with a sensible default in code (60 s)
    "TENANT_CACHE_TTL_SECS",
    # the built-in allowlist of models applies when unset
    "OPENAI_ALLOWED_MODELS",
    # voice notes: gpt-4o-mini-transcribe applies when unset
    "OPENAI_TRANSCRIBE_MODEL",
} | SECRET_ENV
# Names only one function reads. Any other name in config.rs must be set on BOTH functions,
# so a setting added to the code defaults to "both" until someone says otherwise here.
ONLY_ON = {
    # the webhook enqueues; the responder hands back records its deadline left unstarted
    "REPLY_QUEUE_URL": {WEBHOOK, RESPONDER},
    # the admin function sends an owner's own reply
    "WHATSAPP_API_BASE_URL": {RESPONDER, ADMIN},
    "OPENAI_BASE_URL": {RESPONDER},
    "OPENAI_MODEL": {RESPONDER},
    "LEGACY_PHONE_NUMBER_ID": {WEBHOOK, RESPONDER},
    "DEFAULT_BRAND_ID": {WEBHOOK, RESPONDER},
    "SUPABASE_URL": {ADMIN},
}
# Names the template may set that are not in config.rs (read by libraries, not by our code).
EXTRA_KNOWN_ENV = {"RUST_LOG"}
# Values the template must pin, whatever the parameters say.
PINNED_ENV = {"KEY_PROVIDER": "aws"}

CONST_RE = re.compile(r'^\s*pub\s+const\s+([A-Z][A-Z0-9_]*)\s*:\s*&str\s*=\s*"([A-Z][A-Z0-9_]*)"\s*;', re.M)


# ----------------------------------------------------------------------------- loading

def load_template(path: Path) -> dict:
    """Parses a CloudFormation YAML template into plain dicts/lists; `!Ref X` becomes {"Ref": "X"}."""
    text = path.read_text()
    try:
        from cfnlint.decode import cfn_yaml  # type: ignore

        return to_plain(cfn_yaml.loads(text, str(path)))
    except ImportError:
        pass
    import yaml  # type: ignore

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader, tag_suffix, node):
        name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag_suffix == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    Loader.add_multi_constructor("!", construct)
    return to_plain(yaml.load(text, Loader=Loader))


def to_plain(node):
    """Strips loader-specific node classes so deepcopy and == behave plainly."""
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def env_names_in_code(config_rs: str) -> set[str]:
    """Every `pub const NAME: &str = "NAME";` in config.rs (name and value equal: an env var)."""
    return {name for name, value in CONST_RE.findall(config_rs) if name == value}


# ----------------------------------------------------------------------------- helpers

class Template:
    def __init__(self, doc: dict):
        self.doc = doc
        self.resources = doc.get("Resources") or {}
        self.params = doc.get("Parameters") or {}
        self.globals_fn = ((doc.get("Globals") or {}).get("Function")) or {}

    def props(self, logical_id: str) -> dict:
        return (self.resources.get(logical_id) or {}).get("Properties") or {}

    def fn_prop(self, logical_id: str, key: str):
        """A function property with SAM Globals applied (maps merge, function wins)."""
        own = self.props(logical_id).get(key)
        glob = self.globals_fn.get(key)
        if isinstance(own, dict) and isinstance(glob, dict):
            merged = copy.deepcopy(glob)
            for k, v in own.items():
                merged[k] = merge(merged.get(k), v)
            return merged
        return own if own is not None else glob

    def fn_env(self, logical_id: str) -> dict:
        env = self.fn_prop(logical_id, "Environment") or {}
        return env.get("Variables") or {}

    def number(self, value):
        """A literal number, or a Ref to a parameter's Default; None if neither."""
        if isinstance(value, dict) and set(value) == {"Ref"}:
            value = (self.params.get(value["Ref"]) or {}).get("Default")
        if isinstance(value, bool):
            return None
        try:
            n = float(value)
        except (TypeError, ValueError):
            return None
        return int(n) if n.is_integer() else n

    def refers_to(self, value, logical_id: str) -> bool:
        """True if `value` is !Ref X or !GetAtt X.* for logical id X."""
        if not isinstance(value, dict) or len(value) != 1:
            return False
        if "Ref" in value:
            return value["Ref"] == logical_id
        if "Fn::GetAtt" in value:
            ga = value["Fn::GetAtt"]
            target = ga[0] if isinstance(ga, list) else str(ga).split(".", 1)[0]
            return target == logical_id
        return False


def merge(base, override):
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for k, v in override.items():
            out[k] = merge(out.get(k), v)
        return out
    return override


def json_text(node) -> str:
    """A node's strings joined (to look for a reference inside !Sub / !If)."""
    if isinstance(node, dict):
        return " ".join(json_text(v) for v in node.values())
    if isinstance(node, list):
        return " ".join(json_text(v) for v in node)
    return str(node) if node is not None else ""


def is_star(value) -> bool:
    return value == "*" or (isinstance(value, list) and any(v == "*" for v in value))


def statements_in(node):
    """Yields every IAM statement dict found under `node` (PolicyDocument or SAM inline Statement)."""
    if isinstance(node, dict):
        if "Statement" in node:
            st = node["Statement"]
            for s in st if isinstance(st, list) else [st]:
                if isinstance(s, dict):
                    yield s
        for v in node.values():
            if isinstance(v, (dict, list)):
                yield from statements_in(v)
    elif isinstance(node, list):
        for v in node:
            yield from statements_in(v)


# ----------------------------------------------------------------------------- checks

def run_checks(doc: dict, code_env: set[str]) -> list[tuple[str, str | None]]:
    """Returns (check name, failure message or None) for every check."""
    t = Template(doc)
    results: list[tuple[str, str | None]] = []

    def check(name: str, ok: bool, why: str = ""):
        results.append((name, None if ok else why))

    # --- functions exist, build and runtime
    for fid, binary in FUNCTIONS.items():
        res = t.resources.get(fid) or {}
        check(f"{fid} exists", res.get("Type") == "AWS::Serverless::Function",
              f"{fid} is missing or not an AWS::Serverless::Function")
        arch = t.fn_prop(fid, "Architectures")
        check(f"{fid} is arm64", arch == ["arm64"], f"{fid} Architectures is {arch!r}, want [arm64]")
        rt = t.fn_prop(fid, "Runtime")
        check(f"{fid} runs provided.al2023", rt == "provided.al2023", f"{fid} Runtime is {rt!r}, want provided.al2023")
        meta = res.get("Metadata") or {}
        check(f"{fid} builds with cargo-lambda", meta.get("BuildMethod") == "rust-cargolambda",
              f"{fid} Metadata.BuildMethod is {meta.get('BuildMethod')!r}, want rust-cargolambda")
        got_bin = (meta.get("BuildProperties") or {}).get("Binary")
        check(f"{fid} builds binary {binary}", got_bin == binary,
              f"{fid} Metadata.BuildProperties.Binary is {got_bin!r}, want {binary!r}")
        timeout = t.number(t.fn_prop(fid, "Timeout"))
        check(f"{fid} has a Timeout", timeout is not None, f"{fid} has no numeric Timeout")
        log_format = (t.fn_prop(fid, "LoggingConfig") or {}).get("LogFormat")
        check(f"{fid} logs JSON", log_format == "JSON", f"{fid} LoggingConfig.LogFormat is {log_format!r}, want JSON")
        log_group = (t.fn_prop(fid, "LoggingConfig") or {}).get("LogGroup")
        lg_id = log_group.get("Ref") if isinstance(log_group, dict) else None
        lg = t.resources.get(lg_id) or {}
        check(f"{fid} logs to a log group with retention",
              lg.get("Type") == "AWS::Logs::LogGroup" and "RetentionInDays" in (lg.get("Properties") or {}),
              f"{fid} LoggingConfig.LogGroup must !Ref an AWS::Logs::LogGroup with RetentionInDays")

    webhook_timeout = t.number(t.fn_prop(WEBHOOK, "Timeout"))
    check("webhook Timeout <= 10 s", webhook_timeout is not None and webhook_timeout <= 10,
          f"{WEBHOOK} Timeout is {webhook_timeout}, want <= 10 (Meta expects a fast 200)")

    # --- environment: code <-> template
    required = {name: set(FUNCTIONS) for name in code_env - OPTIONAL_ENV}
    for name, only in ONLY_ON.items():
        if name in required:
            required[name] = set(only)
    for name in sorted(required):
        for fid in sorted(required[name]):
            env = t.fn_env(fid)
            check(f"{fid} sets {name}", name in env,
                  f"{fid} does not set {name}, which shared/src/config.rs reads"
                  f" (set it in template.yaml, or list it in OPTIONAL_ENV/ONLY_ON in this script)")
    known = code_env | EXTRA_KNOWN_ENV
    for fid in FUNCTIONS:
        unknown = sorted(set(t.fn_env(fid)) - known)
        check(f"{fid} sets only known variables", not unknown,
              f"{fid} sets {', '.join(unknown)}, which shared/src/config.rs does not define (typo?)")
        secrets = sorted(set(t.fn_env(fid)) & SECRET_ENV)
        check(f"{fid} has no secret in its environment", not secrets,
              f"{fid} sets {', '.join(secrets)} in its environment: put it in the platform secret")
        for name, want in PINNED_ENV.items():
            got = t.fn_env(fid).get(name)
            if name in t.fn_env(fid):
                check(f"{fid} {name}={want}", got == want, f"{fid} sets {name}={got!r}, want {want!r}")
    queue_url = t.fn_env(WEBHOOK).get("REPLY_QUEUE_URL")
    check("webhook REPLY_QUEUE_URL is the reply queue", t.refers_to(queue_url, REPLY_QUEUE),
          f"{WEBHOOK} REPLY_QUEUE_URL must be !Ref {REPLY_QUEUE}")

    # --- reply queue and DLQ
    q = t.props(REPLY_QUEUE)
    check("reply queue exists", (t.resources.get(REPLY_QUEUE) or {}).get("Type") == "AWS::SQS::Queue",
          f"{REPLY_QUEUE} is missing or not an AWS::SQS::Queue")
    check("reply queue is FIFO", q.get("FifoQueue") is True, f"{REPLY_QUEUE} FifoQueue must be true")
    check("reply queue has no content-based dedup", q.get("ContentBasedDeduplication") is False,
          f"{REPLY_QUEUE} ContentBasedDeduplication must be false (the code sets MessageDeduplicationId)")
    vis = t.number(q.get("VisibilityTimeout"))
    resp_timeout = t.number(t.fn_prop(RESPONDER, "Timeout"))
    check("visibility timeout >= 6 x responder timeout",
          vis is not None and resp_timeout is not None and vis >= 6 * resp_timeout,
          f"{REPLY_QUEUE} VisibilityTimeout is {vis}, want >= 6 x {RESPONDER} Timeout ({resp_timeout})")
    redrive = q.get("RedrivePolicy") or {}
    check("reply queue redrives to the DLQ", t.refers_to(redrive.get("deadLetterTargetArn"), DLQ),
          f"{REPLY_QUEUE} RedrivePolicy.deadLetterTargetArn must be !GetAtt {DLQ}.Arn")
    mrc = t.number(redrive.get("maxReceiveCount"))
    check("maxReceiveCount is 5", mrc == 5, f"{REPLY_QUEUE} RedrivePolicy.maxReceiveCount is {mrc}, want 5")
    d = t.props(DLQ)
    check("DLQ is FIFO", d.get("FifoQueue") is True, f"{DLQ} FifoQueue must be true (a FIFO queue's DLQ must be FIFO)")
    dlq_retention = t.number(d.get("MessageRetentionPeriod"))
    check("DLQ keeps messages 14 days", dlq_retention == 1209600,
          f"{DLQ} MessageRetentionPeriod is {dlq_retention}, want 1209600 (14 days)")

    # --- responder's SQS event
    events = t.props(RESPONDER).get("Events") or {}
    sqs = [e.get("Properties") or {} for e in events.values()
           if isinstance(e, dict) and e.get("Type") == "SQS"]
    sqs_on_queue = [p for p in sqs if t.refers_to(p.get("Queue"), REPLY_QUEUE)]
    check("responder consumes the reply queue", len(sqs_on_queue) == 1,
          f"{RESPONDER} needs exactly one SQS event on {REPLY_QUEUE} (found {len(sqs_on_queue)})")
    ev = sqs_on_queue[0] if sqs_on_queue else {}
    batch = t.number(ev.get("BatchSize"))
    check("responder BatchSize <= 10", batch is not None and 1 <= batch <= 10,
          f"{RESPONDER} SQS BatchSize is {batch}, want 1..10 (FIFO maximum)")
    check("responder reports batch item failures",
          "ReportBatchItemFailures" in (ev.get("FunctionResponseTypes") or []),
          f"{RESPONDER} SQS event must have FunctionResponseTypes: [ReportBatchItemFailures]")
    max_conc = (ev.get("ScalingConfig") or {}).get("MaximumConcurrency")
    check("responder has a MaximumConcurrency", max_conc is not None,
          f"{RESPONDER} SQS event must set ScalingConfig.MaximumConcurrency")

    # --- webhook routes
    wev = [e.get("Properties") or {} for e in (t.props(WEBHOOK).get("Events") or {}).values()
           if isinstance(e, dict) and e.get("Type") == "HttpApi"]
    routes = {(str(p.get("Method", "")).upper(), p.get("Path")) for p in wev if t.refers_to(p.get("ApiId"), HTTP_API)}
    for method in ("GET", "POST"):
        check(f"webhook serves {method} /webhook", (method, "/webhook") in routes,
              f"{WEBHOOK} needs an HttpApi event {method} /webhook on {HTTP_API}")

    # --- the dashboard's routes belong to the admin function, and only those
    def http_routes(fid):
        return {(str((e.get("Properties") or {}).get("Method", "")).upper(), (e.get("Properties") or {}).get("Path"))
                for e in (t.props(fid).get("Events") or {}).values()
                if isinstance(e, dict) and e.get("Type") == "HttpApi"}

    admin_routes = http_routes(ADMIN)
    for method, route in sorted(ADMIN_ROUTES):
        check(f"admin serves {method} {route}", (method, route) in admin_routes,
              f"{ADMIN} needs an HttpApi event {method} {route} on {HTTP_API}")
    extra = sorted(f"{m} {p}" for m, p in admin_routes - ADMIN_ROUTES)
    check("admin serves only the dashboard", not extra, f"{ADMIN} also serves {', '.join(extra)}")
    for fid in FUNCTIONS:
        if fid == ADMIN:
            continue
        stray = sorted(f"{m} {p}" for m, p in http_routes(fid) if str(p or "").startswith("/admin"))
        check(f"{fid} serves nothing under /admin", not stray,
              f"{fid} serves {', '.join(stray)}: the dashboard is the admin function's")

    # --- IAM: no Resource "*"
    offenders = []
    for rid, res in t.resources.items():
        if not isinstance(res, dict):
            continue
        props = res.get("Properties") or {}
        for st in statements_in(props):
            if is_star(st.get("Resource")) or is_star(st.get("NotResource")):
                offenders.append(f"{rid} (statement {st.get('Sid', '?')})")
        if res.get("Type") == "AWS::Serverless::Function":
            for pol in props.get("Policies") or []:
                # SAM policy templates: {TemplateName: {Arg: value}}; an argument of "*" widens them.
                if isinstance(pol, dict) and "Statement" not in pol:
                    for tname, args in pol.items():
                        if isinstance(args, dict) and any(is_star(v) for v in args.values()):
                            offenders.append(f"{rid} ({tname} argument)")
                if isinstance(pol, str):
                    offenders.append(f"{rid} (managed policy {pol}: list statements instead)")
    check('no IAM Resource "*"', not offenders, 'IAM grants Resource "*" in: ' + ", ".join(offenders))

    # --- alarms
    alarms = [r.get("Properties") or {} for r in t.resources.values()
              if isinstance(r, dict) and r.get("Type") == "AWS::CloudWatch::Alarm"]

    def has_alarm(namespace, metric, dim_name, target):
        for a in alarms:
            if a.get("Namespace") != namespace or a.get("MetricName") != metric:
                continue
            if not a.get("AlarmActions"):
                continue
            for dim in a.get("Dimensions") or []:
                if dim.get("Name") == dim_name and t.refers_to(dim.get("Value"), target):
                    return True
        return False

    check("alarm on the DLQ", has_alarm("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", DLQ),
          f"no alarm (with AlarmActions) on AWS/SQS ApproximateNumberOfMessagesVisible of {DLQ}")
    for fid in FUNCTIONS:
        check(f"alarm on {fid} errors", has_alarm("AWS/Lambda", "Errors", "FunctionName", fid),
              f"no alarm (with AlarmActions) on AWS/Lambda Errors of {fid}")
    check("alarm on HTTP API 5xx", has_alarm("AWS/ApiGateway", "5xx", "ApiId", HTTP_API),
          f"no alarm (with AlarmActions) on AWS/ApiGateway 5xx of {HTTP_API}")
    check("alarm on the webhook URL's 5xx", has_alarm("AWS/Lambda", "Url5xxCount", "FunctionName", WEBHOOK),
          f"no alarm (with AlarmActions) on AWS/Lambda Url5xxCount of {WEBHOOK}")
    check("alarm on webhook throttles", has_alarm("AWS/Lambda", "Throttles", "FunctionName", WEBHOOK),
          f"no alarm (with AlarmActions) on AWS/Lambda Throttles of {WEBHOOK}")

    # --- the webhook's front: a function URL by default, throttled by reserved concurrency
    front = t.params.get(FRONT_PARAM) or {}
    check("WebhookFront offers FunctionUrl and HttpApi",
          {"FunctionUrl", "HttpApi"} <= set(front.get("AllowedValues") or []),
          f"parameter {FRONT_PARAM} must allow FunctionUrl and HttpApi")
    check("WebhookFront defaults to FunctionUrl", front.get("Default") == "FunctionUrl",
          f"parameter {FRONT_PARAM} defaults to {front.get('Default')!r}, want FunctionUrl "
          "(no per-request API Gateway charge)")
    urls = {rid: r for rid, r in t.resources.items()
            if isinstance(r, dict) and r.get("Type") == "AWS::Lambda::Url"}
    url = urls.get(WEBHOOK_URL) or {}
    url_props = url.get("Properties") or {}
    check("webhook has a function URL", t.refers_to(url_props.get("TargetFunctionArn"), WEBHOOK),
          f"{WEBHOOK_URL} must be an AWS::Lambda::Url whose TargetFunctionArn is {WEBHOOK}")
    check("webhook function URL is public (Meta signs, IAM cannot)", url_props.get("AuthType") == "NONE",
          f"{WEBHOOK_URL} AuthType is {url_props.get('AuthType')!r}, want NONE")
    cond = (doc.get("Conditions") or {}).get(url.get("Condition") or "")
    check("webhook function URL exists exactly when WebhookFront is FunctionUrl",
          cond == {"Fn::Equals": [{"Ref": FRONT_PARAM}, "FunctionUrl"]},
          f"{WEBHOOK_URL} needs a Condition that is !Equals [!Ref {FRONT_PARAM}, FunctionUrl]")
    others = sorted(rid for rid, r in urls.items()
                    if not t.refers_to((r.get("Properties") or {}).get("TargetFunctionArn"), WEBHOOK))
    check("only the webhook has a function URL", not others,
          f"function URLs on other functions: {', '.join(others)} (the dashboard stays on {HTTP_API})")
    perms = [(r.get("Condition"), r.get("Properties") or {}) for r in t.resources.values()
             if isinstance(r, dict) and r.get("Type") == "AWS::Lambda::Permission"]
    url_perm = [p for c, p in perms if t.refers_to(p.get("FunctionName"), WEBHOOK)
                and p.get("Action") == "lambda:InvokeFunctionUrl" and p.get("FunctionUrlAuthType") == "NONE"
                and c == url.get("Condition")]
    invoke_perm = [p for c, p in perms if t.refers_to(p.get("FunctionName"), WEBHOOK)
                   and p.get("Action") == "lambda:InvokeFunction" and p.get("InvokedViaFunctionUrl") is True
                   and c == url.get("Condition")]
    check("webhook function URL may be invoked", bool(url_perm) and bool(invoke_perm),
          f"{WEBHOOK} needs, under the URL's condition, a Permission lambda:InvokeFunctionUrl with "
          "FunctionUrlAuthType NONE and one lambda:InvokeFunction with InvokedViaFunctionUrl: true")
    public = [p for _, p in perms if p.get("Principal") == "*" and p.get("Action") != "lambda:InvokeFunctionUrl"
              and p.get("InvokedViaFunctionUrl") is not True]
    check("no public invoke outside the function URL", not public,
          "a Permission lets anyone invoke a function directly (Principal * without InvokedViaFunctionUrl)")
    reserved = t.props(WEBHOOK).get("ReservedConcurrentExecutions")
    if isinstance(reserved, dict) and "Fn::If" in reserved:
        reserved = reserved["Fn::If"][1]
    reserved_n = t.number(reserved)
    check("webhook throttled by reserved concurrency", reserved_n is not None and reserved_n > 0,
          f"{WEBHOOK} ReservedConcurrentExecutions is {reserved_n!r}: the function URL has no other throttle")
    web_out = json_text((doc.get("Outputs") or {}).get("WebhookUrl"))
    check("WebhookUrl output names the function URL", "${" + WEBHOOK_URL + ".FunctionUrl}" in web_out,
          f"Outputs.WebhookUrl must give !Sub \"${{{WEBHOOK_URL}.FunctionUrl}}webhook\" when the front is FunctionUrl")

    # --- outputs
    outputs = doc.get("Outputs") or {}
    for out in ("WebhookUrl", "ReplyQueueUrl", "DeadLetterQueueUrl", "PlatformSecretArn"):
        check(f"output {out}", out in outputs, f"Outputs lacks {out}")
    return results


def report(results) -> int:
    failed = [(n, why) for n, why in results if why]
    for name, why in failed:
        print(f"FAIL {name}: {why}")
    print(f"template checks: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


# ----------------------------------------------------------------------------- self-test

def self_test(doc: dict, code_env: set[str]) -> int:
    """Mutates copies of the template and asserts that each mutation fails the expected check."""
    baseline = [n for n, why in run_checks(doc, code_env) if why]
    if baseline:
        print(f"self-test: the unmodified template already fails: {', '.join(baseline)}")
        return 1

    def res(d, rid):
        return d["Resources"][rid]

    def props(d, rid):
        return res(d, rid)["Properties"]

    def responder_sqs(d):
        return next(e["Properties"] for e in props(d, RESPONDER)["Events"].values() if e["Type"] == "SQS")

    def add_star(d):
        props(d, RESPONDER)["Policies"].append(
            {"Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})

    def drop_alarm(d, namespace, metric):
        for rid in [k for k, r in d["Resources"].items() if r.get("Type") == "AWS::CloudWatch::Alarm"
                    and r["Properties"].get("Namespace") == namespace and r["Properties"].get("MetricName") == metric]:
            del d["Resources"][rid]

    def set_fn(d, fid, key, value):
        props(d, fid)[key] = value

    mutations = [
        # (description, mutate(doc) or None, extra env names in code, check name expected to fail)
        ("drop OPENAI_MODEL from the responder",
         lambda d: props(d, RESPONDER)["Environment"]["Variables"].pop("OPENAI_MODEL"), set(),
         f"{RESPONDER} sets OPENAI_MODEL"),
        ("drop REPLY_QUEUE_URL from the webhook",
         lambda d: props(d, WEBHOOK)["Environment"]["Variables"].pop("REPLY_QUEUE_URL"), set(),
         f"{WEBHOOK} sets REPLY_QUEUE_URL"),
        ("a new setting appears in config.rs", None, {"ALPHADOME_NEW_SETTING"},
         f"{WEBHOOK} sets ALPHADOME_NEW_SETTING"),
        ("the template sets a misspelt variable",
         lambda d: props(d, RESPONDER)["Environment"]["Variables"].update(OPENAI_MODLE="x"), set(),
         f"{RESPONDER} sets only known variables"),
        ("KEY_PROVIDER=local in Lambda",
         lambda d: props(d, WEBHOOK)["Environment"]["Variables"].update(KEY_PROVIDER="local"), set(),
         f"{WEBHOOK} KEY_PROVIDER=aws"),
        ("maxReceiveCount 3",
         lambda d: props(d, REPLY_QUEUE)["RedrivePolicy"].update(maxReceiveCount=3), set(),
         "maxReceiveCount is 5"),
        ("content-based deduplication on",
         lambda d: props(d, REPLY_QUEUE).update(ContentBasedDeduplication=True), set(),
         "reply queue has no content-based dedup"),
        ("standard (non-FIFO) reply queue",
         lambda d: props(d, REPLY_QUEUE).pop("FifoQueue"), set(), "reply queue is FIFO"),
        ("standard DLQ", lambda d: props(d, DLQ).pop("FifoQueue"), set(), "DLQ is FIFO"),
        ("visibility timeout too short",
         lambda d: props(d, REPLY_QUEUE).update(VisibilityTimeout=60), set(),
         "visibility timeout >= 6 x responder timeout"),
        ("responder timeout raised past visibility/6",
         lambda d: set_fn(d, RESPONDER, "Timeout", 120), set(),
         "visibility timeout >= 6 x responder timeout"),
        ("batch size 11", lambda d: responder_sqs(d).update(BatchSize=11), set(), "responder BatchSize <= 10"),
        ("no ReportBatchItemFailures", lambda d: responder_sqs(d).pop("FunctionResponseTypes"), set(),
         "responder reports batch item failures"),
        ("no MaximumConcurrency", lambda d: responder_sqs(d).pop("ScalingConfig"), set(),
         "responder has a MaximumConcurrency"),
        ("x86_64 webhook", lambda d: set_fn(d, WEBHOOK, "Architectures", ["x86_64"]), set(),
         f"{WEBHOOK} is arm64"),
        ("old runtime in Globals", lambda d: d["Globals"]["Function"].update(Runtime="provided.al2"), set(),
         f"{RESPONDER} runs provided.al2023"),
        ("wrong binary", lambda d: res(d, RESPONDER)["Metadata"]["BuildProperties"].update(Binary="webhook"), set(),
         f"{RESPONDER} builds binary responder"),
        ("no cargo-lambda build", lambda d: res(d, WEBHOOK)["Metadata"].update(BuildMethod="makefile"), set(),
         f"{WEBHOOK} builds with cargo-lambda"),
        ('a Resource "*" statement', add_star, set(), 'no IAM Resource "*"'),
        ('a policy template on "*"',
         lambda d: props(d, WEBHOOK)["Policies"].append({"SQSSendMessagePolicy": {"QueueName": "*"}}), set(),
         'no IAM Resource "*"'),
        ("no DLQ alarm", lambda d: drop_alarm(d, "AWS/SQS", "ApproximateNumberOfMessagesVisible"), set(),
         "alarm on the DLQ"),
        ("no Lambda errors alarms", lambda d: drop_alarm(d, "AWS/Lambda", "Errors"), set(),
         f"alarm on {RESPONDER} errors"),
        ("no API 5xx alarm", lambda d: drop_alarm(d, "AWS/ApiGateway", "5xx"), set(), "alarm on HTTP API 5xx"),
        ("webhook timeout 30 s", lambda d: set_fn(d, WEBHOOK, "Timeout", 30), set(), "webhook Timeout <= 10 s"),
        ("no POST route", lambda d: [props(d, WEBHOOK)["Events"].pop(k) for k, e in list(props(d, WEBHOOK)["Events"].items())
                                     if str(e["Properties"].get("Method", "")).upper() == "POST"], set(),
         "webhook serves POST /webhook"),
        ("text logs", lambda d: d["Globals"]["Function"]["LoggingConfig"].update(LogFormat="Text"), set(),
         f"{WEBHOOK} logs JSON"),
        ("no WebhookUrl output", lambda d: d["Outputs"].pop("WebhookUrl"), set(), "output WebhookUrl"),
        ("the webhook also routes /admin",
         lambda d: props(d, WEBHOOK)["Events"].update(Admin={"Type": "HttpApi", "Properties": {
             "ApiId": {"Ref": HTTP_API}, "Path": "/admin/{proxy+}", "Method": "GET"}}), set(),
         f"{WEBHOOK} serves nothing under /admin"),
        ("the admin function also routes /webhook",
         lambda d: props(d, ADMIN)["Events"].update(Hook={"Type": "HttpApi", "Properties": {
             "ApiId": {"Ref": HTTP_API}, "Path": "/webhook", "Method": "POST"}}), set(),
         "admin serves only the dashboard"),
        ("no POST /admin/{proxy+}",
         lambda d: [props(d, ADMIN)["Events"].pop(k) for k, e in list(props(d, ADMIN)["Events"].items())
                    if e["Properties"].get("Path") == "/admin/{proxy+}"
                    and str(e["Properties"].get("Method", "")).upper() == "POST"], set(),
         "admin serves POST /admin/{proxy+}"),
        ("the dashboard's database URL as a plain variable",
         lambda d: props(d, ADMIN)["Environment"]["Variables"].update(ADMIN_DATABASE_URL="postgres://x"), set(),
         f"{ADMIN} has no secret in its environment"),
        ("the admin function without SUPABASE_URL",
         lambda d: props(d, ADMIN)["Environment"]["Variables"].pop("SUPABASE_URL"), set(),
         f"{ADMIN} sets SUPABASE_URL"),
        ("x86_64 admin", lambda d: set_fn(d, ADMIN, "Architectures", ["x86_64"]), set(), f"{ADMIN} is arm64"),
        ("wrong admin binary", lambda d: res(d, ADMIN)["Metadata"]["BuildProperties"].update(Binary="webhook"), set(),
         f"{ADMIN} builds binary admin"),
        ("admin logs without retention", lambda d: props(d, "AdminLogGroup").pop("RetentionInDays"), set(),
         f"{ADMIN} logs to a log group with retention"),
        ("the webhook front defaults to the HTTP API",
         lambda d: d["Parameters"][FRONT_PARAM].update(Default="HttpApi"), set(),
         "WebhookFront defaults to FunctionUrl"),
        ("no function URL", lambda d: d["Resources"].pop(WEBHOOK_URL), set(), "webhook has a function URL"),
        ("an IAM-authenticated function URL", lambda d: props(d, WEBHOOK_URL).update(AuthType="AWS_IAM"), set(),
         "webhook function URL is public (Meta signs, IAM cannot)"),
        ("a function URL whatever the front", lambda d: res(d, WEBHOOK_URL).pop("Condition"), set(),
         "webhook function URL exists exactly when WebhookFront is FunctionUrl"),
        ("a function URL on the admin function",
         lambda d: d["Resources"].update(AdminUrl={"Type": "AWS::Lambda::Url", "Properties": {
             "TargetFunctionArn": {"Fn::GetAtt": [ADMIN, "Arn"]}, "AuthType": "NONE"}}), set(),
         "only the webhook has a function URL"),
        ("no lambda:InvokeFunction for the URL",
         lambda d: [d["Resources"].pop(k) for k, r in list(d["Resources"].items())
                    if r.get("Type") == "AWS::Lambda::Permission"
                    and r["Properties"].get("Action") == "lambda:InvokeFunction"], set(),
         "webhook function URL may be invoked"),
        ("anyone may invoke the webhook directly",
         lambda d: d["Resources"].update(OpenInvoke={"Type": "AWS::Lambda::Permission", "Properties": {
             "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": WEBHOOK}, "Principal": "*"}}), set(),
         "no public invoke outside the function URL"),
        ("no reserved concurrency on the webhook",
         lambda d: props(d, WEBHOOK).pop("ReservedConcurrentExecutions"), set(),
         "webhook throttled by reserved concurrency"),
        ("no alarm on the URL's 5xx", lambda d: drop_alarm(d, "AWS/Lambda", "Url5xxCount"), set(),
         "alarm on the webhook URL's 5xx"),
        ("no alarm on webhook throttles", lambda d: drop_alarm(d, "AWS/Lambda", "Throttles"), set(),
         "alarm on webhook throttles"),
        ("WebhookUrl on the HTTP API only",
         lambda d: d["Outputs"]["WebhookUrl"].update(
             Value={"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.amazonaws.com/webhook"}), set(),
         "WebhookUrl output names the function URL"),
        ("no admin errors alarm",
         lambda d: [d["Resources"].pop(k) for k, r in list(d["Resources"].items())
                    if r.get("Type") == "AWS::CloudWatch::Alarm"
                    and any(t == {"Ref": ADMIN} for t in [dim.get("Value") for dim in r["Properties"].get("Dimensions", [])])],
         set(), f"alarm on {ADMIN} errors"),
    ]

    failures = 0
    for desc, mutate, extra_env, expected in mutations:
        mutated = copy.deepcopy(doc)
        try:
            if mutate:
                mutate(mutated)
        except (KeyError, StopIteration, TypeError) as e:
            print(f"FAIL self-test '{desc}': could not apply the mutation ({e!r}); update the self-test")
            failures += 1
            continue
        failed = {n for n, why in run_checks(mutated, code_env | extra_env) if why}
        if expected in failed:
            print(f"ok   self-test '{desc}' -> caught by '{expected}'")
        else:
            print(f"FAIL self-test '{desc}': expected check '{expected}' to fail; failed were {sorted(failed) or 'none'}")
            failures += 1
    print(f"template self-test: {len(mutations) - failures} passed, {failures} failed")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    ap.add_argument("--config", type=Path, default=ROOT / "shared" / "src" / "config.rs",
                    help="Rust file whose `pub const NAME: &str = \"NAME\";` lines list the env vars")
    ap.add_argument("--admin-config", type=Path, default=ROOT / "shared" / "src" / "admin" / "mod.rs",
                    help="the dashboard's settings (same `pub const` form)")
    ap.add_argument("--self-test", action="store_true", help="mutate the template and check each mutation is caught")
    args = ap.parse_args()

    doc = load_template(args.template)
    code_env = env_names_in_code(args.config.read_text())
    if not code_env:
        print(f"FAIL no `pub const NAME: &str = \"NAME\";` found in {args.config}; has the file moved?")
        return 1
    admin_env = env_names_in_code(args.admin_config.read_text())
    if not admin_env:
        print(f"FAIL no `pub const NAME: &str = \"NAME\";` found in {args.admin_config}; has the file moved?")
        return 1
    code_env |= admin_env
    if args.self_test:
        return self_test(doc, code_env)
    return report(run_checks(doc, code_env))


if __name__ == "__main__":
    sys.exit(main())
