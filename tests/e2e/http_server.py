"""A local HTTP server on 127.0.0.1 for tests of `api` steps: it answers from a script
the test writes and records every request.

Each scripted answer is (status, payload, delay) or (status, payload, delay, headers): a
dict payload is sent as JSON, a str as text; `headers` are added to the answer (a
`Location` makes it a redirect)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server:
    """A local HTTP server whose answers the test scripts, recording every request."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[tuple] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                server.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                answer = server.script.pop(0) if server.script else (200, {}, 0)
                status, payload, delay = answer[:3]
                extra = answer[3] if len(answer) > 3 else {}
                time.sleep(delay)
                data = payload if isinstance(payload, str) else json.dumps(payload)
                kind = "text/plain" if isinstance(payload, str) else "application/json"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("X-Served-By", "test")
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (the timeout test)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serving() -> Iterator[Server]:
    """The body of a test's `server` fixture: a running server, closed afterwards."""
    running = Server()
    yield running
    running.close()
