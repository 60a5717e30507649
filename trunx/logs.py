"""Logging for both processes: plain text by default, one JSON object a line on a switch
(`log_json = true` in the config, or TRUNX_LOG_JSON=1).

    {"ts": "2026-03-09T15:30:00.123Z", "level": "INFO", "logger": "agi_server.ivr.runner",
     "message": "...", "call_id": "6f1c...", "account_id": "acc_...", "node": "welcome"}

`call_id`, `account_id` and `node` come from context variables that the engine sets in
each call's task (`bind`), so every line logged while a call runs carries them, whichever
module logs it; asyncio gives each task its own copy, so calls never see each other's.
Fields a caller passes in `extra=` (the API's access log: method, path, status,
duration_ms) become fields of the object too.
"""
from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging

CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_id", default=None)
ACCOUNT_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("account_id",
                                                                         default=None)
NODE: contextvars.ContextVar[str | None] = contextvars.ContextVar("node", default=None)
_VARS = (("call_id", CALL_ID), ("account_id", ACCOUNT_ID), ("node", NODE))
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# what every LogRecord has; anything else on a record came from `extra=`
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def bind(call_id: str | None = None, account_id: str | None = None,
         node: str | None = None) -> None:
    """Set the current task's call fields (those given; None leaves one as it is)."""
    for value, var in ((call_id, CALL_ID), (account_id, ACCOUNT_ID), (node, NODE)):
        if value is not None:
            var.set(value)


class ContextFilter(logging.Filter):
    """Puts the call fields on each record (a record's own `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _VARS:
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created, dt.UTC)
        out = {"ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
               "level": record.levelname, "logger": record.name, "pid": record.process,
               "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


def setup(json_lines: bool, level: str | int = "INFO", stream=None) -> logging.Handler:
    """Configure the root logger: one handler to `stream` (stderr), text or JSON lines."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
