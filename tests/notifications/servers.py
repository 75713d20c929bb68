"""Real local servers for the notification tests: an HTTP receiver (Slack-compatible or
generic webhook) in a thread, and an SMTP server (aiosmtpd) in a thread.

The receiver behaves as a well-built one does: it dedupes by the ``Idempotency-Key``
header (acting on each event once, however often it is sent) and, for the generic
webhook, verifies the signature the way docs/notifications.md tells receivers to,
written here from the documentation, not by calling Slipway's signer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.fixtures.network import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """``status``: what to answer; ``hang``: seconds to wait before answering (longer
    than the sender's timeout = a receiver that times out); ``secret``: verify
    X-Slipway-Signature with it and answer 401 when it does not match."""

    status: int = 200
    hang: float = 0.0
    secret: str = ""
    requests: list[Received] = field(default_factory=list)
    # Event ids acted on, in order; a repeated Idempotency-Key is acknowledged, not acted on.
    acted: list[str] = field(default_factory=list)
    rejected_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.requests.append(Received(path, headers, body))
        if self.hang:
            time.sleep(self.hang)  # the server side of a receiver that does not answer
        if self.status >= 300:
            return self.status
        if self.secret and not verify(self.secret, headers, body):
            with self.lock:
                self.rejected_signatures += 1
            return 401
        key = headers.get("idempotency-key", "")
        with self.lock:
            if key not in self.acted:
                self.acted.append(key)
        return self.status

    def bodies(self) -> list[dict]:
        with self.lock:
            return [r.json() for r in self.requests]


def verify(secret: str, headers: dict[str, str], body: bytes, *, tolerance: int = 300) -> bool:
    """Verify a Slipway webhook as docs/notifications.md describes: HMAC-SHA256 over
    ``<X-Slipway-Timestamp>.<raw body>``, hex, after ``v1=``; timestamp recent."""
    timestamp = headers.get("x-slipway-timestamp", "")
    given = headers.get("x-slipway-signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(given, "v1=" + expected.hexdigest())


def start_receiver(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver.handle(self.path, headers, body)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"receiver says no")
            except OSError:
                pass  # the sender gave up waiting (the timeout test)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    return server


@dataclass
class Mailbox:
    """What the SMTP server accepted; ``refuse`` makes it answer 550 to every recipient."""

    refuse: bool = False
    messages: list[dict] = field(default_factory=list)
    port: int = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "550 5.7.1 Relaying denied for this sender"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append(
            {
                "to": list(envelope.rcpt_tos),
                "subject": str(message["Subject"]),
                "message_id": str(message["Message-ID"]),
                "event_id": str(message["X-Slipway-Event-Id"]),
                "body": message.get_body(preferencelist=("plain",)).get_content(),
            }
        )
        return "250 Message accepted for delivery"


def start_smtp(mailbox: Mailbox) -> Controller:
    mailbox.port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    return controller
