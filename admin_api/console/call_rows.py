"""The console's reads of call rows: the newest calls of an account and one call, with its
IVR path made into a timeline. (A small query of the console's own; the public call list
is GET /api/voice.)"""
from __future__ import annotations

from trunx.models import Call

PAGE = 50


def recent(account_id: str, *, before=None, limit: int = PAGE) -> list[Call]:
    q = (Call.select(Call.id, Call.direction, Call.from_number, Call.to_number, Call.status,
                     Call.ivr_id, Call.ivr_version, Call.outcome, Call.end_reason,
                     Call.created_at, Call.duration)
         .where(Call.account == account_id))
    if before is not None:
        q = q.where(Call.created_at < before)
    return list(q.order_by(Call.created_at.desc(), Call.id.desc()).limit(limit))


def one(account_id: str, call_id: str) -> Call | None:
    return Call.get_or_none(Call.id == call_id, Call.account == account_id)


# what each path event says on the timeline, beside its node
_SAYS = {"enter": "entered", "prompt": "prompt", "prompt-missing": "prompt missing",
         "digits": "pressed", "timeout": "no key (timeout)", "invalid": "invalid key",
         "played": "played", "hangup": "IVR hung up", "suppress": "added to do-not-call",
         "transfer": "transfer", "transfer-refused": "transfer refused",
         "transfer-ended": "transfer ended", "loop-limit": "loop limit"}


def timeline(path: list[dict] | None) -> list[dict]:
    """One entry per path step: its time, node, what happened and the details."""
    out = []
    for step in path or []:
        extra = {k: v for k, v in step.items() if k not in ("node", "event", "t")}
        out.append({"t": step.get("t"), "node": step.get("node"), "event": step.get("event"),
                    "says": _SAYS.get(step.get("event"), step.get("event")),
                    "details": extra})
    return out
