"""What the IVR machine (trunx.ivr.machine) takes and gives: its settings, the events
that come back from the call, and the effects it asks the runner to carry out. Plain
immutable values, so a test can write a whole call down as a table of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class Settings:
    """What the machine needs from the server's configuration."""
    trunk_endpoint: str
    transfer_dial: str
    transfer_timeout: float
    fallback_audio: str
    polite_hangup_audio: str
    agents: bool              # AI agents can be bridged (Ultravox configured)

    @classmethod
    def from_config(cls, config, *, agents: bool) -> Settings:
        return cls(config.trunk_endpoint, config.transfer_dial or "",
                   float(config.transfer_timeout), config.fallback_audio,
                   config.polite_hangup_audio, agents)


# -- events: what happened on the call ----------------------------------------------------
# Events and effects are NamedTuples: immutable like frozen dataclasses, and several times
# cheaper to make (a call makes a few dozen; the engine's CPU per call is benchmarked).
class Started(NamedTuple):
    node: str | None = None   # where the walk starts: the entry, unless a caller comes back
                              # to a node from an AI agent (agi_server/ai/cold_transfer.py)


class PromptEnded(NamedTuple):
    key: str = ""             # the escape key that cut it short, or ''
    endpos: int | None = None  # samples played, as Asterisk reports
    # the Play asked for its wait (`Play.wait`) and it ran: '' is then a timeout, and the
    # key may have come during the prompt or the wait after it (Asterisk's reply does not
    # say which)
    waited: bool = False


class PromptMissing(NamedTuple):
    pass


class Digit(NamedTuple):
    key: str                  # '' when the wait timed out


class Suppressed(NamedTuple):
    added: bool


class DefaultTarget(NamedTuple):
    to: str | None = None
    agent: str | None = None


class DncChecked(NamedTuple):
    suppressed: bool


class DialEnded(NamedTuple):
    status: str               # DIALSTATUS


class AgentEnded(NamedTuple):
    status: str | None
    end_reason: str | None = None
    moved_to: str | None = None   # the agent's coldTransfer took the caller there (a number,
                                  # an IVR node): the call goes on elsewhere, not hung up


# -- effects: what to do next ---------------------------------------------------------------
class Step(NamedTuple):
    """Append to the call record's path."""
    node: str
    event: str
    data: dict


class Finish(NamedTuple):
    """Set the call's outcome (the first one set wins)."""
    outcome: str
    reason: str | None = None


class Play(NamedTuple):
    file: str
    escape: str = ""
    # a question: when the prompt ends with no key, wait this many seconds for the first
    # one in the same step (the engine sends one GET OPTION: no gap between prompt and
    # wait where Asterisk would drop a key). None: the prompt alone.
    wait: float | None = None


class WaitDigit(NamedTuple):
    timeout: float


class Suppress(NamedTuple):
    node: str


class FetchDefault(NamedTuple):
    pass


class CheckDnc(NamedTuple):
    number: str


class Dial(NamedTuple):
    target: str
    timeout: int


class BridgeAgent(NamedTuple):
    agent: str


class Hangup(NamedTuple):
    pass


class UnexpectedEvent(RuntimeError):
    """The driver sent an event the machine's state does not await (a bug in the driver)."""
