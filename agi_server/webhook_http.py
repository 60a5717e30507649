"""One webhook POST to a user's URL, under the address policy all user URLs share
(trunx/url_policy.py), with one deadline for the whole request.

The URL is checked again at send time (DNS may have changed since it was given), and the
connection goes to the address that was checked: the Host header and the TLS server name
stay the URL's. Redirects are not followed (a 3xx is not a delivery). At most MAX_ANSWER
bytes of the answer are read. The deadline covers connect, send and the whole answer: a
receiver that trickles bytes is cut off by shutting its socket from outside (`Post.abort`),
which a per-read timeout alone would not do.
"""
from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
from urllib.parse import unquote, urlsplit

from trunx import url_policy

MAX_ANSWER = 64 * 1024


class PostFailed(Exception):
    """The POST did not get an answer: the message says why (refused URL, timeout, ...)."""


class _Connection(http.client.HTTPConnection):
    def __init__(self, target: url_policy.Target, timeout: float):
        super().__init__(target.address, target.port, timeout=timeout)
        self.target = target

    def connect(self):
        self.sock = socket.create_connection((self.target.address, self.target.port),
                                             self.timeout)
        if self.target.https:
            context = ssl.create_default_context()
            self.sock = context.wrap_socket(self.sock, server_hostname=self.target.host)


class Post:
    """A POST that another thread may abort: `run()` in a worker thread, `abort()` from
    anywhere once the deadline passed."""

    def __init__(self, url: str, body: bytes, headers: dict, *, timeout: float,
                 allow_private: bool):
        self.url, self.body, self.headers = url, body, dict(headers)
        self.timeout, self.allow_private = timeout, allow_private
        self._conn: _Connection | None = None
        self._lock = threading.Lock()
        self._aborted = False

    def run(self) -> int:
        """The answer's HTTP status. Raises PostFailed."""
        try:
            target = url_policy.target(self.url, self.allow_private, credentials=True)
        except url_policy.UrlRefused as exc:
            raise PostFailed(f"{exc.code}: {exc.message}") from None
        parts = urlsplit(self.url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {**self.headers, "Host": parts.netloc.rpartition("@")[2],
                   "Content-Type": "application/json", "User-Agent": "trunx/0.1",
                   "Connection": "close"}
        if parts.username is not None:      # https://user:pass@host: basic auth
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        conn = _Connection(target, self.timeout)
        with self._lock:
            if self._aborted:
                raise PostFailed("timed out")
            self._conn = conn
        try:
            conn.request("POST", path, body=self.body, headers=headers)
            response = conn.getresponse()
            response.read(MAX_ANSWER)       # the rest is not read: the socket is closed
            return response.status
        except (OSError, http.client.HTTPException) as exc:
            raise PostFailed("timed out" if self._aborted
                             else f"{type(exc).__name__}: {exc}"[:200]) from None
        finally:
            conn.close()

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
