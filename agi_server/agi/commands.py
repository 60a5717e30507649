"""Pure builders of AGI command lines, sharing one quoting function.

Each builder returns the command as a ``str`` without the trailing newline;
``AGIConnection.send()`` adds the LF, encodes, and checks the length. Route code
never formats a command string: it calls these.

Every text argument goes through ``quote()``; numbers are formatted here from
``int`` values. A value that cannot be made safe raises ``UnsafeArgument`` and a
value Asterisk would misread raises ``InvalidArgument`` (both ValueErrors).
"""

from __future__ import annotations

import re

from agi_server.agi.errors import InvalidArgument, UnsafeArgument

_UNSAFE = re.compile(r"[\r\n\x00]")
_DTMF = re.compile(r"[0-9*#]*")
# every DTMF key, as escape digits: any key the caller presses cuts a prompt short
ALL_DTMF = "0123456789*#"
_APP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_FORMAT = re.compile(r"[A-Za-z0-9]+")


def quote(arg: str) -> str:
    """``arg`` as one double-quoted AGI argument.

    Asterisk's res_agi.c ``parse_args()`` splits a command on unquoted spaces and
    tabs, toggles quoting on an unescaped ``"``, and for a backslash drops it and
    keeps the next byte literally. So escaping ``\\`` and ``"`` with a backslash
    round-trips every other character. CR, LF and NUL cannot be escaped: LF ends
    the command (the rest would run as a second command), NUL ends the C string,
    and CR is refused too so that logs and CRLF-minded readers cannot be fooled.
    """
    if not isinstance(arg, str):
        raise TypeError(f"AGI arguments are str, not {type(arg).__name__}")
    if found := _UNSAFE.search(arg):
        raise UnsafeArgument(f"argument contains {found.group()!r}: it would end the command")
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _line(*words: str) -> str:
    return " ".join(words)


def _text(value: str, what: str) -> str:
    """A required, non-empty text argument, quoted."""
    if isinstance(value, str) and not value:
        raise InvalidArgument(f"{what} must not be empty")
    return quote(value)


def _digits(value: str, what: str = "escape_digits") -> str:
    """A DTMF digit set (0-9 * #), quoted; "" allows no digits."""
    if not isinstance(value, str) or not _DTMF.fullmatch(value):
        raise InvalidArgument(f"{what} may hold only 0-9 * #, got {value!r}")
    return quote(value)


def _int(value: int, what: str, minimum: int) -> str:
    # bool is an int subclass; True as a timeout is a bug, not 1 ms.
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidArgument(f"{what} must be an int >= {minimum}, got {value!r}")
    return str(value)


def answer() -> str:
    return "ANSWER"


def hangup(channel: str | None = None) -> str:
    """Hang up this channel, or the named one."""
    return "HANGUP" if channel is None else _line("HANGUP", _text(channel, "channel"))


# (verb, filename, escape digits[, timeout]) -> the line built for them: a call's prompts
# are the same few files, and these builders are pure, so a line is checked and quoted once.
# Only lines that were built (every check passed) are kept, at most _LINES_KEPT, and only
# for arguments of exactly the types checked (True must not find the line built for 1).
_KEPT_LINES: dict[tuple, str] = {}
_LINES_KEPT = 4096


def _kept(key: tuple, build, *args) -> str:
    if (line := _KEPT_LINES.get(key)) is not None:
        return line
    line = build(*args)
    if len(_KEPT_LINES) < _LINES_KEPT:
        _KEPT_LINES[key] = line
    return line


def stream_file(filename: str, escape_digits: str = "", offset: int | None = None) -> str:
    """Play ``filename`` (no extension); result is the ASCII code of the digit pressed, or 0."""
    if offset is None and type(filename) is str and type(escape_digits) is str:
        return _kept(("STREAM FILE", filename, escape_digits), _stream_file, filename,
                     escape_digits, None)
    return _stream_file(filename, escape_digits, offset)


def _stream_file(filename: str, escape_digits: str, offset: int | None) -> str:
    words = ["STREAM FILE", _text(filename, "filename"), _digits(escape_digits)]
    if offset is not None:
        words.append(_int(offset, "offset", 0))
    return _line(*words)


def get_data(filename: str, timeout_ms: int, max_digits: int) -> str:
    """Play ``filename`` and collect up to ``max_digits`` digits; result holds them."""
    return _line("GET DATA", _text(filename, "filename"),
                 _int(timeout_ms, "timeout_ms", 1), _int(max_digits, "max_digits", 1))


def get_option(filename: str, escape_digits: str = "", timeout_ms: int | None = None) -> str:
    """Like stream_file, then wait ``timeout_ms`` for one of ``escape_digits``, in one
    command: Asterisk reads the caller's keys throughout (between two commands res_agi
    drops them). No offset argument exists. Lines are kept as stream_file's are."""
    if (type(filename) is str and type(escape_digits) is str
            and (timeout_ms is None or type(timeout_ms) is int)):
        return _kept(("GET OPTION", filename, escape_digits, timeout_ms), _get_option,
                     filename, escape_digits, timeout_ms)
    return _get_option(filename, escape_digits, timeout_ms)


def _get_option(filename: str, escape_digits: str, timeout_ms: int | None) -> str:
    words = ["GET OPTION", _text(filename, "filename"), _digits(escape_digits)]
    if timeout_ms is not None:
        words.append(_int(timeout_ms, "timeout_ms", 1))
    return _line(*words)


def wait_for_digit(timeout_ms: int = -1) -> str:
    """Wait for one digit; -1 waits forever."""
    return _line("WAIT FOR DIGIT", _int(timeout_ms, "timeout_ms", -1))


def say_digits(digits: str, escape_digits: str = "") -> str:
    if not digits:
        raise InvalidArgument("digits must not be empty")
    return _line("SAY DIGITS", _digits(digits, "digits"), _digits(escape_digits))


def set_variable(name: str, value: str) -> str:
    """Set a channel variable; ``value`` is stored verbatim (no ${} expansion)."""
    return _line("SET VARIABLE", _text(name, "name"), quote(value))


def get_variable(name: str) -> str:
    """Data of the reply holds the value; result is 0 when the variable is unset."""
    return _line("GET VARIABLE", _text(name, "name"))


def get_full_variable(expression: str, channel: str | None = None) -> str:
    """Evaluate a dialplan expression such as ``${CALLERID(num)}``.

    Asterisk *evaluates* the expression, functions included: never pass text
    that came from a caller or an API user here.
    """
    words = ["GET FULL VARIABLE", _text(expression, "expression")]
    if channel is not None:
        words.append(_text(channel, "channel"))
    return _line(*words)


def exec_(app: str, *args: str) -> str:
    """Run a dialplan application: ``EXEC App "arg1,arg2"``.

    res_agi.c passes only the one argument after the application name, so the
    application's own arguments are joined with commas inside that single quoted
    argument. The application then splits it with its own parser, which is why a
    comma inside a value would silently become a second application argument:
    that raises UnsafeArgument. Other characters reach the application as-is,
    where ``"`` and ``\\`` and brackets mean something to most applications'
    parsers, and ``${...}`` is expanded if the channel sets AGIEXECFULL. ``|`` is
    literal since Asterisk 1.6 (it was the separator before). Keep caller-supplied
    text out of EXEC; set it with set_variable and let the dialplan read it.
    """
    if not isinstance(app, str) or not _APP_NAME.fullmatch(app):
        raise InvalidArgument(f"not an application name: {app!r}")
    for arg in args:
        if not isinstance(arg, str):
            raise TypeError(f"application arguments are str, not {type(arg).__name__}")
        if "," in arg:
            raise UnsafeArgument(f"{arg!r} contains a comma: it would split into two arguments")
    if not args:
        return _line("EXEC", app)
    return _line("EXEC", app, quote(",".join(args)))


def set_music(on: bool, music_class: str | None = None) -> str:
    """Start or stop music on hold, optionally from ``music_class``."""
    words = ["SET MUSIC", "on" if on else "off"]
    if music_class is not None:
        words.append(_text(music_class, "music_class"))
    return _line(*words)


def channel_status(channel: str | None = None) -> str:
    """Result is the channel state: 6 means up."""
    if channel is None:
        return "CHANNEL STATUS"
    return _line("CHANNEL STATUS", _text(channel, "channel"))


def verbose(message: str, level: int = 1) -> str:
    """Log ``message`` to the Asterisk console at verbosity ``level`` (1-4)."""
    if level not in (1, 2, 3, 4) or isinstance(level, bool):
        raise InvalidArgument(f"level must be 1-4, got {level!r}")
    return _line("VERBOSE", quote(message), str(level))


def record_file(
    filename: str,
    file_format: str,
    escape_digits: str = "#",
    timeout_ms: int = -1,
    *,
    offset: int | None = None,
    beep: bool = False,
    silence_s: int | None = None,
) -> str:
    """Record until a digit in ``escape_digits``, ``timeout_ms`` (-1: none) or silence.

    The optional arguments are positional in Asterisk, so the offset is written
    (as 0) whenever BEEP or s= follows it.
    """
    if not isinstance(file_format, str) or not _FORMAT.fullmatch(file_format):
        raise InvalidArgument(f"not a file format: {file_format!r}")
    words = ["RECORD FILE", _text(filename, "filename"), file_format,
             _digits(escape_digits), _int(timeout_ms, "timeout_ms", -1)]
    if offset is not None or beep or silence_s is not None:
        words.append(_int(0 if offset is None else offset, "offset", 0))
    if beep:
        words.append("BEEP")
    if silence_s is not None:
        words.append("s=" + _int(silence_s, "silence_s", 1))
    return _line(*words)


def noop(message: str | None = None) -> str:
    """Does nothing; Asterisk logs ``message``. Handy as a liveness probe."""
    return "NOOP" if message is None else _line("NOOP", quote(message))


def set_context(context: str) -> str:
    """Dialplan context to continue in when the AGI ends."""
    return _line("SET CONTEXT", _text(context, "context"))


def set_extension(extension: str) -> str:
    """Dialplan extension to continue at when the AGI ends."""
    return _line("SET EXTENSION", _text(extension, "extension"))


def set_priority(priority: int | str) -> str:
    """Dialplan priority (number >= 1, or a label) to continue at."""
    if isinstance(priority, str):
        return _line("SET PRIORITY", _text(priority, "priority"))
    return _line("SET PRIORITY", _int(priority, "priority", 1))
