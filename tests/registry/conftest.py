"""Registry test helpers: a tiny real HTTP server for MLflow failure modes that a real
MLflow server will not produce on demand (garbage bodies, 503s, silence)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def http_double():
    """Start servers answering every request with a fixed status, headers and body;
    each records the requests it saw (path, headers)."""
    servers = []

    def start(status: int = 200, body: bytes = b"", headers: dict | None = None):
        seen: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                seen.append({"path": self.path, "headers": dict(self.headers)})
                self.send_response(status)
                for key, value in (headers or {"Content-Type": "text/html"}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        server.url = f"http://127.0.0.1:{server.server_port}"
        server.seen = seen
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
