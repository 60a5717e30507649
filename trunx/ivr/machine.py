"""The IVR runner's logic as a pure state machine (h11's shape): events in, effects out.

A `Machine` holds one call's walk through a Program (trunx.ivr.program). `send(event)`
takes what happened on the call and returns the effects to carry out next, in order: path
steps and the outcome to record, then at most one effect whose result comes back as the
next event. No asyncio and no I/O here: the engine's agi_server.ivr.runner carries out the
effects on a live channel and feeds their results back, the API's IVR simulation
(trunx.ivr.simulate) feeds it a designer's inputs instead, and the unit tests drive every
transition from a table. It lives in trunx so both processes run this one walk.

    state     awaits           after it
    idle      Started          enter the entry node
    prompt    PromptEnded      a gather's prompt ended (key pressed or not): collect keys;
                               a question's (Play.wait) '' is the first wait's timeout
              PromptMissing    Asterisk has no such file: collect keys all the same
    wait      Digit            a key ('' = the wait timed out): collect more, or decide
    invalid   PromptEnded/-Missing  the invalid_audio ended: go to invalid_node (or replay)
    played    PromptEnded/-Missing  an action node's audio ended: do the action
    suppress  Suppressed       the caller was (or could not be) added to the DNC list
    default   DefaultTarget    the account's default transfer target, for a bare transfer
    dnc       DncChecked       whether the number to transfer to is on the DNC list
    dial      DialEnded        the transfer's DIALSTATUS
    agent     AgentEnded       the AI agent's result
    closing   PromptEnded/-Missing  the fallback or goodbye prompt ended: hang up
    done      (nothing)        the walk is over

Path events (the call record's `path`, stored and read by the API): enter, prompt,
prompt-missing, digits, timeout, invalid, played, hangup, suppress, transfer,
transfer-refused, transfer-ended, loop-limit; and `returned`, which the engine records when
an AI agent's coldTransfer brings the caller back to a node (`Started(node)` then starts
the walk there). Outcomes: hangup, suppressed,
suppress-no-callerid, transferred, transfer-failed (with its reason), max-tries,
loop-limit.
"""
from __future__ import annotations

from trunx.dial import dial_string
from trunx.ivr.events import (  # noqa: F401  (the machine's vocabulary, re-exported)
    AgentEnded,
    BridgeAgent,
    CheckDnc,
    DefaultTarget,
    Dial,
    DialEnded,
    Digit,
    DncChecked,
    FetchDefault,
    Finish,
    Hangup,
    Play,
    PromptEnded,
    PromptMissing,
    Settings,
    Started,
    Step,
    Suppress,
    Suppressed,
    UnexpectedEvent,
    WaitDigit,
)
from trunx.ivr.program import Action, Gather, Program
from trunx.ivr.tree import ALL_DTMF

MAX_STEPS = 100   # node visits per call: a tree whose timeouts point at each other ends


# the machine's states (see the table in the docstring)
IDLE, PROMPT, WAIT, INVALID, PLAYED = "idle", "prompt", "wait", "invalid", "played"
SUPPRESS, DEFAULT, DNC, DIAL, AGENT = "suppress", "default", "dnc", "dial", "agent"
CLOSING, DONE = "closing", "done"


class Machine:
    def __init__(self, program: Program, settings: Settings):
        self.program = program
        self.settings = settings
        self.state = IDLE
        self.name: str | None = None          # the node being run
        self.node: Gather | Action | None = None
        self.digits = ""
        self.steps = 0
        self.tries: dict[str, int] = {}
        self.file: str | None = None          # the prompt being played
        self._next: str | None = None         # where to go after the invalid_audio
        self._default = False                 # the transfer target is the account default
        self._number: str | None = None       # the transfer's number, while it is checked
        self._agent: str | None = None        # the agent being bridged
        self._out: list = []

    def send(self, event) -> list:
        handler = _HANDLERS.get((self.state, type(event)))
        if handler is None:
            raise UnexpectedEvent(f"{type(event).__name__} in state {self.state!r}")
        self._out = out = []
        handler(self, event)
        return out

    # -- helpers -------------------------------------------------------------------------
    def _step(self, event: str, **data) -> None:
        self._out.append(Step(self.name, event, data))

    def _play(self, file: str, escape: str, state: str, wait: float | None = None) -> None:
        self.file = file
        self._out.append(Play(file, escape, wait))
        self.state = state

    def _missing(self) -> None:
        self._step("prompt-missing", file=self.file)

    def _hangup(self) -> None:
        self._out.append(Hangup())
        self.state = DONE

    def _polite(self, reason: str) -> None:
        self._out.append(Finish(reason))
        self._play(self.settings.polite_hangup_audio, "", CLOSING)

    def _fail_transfer(self, reason: str) -> None:
        self._out.append(Finish("transfer-failed", reason))
        self._play(self.settings.fallback_audio, "", CLOSING)

    # -- walking -------------------------------------------------------------------------
    def _start(self, event: Started) -> None:
        self._enter(event.node if event.node in self.program.nodes else self.program.entry)

    def _enter(self, name: str) -> None:
        self.steps += 1
        self.name = name
        if self.steps > MAX_STEPS:
            self._step("loop-limit")
            self._polite("loop-limit")
            return
        self.node = node = self.program.nodes[name]
        self._step("enter")
        if isinstance(node, Gather):
            self.digits = ""
            # the prompt and the wait for the first key are one question: a key pressed as
            # the prompt ends must not fall between two commands
            self._play(node.audio, ALL_DTMF, PROMPT,
                       node.timeout if node.max_digits > 0 and not node.complete("") else None)
        elif node.audio:
            self._play(node.audio, "", PLAYED)
        else:
            self._act()

    # -- gather --------------------------------------------------------------------------
    def _prompt_ended(self, event: PromptEnded) -> None:
        if event.waited:       # a key in the prompt and one in its wait look alike
            self._step("prompt", file=self.file, endpos=event.endpos)
        else:
            self._step("prompt", file=self.file, endpos=event.endpos,
                       barge_in=bool(event.key))
        self.digits = event.key
        if event.waited and not event.key:
            self._decide()     # the question's wait ran out: a timeout
            return
        self._collect()

    def _prompt_missing(self, _event) -> None:
        self._missing()
        self.digits = ""
        self._collect()

    def _collect(self) -> None:
        node = self.node
        if len(self.digits) < node.max_digits and not node.complete(self.digits):
            self._out.append(WaitDigit(node.timeout))
            self.state = WAIT
        else:
            self._decide()

    def _digit(self, event: Digit) -> None:
        if not event.key:
            self._decide()
            return
        self.digits += event.key
        self._collect()

    def _decide(self) -> None:
        name, node, digits = self.name, self.node, self.digits
        if digits and digits in node.gather:
            self._step("digits", digits=digits)
            self._enter(node.gather[digits])
            return
        if not digits:
            self._step("timeout")
            if node.timeout_node and node.timeout_node != name:
                self._enter(node.timeout_node)
                return
        else:
            self._step("invalid", digits=digits)
        self.tries[name] = tries = self.tries.get(name, 0) + 1
        if tries >= node.max_tries:
            self._polite("max-tries")
            return
        if not digits:
            self._enter(name)
            return
        self._next = node.invalid_node or name
        if node.invalid_audio:
            self._play(node.invalid_audio, "", INVALID)
        else:
            self._enter(self._next)

    def _invalid_played(self, event) -> None:
        if isinstance(event, PromptMissing):
            self._missing()
        self._enter(self._next)

    # -- actions -------------------------------------------------------------------------
    def _action_played(self, event) -> None:
        if isinstance(event, PromptMissing):
            self._missing()
        else:
            self._step("played", file=self.file, endpos=event.endpos)
        self._act()

    def _act(self) -> None:
        node = self.node
        if node.action == "hangup":
            self._step("hangup")
            self._out.append(Finish("hangup"))
            self._hangup()
        elif node.action == "suppress":
            self._out.append(Suppress(self.name))
            self.state = SUPPRESS
        elif node.to:
            self._to_number(node.to)
        elif node.agent:
            self._to_agent(node.agent)
        else:   # a bare transfer: the account's default, else the server's transfer_dial
            self._out.append(FetchDefault())
            self.state = DEFAULT

    def _suppressed(self, event: Suppressed) -> None:
        self._step("suppress", added=event.added)
        self._out.append(Finish("suppressed" if event.added else "suppress-no-callerid"))
        self._hangup()

    def _default_target(self, event: DefaultTarget) -> None:
        self._default = bool(event.agent or event.to)
        if event.agent:
            self._to_agent(event.agent)
        elif event.to:
            self._to_number(event.to)
        elif self.settings.transfer_dial:
            self._dial(self.settings.transfer_dial)
        else:
            self._step("transfer-refused", reason="no-transfer-target")
            self._fail_transfer("no-transfer-target")

    def _marked(self, **data) -> dict:
        if self._default:
            data["target"] = "account-default"
        return data

    def _to_number(self, to: str) -> None:
        self._number = to
        self._out.append(CheckDnc(to))
        self.state = DNC

    def _dnc_checked(self, event: DncChecked) -> None:
        to = self._number
        if event.suppressed:
            self._step("transfer-refused", **self._marked(to=to, reason="number-suppressed"))
            self._fail_transfer("number-suppressed")
            return
        try:
            target = dial_string(to, self.settings.trunk_endpoint)
        except ValueError:      # a stored default that is no E.164 number (not via the API)
            self._step("transfer-refused", **self._marked(to=to, reason="invalid-number"))
            self._fail_transfer("invalid-number")
            return
        self._dial(target)

    def _dial(self, target: str) -> None:
        node = self.node
        timeout = node.timeout if node.timeout is not None else self.settings.transfer_timeout
        self._step("transfer", **self._marked(dial=target))
        self._out.append(Dial(target, int(timeout)))
        self.state = DIAL

    def _dial_ended(self, event: DialEnded) -> None:
        status = event.status or "UNKNOWN"
        self._step("transfer-ended", dial_status=status)
        if status == "ANSWER":
            self._out.append(Finish("transferred"))
            self._hangup()
        else:
            self._fail_transfer(f"dial-{status.lower()}")

    def _to_agent(self, agent: str) -> None:
        if not self.settings.agents:
            self._step("transfer-refused",
                       **self._marked(agent=agent, reason="ultravox-not-configured"))
            self._fail_transfer("ultravox-not-configured")
            return
        self._step("transfer", **self._marked(agent=agent))
        self._agent = agent
        self._out.append(BridgeAgent(agent))
        self.state = AGENT

    def _agent_ended(self, event: AgentEnded) -> None:
        moved = {"moved_to": event.moved_to} if event.moved_to else {}
        self._step("transfer-ended", agent=self._agent, ai_status=event.status,
                   end_reason=event.end_reason, **moved)
        if event.moved_to:
            # the agent's coldTransfer moved the caller on: Asterisk takes the channel to
            # the transfer once this session lets go of it, so no hangup here
            self._out.append(Finish("transferred"))
            self.state = DONE
        elif event.status == "ended":
            self._out.append(Finish("transferred"))
            self._hangup()
        else:
            self._fail_transfer(f"agent-{event.end_reason or 'failed'}")

    def _closed(self, event) -> None:
        if isinstance(event, PromptMissing):
            self._missing()
        self._hangup()


_PROMPT_DONE = (PromptEnded, PromptMissing)
_HANDLERS = {
    (IDLE, Started): Machine._start,
    (PROMPT, PromptEnded): Machine._prompt_ended,
    (PROMPT, PromptMissing): Machine._prompt_missing,
    (WAIT, Digit): Machine._digit,
    **{(INVALID, e): Machine._invalid_played for e in _PROMPT_DONE},
    **{(PLAYED, e): Machine._action_played for e in _PROMPT_DONE},
    (SUPPRESS, Suppressed): Machine._suppressed,
    (DEFAULT, DefaultTarget): Machine._default_target,
    (DNC, DncChecked): Machine._dnc_checked,
    (DIAL, DialEnded): Machine._dial_ended,
    (AGENT, AgentEnded): Machine._agent_ended,
    **{(CLOSING, e): Machine._closed for e in _PROMPT_DONE},
}
