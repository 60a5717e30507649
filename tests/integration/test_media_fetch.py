"""Fetching audio for `play` from a real HTTP server on loopback."""
from __future__ import annotations

import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from trunx.media.errors import MediaError
from trunx.media.fetch import check_url, fetch_audio


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    d = tmp_path_factory.mktemp("fetch")
    wav, mp3 = d / "a.wav", d / "a.mp3"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(wav), "synth", "1", "sine", "440"],
                   check=True)
    subprocess.run(["sox", str(wav), str(mp3)], check=True)
    return {"wav": wav.read_bytes(), "mp3": mp3.read_bytes()}


@pytest.fixture
def server(audio):
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            hits.append(self.path)
            routes = {
                "/a.wav": ("application/octet-stream", audio["wav"]),
                "/misnamed.txt": ("text/plain", audio["mp3"]),   # mp3 whatever it's called
                "/page.mp3": ("audio/mpeg", b"<html>not audio</html>"),
                "/big.wav": ("audio/wav", audio["wav"] * 20),
            }
            if self.path in routes:
                kind, body = routes[self.path]
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/slow.wav":
                self.send_response(200)
                self.end_headers()
                for _ in range(20):
                    self.wfile.write(audio["wav"][:100])
                    self.wfile.flush()
                    time.sleep(0.1)
            elif self.path == "/loop":
                self.send_response(302)
                self.send_header("Location", "/loop")
                self.end_headers()
            elif self.path == "/to-file":
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd")
                self.end_headers()
            elif self.path == "/hop":
                self.send_response(301)
                self.send_header("Location", "/a.wav")
                self.end_headers()
            else:
                self.send_error(404)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.hits = hits
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def fetch(url, **kw):
    return fetch_audio(url, **{"max_bytes": 1_000_000, "timeout": 5, "allow_private": True,
                               **kw})


def code(excinfo) -> str:
    return excinfo.value.code


def test_wav_and_mp3_are_recognised_by_content(server, audio):
    assert fetch(server.base + "/a.wav") == (audio["wav"], "wav")
    assert fetch(server.base + "/misnamed.txt") == (audio["mp3"], "mp3")


def test_redirects_are_followed(server, audio):
    assert fetch(server.base + "/hop") == (audio["wav"], "wav")
    assert server.hits[-2:] == ["/hop", "/a.wav"]


@pytest.mark.parametrize("path,kw,expected", [
    ("/page.mp3", {}, "unsupported-media-type"),
    ("/big.wav", {"max_bytes": 50_000}, "payload-too-large"),
    ("/slow.wav", {"timeout": 0.5}, "fetch-timeout"),
    ("/loop", {}, "fetch-failed"),
    ("/to-file", {}, "invalid-url"),
    ("/missing.wav", {}, "fetch-failed"),
])
def test_bad_fetches_are_errors_with_codes(server, path, kw, expected):
    with pytest.raises(MediaError) as excinfo:
        fetch(server.base + path, **kw)
    assert code(excinfo) == expected


def test_loopback_is_refused_by_default_without_a_request(server):
    for url in (server.base + "/a.wav", server.base.replace("127.0.0.1", "localhost") + "/a.wav"):
        with pytest.raises(MediaError) as excinfo:
            fetch_audio(url, max_bytes=1_000_000, timeout=5)
        assert code(excinfo) == "url-not-allowed"
    assert server.hits == []


@pytest.mark.parametrize("url", [
    "http://10.1.2.3/a.wav", "http://192.168.0.10/a.wav", "http://169.254.169.254/latest",
    "http://0.0.0.0/a.wav", "http://224.0.0.1/a.wav", "http://127.1/a.wav",
])
def test_private_and_special_addresses_are_refused(url):
    with pytest.raises(MediaError) as excinfo:
        check_url(url, allow_private=False)
    assert code(excinfo) == "url-not-allowed"


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.com/a.mp3", "http:///nohost", "http://u:p@host/a.wav",
    "http://host:notaport/a.wav", "x" * 3000, None,
    # IPv6 literals are not taken at all (trunx/patterns.py URL): names may resolve to v6
    "http://[::1]/a.wav", "http://[::ffff:127.0.0.1]/a.wav", "http://[::1",
])
def test_malformed_urls_are_refused(url):
    with pytest.raises(MediaError) as excinfo:
        check_url(url, allow_private=True)
    assert code(excinfo) == "invalid-url"
