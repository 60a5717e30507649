"""The scaffold the fake HTTP providers share: a threaded server on a free loopback port,
a record of every request, and JSON replies. A fake subclasses `HTTPFake`, names the
`methods` it answers and implements `_handle(h, method)`."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class HTTPFake:
    methods: tuple[str, ...] = ("GET", "POST")

    def __init__(self):
        self.requests: list[dict] = []
        self.delay = 0.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def count(self, method: str, prefix: str = "/") -> int:
        with self._lock:
            return sum(1 for r in self.requests
                       if r["method"] == method and r["path"].startswith(prefix))

    def start(self) -> Self:
        fake = self
        attrs = {"protocol_version": "HTTP/1.1",
                 "log_message": lambda h, *args: None}   # keep test output quiet
        for method in self.methods:
            attrs[f"do_{method}"] = lambda h, method=method: fake._serve(h, method)
        handler = type("Handler", (BaseHTTPRequestHandler,), attrs)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        try:
            self._handle(h, method)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True   # the client gave up (a timeout test): not our error

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        raise NotImplementedError


def read_json(h: BaseHTTPRequestHandler):
    """The request body as JSON; None if there is none or it is not JSON (the fake then
    answers as the provider does for a missing field)."""
    length = int(h.headers.get("Content-Length") or 0)
    raw = h.rfile.read(length) if length else b""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def send_json(h: BaseHTTPRequestHandler, status: int, payload) -> None:
    if status == 204:
        h.send_response(204)
        h.send_header("Content-Length", "0")
        h.end_headers()
        return
    data = json.dumps(payload).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)
