"""The IVR state machine (trunx.ivr.machine) driven by a table, h11 style: each row is a
program, then the events a call produces and the effects the machine must answer each one
with. No socket, no Redis, no database. A last test checks that the table visits every
(state, event) transition the machine has."""
from __future__ import annotations

import pytest

from trunx.ivr import machine as m
from trunx.ivr.program import compile_program
from trunx.ivr.tree import validate

SETTINGS = m.Settings(trunk_endpoint="carrier", transfer_dial="", transfer_timeout=30,
                      fallback_audio="fallback", polite_hangup_audio="goodbye", agents=True)
ALL = m.ALL_DTMF

SEED = {"nodes": {
    "welcome": {"audio": "welcome", "gather": {"1": "has_business", "9": "dnc"},
                "timeout_node": "welcome"},
    "has_business": {"audio": "business_check", "gather": {"1": "transfer_ai",
                                                           "2": "unqualified"}},
    "transfer_ai": {"action": "transfer"},
    "unqualified": {"action": "hangup", "audio": "not_qualified"},
    "dnc": {"action": "suppress"},
}}


def tree_of(first: dict, **others) -> dict:
    """`first` is the entry node `n`; `end` hangs up; `others` adds nodes."""
    return {"nodes": {"n": first, "end": {"action": "hangup"}, **others}}


def program(tree):
    return compile_program(validate(tree), lambda ref: ref, gather_timeout=5.0,
                           gather_max_tries=3, account="acc", ivr_id="ivr", version=1)


def fmt(effect) -> str:
    """An effect as the table writes it."""
    if isinstance(effect, m.Step):
        data = " ".join(f"{k}={v}" for k, v in effect.data.items())
        return f"{effect.node}:{effect.event}" + (f" {data}" if data else "")
    if isinstance(effect, m.Finish):
        return f"finish {effect.outcome}" + (f" {effect.reason}" if effect.reason else "")
    if isinstance(effect, m.Play):
        return f"play {effect.file}" + (" [all]" if effect.escape == ALL else "")
    if isinstance(effect, m.WaitDigit):
        return f"wait {effect.timeout:g}"
    if isinstance(effect, m.Dial):
        return f"dial {effect.target} {effect.timeout}"
    field = {m.Suppress: "node", m.CheckDnc: "number", m.BridgeAgent: "agent"}
    name = type(effect).__name__.lower()
    return f"{name} {getattr(effect, field[type(effect)])}" if type(effect) in field else name


ENTER_WELCOME = ["welcome:enter", "play welcome [all]"]
PROMPT_HEARD = "welcome:prompt file=welcome endpos=8000 barge_in=False"

CASES = [
    ("1 then 1: the bare transfer takes the account's default agent", SEED, {}, [
        (m.Started(), ENTER_WELCOME),
        (m.PromptEnded("1", 4000), ["welcome:prompt file=welcome endpos=4000 barge_in=True",
                                    "welcome:digits digits=1", "has_business:enter",
                                    "play business_check [all]"]),
        (m.PromptEnded("", 8000), ["has_business:prompt file=business_check endpos=8000 "
                                   "barge_in=False", "wait 5"]),
        (m.Digit("1"), ["has_business:digits digits=1", "transfer_ai:enter", "fetchdefault"]),
        (m.DefaultTarget(agent="ag-1"), ["transfer_ai:transfer agent=ag-1 "
                                         "target=account-default", "bridgeagent ag-1"]),
        (m.AgentEnded("ended", "hangup"), ["transfer_ai:transfer-ended agent=ag-1 "
                                           "ai_status=ended end_reason=hangup",
                                           "finish transferred", "hangup"]),
    ]),
    ("the default agent's call fails: the caller hears the fallback", SEED, {}, [
        (m.Started(), ENTER_WELCOME),
        (m.PromptEnded("1", 10), ["welcome:prompt file=welcome endpos=10 barge_in=True",
                                  "welcome:digits digits=1", "has_business:enter",
                                  "play business_check [all]"]),
        (m.PromptEnded("1", 10), ["has_business:prompt file=business_check endpos=10 "
                                  "barge_in=True", "has_business:digits digits=1",
                                  "transfer_ai:enter", "fetchdefault"]),
        (m.DefaultTarget(agent="ag-1"), ["transfer_ai:transfer agent=ag-1 "
                                         "target=account-default", "bridgeagent ag-1"]),
        (m.AgentEnded("failed", None), ["transfer_ai:transfer-ended agent=ag-1 "
                                        "ai_status=failed end_reason=None",
                                        "finish transfer-failed agent-failed",
                                        "play fallback"]),
        (m.PromptEnded("", 100), ["hangup"]),
    ]),
    ("a default number is checked against the DNC list, then dialled", tree_of(
        {"action": "transfer", "timeout": 12}), {}, [
        (m.Started(), ["n:enter", "fetchdefault"]),
        (m.DefaultTarget(to="+14155550100"), ["checkdnc +14155550100"]),
        (m.DncChecked(False), ["n:transfer dial=PJSIP/+14155550100@carrier "
                               "target=account-default", "dial PJSIP/+14155550100@carrier 12"]),
        (m.DialEnded("ANSWER"), ["n:transfer-ended dial_status=ANSWER", "finish transferred",
                                 "hangup"]),
    ]),
    ("a default number on the DNC list is refused", tree_of({"action": "transfer"}), {}, [
        (m.Started(), ["n:enter", "fetchdefault"]),
        (m.DefaultTarget(to="+14155550100"), ["checkdnc +14155550100"]),
        (m.DncChecked(True), ["n:transfer-refused to=+14155550100 reason=number-suppressed "
                              "target=account-default",
                              "finish transfer-failed number-suppressed", "play fallback"]),
        (m.PromptMissing(), ["n:prompt-missing file=fallback", "hangup"]),
    ]),
    ("a stored default that is no E.164 number is refused", tree_of({"action": "transfer"}),
     {}, [
        (m.Started(), ["n:enter", "fetchdefault"]),
        (m.DefaultTarget(to="+1"), ["checkdnc +1"]),
        (m.DncChecked(False), ["n:transfer-refused to=+1 reason=invalid-number "
                               "target=account-default",
                               "finish transfer-failed invalid-number", "play fallback"]),
    ]),
    ("no default: the server's transfer_dial", tree_of({"action": "transfer"}),
     {"transfer_dial": "Local/agent@test"}, [
        (m.Started(), ["n:enter", "fetchdefault"]),
        (m.DefaultTarget(), ["n:transfer dial=Local/agent@test", "dial Local/agent@test 30"]),
        (m.DialEnded("BUSY"), ["n:transfer-ended dial_status=BUSY",
                               "finish transfer-failed dial-busy", "play fallback"]),
        (m.PromptEnded(), ["hangup"]),
    ]),
    ("no default, no transfer_dial: the polite fallback", tree_of({"action": "transfer"}), {}, [
        (m.Started(), ["n:enter", "fetchdefault"]),
        (m.DefaultTarget(), ["n:transfer-refused reason=no-transfer-target",
                             "finish transfer-failed no-transfer-target", "play fallback"]),
        (m.PromptEnded(), ["hangup"]),
    ]),
    ("transfer to a node's number", tree_of(
        {"action": "transfer", "to": "+14155550100", "audio": "hold"}), {}, [
        (m.Started(), ["n:enter", "play hold"]),
        (m.PromptEnded("", 800), ["n:played file=hold endpos=800", "checkdnc +14155550100"]),
        (m.DncChecked(False), ["n:transfer dial=PJSIP/+14155550100@carrier",
                               "dial PJSIP/+14155550100@carrier 30"]),
        (m.DialEnded(""), ["n:transfer-ended dial_status=UNKNOWN",
                           "finish transfer-failed dial-unknown", "play fallback"]),
    ]),
    ("transfer to a node's number on the DNC list", tree_of(
        {"action": "transfer", "to": "+14155550100"}), {}, [
        (m.Started(), ["n:enter", "checkdnc +14155550100"]),
        (m.DncChecked(True), ["n:transfer-refused to=+14155550100 reason=number-suppressed",
                              "finish transfer-failed number-suppressed", "play fallback"]),
    ]),
    ("agents not configured", tree_of({"action": "transfer", "agent": "ag-1"}),
     {"agents": False}, [
        (m.Started(), ["n:enter", "n:transfer-refused agent=ag-1 "
                       "reason=ultravox-not-configured",
                       "finish transfer-failed ultravox-not-configured", "play fallback"]),
    ]),
    ("a node's agent, and a missing hold prompt", tree_of(
        {"action": "transfer", "agent": "ag-1", "audio": "hold"}), {}, [
        (m.Started(), ["n:enter", "play hold"]),
        (m.PromptMissing(), ["n:prompt-missing file=hold", "n:transfer agent=ag-1",
                             "bridgeagent ag-1"]),
        (m.AgentEnded("error", "timeout"), ["n:transfer-ended agent=ag-1 ai_status=error "
                                            "end_reason=timeout",
                                            "finish transfer-failed agent-timeout",
                                            "play fallback"]),
    ]),
    ("the agent's coldTransfer moves the caller on: transferred, and no hangup", tree_of(
        {"action": "transfer", "agent": "ag-1"}), {}, [
        (m.Started(), ["n:enter", "n:transfer agent=ag-1", "bridgeagent ag-1"]),
        (m.AgentEnded("ended", "hangup", "ivr~ivr~end"), [
            "n:transfer-ended agent=ag-1 ai_status=ended end_reason=hangup "
            "moved_to=ivr~ivr~end", "finish transferred"]),
    ]),
    ("a caller an agent sent back starts at that node", SEED, {}, [
        (m.Started("has_business"), ["has_business:enter", "play business_check [all]"]),
    ]),
    ("a node gone from the program: the walk starts at the entry", SEED, {}, [
        (m.Started("gone"), ENTER_WELCOME),
    ]),
    ("9 suppresses the caller", SEED, {}, [
        (m.Started(), ENTER_WELCOME),
        (m.PromptEnded("9", 5), ["welcome:prompt file=welcome endpos=5 barge_in=True",
                                 "welcome:digits digits=9", "dnc:enter", "suppress dnc"]),
        (m.Suppressed(True), ["dnc:suppress added=True", "finish suppressed", "hangup"]),
    ]),
    ("suppress without a caller id", tree_of({"action": "suppress"}), {}, [
        (m.Started(), ["n:enter", "suppress n"]),
        (m.Suppressed(False), ["n:suppress added=False", "finish suppress-no-callerid",
                               "hangup"]),
    ]),
    ("hangup with goodbye audio", tree_of({"action": "hangup", "audio": "bye"}), {}, [
        (m.Started(), ["n:enter", "play bye"]),
        (m.PromptEnded("", 16000), ["n:played file=bye endpos=16000", "n:hangup",
                                    "finish hangup", "hangup"]),
    ]),
    ("a missing gather prompt: its keys still work", SEED, {}, [
        (m.Started(), ENTER_WELCOME),
        (m.PromptMissing(), ["welcome:prompt-missing file=welcome", "wait 5"]),
        (m.Digit("9"), ["welcome:digits digits=9", "dnc:enter", "suppress dnc"]),
    ]),
    ("no input replays the node (timeout_node is itself) until max_tries", SEED, {}, [
        (m.Started(), ENTER_WELCOME),
        (m.PromptEnded("", 8000), [PROMPT_HEARD, "wait 5"]),
        (m.Digit(""), ["welcome:timeout", *ENTER_WELCOME]),
        (m.PromptEnded("", 8000), [PROMPT_HEARD, "wait 5"]),
        (m.Digit(""), ["welcome:timeout", *ENTER_WELCOME]),
        (m.PromptEnded("", 8000), [PROMPT_HEARD, "wait 5"]),
        (m.Digit(""), ["welcome:timeout", "finish max-tries", "play goodbye"]),
        (m.PromptEnded("", 800), ["hangup"]),
    ]),
    ("timeout_node elsewhere is followed at once", tree_of(
        {"audio": "menu", "gather": {"1": "end"}, "timeout_node": "end", "timeout": 2}), {}, [
        (m.Started(), ["n:enter", "play menu [all]"]),
        (m.PromptEnded(), ["n:prompt file=menu endpos=None barge_in=False", "wait 2"]),
        (m.Digit(""), ["n:timeout", "end:enter", "end:hangup", "finish hangup", "hangup"]),
    ]),
    ("an invalid key plays invalid_audio and goes to invalid_node", tree_of(
        {"audio": "menu", "gather": {"1": "end"}, "invalid_audio": "oops",
         "invalid_node": "other"}, other={"action": "suppress"}), {}, [
        (m.Started(), ["n:enter", "play menu [all]"]),
        (m.PromptEnded("5", 1), ["n:prompt file=menu endpos=1 barge_in=True",
                                 "n:invalid digits=5", "play oops"]),
        (m.PromptEnded("", 99), ["other:enter", "suppress other"]),
    ]),
    ("an invalid key with invalid_audio missing replays the node", tree_of(
        {"audio": "menu", "gather": {"1": "end"}, "invalid_audio": "oops"}), {}, [
        (m.Started(), ["n:enter", "play menu [all]"]),
        (m.PromptEnded("5", 1), ["n:prompt file=menu endpos=1 barge_in=True",
                                 "n:invalid digits=5", "play oops"]),
        (m.PromptMissing(), ["n:prompt-missing file=oops", "n:enter", "play menu [all]"]),
    ]),
    ("an invalid key without invalid_audio replays; max_tries 1 ends it", tree_of(
        {"audio": "menu", "gather": {"1": "end"}, "max_tries": 2}), {}, [
        (m.Started(), ["n:enter", "play menu [all]"]),
        (m.PromptEnded("7", 1), ["n:prompt file=menu endpos=1 barge_in=True",
                                 "n:invalid digits=7", "n:enter", "play menu [all]"]),
        (m.PromptEnded("7", 1), ["n:prompt file=menu endpos=1 barge_in=True",
                                 "n:invalid digits=7", "finish max-tries", "play goodbye"]),
        (m.PromptMissing(), ["n:prompt-missing file=goodbye", "hangup"]),
    ]),
    ("multi-digit keys: a prefix waits for more, # is a key like any other", tree_of(
        {"audio": "menu", "gather": {"1": "end", "12": "other", "#": "end"}},
        other={"action": "hangup"}), {}, [
        (m.Started(), ["n:enter", "play menu [all]"]),
        (m.PromptEnded("1", 3), ["n:prompt file=menu endpos=3 barge_in=True", "wait 5"]),
        (m.Digit("2"), ["n:digits digits=12", "other:enter", "other:hangup",
                        "finish hangup", "hangup"]),
    ]),
    ("a prefix then a timeout takes the shorter key", tree_of(
        {"audio": "menu", "gather": {"1": "end", "12": "end"}}), {}, [
        (m.Started(), ["n:enter", "play menu [all]"]),
        (m.PromptEnded("1", 3), ["n:prompt file=menu endpos=3 barge_in=True", "wait 5"]),
        (m.Digit(""), ["n:digits digits=1", "end:enter", "end:hangup", "finish hangup",
                       "hangup"]),
    ]),
    ("max_digits stops the wait: an unknown key is invalid", tree_of(
        {"audio": "menu", "gather": {"12": "end"}}), {}, [
        (m.Started(), ["n:enter", "play menu [all]"]),
        (m.PromptEnded("", 3), ["n:prompt file=menu endpos=3 barge_in=False", "wait 5"]),
        (m.Digit("3"), ["wait 5"]),
        (m.Digit("4"), ["n:invalid digits=34", "n:enter", "play menu [all]"]),
    ]),
]


def drive(tree, settings: dict, script, visited=None) -> None:
    machine = m.Machine(program(tree), _settings(settings))
    for n, (event, expected) in enumerate(script):
        if visited is not None:
            visited.add((machine.state, type(event)))
        got = [fmt(e) for e in machine.send(event)]
        assert got == expected, f"step {n} ({type(event).__name__})"


def _settings(overrides: dict) -> m.Settings:
    values = {f: getattr(SETTINGS, f) for f in m.Settings.__slots__}
    return m.Settings(**{**values, **overrides})


@pytest.mark.parametrize("tree,settings,script", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_transitions(tree, settings, script):
    drive(tree, settings, script)


def test_the_table_visits_every_transition():
    visited: set = set()
    for _, tree, settings, script in CASES:
        drive(tree, settings, script, visited)
    assert visited == set(m._HANDLERS)


def test_a_loop_of_timeout_nodes_ends_at_the_step_limit():
    tree = {"nodes": {"a": {"audio": "x", "gather": {"1": "a"}, "timeout_node": "b"},
                      "b": {"audio": "y", "gather": {"1": "a"}, "timeout_node": "a"}}}
    machine = m.Machine(program(tree), SETTINGS)
    effects = machine.send(m.Started())
    for _ in range(m.MAX_STEPS):       # each lap enters one more node
        effects = machine.send(m.PromptEnded())
        assert fmt(effects[-1]) == "wait 5"
        effects = machine.send(m.Digit(""))
    assert [fmt(e) for e in effects][-3:] == ["a:loop-limit", "finish loop-limit",
                                              "play goodbye"]
    assert [fmt(e) for e in machine.send(m.PromptEnded())] == ["hangup"]
    assert machine.state == m.DONE


@pytest.mark.parametrize("events", [
    [m.PromptEnded()],                      # before Started
    [m.Started(), m.Digit("1")],            # a key while the prompt still plays
    [m.Started(), m.DialEnded("ANSWER")],
])
def test_an_event_the_state_does_not_await_is_refused(events):
    machine = m.Machine(program(SEED), SETTINGS)
    with pytest.raises(m.UnexpectedEvent):
        for event in events:
            machine.send(event)


def test_nothing_is_awaited_once_done():
    machine = m.Machine(program(tree_of({"action": "hangup"})), SETTINGS)
    assert [fmt(e) for e in machine.send(m.Started())] == ["n:enter", "n:hangup",
                                                           "finish hangup", "hangup"]
    assert machine.state == m.DONE
    with pytest.raises(m.UnexpectedEvent):
        machine.send(m.PromptEnded())


def test_effects_and_events_are_immutable():
    with pytest.raises(AttributeError):
        m.Play("x").file = "y"
    with pytest.raises(AttributeError):
        m.Digit("1").key = "2"


def test_a_gathers_prompt_is_a_question_with_its_first_wait():
    """The engine asks prompt + first wait as one command (GET OPTION): the Play carries
    the wait, and a question's '' is the wait's timeout, so no WaitDigit follows it."""
    machine = m.Machine(program(SEED), SETTINGS)
    play = machine.send(m.Started())[-1]
    assert play == m.Play("welcome", ALL, 5.0)
    effects = [fmt(e) for e in machine.send(m.PromptEnded("", 8000, waited=True))]
    # timeout_node is welcome itself: a timeout asks again, counted as a try
    assert effects == ["welcome:prompt file=welcome endpos=8000", "welcome:timeout",
                       "welcome:enter", "play welcome [all]"]
    assert machine.tries == {"welcome": 1}
    effects = [fmt(e) for e in machine.send(m.PromptEnded("1", 8000, waited=True))]
    assert effects[:3] == ["welcome:prompt file=welcome endpos=8000",
                           "welcome:digits digits=1", "has_business:enter"]


def test_a_question_answered_with_a_prefix_waits_for_the_next_key():
    machine = m.Machine(program(tree_of({"audio": "menu", "gather": {"1": "end",
                                                                     "12": "end"}})),
                        SETTINGS)
    assert machine.send(m.Started())[-1] == m.Play("menu", ALL, 5.0)
    assert [fmt(e) for e in machine.send(m.PromptEnded("1", 3, waited=True))] == [
        "n:prompt file=menu endpos=3", "wait 5"]
    assert [fmt(e) for e in machine.send(m.Digit("2"))][:2] == ["n:digits digits=12",
                                                                "end:enter"]


def test_action_audio_is_not_a_question():
    machine = m.Machine(program(SEED), SETTINGS)
    machine.send(m.Started())
    machine.send(m.PromptEnded("1", 10))
    effects = machine.send(m.PromptEnded("2", 10))
    assert effects[-1] == m.Play("not_qualified", "", None)
