"""Fetching audio from a user's URL (the `play` action) without becoming an open proxy.

- http and https only; no credentials in the URL.
- The host is resolved once and every address checked: loopback, private, link-local,
  multicast, reserved and unspecified addresses are refused unless `fetch_allow_private`.
  The connection then goes to the checked address (the Host header and TLS name stay the
  URL's), so a DNS answer that changes between check and connect cannot redirect it.
- Redirects are followed by hand, at most MAX_REDIRECTS, each hop checked the same way.
- A size cap while reading (not trusting Content-Length) and one deadline for the whole
  fetch; the bytes must sniff as mp3 or wav, whatever the server calls them.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from urllib.parse import urljoin, urlsplit

import urllib3

from .errors import BadMedia, MediaTooLarge, ProviderFailed, ProviderTimeout, UnsupportedMedia
from .sniff import sniff

MAX_REDIRECTS = 3
PLAYABLE = ("mp3", "wav")
_CHUNK = 64 * 1024


def _addresses(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProviderFailed("fetch-failed", f"cannot resolve {host!r}",
                             {"reason": str(exc)}) from exc
    return sorted({info[4][0] for info in infos})


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, allow_private: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, the address to connect to) for an acceptable URL."""
    if not isinstance(url, str) or len(url) > 2048:
        raise BadMedia("invalid-url", "url must be a string of at most 2048 characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadMedia("invalid-url", "url must be an http or https URL with a host",
                       {"url": url})
    if parts.username or parts.password:
        raise BadMedia("invalid-url", "credentials in the URL are not accepted")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadMedia("invalid-url", "the URL's port is not a number") from None
    addresses = _addresses(parts.hostname, port)
    refused = [a for a in addresses if not _public(a)]
    if refused and not allow_private:
        raise BadMedia("url-not-allowed",
                       "the URL resolves to a loopback or private address",
                       {"host": parts.hostname, "addresses": refused})
    return parts.scheme, parts.hostname, port, addresses[0]


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
