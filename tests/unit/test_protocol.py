"""Wire tests for agi_server.agi.protocol: a table of traces, plus API-misuse cases.

A trace is a tiny script, used both inline below and in tests/fixtures/agi/*.txt:

    # comment                 ignored
    @ max_line_bytes=32       constructor arguments (first line only)
    < text                    Asterisk sends text + LF (Python escapes: \\x20, \\\\)
    <                         Asterisk sends an empty line
    <| text                   Asterisk sends text with no LF (a partial line)
    <EOF                      Asterisk closes the connection
    > COMMAND                 we send COMMAND; send() must return COMMAND + LF
    = Name {json}             next_event() is a Name whose fields include {json}
    ! ErrorName               next_event() raises ErrorName
"""

from __future__ import annotations

import codecs
import json
import time
from pathlib import Path

import pytest

from agi_server.agi import errors, protocol
from agi_server.agi.errors import (
    AGICommandError,
    AGIDeadChannel,
    AGIError,
    AGIException,
    AGIHangup,
    AGIInvalidCommand,
    AGIUsageError,
    LocalProtocolError,
    RemoteProtocolError,
)
from agi_server.agi.protocol import (
    MAX_COMMAND_BYTES,
    NEED_DATA,
    AGIConnection,
    Closed,
    CommandFailed,
    Environment,
    Hangup,
    Response,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "agi"


def _wire(text: str) -> bytes:
    return codecs.escape_decode(text.encode("utf-8"))[0]


def _as_json(value):
    """Tuples compare equal to the JSON lists a trace writes."""
    return list(value) if isinstance(value, tuple) else value


def _check_event(event, name: str, fields: dict) -> None:
    assert type(event).__name__ == name or repr(event) == name, event
    for key, expected in fields.items():
        if key == "error":  # CommandFailed: the exception class as_error() picks
            assert type(event.as_error()).__name__ == expected
        else:
            assert _as_json(getattr(event, key)) == expected, (key, event)


def replay(script: str) -> None:
    lines = script.splitlines()
    kwargs = {}
    if lines and lines[0].startswith("@ "):
        kwargs = {k: int(v) for k, v in (item.split("=") for item in lines.pop(0)[2:].split())}
    conn = AGIConnection(**kwargs)
    last = ""
    for line in lines:
        op, _, rest = line.partition(" ")
        if line.startswith("#") or not line.strip():
            continue
        if line == "<":
            conn.receive_data(b"\n")
        elif line == "<EOF":
            conn.receive_data(b"")
        elif op == "<":
            conn.receive_data(_wire(rest) + b"\n")
        elif op == "<|":
            conn.receive_data(_wire(rest))
        elif op == ">":
            assert conn.send(rest) == rest.encode() + b"\n"
        elif op == "=":
            name, _, fields = rest.partition(" ")
            _check_event(conn.next_event(), name, json.loads(fields or "{}"))
        elif op == "!":
            with pytest.raises(getattr(errors, rest)):
                conn.next_event()
        else:
            raise AssertionError(f"bad trace line {line!r}")
        last = op
    if last != "!":  # a trace must account for every event
        assert conn.next_event() in (NEED_DATA, Closed())


ENV = """
< agi_network: yes
< agi_network_script: ivr
< agi_request: agi://127.0.0.1/ivr
< agi_channel: Local/+19495551234@inbound-00000001;2
<
= Environment
"""

CASES = {
    # -- the environment block --
    "env-vars-and-args": "< agi_request: agi://127.0.0.1/ivr?x=1\n< agi_callerid: unknown\n"
    "< agi_accountcode:\\x20\n< agi_dnid: +1 (949) 555: 1234\n"
    "< agi_arg_1: first\n< agi_arg_2:\\x20\n< agi_arg_3: a b, c\n<\n"
    '= Environment {"vars": {"agi_request": "agi://127.0.0.1/ivr?x=1", "agi_callerid": "unknown", '
    '"agi_accountcode": "", "agi_dnid": "+1 (949) 555: 1234", "agi_arg_1": "first", '
    '"agi_arg_2": "", "agi_arg_3": "a b, c"}, "args": ["first", "", "a b, c"]}',
    "env-empty-block": "<\n= Environment {\"vars\": {}, \"args\": []}",
    "env-non-utf8-bytes-survive": "< agi_calleridname: Jos\\xe9\n<\n"
    '= Environment {"vars": {"agi_calleridname": "Jos\\udce9"}}',
    "env-line-without-colon": "< agi_request agi://x\n! RemoteProtocolError",
    "env-line-without-space": "< agi_request:agi://x\n! RemoteProtocolError",
    "env-key-not-agi": "< request: agi://x\n! RemoteProtocolError",
    "env-duplicate-key": "< agi_type: Local\n< agi_type: SIP\n! RemoteProtocolError",
    "env-arg-not-a-number": "< agi_arg_x: 1\n! RemoteProtocolError",
    "env-arg-zero": "< agi_arg_0: 1\n! RemoteProtocolError",
    "env-arg-leading-zero": "< agi_arg_01: 1\n! RemoteProtocolError",
    "env-arg-gap": "< agi_arg_1: a\n< agi_arg_3: c\n<\n! RemoteProtocolError",
    "env-arg-missing-first": "< agi_arg_2: b\n<\n! RemoteProtocolError",
    "env-hangup-inside-is-malformed": "< agi_request: agi://x\n< HANGUP\n! RemoteProtocolError",
    "env-crlf-terminator-is-malformed": "< agi_request: agi://x\\r\n< \\r\n! RemoteProtocolError",
    "env-eof-before-anything": "<EOF\n! RemoteProtocolError",
    "env-eof-mid-block": "< agi_request: agi://x\n<EOF\n! RemoteProtocolError",
    "env-eof-mid-line": "<| agi_request: agi\n<EOF\n! RemoteProtocolError",
    "env-needs-data": "<| agi_request: agi\n= NEED_DATA\n<| ://x\n= NEED_DATA\n<\n<\n= Environment",
    "env-line-limit": "@ max_line_bytes=20\n<| agi_request: 0123456789\n! RemoteProtocolError",
    "env-line-at-limit": "@ max_line_bytes=20\n< agi_request: 012345\n<\n= Environment",
    "env-block-limit": "@ max_header_bytes=40\n< agi_a: 0123456789\n< agi_b: 0123456789\n"
    "< agi_c: 0123456789\n! RemoteProtocolError",
    "env-block-limit-counts-terminator": "@ max_header_bytes=20\n< agi_a: 012345678901\n<\n"
    "! RemoteProtocolError",
    "env-block-exactly-at-limit": "@ max_header_bytes=20\n< agi_a: 01234567890\n<\n= Environment",
    # -- 200 replies --
    "result-0": ENV + "> ANSWER\n< 200 result=0\n"
    '= Response {"result": "0", "data": null, "endpos": null, "extras": {}, "message": null, '
    '"line": "200 result=0", "code": 200}',
    "result-minus-1": ENV + '> STREAM FILE "x" ""\n< 200 result=-1 endpos=0\n'
    '= Response {"result": "-1", "endpos": 0}',
    "result-with-data": ENV + '> GET VARIABLE "X"\n< 200 result=1 (hello)\n'
    '= Response {"result": "1", "data": "hello"}',
    "result-data-with-spaces-and-parens": ENV + '> GET VARIABLE "X"\n'
    "< 200 result=1 (a (b) c) d)\n"
    '= Response {"data": "a (b) c) d", "extras": {}}',
    "result-data-that-looks-like-endpos": ENV + '> GET VARIABLE "X"\n'
    "< 200 result=1 (a) endpos=5)\n"
    '= Response {"data": "a) endpos=5", "endpos": null}',
    "result-empty-data": ENV + '> GET VARIABLE "X"\n< 200 result=1 ()\n= Response {"data": ""}',
    "get-data-timeout-empty-result": ENV + '> GET DATA "x" 5000 4\n< 200 result= (timeout)\n'
    '= Response {"result": "", "data": "timeout"}',
    "get-data-partial-digits-timeout": ENV + '> GET DATA "x" 5000 4\n'
    '< 200 result=12 (timeout)\n= Response {"result": "12", "data": "timeout"}',
    "stream-file-endpos": ENV + '> STREAM FILE "x" "#"\n< 200 result=35 endpos=8640\n'
    '= Response {"result": "35", "data": null, "endpos": 8640}',
    "record-dtmf-endpos": ENV + '> RECORD FILE "x" wav "#" -1\n'
    "< 200 result=35 (dtmf) endpos=12000\n"
    '= Response {"result": "35", "data": "dtmf", "endpos": 12000}',
    "speech-quoted-extras": ENV + '> SPEECH RECOGNIZE "x" 5000\n'
    '< 200 result=1 (speech) endpos=0 results=1 score0=900 text0="hello (big) world" '
    "grammar0=yesno\n"
    '= Response {"data": "speech", "endpos": 0, "extras": {"results": "1", "score0": "900", '
    '"text0": "hello (big) world", "grammar0": "yesno"}}',
    "speech-no-results-trailing-space": ENV + '> SPEECH RECOGNIZE "x" 5000\n'
    "< 200 result=1 (speech) endpos=0 results=0\\x20\n"
    '= Response {"data": "speech", "endpos": 0, "extras": {"results": "0"}}',
    "extras-without-data": ENV + "> X\n< 200 result=1 digit=5 endpos=3\n"
    '= Response {"data": null, "endpos": 3, "extras": {"digit": "5"}}',
    "gosub-message": ENV + "> GOSUB a b 1\n< 100 result=0 Trying...\n"
    '= Trying {"text": "result=0 Trying..."}\n< 200 result=0 Gosub complete\n'
    '= Response {"result": "0", "message": "Gosub complete", "extras": {}}',
    "unclosed-paren-is-message": ENV + "> X\n< 200 result=1 (abc\n"
    '= Response {"data": null, "message": "(abc"}',
    "paren-then-text-is-message": ENV + "> X\n< 200 result=1 (abc) then text\n"
    '= Response {"data": null, "message": "(abc) then text"}',
    "endpos-not-integer": ENV + "> X\n< 200 result=0 endpos=12x\n! RemoteProtocolError",
    "endpos-unicode-digits": ENV + "> X\n< 200 result=0 endpos=\\xd9\\xa3\n"
    "! RemoteProtocolError",
    "200-without-result": ENV + "> X\n< 200 OK\n! RemoteProtocolError",
    # -- error replies --
    "510": ENV + "> FOO\n< 510 Invalid or unknown command\n"
    '= CommandFailed {"code": 510, "text": "Invalid or unknown command", "command": "FOO", '
    '"reply": "510 Invalid or unknown command", "usage": null, "error": "AGIInvalidCommand"}',
    "511": ENV + "> ANSWER\n< 511 Command Not Permitted on a dead channel or intercept routine\n"
    '= CommandFailed {"code": 511, "error": "AGIDeadChannel", '
    '"text": "Command Not Permitted on a dead channel or intercept routine"}',
    "520-single-line": ENV + "> ANSWER x y\n"
    "< 520 Invalid command syntax.  Proper usage not available.\n"
    '= CommandFailed {"code": 520, "error": "AGIUsageError", "usage": null, '
    '"text": "Invalid command syntax.  Proper usage not available."}',
    "520-multi-line": ENV + "> GET DATA\n"
    "< 520-Invalid command syntax.  Proper usage follows:\n"
    "< Usage: GET DATA <file to be streamed> [timeout] [max digits]\n"
    "< 200 result=0 is usage text here\n"
    "< HANGUP\n"
    "<\n"
    "< 520 End of proper usage.\n"
    '= CommandFailed {"code": 520, "error": "AGIUsageError", "command": "GET DATA", '
    '"text": "Invalid command syntax.  Proper usage follows:", '
    '"usage": "Usage: GET DATA <file to be streamed> [timeout] [max digits]\\n'
    '200 result=0 is usage text here\\nHANGUP\\n", '
    '"reply": "520-Invalid command syntax.  Proper usage follows:\\n'
    "Usage: GET DATA <file to be streamed> [timeout] [max digits]\\n"
    '200 result=0 is usage text here\\nHANGUP\\n\\n520 End of proper usage."}\n'
    "> NOOP\n< 200 result=0\n= Response",
    "520-end-marker-shares-last-line": ENV + "> GET DATA\n"
    "< 520-Invalid command syntax.  Proper usage follows:\n"
    "< Usage: GET DATA <file>520 End of proper usage.\n"
    '= CommandFailed {"usage": "Usage: GET DATA <file>", "reply": '
    '"520-Invalid command syntax.  Proper usage follows:\\nUsage: GET DATA <file>\\n'
    '520 End of proper usage."}',
    "520-empty-usage": ENV + "> X\n< 520-Invalid command syntax.  Proper usage follows:\n"
    '< 520 End of proper usage.\n= CommandFailed {"usage": ""}',
    "520-eof-inside-block": ENV + "> X\n< 520-Invalid command syntax.\n< Usage\n<EOF\n"
    "! RemoteProtocolError",
    "520-block-limit": "@ max_header_bytes=60 max_line_bytes=50\n< agi_a: b\n<\n= Environment\n"
    "> X\n< 520-Invalid command syntax.  Proper usage follows:\n< 0123456789\n"
    "! RemoteProtocolError",
    "503-other-error-code": ENV + "> GOSUB a b 1\n< 503 result=-2 Memory allocation failure\n"
    '= CommandFailed {"code": 503, "text": "result=-2 Memory allocation failure", '
    '"error": "AGICommandError"}',
    "multi-line-other-than-520": ENV + "> X\n< 510-Invalid\n! RemoteProtocolError",
    "unexpected-code-201": ENV + "> X\n< 201 result=0\n! RemoteProtocolError",
    "unexpected-code-300": ENV + "> X\n< 300 moved\n! RemoteProtocolError",
    "malformed-reply": ENV + "> X\n< hello\n! RemoteProtocolError",
    "malformed-reply-two-digit-code": ENV + "> X\n< 20 result=0\n! RemoteProtocolError",
    "malformed-reply-no-separator": ENV + "> X\n< 200\n! RemoteProtocolError",
    "unsolicited-reply": ENV + "< 200 result=0\n! RemoteProtocolError",
    "reply-after-reply": ENV + "> X\n< 200 result=0\n< 200 result=0\n= Response\n"
    "! RemoteProtocolError",
    # -- HANGUP anywhere after the environment --
    "hangup-between-commands": ENV + "< HANGUP\n= Hangup\n> NOOP\n< 200 result=0\n= Response",
    "hangup-before-reply": ENV + '> STREAM FILE "x" ""\n< HANGUP\n= Hangup\n'
    '< 200 result=-1 endpos=1200\n= Response {"result": "-1", "endpos": 1200}',
    "hangup-after-reply-twice": ENV + "> ANSWER\n< 200 result=0\n< HANGUP\n< HANGUP\n"
    "= Response\n= Hangup\n= Hangup\n<EOF\n= Closed\n= Closed",
    "hangup-between-trying-and-reply": ENV + "> GOSUB a b 1\n< 100 result=0 Trying...\n"
    "< HANGUP\n< 200 result=0 Gosub complete\n= Trying\n= Hangup\n= Response",
    "hangup-lowercase-is-not-hangup": ENV + "< hangup\n! RemoteProtocolError",
    # -- EOF and limits after the environment --
    "clean-eof": ENV + "<EOF\n= Closed\n= Closed",
    "eof-with-command-outstanding": ENV + "> ANSWER\n<EOF\n= Closed",
    "eof-mid-line": ENV + "> ANSWER\n<| 200 res\n<EOF\n! RemoteProtocolError",
    "reply-line-limit": "@ max_line_bytes=16\n<\n= Environment\n> X\n<| 200 result=1 (0123\n"
    "! RemoteProtocolError",
    "reply-line-at-limit": "@ max_line_bytes=16\n<\n= Environment\n> X\n< 200 result=1 (0)\n"
    '= Response {"data": "0"}',
    "error-is-sticky": ENV + "< junk\n! RemoteProtocolError\n! RemoteProtocolError",
}


@pytest.mark.parametrize("script", CASES.values(), ids=CASES.keys())
def test_wire_case(script):
    replay(script)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.txt")), ids=lambda p: p.stem)
def test_recorded_trace(path):
    replay(path.read_text(encoding="utf-8"))


def test_fixture_traces_exist():
    assert len(list(FIXTURES.glob("*.txt"))) >= 5


def test_bad_trace_line_is_rejected():
    with pytest.raises(AssertionError, match="bad trace line"):
        replay("? what")


# -- the API, misused and used -------------------------------------------


def ready(**kwargs) -> AGIConnection:
    conn = AGIConnection(**kwargs)
    conn.receive_data(b"agi_request: agi://127.0.0.1/ivr\n\n")
    assert isinstance(conn.next_event(), Environment)
    return conn


def test_send_before_environment():
    with pytest.raises(LocalProtocolError, match="before the Environment"):
        AGIConnection().send("ANSWER")


def test_second_command_while_one_is_outstanding():
    conn = ready()
    conn.send("ANSWER")
    assert conn.outstanding == "ANSWER"
    with pytest.raises(LocalProtocolError, match="awaits its reply") as info:
        conn.send("NOOP")
    assert info.value.command == "NOOP"
    conn.receive_data(b"200 result=0\n")
    assert isinstance(conn.next_event(), Response)
    assert conn.outstanding is None
    assert conn.send("NOOP") == b"NOOP\n"


@pytest.mark.parametrize("command", ["", "   ", "NOOP\nHANGUP", "NOOP\r", "NOOP\x00"])
def test_send_refuses_anything_but_one_line(command):
    with pytest.raises(LocalProtocolError, match="one non-empty line"):
        ready().send(command)


def test_send_length_limit_matches_asterisk_buffer():
    conn = ready()
    longest = "NOOP " + "x" * (MAX_COMMAND_BYTES - 5)
    assert conn.send(longest) == longest.encode() + b"\n"
    with pytest.raises(LocalProtocolError, match="at most 2046"):
        ready().send(longest + "x")


def test_send_counts_bytes_not_characters():
    with pytest.raises(LocalProtocolError, match="at most"):
        ready().send("NOOP " + "é" * 1100)


def test_send_refuses_unencodable_text():
    with pytest.raises(LocalProtocolError, match="not encodable"):
        ready().send("NOOP \ud800")


def test_send_round_trips_surrogateescaped_bytes():
    conn = AGIConnection()
    conn.receive_data(b"agi_calleridname: Jos\xe9\n\n")
    name = conn.next_event().vars["agi_calleridname"]
    assert conn.send(f"NOOP {name}") == b"NOOP Jos\xe9\n"


def test_send_after_closed_and_after_error():
    conn = ready()
    conn.receive_data(b"")
    assert conn.next_event() == Closed()
    with pytest.raises(LocalProtocolError, match="closed"):
        conn.send("NOOP")
    broken = ready()
    broken.receive_data(b"junk\n")
    with pytest.raises(RemoteProtocolError):
        broken.next_event()
    with pytest.raises(LocalProtocolError, match="protocol error"):
        broken.send("NOOP")


def test_error_is_sticky_and_chained():
    conn = ready()
    conn.receive_data(b"junk\n")
    with pytest.raises(RemoteProtocolError) as first:
        conn.next_event()
    assert first.value.reply == "junk"
    with pytest.raises(RemoteProtocolError) as second:
        conn.next_event()
    assert second.value.__cause__ is first.value


def test_data_after_eof_is_a_local_error():
    conn = ready()
    conn.receive_data(b"")
    conn.receive_data(b"")  # repeating EOF is harmless
    with pytest.raises(LocalProtocolError, match="after EOF"):
        conn.receive_data(b"x")


def test_hung_up_flag_and_dead_channel_commands_still_allowed():
    conn = ready()
    assert conn.hung_up is False
    conn.receive_data(b"HANGUP\n")
    assert conn.next_event() == Hangup()
    assert conn.hung_up is True
    assert conn.send('GET VARIABLE "X"') == b'GET VARIABLE "X"\n'


def test_large_reads_yield_every_event_in_order():
    conn = ready()
    conn.send("ANSWER")
    conn.receive_data(b"HANGUP\n200 result=0\nHANGUP\n")
    assert conn.next_event() == Hangup()
    assert conn.next_event().result == "0"
    assert conn.next_event() == Hangup()
    assert conn.next_event() is NEED_DATA


def test_many_parens_parse_in_linear_time():
    # Every ")" is a candidate end of the data; retrying a parse per ")" took seconds here.
    conn = ready(max_line_bytes=64 * 1024)
    conn.send('GET VARIABLE "X"')
    conn.receive_data(b"200 result=1 (" + b" a=)" * 8000 + b' "\n')
    started = time.perf_counter()
    event = conn.next_event()
    assert time.perf_counter() - started < 0.5
    assert event.data is None and event.message.endswith('a=) "')


def test_need_data_repr_and_defaults():
    assert repr(NEED_DATA) == "NEED_DATA"
    conn = AGIConnection()
    assert (conn.max_header_bytes, conn.max_line_bytes) == (16 * 1024, 8 * 1024)
    assert protocol.Response("0").code == 200


def test_environment_args_in_order_past_nine():
    vars_ = {f"agi_arg_{i}": str(i) for i in range(12, 0, -1)}
    assert Environment(vars_).args == tuple(str(i) for i in range(1, 13))


# -- the exception tree -------------------------------------------------------


def test_hangup_is_not_an_error():
    assert issubclass(AGIHangup, AGIException)
    assert not issubclass(AGIHangup, AGIError)
    for cls in (RemoteProtocolError, LocalProtocolError, AGICommandError):
        assert issubclass(cls, AGIError)
    for cls in (AGIInvalidCommand, AGIDeadChannel, AGIUsageError):
        assert issubclass(cls, AGICommandError)
    assert issubclass(errors.UnsafeArgument, errors.InvalidArgument)
    assert issubclass(errors.InvalidArgument, ValueError)
    assert issubclass(errors.InvalidArgument, LocalProtocolError)


@pytest.mark.parametrize(
    ("code", "cls"),
    [(510, AGIInvalidCommand), (511, AGIDeadChannel), (520, AGIUsageError),
     (503, AGICommandError)],
)
def test_command_failed_as_error(code, cls):
    usage = "u" if code == 520 else None
    event = CommandFailed(code, "text", "ANSWER", f"{code} text", usage=usage)
    error = event.as_error()
    assert type(error) is cls
    assert (error.code, error.command, error.reply, error.message) == (
        code, "ANSWER", f"{code} text", "text")
    assert error.usage == event.usage


def test_errors_are_data_and_print_their_context():
    error = AGIInvalidCommand("Invalid or unknown command", code=510, command="FOO",
                              reply="510 Invalid or unknown command")
    assert str(error) == (
        "Invalid or unknown command; command='FOO'; reply='510 Invalid or unknown command'")
    assert str(AGIHangup("gone")) == "gone"
    assert str(RemoteProtocolError("bad", reply="x")) == "bad; reply='x'"
    assert AGIHangup("gone").command is None


@pytest.mark.parametrize("chunks", [
    [b"agi_type: Local\nagi_type: SIP\n\n"],                  # both in one block
    [b"agi_type: Local\n", b"agi_channel: x\nagi_type: SIP\n\n"],  # across the two paths
])
def test_a_duplicate_key_is_refused_however_the_block_arrives(chunks):
    conn = AGIConnection()
    for chunk in chunks[:-1]:
        conn.receive_data(chunk)
        assert conn.next_event() is NEED_DATA
    conn.receive_data(chunks[-1])
    with pytest.raises(RemoteProtocolError, match="duplicate environment key agi_type"):
        conn.next_event()


def test_a_whole_block_and_a_dribbled_one_give_the_same_environment():
    block = (b"agi_request: agi://127.0.0.1/ivr\nagi_channel: PJSIP/a-1\n"
             b"agi_callerid: +1 (202) 555-0100: x\nagi_arg_1: one\nagi_arg_2: \n\n")
    whole, dribbled = AGIConnection(), AGIConnection()
    whole.receive_data(block)
    for byte in block:
        dribbled.receive_data(bytes([byte]))
    events = [whole.next_event(), dribbled.next_event()]
    assert events[0] == events[1]
    assert events[0].vars["agi_callerid"] == "+1 (202) 555-0100: x"
    assert events[0].args == ("one", "")


def test_a_malformed_line_in_a_whole_block_is_named():
    conn = AGIConnection()
    conn.receive_data(b"agi_request: agi://x\nHANGUP\nagi_channel: y\n\n")
    with pytest.raises(RemoteProtocolError, match="malformed environment line"):
        conn.next_event()
