"""The one exception tree of trunx's AGI layer (vocabulary from panoramisk).

::

    AGIException                  root: every exception here carries .command and .reply
    ├── AGIHangup                 the channel hung up; not an error, ends a call quietly
    └── AGIError                  something went wrong with the protocol or a command
        ├── RemoteProtocolError   Asterisk (the peer) sent bytes we cannot accept
        ├── LocalProtocolError    our code misused the API (e.g. two commands in flight)
        │   └── InvalidArgument   a command builder got a bad value  (also a ValueError)
        │       └── UnsafeArgument  CR/LF/NUL or a splitting comma: would inject a command
        ├── AGICommandError       Asterisk refused a command (any 5xx reply; .code)
        │   ├── AGIInvalidCommand  510 Invalid or unknown command
        │   ├── AGIDeadChannel     511 Command Not Permitted on a dead channel ...
        │   └── AGIUsageError      520 Invalid command syntax (.usage holds the text)
        └── MissingSound          STREAM FILE found no such file; the channel lives on

A hangup is a sibling of AGIError, not a kind of it, so ``except AGIError`` never
swallows one. Errors are data: ``command`` is the AGI command line concerned (or
None) and ``reply`` is the raw reply text from Asterisk (or None).
"""

from __future__ import annotations


class AGIException(Exception):
    """Root of the tree; carries the command and the reply text."""

    def __init__(
        self, message: str, *, command: str | None = None, reply: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.command = command
        self.reply = reply

    def __str__(self) -> str:
        parts = [self.message]
        if self.command is not None:
            parts.append(f"command={self.command!r}")
        if self.reply is not None:
            parts.append(f"reply={self.reply!r}")
        return "; ".join(parts)


class AGIHangup(AGIException):
    """The channel hung up while we were talking to it."""


class HangupInWait(AGIHangup):
    """The caller hung up in a question's wait (GET OPTION), after its prompt played out:
    the prompt was heard (`endpos` samples), which the call's path should say."""

    def __init__(self, message: str, endpos: int | None, **kwargs):
        super().__init__(message, **kwargs)
        self.endpos = endpos


class AGIError(AGIException):
    """Base of every real problem: protocol violations and refused commands."""


class RemoteProtocolError(AGIError):
    """The peer misbehaved: malformed, oversized, unsolicited or truncated input."""


class LocalProtocolError(AGIError):
    """We misused the API: the bug is on our side of the socket."""


class InvalidArgument(LocalProtocolError, ValueError):
    """A command builder was given a value Asterisk would misread."""


class UnsafeArgument(InvalidArgument):
    """A value would smuggle a second command or argument (CR, LF, NUL, comma)."""


class AGICommandError(AGIError):
    """Asterisk answered a command with an error code."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        command: str | None = None,
        reply: str | None = None,
        usage: str | None = None,
    ) -> None:
        super().__init__(message, command=command, reply=reply)
        self.code = code
        self.usage = usage

    @classmethod
    def from_reply(
        cls,
        code: int,
        message: str,
        *,
        command: str | None,
        reply: str,
        usage: str | None = None,
    ) -> AGICommandError:
        """The most specific error class for ``code``."""
        error_class = _BY_CODE.get(code, AGICommandError)
        return error_class(message, code=code, command=command, reply=reply, usage=usage)


class AGIInvalidCommand(AGICommandError):
    """510: Asterisk does not know the command."""


class AGIDeadChannel(AGICommandError):
    """511: the command is not allowed once the channel has hung up."""


class AGIUsageError(AGICommandError):
    """520: wrong arguments; ``usage`` holds the usage text Asterisk sent."""


_BY_CODE: dict[int, type[AGICommandError]] = {
    510: AGIInvalidCommand,
    511: AGIDeadChannel,
    520: AGIUsageError,
}


class MissingSound(AGIError):
    """STREAM FILE answered result=-1 on a live channel: Asterisk has no playable file of
    that name (res_agi.c handle_streamfile: ast_openstream failed). Not a hangup: the
    call goes on (agi_server.calls.control.play)."""
