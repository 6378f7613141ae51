"""An SMTP server for the email tests: aiosmtpd (PyPI), a maintained SMTP server, on
127.0.0.1. Prints `PORT <n>` once it listens, then one JSON line per message it accepts,
read back with Python's own email parser (RFC 2047 subjects and transfer encodings decoded):
{"mail_from", "rcpt_tos", "to", "subject", "message_id", "content_type", "body"}.
Stops when its standard input closes.
"""
import email
import email.policy
import json
import socket
import sys

from aiosmtpd.controller import Controller


class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        print(json.dumps({
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "content_type": msg.get_content_type(),
            "body": msg.get_content(),
        }, ensure_ascii=False), flush=True)
        return "250 Message accepted for delivery"


with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
controller = Controller(Handler(), hostname="127.0.0.1", port=port)
controller.start()
print(f"PORT {port}", flush=True)
sys.stdin.read()
controller.stop()
