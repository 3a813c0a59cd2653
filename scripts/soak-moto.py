"""moto's server for the soak, with its SQS clock made cheap.

moto's SQS does work proportional to the number of messages in a queue on every call: each
SendMessageBatch entry reads the queue's attributes several times, and each read counts the
visible, in-flight and delayed messages, asking every message whether it is visible or
delayed; ReceiveMessage scans the visible messages the same way. Each of those questions
reads the clock through moto.core.utils.unix_time, which builds two datetimes and subtracts
them (~3 us on this machine). With a few hundred messages queued, one SendMessageBatch cost
0.7 s and one ReceiveMessage 0.4 s (2,000 queued: 3.6 s and 1.8 s, past the SDK's 3 s
attempt timeout), so a short backlog made moto slower, which made the backlog longer.

This launcher replaces the clock moto's SQS models read with time.time() -- the same value,
UTC seconds since the epoch -- and changes nothing else (measured: ~6x cheaper calls; the
work is still proportional to the queue's depth). If moto's module layout is not what this
expects, moto runs unpatched and says so.

    python3 scripts/soak-moto.py -H 127.0.0.1 -p 5055
"""

import sys
import time

try:
    import moto.core.utils as core_utils
    import moto.sqs.models as sqs_models

    _unix_time = core_utils.unix_time

    def unix_time(dt=None):
        return time.time() if dt is None else _unix_time(dt)

    def unix_time_millis(dt=None):
        return unix_time(dt) * 1000.0

    if not (hasattr(sqs_models, "unix_time") and hasattr(sqs_models, "unix_time_millis")):
        raise ImportError("moto.sqs.models no longer imports unix_time / unix_time_millis")
    sqs_models.unix_time = unix_time
    sqs_models.unix_time_millis = unix_time_millis
    print("soak-moto: SQS clock patched (time.time)", file=sys.stderr, flush=True)
except ImportError as e:
    print(f"soak-moto: running moto unpatched ({e})", file=sys.stderr, flush=True)

from moto.server import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
