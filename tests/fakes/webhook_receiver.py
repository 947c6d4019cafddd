"""A real HTTP receiver for outgoing webhooks (http.server in a thread): it checks each POST's
signature exactly as docs/api.md tells a receiver to, records it, and answers as told.

`mode`: "ok" (204), "fail" (500 with a body), "slow" (sleeps past the client's timeout).
`refused_url()` names a port nobody listens on (connection refused).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify_signature(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """The documented check (docs/api.md), written independently of the sender's code."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


@dataclass
class Received:
    headers: dict
    body: bytes
    valid: bool

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    secret: str = ""
    mode: str = "ok"
    slow_seconds: float = 3.0
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                header = self.headers.get("X-WV-Signature", "")
                valid = bool(receiver.secret) and verify_signature(receiver.secret, header, body)
                receiver.received.append(Received(dict(self.headers), body, valid))
                if receiver.mode == "slow":
                    time.sleep(receiver.slow_seconds)
                status, text = (204, b"") if receiver.mode == "ok" else (500, b"receiver is down: try later")
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"
