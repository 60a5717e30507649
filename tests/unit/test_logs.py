"""trunx/logs.py: one JSON object a line, the call fields from the task's context (never
another task's), `extra=` fields kept, text lines unchanged by default."""
from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from trunx import logs


@pytest.fixture
def captured():
    """The root logger, set up as a process would be, restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    yield out
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(x) for x in out.getvalue().splitlines()]


async def test_each_task_logs_its_own_call(captured):
    logs.setup(True, "INFO", stream=captured)
    log = logging.getLogger("agi_server.test")

    async def call(call_id: str, node: str):
        logs.bind(call_id=call_id, account_id="acc_1")
        await asyncio.sleep(0)
        logs.bind(node=node)
        await asyncio.sleep(0)            # the other call runs in between
        log.info("in %s", node)

    await asyncio.gather(call("c-1", "welcome"), call("c-2", "menu"))
    log.warning("outside any call")
    got = lines(captured)
    assert [(x["call_id"], x["node"], x["message"]) for x in got[:2]] == [
        ("c-1", "welcome", "in welcome"), ("c-2", "menu", "in menu")]
    assert all(x["account_id"] == "acc_1" and x["level"] == "INFO" for x in got[:2])
    assert "call_id" not in got[2] and got[2]["level"] == "WARNING"
    assert got[0]["logger"] == "agi_server.test" and got[0]["ts"].endswith("Z")


def test_extra_fields_and_exceptions_are_fields(captured):
    logs.setup(True, "INFO", stream=captured)
    log = logging.getLogger("trunx.access")
    log.info("GET /x 200", extra={"method": "GET", "status": 200, "duration_ms": 1.5})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    access, failed = lines(captured)
    assert (access["method"], access["status"], access["duration_ms"]) == ("GET", 200, 1.5)
    assert "ValueError: boom" in failed["exc_info"]


def test_text_by_default(captured):
    logs.setup(False, "INFO", stream=captured)
    logging.getLogger("x").info("hello")
    assert captured.getvalue().rstrip().endswith("INFO x: hello")
