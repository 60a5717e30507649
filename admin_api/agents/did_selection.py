"""Which of an account's DIDs an outbound call shows as caller ID, when the client left
`from` out (seed 003: "the best available DID based on health score and local presence").

Local presence first, then health:

    1. same-area-code  DIDs in the destination's NANP area code
    2. same-state      else DIDs in the same state / province (trunx/data/nanp_area_codes.csv)
    3. health-score    else every DID
    within the tier:   highest health score, then least recently used, then the number

A DID's health comes from the outbound calls placed from it in the last `WINDOW`
(models.Call): answer rate, short calls (answered but hung up within `SHORT_CALL` s, the
sign of a number people have learned to distrust), failures, and how hard it was used in the
last hour (spreading calls keeps a number from being flagged). Rates are smoothed towards a
neutral prior so a fresh DID is neither best nor worst on no evidence.

An answer that answering-machine detection gave to a machine (or a fax) is no answer by a
person: it counts in `machines`, apart from `answered`, so a number whose calls reach
voicemail does not look healthy for it (fromHealth shows both).
"""
from __future__ import annotations

import csv
import datetime as dt
import functools
from dataclasses import dataclass, field
from importlib import resources

from peewee import Case, fn

from trunx.errors import InvalidInput, problem
from trunx.models import Call, Did, utcnow

WINDOW = dt.timedelta(days=30)
RECENT = dt.timedelta(hours=1)
SHORT_CALL = 10.0              # seconds of talk below which an answered call is "short"
PRIOR_CALLS = 4                # weight of the neutral prior, in calls
PRIOR = {"answer": 0.5, "short": 0.2, "failure": 0.1}
WEIGHTS = {"answer": 50.0, "short": 20.0, "failure": 30.0}
RECENT_PENALTY, RECENT_PENALTY_MAX = 2.0, 30.0   # points per call in the last hour, capped

REASONS = ("same-area-code", "same-state", "health-score")


class NoDidAvailable(InvalidInput):
    """The account has no DID to call from: a 422 on the request's `from`."""

    def __init__(self):
        message = ("this account has no DID to call from: register one with POST /api/dids, "
                   "or send from")
        super().__init__("invalid-request", message, [problem("from", "no-did", message)])


@dataclass(frozen=True)
class Health:
    number: str
    calls: int = 0            # finished outbound calls in the window
    answered: int = 0         # by a person (or by whoever, without detection)
    machines: int = 0         # answered by a machine or a fax (Call.answered_by)
    short: int = 0
    failed: int = 0
    recent: int = 0           # calls placed in the last hour (finished or not)
    last_used: dt.datetime | None = None

    def _rate(self, hits: int, prior: float) -> float:
        return (hits + prior * PRIOR_CALLS) / (self.calls + PRIOR_CALLS)

    @property
    def answer_rate(self) -> float:
        return self._rate(self.answered, PRIOR["answer"])

    @property
    def short_rate(self) -> float:
        # of answered calls, how many were short
        prior = PRIOR["short"] * PRIOR_CALLS
        return (self.short + prior) / (self.answered + PRIOR_CALLS)

    @property
    def failure_rate(self) -> float:
        return self._rate(self.failed, PRIOR["failure"])

    @property
    def score(self) -> float:
        """0..100: higher is a healthier number to call from now."""
        base = (WEIGHTS["answer"] * self.answer_rate
                + WEIGHTS["short"] * (1 - self.short_rate)
                + WEIGHTS["failure"] * (1 - self.failure_rate))
        return round(max(0.0, base - min(RECENT_PENALTY_MAX, RECENT_PENALTY * self.recent)), 2)

    def as_dict(self) -> dict:
        return {"score": self.score, "calls": self.calls,
                "answerRate": round(self.answer_rate, 3), "machineAnswers": self.machines,
                "machineRate": round(self.machines / self.calls, 3) if self.calls else 0.0,
                "shortCallRate": round(self.short_rate, 3),
                "failureRate": round(self.failure_rate, 3), "callsLastHour": self.recent}


@dataclass(frozen=True)
class Selection:
    number: str
    reason: str               # one of REASONS
    health: Health
    candidates: int           # DIDs in the tier the choice was made from
    details: dict = field(default_factory=dict)


# -- NANP geography -------------------------------------------------------------------------

@functools.cache
def area_regions() -> dict[str, frozenset[str]]:
    """NANP area code -> the regions (state, province, territory, country) it serves."""
    out: dict[str, set[str]] = {}
    text = resources.files("trunx").joinpath("data/nanp_area_codes.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    for row in rows:
        out.setdefault(row["area_code"], set()).add(row["region"])
    return {code: frozenset(regions) for code, regions in out.items()}


def area_code(number: str) -> str | None:
    """The NANP area code of a +1 number, else None."""
    if isinstance(number, str) and number.startswith("+1") and len(number) == 12:
        return number[2:5]
    return None


def regions(number: str) -> frozenset[str]:
    code = area_code(number)
    return area_regions().get(code, frozenset()) if code else frozenset()


# -- health ---------------------------------------------------------------------------------

def health(account_id: str, numbers: list[str], *, now: dt.datetime | None = None
           ) -> dict[str, Health]:
    """Health of each number, from the account's outbound calls placed from it."""
    now = now or utcnow()
    since, recent_since = now - WINDOW, now - RECENT
    finished = Call.status.in_(("completed", "failed"))
    machine = (Call.answered_by.is_null(False) & ((Call.answered_by == "fax")
                                                   | Call.answered_by.startswith("machine")))
    picked_up = finished & Call.answered_at.is_null(False)
    answered = picked_up & ~machine
    talk = Call.duration
    rows = (Call
            .select(Call.from_number,
                    fn.SUM(Case(None, [(finished, 1)], 0)).alias("calls"),
                    fn.SUM(Case(None, [(answered, 1)], 0)).alias("answered"),
                    fn.SUM(Case(None, [(picked_up & machine, 1)], 0)).alias("machines"),
                    fn.SUM(Case(None, [(answered & (talk < SHORT_CALL), 1)], 0)).alias("short"),
                    fn.SUM(Case(None, [(Call.status == "failed", 1)], 0)).alias("failed"),
                    fn.SUM(Case(None, [(Call.created_at >= recent_since, 1)], 0))
                    .alias("recent"),
                    fn.MAX(Call.created_at).alias("last_used"))
            .where(Call.account == account_id, Call.direction == "outbound",
                   Call.from_number.in_(numbers), Call.created_at >= since)
            .group_by(Call.from_number)
            .dicts())
    out = {n: Health(n) for n in numbers}
    for r in rows:
        last = r["last_used"]
        if isinstance(last, str):   # SQLite hands back aggregates of dates as text
            last = dt.datetime.fromisoformat(last)
        out[r["from_number"]] = Health(
            r["from_number"], calls=int(r["calls"] or 0), answered=int(r["answered"] or 0),
            machines=int(r["machines"] or 0), short=int(r["short"] or 0),
            failed=int(r["failed"] or 0), recent=int(r["recent"] or 0), last_used=last)
    return out


# -- the choice -----------------------------------------------------------------------------

def _rank(h: Health):
    never = dt.datetime.min
    return (-h.score, h.last_used or never, h.number)


def select_did(account_id: str, to_number: str, *, now: dt.datetime | None = None
               ) -> Selection:
    """The DID to call `to_number` from; NoDidAvailable if the account has none."""
    numbers = [d.number for d in Did.select(Did.number)
               .where(Did.account == account_id).order_by(Did.number)]
    if not numbers:
        raise NoDidAvailable()
    scores = health(account_id, numbers, now=now)
    dest_code, dest_regions = area_code(to_number), regions(to_number)
    tiers = [
        ("same-area-code", [n for n in numbers if dest_code and area_code(n) == dest_code]),
        ("same-state", [n for n in numbers if dest_regions and regions(n) & dest_regions]),
        ("health-score", numbers),
    ]
    for reason, tier in tiers:
        if tier:
            best = min((scores[n] for n in tier), key=_rank)
            details = {"areaCode": dest_code}
            if reason == "same-state":
                details["region"] = sorted(regions(best.number) & dest_regions)[0]
            return Selection(best.number, reason, best, len(tier), details)
    raise AssertionError("unreachable: the last tier holds every number")
