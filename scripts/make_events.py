#!/usr/bin/env python3
"""Writes the sample Lambda events in events/ (used by tests and `cargo lambda invoke`).

Webhook events are API Gateway HTTP API (payload v2) requests, and Lambda function URL requests
(the same payload version with the URL's own requestContext: routeKey `$default`, account
`anonymous`, a lambda-url domain) for the `webhook-function-url*` files; bodies are signed with the
TEST app secret `alphadome-test-app-secret` (never a real one) and whose verify token is
`alphadome-test-verify-token`. Bodies are serialised like Meta's: non-ASCII escaped as \\uXXXX.
The demo tenants own phone_number_id 110000000001 (Kassangas) and 110000000002 (Nyota Salon).
"""
import base64, hashlib, hmac, json, os, uuid

APP_SECRET = b"alphadome-test-app-secret"
VERIFY_TOKEN = "alphadome-test-verify-token"
KASSANGAS = "110000000001"
SALON = "110000000002"
OUT = os.path.join(os.path.dirname(__file__), "..", "events")
TS = "1795928400"


def sign(body: bytes, secret=APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def envelope(pnid, display, value_extra):
    value = {"messaging_product": "whatsapp", "metadata": {"display_phone_number": display, "phone_number_id": pnid}}
    value.update(value_extra)
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}]}


def text_message(pnid, wamid, sender, name, text):
    return envelope(pnid, "254700000001", {
        "contacts": [{"profile": {"name": name}, "wa_id": sender, "user_id": "KE.1234567890"}],
        "messages": [{"from": sender, "from_user_id": "KE.1234567890", "id": wamid, "timestamp": TS,
                      "type": "text", "text": {"body": text}}]})


def status(pnid, wamid, recipient, st):
    return envelope(pnid, "254700000001", {
        "statuses": [{"id": wamid, "status": st, "timestamp": TS, "recipient_id": recipient,
                      "conversation": {"id": "c1", "origin": {"type": "service"}},
                      "pricing": {"billable": False, "pricing_model": "PMP", "category": "service", "type": "free_customer_service"}}]})


def meta_bytes(payload) -> bytes:
    # Meta's serialisation: compact, ASCII-only with \\uXXXX escapes.
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()


def apigw(method, body=None, headers=None, query="", b64=False):
    h = {"content-type": "application/json", "user-agent": "facebookexternalua", "host": "abc123.execute-api.us-east-1.amazonaws.com"}
    h.update(headers or {})
    ev = {
        "version": "2.0", "routeKey": f"{method} /webhook", "rawPath": "/webhook", "rawQueryString": query,
        "headers": h,
        "requestContext": {"accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
                           "domainPrefix": "abc123", "http": {"method": method, "path": "/webhook", "protocol": "HTTP/1.1",
                                                              "sourceIp": "173.252.0.1", "userAgent": "facebookexternalua"},
                           "requestId": str(uuid.uuid5(uuid.NAMESPACE_URL, method + query + (body or b"").decode("latin1"))),
                           "routeKey": f"{method} /webhook", "stage": "$default",
                           "time": "29/Nov/2026:09:00:00 +0000", "timeEpoch": 1795928400000},
        "isBase64Encoded": b64,
    }
    if query:
        ev["queryStringParameters"] = dict(kv.split("=", 1) for kv in query.split("&"))
    if body is not None:
        ev["body"] = base64.b64encode(body).decode() if b64 else body.decode()
    return ev


def function_url(method, body, headers):
    """A Lambda function URL request (AuthType NONE), as Meta's POST to <url>/webhook arrives."""
    url_id = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"
    domain = f"{url_id}.lambda-url.us-east-1.on.aws"
    h = {"content-type": "application/json", "user-agent": "facebookexternalua", "host": domain,
         "x-forwarded-proto": "https", "x-forwarded-for": "173.252.0.1", "x-forwarded-port": "443",
         "x-amzn-trace-id": "Root=1-6740a000-0123456789abcdef01234567", "accept": "*/*"}
    h.update(headers)
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": "/webhook", "rawQueryString": "",
        "headers": h,
        "requestContext": {"accountId": "anonymous", "apiId": url_id, "domainName": domain, "domainPrefix": url_id,
                           "http": {"method": method, "path": "/webhook", "protocol": "HTTP/1.1",
                                    "sourceIp": "173.252.0.1", "userAgent": "facebookexternalua"},
                           "requestId": str(uuid.uuid5(uuid.NAMESPACE_URL, "url" + body.decode("latin1"))),
                           "routeKey": "$default", "stage": "$default",
                           "time": "29/Nov/2026:09:00:00 +0000", "timeEpoch": 1795928400000},
        "body": body.decode(), "isBase64Encoded": False,
    }


def group_id(job):
    # Mirrors Job::group_id: SHA-256 of "tenant:customer", first 32 hex digits.
    customer = job.get("from_wa_id") or job.get("from_user_id") or job.get("recipient_id")
    return hashlib.sha256(f"{job['tenant_id']}:{customer}".encode()).hexdigest()[:32]


def sqs_record(job, i):
    return {"messageId": f"0000000{i}-aaaa-4bbb-8ccc-000000000000", "receiptHandle": f"handle-{i}",
            "body": json.dumps(job, separators=(",", ":")),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795928400000",
                           "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1795928400001",
                           "SequenceNumber": f"1878{i:016d}", "MessageGroupId": group_id(job),
                           "MessageDeduplicationId": job["wa_message_id"]},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:alphadome-replies.fifo", "awsRegion": "us-east-1"}


def write(name, obj):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=True)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    write("webhook-verify.json", apigw("GET", query=f"hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"))
    body = meta_bytes(text_message(KASSANGAS, "wamid.HBgMMjU0NzExMDAwMTExFQIAEhggQTFBMkEzQTQ=", "254711000111", "Wanjiku", "What time do you open on Saturday?"))
    write("webhook-text-message.json", apigw("POST", body, {"x-hub-signature-256": sign(body)}))
    body = meta_bytes(text_message(SALON, "wamid.HBgMMjU0NzExMDAwMTEyFQIAEhggQjFCMkIzQjQ=", "254711000112", "Achieng", "Habari! Mnafungua saa ngapi? \U0001F3B8 Asante sana"))
    write("webhook-swahili-message.json", apigw("POST", body, {"x-hub-signature-256": sign(body)}))
    write("webhook-text-message-base64.json", apigw("POST", body, {"x-hub-signature-256": sign(body)}, b64=True))
    body = meta_bytes(status(KASSANGAS, "wamid.HBgMMjU0NzExMDAwMTExFQIAERgSOTk5OTk5OTk5OTk5OTk5OTk5AA==", "254711000111", "delivered"))
    write("webhook-status-update.json", apigw("POST", body, {"x-hub-signature-256": sign(body)}))
    body = meta_bytes(text_message(KASSANGAS, "wamid.HBgMMjU0NzExMDAwMTExFQIAEhggQkFEU0lHTkFUVVJF", "254711000111", "Mallory", "hello"))
    write("webhook-bad-signature.json", apigw("POST", body, {"x-hub-signature-256": sign(body, b"not-the-app-secret")}))
    # The same deliveries through the webhook's function URL (the template's default front).
    body = meta_bytes(text_message(KASSANGAS, "wamid.HBgMMjU0NzExMDAwMTExFQIAEhggRlVOQ1RJT05VUkw=", "254711000111", "Wanjiku", "Do you sell guitar strings?"))
    write("webhook-function-url.json", function_url("POST", body, {"x-hub-signature-256": sign(body)}))
    # `read` for the reply .ci/lambda-local.sh's Graph stub accepts (it answers every send with
    # wamid.stub): the webhook writes it to that outgoing message itself.
    body = meta_bytes(status(KASSANGAS, "wamid.stub", "254711000111", "read"))
    write("webhook-function-url-status.json", function_url("POST", body, {"x-hub-signature-256": sign(body)}))

    # SQS events for the responder (the webhook's job format, v1). Tenant ids are the demo's.
    kassangas_tenant = "8a3f1c2e-0000-4000-8000-00000000a001"
    salon_tenant = "8a3f1c2e-0000-4000-8000-00000000a002"
    def job(tenant, pnid, wamid, sender, text):
        return {"v": 1, "tenant_id": tenant, "phone_number_id": pnid, "kind": "message", "wa_message_id": wamid,
                "from_wa_id": sender, "profile_name": "Wanjiku", "timestamp": int(TS), "message_type": "text", "text": text}
    j1 = job(kassangas_tenant, KASSANGAS, "wamid.SQS.TEXT.0001", "254711000111", "Do you accept M-Pesa?")
    write("sqs-text-job.json", {"Records": [sqs_record(j1, 1)]})
    st = {"v": 1, "tenant_id": kassangas_tenant, "phone_number_id": KASSANGAS, "kind": "status",
          "wa_message_id": "wamid.SQS.OUT.0001", "status": "delivered", "timestamp": int(TS), "recipient_id": "254711000111"}
    write("sqs-status-job.json", {"Records": [sqs_record(st, 1)]})
    batch = [job(kassangas_tenant, KASSANGAS, "wamid.SQS.BATCH.0001", "254711000111", "Hello"),
             job(kassangas_tenant, KASSANGAS, "wamid.SQS.BATCH.0002", "254711000111", "Where are you located?"),
             job(salon_tenant, SALON, "wamid.SQS.BATCH.0003", "254711000112", "Mnafungua saa ngapi?")]
    write("sqs-batch-of-three.json", {"Records": [sqs_record(j, i + 1) for i, j in enumerate(batch)]})


if __name__ == "__main__":
    main()
