#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ in turn for SECONDS each (default 60), with cargo-fuzz on the
# stable toolchain (RUSTC_BOOTSTRAP=1 lets it use the sanitizer flags). Not part of CI: a useful
# run takes minutes per target. Install once with `cargo install cargo-fuzz`.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Seeds each target's corpus (fuzz/corpus/TARGET, kept between runs, not committed) from the
# sample events in events/, the webhook fixtures in shared/tests/data/payloads/ and the demo
# FAQs. A crash leaves its input in fuzz/artifacts/TARGET/ and stops the script non-zero: make
# it a regression test in the normal suite, then fix it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(webhook_payload signature knowledge_file normalize)
fi
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 1; }

python3 - <<'PY'
import base64, glob, hashlib, json, os

def put(target, data):
    d = os.path.join("fuzz/corpus", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

bodies = [open(p, "rb").read() for p in sorted(glob.glob("shared/tests/data/payloads/*.json"))]
headers = []
for p in sorted(glob.glob("events/*.json")):
    event = json.load(open(p))
    body = event.get("body")
    if isinstance(body, str):
        raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
        bodies.append(raw)
        sig = (event.get("headers") or {}).get("x-hub-signature-256")
        if sig:
            headers.append((sig.encode(), raw))
    for record in event.get("Records", []):
        put("webhook_payload", record.get("body", "").encode())
for b in bodies:
    put("webhook_payload", b)
    # signature: first byte = header length, then header, then body.
    put("signature", bytes([71]) + b"sha256=" + b"0" * 64 + b)
for sig, raw in headers:
    put("signature", bytes([min(len(sig), 255)]) + sig + raw)
for p in sorted(glob.glob("demo/*.csv")):
    text = open(p, "rb").read()
    put("knowledge_file", text)
    for line in text.decode().splitlines()[1:40]:
        put("normalize", line.split(",")[0].strip('"').encode())
put("knowledge_file", b'[{"question":"Hours?","answer":"9 to 5","priority":"2","data_type":"canned"}]')
put("knowledge_file", b'{"question":"Hours?","answer":"9 to 5","category":"hours"}\n{"question":"Price?","answer":"KES 100"}\n')
for s in ["wat tym u open?", "Mnafungua saa ngapi?", "m-pesa iko?", "Bei ya gitaa ni ngapi 🎸", "DON'T YOU DELIVER?? İstanbul"]:
    put("normalize", s.encode())
PY

export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
  echo "== fuzz target $target for ${seconds}s"
  # `-s none`: the code under test is safe Rust, so the fuzzers hunt panics (debug assertions
  # on); AddressSanitizer would only double the build time of the whole dependency tree.
  cargo fuzz run -s none "$target" -- -max_total_time="$seconds" -print_final_stats=1
done
