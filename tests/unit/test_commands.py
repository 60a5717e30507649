"""Tests for agi_server.agi.commands: exact command lines, validation, and quoting.

The quoting property is checked against a Python port of Asterisk's res_agi.c
parse_args() (unchanged from 1.4 through 22), which is how Asterisk will read
what quote() writes. The port works on bytes, as the C code does.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agi_server.agi import commands
from agi_server.agi.commands import quote
from agi_server.agi.errors import InvalidArgument, UnsafeArgument

MAX_ARGS = 128  # res_agi.c


def parse_args(line: bytes) -> list[bytes]:
    """res_agi.c parse_args(): split a command line into argv the way Asterisk does."""
    argv: list[bytearray] = []
    quoted = escaped = False
    whitespace = True
    for byte in line:
        char = bytes([byte])
        if char == b'"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:  # an opening quote after whitespace starts a word
                argv.append(bytearray())
                whitespace = False
        elif char in (b" ", b"\t") and not quoted and not escaped:
            whitespace = True
        elif char == b"\\" and not escaped:
            escaped = True
        else:  # the C code's "normal:" label: a literal byte
            if whitespace:
                if len(argv) >= MAX_ARGS - 1:  # "Too many arguments, truncating"
                    continue
                argv.append(bytearray())
                whitespace = False
            argv[-1] += char
            escaped = False
    return [bytes(arg) for arg in argv]


def words(command: str) -> list[str]:
    return [arg.decode("utf-8") for arg in parse_args(command.encode("utf-8"))]


# -- the parse_args port itself, on the cases the C comments describe ------------


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        (b"ANSWER", [b"ANSWER"]),
        (b"  STREAM   FILE\tx  ", [b"STREAM", b"FILE", b"x"]),
        (b'STREAM FILE "hello world" ""', [b"STREAM", b"FILE", b"hello world", b""]),
        (b'X "a\\"b" "c\\\\d"', [b"X", b'a"b', b"c\\d"]),
        (b"X a\\ b", [b"X", b"a b"]),  # an escaped space outside quotes
        (b'X ab"c d"e', [b"X", b"abc de"]),  # quotes inside a word only toggle
        (b"X \\q", [b"X", b"q"]),  # a backslash before any byte is dropped
        (b"X a\\", [b"X", b"a"]),
    ],
)
def test_parse_args_port(line, argv):
    assert parse_args(line) == argv


def test_parse_args_port_truncates_like_asterisk():
    assert len(parse_args(b" ".join([b"a"] * 200))) == MAX_ARGS - 1


# -- quote() --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [("", '""'), ("beep", '"beep"'), ('say "hi"', '"say \\"hi\\""'), ("c:\\x", '"c:\\\\x"'),
     ("a b\tc", '"a b\tc"'), ("\\\"", '"\\\\\\""')],
)
def test_quote_examples(arg, quoted):
    assert quote(arg) == quoted


# Lone surrogates are excluded: send() refuses them (they have no UTF-8 form).
safe_text = st.text(
    st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=200
)


@settings(max_examples=400)
@given(safe_text)
def test_quote_round_trips_through_parse_args(arg):
    assert words(f"SET VARIABLE X {quote(arg)}") == ["SET", "VARIABLE", "X", arg]


@settings(max_examples=200)
@given(st.lists(safe_text, min_size=1, max_size=5))
def test_quoted_arguments_stay_separate(args):
    assert words(" ".join(["CMD", *map(quote, args)])) == ["CMD", *args]


@settings(max_examples=100)
@given(safe_text, st.sampled_from("\r\n\x00"), safe_text)
def test_quote_refuses_line_breaks_and_nul(before, bad, after):
    with pytest.raises(UnsafeArgument, match="would end the command"):
        quote(before + bad + after)


def test_quote_round_trips_undecodable_bytes_as_send_encodes_them():
    arg = b"Jos\xe9 \xff\"".decode("utf-8", "surrogateescape")
    line = f"NOOP {quote(arg)}".encode("utf-8", "surrogateescape")
    assert parse_args(line) == [b"NOOP", b"Jos\xe9 \xff\""]


def test_unsafe_argument_is_a_value_error():
    with pytest.raises(ValueError):
        quote("x\nHANGUP")


def test_quote_refuses_non_text():
    with pytest.raises(TypeError, match="not int"):
        quote(5)  # type: ignore[arg-type]


# -- builders: exact lines --------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (commands.answer(), "ANSWER"),
        (commands.hangup(), "HANGUP"),
        (commands.hangup("PJSIP/a-1"), 'HANGUP "PJSIP/a-1"'),
        (commands.stream_file("welcome"), 'STREAM FILE "welcome" ""'),
        (commands.stream_file("welcome", "0123456789*#", 800),
         'STREAM FILE "welcome" "0123456789*#" 800'),
        (commands.get_data("menu", 5000, 4), 'GET DATA "menu" 5000 4'),
        (commands.get_option("menu"), 'GET OPTION "menu" ""'),
        (commands.get_option("menu", "12", 3000), 'GET OPTION "menu" "12" 3000'),
        (commands.wait_for_digit(), "WAIT FOR DIGIT -1"),
        (commands.wait_for_digit(2500), "WAIT FOR DIGIT 2500"),
        (commands.say_digits("42#", "*"), 'SAY DIGITS "42#" "*"'),
        (commands.set_variable("X", 'a "b"'), 'SET VARIABLE "X" "a \\"b\\""'),
        (commands.set_variable("X", ""), 'SET VARIABLE "X" ""'),
        (commands.get_variable("CHANNEL"), 'GET VARIABLE "CHANNEL"'),
        (commands.get_full_variable("${CALLERID(num)}"), 'GET FULL VARIABLE "${CALLERID(num)}"'),
        (commands.get_full_variable("${X}", "Local/a"), 'GET FULL VARIABLE "${X}" "Local/a"'),
        (commands.exec_("Answer"), "EXEC Answer"),
        (commands.exec_("Wait", "0.5"), 'EXEC Wait "0.5"'),
        (commands.exec_("Dial", "PJSIP/100", "30", "tT"), 'EXEC Dial "PJSIP/100,30,tT"'),
        (commands.exec_("Playback", "a|b"), 'EXEC Playback "a|b"'),
        (commands.exec_("Set", ""), 'EXEC Set ""'),
        (commands.set_music(True), "SET MUSIC on"),
        (commands.set_music(False, "jazz"), 'SET MUSIC off "jazz"'),
        (commands.channel_status(), "CHANNEL STATUS"),
        (commands.channel_status("Local/a"), 'CHANNEL STATUS "Local/a"'),
        (commands.verbose("hi"), 'VERBOSE "hi" 1'),
        (commands.verbose("hi", 4), 'VERBOSE "hi" 4'),
        (commands.record_file("/tmp/r", "wav"), 'RECORD FILE "/tmp/r" wav "#" -1'),
        (commands.record_file("r", "gsm", "", 30000, offset=8), 'RECORD FILE "r" gsm "" 30000 8'),
        (commands.record_file("r", "wav", beep=True), 'RECORD FILE "r" wav "#" -1 0 BEEP'),
        (commands.record_file("r", "wav", "#", 60000, beep=True, silence_s=3),
         'RECORD FILE "r" wav "#" 60000 0 BEEP s=3'),
        (commands.record_file("r", "wav", silence_s=2), 'RECORD FILE "r" wav "#" -1 0 s=2'),
        (commands.noop(), "NOOP"),
        (commands.noop("ping"), 'NOOP "ping"'),
        (commands.set_context("ivr-out"), 'SET CONTEXT "ivr-out"'),
        (commands.set_extension("s"), 'SET EXTENSION "s"'),
        (commands.set_priority(2), "SET PRIORITY 2"),
        (commands.set_priority("menu"), 'SET PRIORITY "menu"'),
    ],
)
def test_builder_lines(command, line):
    assert command == line
    assert "\n" not in command


def test_builder_output_is_what_asterisk_reads():
    assert words(commands.exec_("Dial", "PJSIP/100", "30")) == ["EXEC", "Dial", "PJSIP/100,30"]
    assert words(commands.stream_file("a b", "#")) == ["STREAM", "FILE", "a b", "#"]


@settings(max_examples=100)
@given(safe_text.filter(bool), safe_text)
def test_set_variable_reads_back_as_two_arguments(name, value):
    assert words(commands.set_variable(name, value)) == ["SET", "VARIABLE", name, value]


# -- builders: refusals -------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: commands.stream_file("x", "1a"),
        lambda: commands.stream_file("x", "A"),
        lambda: commands.stream_file("x", None),  # type: ignore[arg-type]
        lambda: commands.stream_file("", ""),
        lambda: commands.stream_file("x", "", -1),
        lambda: commands.stream_file("x", "", True),  # type: ignore[arg-type]
        lambda: commands.get_data("x", 0, 4),
        lambda: commands.get_data("x", 5000, 0),
        lambda: commands.get_data("x", 5.0, 4),  # type: ignore[arg-type]
        lambda: commands.get_option("x", "", 0),
        lambda: commands.wait_for_digit(-2),
        lambda: commands.say_digits(""),
        lambda: commands.say_digits("12a"),
        lambda: commands.set_variable("", "v"),
        lambda: commands.get_variable(""),
        lambda: commands.get_full_variable(""),
        lambda: commands.get_full_variable("${X}", ""),
        lambda: commands.hangup(""),
        lambda: commands.exec_(""),
        lambda: commands.exec_("Dial(x)"),
        lambda: commands.exec_("1App"),
        lambda: commands.exec_(None),  # type: ignore[arg-type]
        lambda: commands.set_music(True, ""),
        lambda: commands.channel_status(""),
        lambda: commands.verbose("x", 0),
        lambda: commands.verbose("x", 5),
        lambda: commands.verbose("x", True),  # type: ignore[arg-type]
        lambda: commands.record_file("r", "w av"),
        lambda: commands.record_file("r", None),  # type: ignore[arg-type]
        lambda: commands.record_file("r", "wav", "x"),
        lambda: commands.record_file("r", "wav", timeout_ms=-5),
        lambda: commands.record_file("r", "wav", silence_s=0),
        lambda: commands.record_file("r", "wav", offset=-1),
        lambda: commands.set_context(""),
        lambda: commands.set_extension(""),
        lambda: commands.set_priority(0),
        lambda: commands.set_priority(""),
    ],
)
def test_builders_refuse_values_asterisk_would_misread(build):
    with pytest.raises(InvalidArgument):
        build()


@pytest.mark.parametrize(
    "build",
    [
        lambda: commands.stream_file("x\nHANGUP"),
        lambda: commands.set_variable("X", "a\r\nEXEC System rm"),
        lambda: commands.verbose("a\x00b"),
        lambda: commands.noop("\n"),
        lambda: commands.exec_("Dial", "PJSIP/100,30,tT"),  # the comma would be a 2nd app arg
        lambda: commands.exec_("Playback", "ok", "x,y"),
    ],
)
def test_builders_refuse_injection(build):
    with pytest.raises(UnsafeArgument):
        build()


def test_exec_refuses_non_text_arguments():
    with pytest.raises(TypeError):
        commands.exec_("Wait", 5)  # type: ignore[arg-type]


def test_a_kept_line_is_never_served_for_an_argument_of_another_type():
    """Lines are kept per argument; True == 1 as a dict key, and must still be refused."""
    assert commands.get_option("menu", "12", 1) == 'GET OPTION "menu" "12" 1'
    with pytest.raises(InvalidArgument):
        commands.get_option("menu", "12", True)
    assert commands.get_option("menu", "12", 5000) == 'GET OPTION "menu" "12" 5000'
    assert commands.get_option("menu", "12") == 'GET OPTION "menu" "12"'
