"""redis_url: plain and Sentinel forms parsed, bad ones refused by config naming the key."""
import pytest

from trunx import config, redis_client
from trunx.redis_client import SentinelTarget


def test_a_sentinel_url_names_sentinels_service_db_and_passwords():
    url = "redis+sentinel://:p%40ss@10.0.0.1:26379,[::1]:26380/trunx/2?sentinel_password=s"
    assert redis_client.check(url) == SentinelTarget(
        (("10.0.0.1", 26379), ("::1", 26380)), "trunx", 2, "p@ss", "s")
    assert redis_client.check("redis+sentinel://h:1/svc") == SentinelTarget(
        (("h", 1),), "svc", 0, None, None)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://:pw@h:6380/1",
                                 "unix:///run/redis.sock"])
def test_a_plain_url_is_not_sentinel(url):
    assert redis_client.check(url) is None


@pytest.mark.parametrize("url,why", [
    ("http://h:1/0", "scheme"),
    ("redis+sentinel://h1/svc", "is not host:port"),
    ("redis+sentinel://h1:99999/svc", "is not host:port"),
    ("redis+sentinel://h1:1", "names no service"),
    ("redis+sentinel://h1:1/svc/x", "is not a number"),
    ("redis+sentinel://h1:1/svc/0/more", "path must be"),
    ("redis+sentinel://h1:1/svc?db=1", "unknown parameter"),
    ("redis://h:port/0", "port"),
    ("", "empty"),
])
def test_config_refuses_a_bad_redis_url_naming_the_key(url, why):
    with pytest.raises(config.ConfigError, match=why) as caught:
        config.load(env={"TRUNX_REDIS_URL": url})
    assert caught.value.key == "redis_url"


def test_the_password_is_masked_in_the_effective_config():
    cfg = config.load(env={"TRUNX_REDIS_URL": "redis+sentinel://:secret@h:1,h:2/svc"})
    assert "secret" not in cfg.masked()["redis_url"]


def test_clients_for_a_sentinel_url_ask_the_named_service():
    url = "redis+sentinel://127.0.0.1:1,127.0.0.1:2/trunx/3"
    sync = redis_client.sync_client(url)
    assert sync.connection_pool.service_name == "trunx"
    assert sync.connection_pool.connection_kwargs["db"] == 3
    aio = redis_client.async_client(url)
    assert aio.connection_pool.service_name == "trunx"


def test_no_sentinel_answering_is_a_redis_connection_error():
    """MasterNotFoundError is a redis ConnectionError: the API's handler answers 503
    redis-unavailable, and the engine's retry loops treat it as Redis being away. A dead
    sentinel is skipped at once, not retried with a backoff."""
    import time

    import redis

    from devtools.stack import free_port

    client = redis_client.sync_client(
        f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/trunx")
    started = time.monotonic()
    with pytest.raises(redis.exceptions.ConnectionError, match="No master found"):
        client.ping()
    assert time.monotonic() - started < 1.0
    client.close()
