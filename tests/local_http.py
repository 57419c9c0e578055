"""A local HTTP server for the unit tests of fraudctl's own HTTP clients (MLflow, Airflow, Flower readers):
one handler, the answers given by the test. The real servers are in tests/integration."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # unquoted, without the query
    params: dict[str, str]
    headers: dict[str, str]
    body: Any  # the JSON sent (POST), else None


# (status, body): body is text or JSON-able; ("hang", seconds) waits that long, then answers 200 {}
Answer = Callable[[Request], tuple[Any, Any]]


class LocalServer:
    def __init__(self, answer: Answer):
        self.asked: list[Request] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self, method: str) -> None:
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                sent = json.loads(self.rfile.read(length)) if length else None
                request = Request(method, urllib.parse.unquote(path), dict(urllib.parse.parse_qsl(query)),
                                  dict(self.headers.items()), sent)
                server.asked.append(request)
                status, body = answer(request)
                if status == "hang":
                    time.sleep(body)
                    status, body = 200, {}
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._handle("GET")

            def do_POST(self):  # noqa: N802
                self._handle("POST")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
