"""The one address policy for every HTTP request trunx makes on a user's behalf: audio
fetched for `play` (trunx/media/fetch.py), call-status webhooks and `answer_url`
(agi_server/webhooks.py), and AI tool URLs (checked when given; Ultravox calls them).

- http and https only, a host, at most MAX_URL characters, no whitespace or control
  characters; a URL that does not even parse (`http://[::1`) is refused like any other.
- The host is resolved and every address checked: loopback, private, link-local,
  multicast, reserved, unspecified and IPv4-mapped forms of them are refused unless the
  operator allows private addresses (`fetch_allow_private` for play,
  `webhook_allow_private` for webhooks, answer_url and tool URLs).
- A caller connects to the address that was checked (so a DNS answer that changes between
  check and connect cannot redirect it) and re-checks every redirect it follows.

Errors are InvalidInput with the problem's code `invalid-url` or `url-not-allowed`.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from trunx import patterns
from trunx.errors import InvalidInput

MAX_URL = 2048
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]*@")     # scheme://user:password@host


class UrlRefused(InvalidInput):
    """`code` is invalid-url (not a usable URL) or url-not-allowed (the address policy)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str      # the checked address to connect to

    @property
    def https(self) -> bool:
        return self.scheme == "https"


def parse(url, *, credentials: bool = False) -> tuple[str, str, int]:
    """(scheme, host, port) of a well-formed http(s) URL, else UrlRefused(invalid-url)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise UrlRefused("invalid-url", f"the URL must be a string of 1 to {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7f for c in url):
        raise UrlRefused("invalid-url", "the URL must not contain spaces or control characters")
    if not patterns.URL_RE.fullmatch(url):    # the shape the OpenAPI document publishes
        raise UrlRefused("invalid-url", "the URL must be http or https with a host name or "
                         "IPv4 address")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:      # "http://[::1", a port that is no number or out of range
        raise UrlRefused("invalid-url", "the URL does not parse") from None
    if parts.scheme not in ("http", "https") or not host:
        raise UrlRefused("invalid-url", "the URL must be http or https with a host")
    if not credentials and (parts.username or parts.password):
        raise UrlRefused("invalid-url", "credentials in the URL are not accepted")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if mapped is not None:
            ip = mapped
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """The host's addresses ([] if it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return sorted({info[4][0] for info in infos})


def check_addresses(host: str, addresses: list[str], allow_private: bool) -> None:
    refused = [a for a in addresses if not is_public(a)]
    if refused and not allow_private:
        raise UrlRefused("url-not-allowed",
                         "the URL resolves to a loopback, private or link-local address",
                         {"host": host, "addresses": refused})


def check_input(url, allow_private: bool, *, credentials: bool = False) -> str:
    """A URL a user gives us to call later (webhook, answer_url, tool): well-formed, and
    if its host resolves now, to allowed addresses only (it is checked again at send
    time, when it must resolve)."""
    _, host, port = parse(url, credentials=credentials)
    check_addresses(host, resolve(host, port), allow_private)
    return url


def target(url, allow_private: bool, *, credentials: bool = False) -> Target:
    """Where to connect for `url` now: parsed, resolved, every address checked."""
    scheme, host, port = parse(url, credentials=credentials)
    addresses = resolve(host, port)
    if not addresses:
        raise UrlRefused("url-unresolvable", f"cannot resolve {host!r}", {"host": host})
    check_addresses(host, addresses, allow_private)
    return Target(scheme, host, port, addresses[0])


def mask(url: str) -> str:
    """The URL fit for a log line: credentials in it replaced by `***`."""
    return _CREDENTIALS.sub("***@", url) if isinstance(url, str) else repr(url)
