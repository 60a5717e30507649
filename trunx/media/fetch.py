"""Fetching audio from a user's URL (the `play` action) without becoming an open proxy.

- http and https only; no credentials in the URL.
- The host is resolved once and every address checked by the policy all user URLs share
  (trunx/url_policy.py): loopback, private, link-local, multicast, reserved and
  unspecified addresses are refused unless `fetch_allow_private`.
  The connection then goes to the checked address (the Host header and TLS name stay the
  URL's), so a DNS answer that changes between check and connect cannot redirect it.
- Redirects are followed by hand, at most MAX_REDIRECTS, each hop checked the same way.
- A size cap while reading (not trusting Content-Length) and one deadline for the whole
  fetch; the bytes must sniff as mp3 or wav, whatever the server calls them.
"""
from __future__ import annotations

import time
from urllib.parse import urljoin, urlsplit

import urllib3

from trunx import url_policy

from .errors import BadMedia, MediaTooLarge, ProviderFailed, ProviderTimeout, UnsupportedMedia
from .sniff import sniff

MAX_REDIRECTS = 3
PLAYABLE = ("mp3", "wav")
_CHUNK = 64 * 1024


def check_url(url: str, allow_private: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, the address to connect to) for an acceptable URL: the address
    policy every user URL shares (trunx/url_policy.py), its refusals as media errors."""
    try:
        where = url_policy.target(url, allow_private)
    except url_policy.UrlRefused as exc:
        if exc.code == "url-unresolvable":
            raise ProviderFailed("fetch-failed", exc.message, exc.details) from None
        raise BadMedia(exc.code, exc.message, exc.details or {"url": url_policy.mask(url)}) \
            from None
    return where.scheme, where.host, where.port, where.address


def fetch_audio(url: str, *, max_bytes: int, timeout: float,
                allow_private: bool = False) -> tuple[bytes, str]:
    """The audio at `url` and its sniffed kind ("mp3" or "wav"). Raises MediaError."""
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        scheme, host, port, address = check_url(url, allow_private)
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProviderTimeout("fetch-timeout", f"fetching took longer than {timeout:g} s")
        pool_cls = (urllib3.HTTPSConnectionPool if scheme == "https"
                    else urllib3.HTTPConnectionPool)
        extra = {"server_hostname": host, "assert_hostname": host} if scheme == "https" else {}
        pool = pool_cls(address, port, timeout=urllib3.Timeout(total=left), retries=False,
                        maxsize=1, **extra)
        target = urlsplit(url)._replace(scheme="", netloc="").geturl() or "/"
        try:
            resp = pool.urlopen("GET", target, headers={"Host": urlsplit(url).netloc,
                                                        "User-Agent": "trunx/0.1"},
                                preload_content=False, redirect=False)
        except urllib3.exceptions.TimeoutError as exc:
            raise ProviderTimeout("fetch-timeout",
                                  f"fetching took longer than {timeout:g} s") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise ProviderFailed("fetch-failed", "could not fetch the URL",
                                 {"reason": str(exc)}) from exc
        try:
            if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                url = urljoin(url, resp.headers["Location"])
                continue
            if resp.status != 200:
                raise ProviderFailed("fetch-failed", f"the URL answered HTTP {resp.status}",
                                     {"http_status": resp.status})
            data = _read_capped(resp, max_bytes, deadline, timeout)
        finally:
            resp.close()     # closes the socket too: a half-read response isn't reusable
            pool.close()
        kind = sniff(data)
        if kind not in PLAYABLE:
            raise UnsupportedMedia("unsupported-media-type",
                                   "the URL's content is not mp3 or wav audio",
                                   {"detected": kind})
        return data, kind
    raise ProviderFailed("fetch-failed", f"more than {MAX_REDIRECTS} redirects")


def _read_capped(resp, max_bytes: int, deadline: float, timeout: float) -> bytes:
    chunks, size = [], 0
    try:
        for chunk in resp.stream(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise MediaTooLarge("payload-too-large",
                                    f"the audio is larger than {max_bytes} bytes",
                                    {"max_bytes": max_bytes})
            if time.monotonic() > deadline:
                raise ProviderTimeout("fetch-timeout", f"fetching took longer than {timeout:g} s")
            chunks.append(chunk)
    except urllib3.exceptions.TimeoutError as exc:
        raise ProviderTimeout("fetch-timeout", f"fetching took longer than {timeout:g} s") from exc
    except urllib3.exceptions.HTTPError as exc:
        raise ProviderFailed("fetch-failed", "the download broke off",
                             {"reason": str(exc)}) from exc
    return b"".join(chunks)
