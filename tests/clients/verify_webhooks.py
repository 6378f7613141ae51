"""Verifies webhook deliveries with the Standard Webhooks reference library (PyPI
`standardwebhooks`), not with Gridline's own code.

Reads one JSON object per line on stdin: {"secret": "whsec_…", "headers": {...}, "body": "…"}.
Prints the verified payload's `id` and `type` per line; exits 1 at the first one that does not
verify, saying why.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

for line in sys.stdin:
    if not line.strip():
        continue
    item = json.loads(line)
    try:
        payload = Webhook(item["secret"]).verify(item["body"], item["headers"])
    except Exception as e:  # the library raises its own WebhookVerificationError
        print(f"NOT VERIFIED: {e!r}", file=sys.stderr)
        sys.exit(1)
    print(payload["id"], payload["type"])
