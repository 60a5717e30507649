"""Fuzzing agi_server.agi.protocol with hypothesis (the h11 invariants).

1. Any bytes either parse into events or raise RemoteProtocolError; never anything else.
2. Feeding the same bytes whole, byte by byte, or in random chunks yields the same events.

The driver plays a well-behaved script: it sends NOOP whenever the connection is ready
for a command, so replies in the input are usually solicited. The example count is
printed at the end of the module's run.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agi_server.agi.errors import RemoteProtocolError
from agi_server.agi.protocol import (
    NEED_DATA,
    AGIConnection,
    Closed,
    CommandFailed,
    Environment,
    Response,
)

# Structured inputs cost hypothesis ~3 ms each to generate (parsing is ~50 us), so the
# raw-bytes test gets the most examples; the total stays a few thousand and ~10 s.
FUZZ = settings(deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
examples_run = {"count": 0}

ENV = b"agi_network: yes\nagi_request: agi://127.0.0.1/ivr\nagi_arg_1: one\n\n"
FRAGMENTS = [
    ENV,
    b"agi_request: agi://x\n",
    b"agi_arg_1: a\n",
    b"agi_arg_2: b\n",
    b"agi_x:\x20\n",
    b"\n",
    b"HANGUP\n",
    b"200 result=0\n",
    b"200 result=-1 endpos=1200\n",
    b"200 result= (timeout)\n",
    b"200 result=1 (a (b) c) endpos=5)\n",
    b'200 result=1 (speech) endpos=0 results=1 score0=9 text0="a (b)" grammar0=g \n',
    b"200 result=0 Gosub complete\n",
    b"200 result=0 endpos=x\n",
    b"100 result=0 Trying...\n",
    b"510 Invalid or unknown command\n",
    b"511 Command Not Permitted on a dead channel or intercept routine\n",
    b"520-Invalid command syntax.  Proper usage follows:\n",
    b"Usage: GET DATA <file>\n",
    b"520 End of proper usage.\n",
    b"503 result=-2 Memory allocation failure\n",
    b"\xff\xfe\r\x00",
    b"200 result=1 (",
    b")\n",
]
LIMITS = [{}, {"max_line_bytes": 40, "max_header_bytes": 120}]

wire = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=12)), max_size=25
).map(b"".join)

# Mostly past the environment, where the interesting states are; sometimes raw.
session = st.builds(lambda with_env, body: (ENV if with_env else b"") + body,
                    st.booleans(), st.one_of(wire, st.binary(max_size=200)))


def drive(chunks: list[bytes], eof: bool = True, **limits) -> list:
    """Feed chunks, draining events after each; a raised error is recorded as its class."""
    conn = AGIConnection(**limits)
    seen: list = []

    def drain() -> bool:
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError:
                seen.append(RemoteProtocolError)
                return False
            if event is NEED_DATA:
                return True
            seen.append(event)
            if isinstance(event, Closed):
                return False
            if isinstance(event, (Environment, Response, CommandFailed)):
                conn.send("NOOP")  # ready for a command: keep replies solicited

    for chunk in chunks:
        conn.receive_data(chunk)
        if not drain():
            return seen
    if eof:
        conn.receive_data(b"")
        drain()
    return seen


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@pytest.fixture(scope="module", autouse=True)
def report_example_count(request):
    yield
    count = examples_run["count"]
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    if cache is not None:
        cache.set("trunx/protocol_fuzz_examples", count)
    # Module teardown output is captured like a test's; suspend capture to print it.
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\nprotocol fuzz: {count} hypothesis examples run")


@settings(FUZZ, max_examples=1000)
@given(st.binary(max_size=400), st.sampled_from(LIMITS))
def test_any_bytes_parse_or_raise_peer_error(data, limits):
    examples_run["count"] += 1
    drive([data], **limits)  # any exception but RemoteProtocolError escapes and fails


@settings(FUZZ, max_examples=400)
@given(wire, st.booleans(), st.sampled_from(LIMITS))
def test_any_bytes_after_environment(data, eof, limits):
    examples_run["count"] += 1
    events = drive([ENV, data], eof=eof, **limits)
    assert isinstance(events[0], Environment)


@settings(FUZZ, max_examples=400)
@given(session, st.lists(st.integers(min_value=0), max_size=12), st.sampled_from(LIMITS))
def test_chunking_does_not_change_events(data, cuts, limits):
    examples_run["count"] += 1
    whole = drive([data], **limits)
    assert drive([data[i : i + 1] for i in range(len(data))], **limits) == whole
    assert drive(split(data, cuts), **limits) == whole
