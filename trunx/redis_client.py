"""Every Redis client trunx makes, from one `redis_url`: a plain Redis or one behind Sentinel.

    redis://[[user]:password@]host:port[/db]        (and rediss://, unix://: redis-py's own)
    redis+sentinel://[:password@]host1:port1[,host2:port2...]/<service_name>[/db]
        [?sentinel_password=...]

The Sentinel form names the sentinels (at least one; list them all: any one that answers
is enough) and the service (the master's name in `sentinel monitor <name> ...`). The
password is the master's (`requirepass`); sentinels are asked without one unless
`sentinel_password` is given. A client made here asks the sentinels for the current
master when it connects and again after any connection error, and a connection still open
to a master that was demoted drops on its first write (redis-py's SentinelManagedConnection
turns READONLY into a connection error), so the retry loops the engine already has (the
tree cache's subscription, the command and originate readers) follow a failover by simply
reconnecting. The old master drops its pub/sub clients when it is turned into a replica
(Sentinel sends CLIENT KILL TYPE pubsub), so a subscription follows too.

`sync_client(url)` and `async_client(url)` are what the API, the engine, the CLI and the
dev tools build their clients with; `check(url)` is what config validation runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
_PLAIN_SCHEMES = ("redis", "rediss", "unix")
# how long a sentinel may take to answer "who is the master": one that is down is skipped
SENTINEL_TIMEOUT = 1.0


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None
    sentinel_password: str | None = None


def check(url: str) -> SentinelTarget | None:
    """The Sentinel target a `redis+sentinel://` URL names, None for a plain Redis URL;
    ValueError (saying what is wrong, never the password) for anything else."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("is empty")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in _PLAIN_SCHEMES:
        parts = urlsplit(url)
        if scheme != "unix" and not parts.hostname:
            raise ValueError("names no host")
        _port(parts)
        return None
    if scheme != SENTINEL_SCHEME:
        raise ValueError(f"scheme must be redis://, rediss://, unix:// or "
                         f"{SENTINEL_SCHEME}://, not {scheme or 'missing'}")
    rest = url.split("://", 1)[1]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    password = None
    if at:
        password = unquote(userinfo.partition(":")[2]) or None
    sentinels = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isascii() or not port.isdigit() \
                or not 0 < int(port) < 65536:
            raise ValueError(f"sentinel {item.strip()!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise ValueError("names no service: redis+sentinel://host:port,.../<service_name>")
    if len(segments) > 2:
        raise ValueError("path must be /<service_name>[/db]")
    db = 0
    if len(segments) == 2:
        if not segments[1].isascii() or not segments[1].isdigit():
            raise ValueError(f"database {segments[1]!r} is not a number")
        db = int(segments[1])
    params = parse_qs(query, keep_blank_values=True)
    unknown = set(params) - {"sentinel_password"}
    if unknown:
        raise ValueError(f"unknown parameter {sorted(unknown)[0]!r} (only sentinel_password)")
    sentinel_password = (params.get("sentinel_password") or [None])[0] or None
    return SentinelTarget(tuple(sentinels), unquote(segments[0]), db, password,
                          sentinel_password)


def _port(parts) -> None:
    try:
        _ = parts.port      # urllib checks the port only when asked
    except ValueError:
        raise ValueError("port is not a number from 0 to 65535") from None


def _sentinel_args(target: SentinelTarget, retry) -> tuple[dict, dict]:
    # a sentinel that does not answer is skipped for the next one, not retried: redis-py's
    # default for a client made by host and port retries 10 times with a backoff (3.7 s
    # before a lookup gave up with one dead sentinel)
    sentinel_kwargs = {"socket_timeout": SENTINEL_TIMEOUT,
                       "socket_connect_timeout": SENTINEL_TIMEOUT, "retry": retry}
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    master_kwargs = {"db": target.db, "password": target.password}
    return sentinel_kwargs, master_kwargs


def sync_client(url: str, *, decode_responses: bool = True, **kwargs):
    """A blocking redis.Redis for `url` (the API, the CLI, the engine's database thread)."""
    import redis

    target = check(url)
    if target is None:
        return redis.Redis.from_url(url, decode_responses=decode_responses, **kwargs)
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    from redis.sentinel import Sentinel

    class SentinelRedis(redis.Redis):
        def close(self) -> None:
            super().close()
            for client in self.connection_pool.sentinel_manager.sentinels:
                client.close()      # the sentinels' own connections: ours to close too

    sentinel_kwargs, master_kwargs = _sentinel_args(target, Retry(NoBackoff(), 0))
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
    return sentinel.master_for(target.service, redis_class=SentinelRedis,
                               decode_responses=decode_responses, **master_kwargs, **kwargs)


def async_client(url: str, *, decode_responses: bool = True, **kwargs):
    """A redis.asyncio.Redis for `url` (the engine's event loop).

    A command that fails with a connection error is sent once more, at once, on a fresh
    connection: after Redis restarts or fails over, each connection idle in the asyncio
    pool fails its first command ("Connection closed by server": unlike the sync pool, it
    does not notice the dead socket before use), which cost a call its tree and the live
    index a batch. Every write the engine makes is safe to repeat (hash and set writes,
    the index script, XACK/XDEL) or guarded (the originate mark is SET NX: a repeat reads
    as "sent before", so a call is never placed twice). Only single commands are resent:
    not pipelines, and not a subscription, whose loss its owner must see (the tree cache
    drops what it cached and resyncs an emptied Redis when it subscribes again)."""
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError

    class Redis(aioredis.Redis):
        async def execute_command(self, *args, **options):
            try:
                return await super().execute_command(*args, **options)
            except RedisConnectionError:
                return await super().execute_command(*args, **options)

    target = check(url)
    if target is None:
        return Redis.from_url(url, decode_responses=decode_responses, **kwargs)
    from redis.asyncio.retry import Retry
    from redis.asyncio.sentinel import Sentinel
    from redis.backoff import NoBackoff

    class SentinelRedis(Redis):
        async def aclose(self, close_connection_pool: bool | None = None) -> None:
            await super().aclose(close_connection_pool)
            for client in self.connection_pool.sentinel_manager.sentinels:
                await client.aclose()

    sentinel_kwargs, master_kwargs = _sentinel_args(target, Retry(NoBackoff(), 0))
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
    return sentinel.master_for(target.service, redis_class=SentinelRedis,
                               decode_responses=decode_responses, **master_kwargs, **kwargs)
