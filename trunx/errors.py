"""The one error tree of trunx: errors are data, and their kind says what went wrong.

::

    TrunxError(code, message, details)   root: a stable kebab-case code, a sentence, JSON data
    ├── InvalidInput        the caller sent something wrong (a field, a tree, a file)
    ├── Unsupported         the caller sent a kind of thing we do not take (a media type)
    ├── TooLarge            the caller sent too much
    ├── Unauthorized        no valid credentials
    ├── Forbidden           valid credentials, but not for this (or a number on the DNC list)
    ├── NotFound            no such thing, or not this account's
    ├── Conflict            the thing's state does not allow it now (in use, exists, busy)
    ├── TooMany             over a quota of the account (requests per second, queued calls)
    ├── NotConfigured       this host lacks a setting or a provider key the request needs
    ├── Unavailable         a part we depend on is down or refusing work for now; try later
    ├── UpstreamError       a provider or peer answered with a failure (Ultravox, SFTP, AMI)
    │   └── UpstreamTimeout     ... or did not answer in time
    └── Internal            one of our own parts failed (sox, espeak-ng missing or crashing)

Each area keeps its own family under the root, so a caller can catch "anything the media
pipeline raised" (trunx.media.errors.MediaError) or "any Ultravox failure"
(trunx.ultravox.UltravoxError); where a family's failures differ in kind, each is also a
subclass of the kind (e.g. ``MediaTimeout(MediaError, UpstreamTimeout)``). The families:
admin_api.voice.service (none of its own: kinds only), trunx.ivr.store (InvalidTree,
Assigned, Gone), trunx.phone.InvalidNumber, trunx.media.errors, trunx.ultravox, and in the engine
agi_server.ami.client (AmiError, AmiUnavailable), agi_server.ai.bridge.BridgeError and
agi_server.ivr.tree_cache.TreeUnavailable. The AGI protocol's tree
(agi_server.agi.errors) stands beside this one: a hangup is not an error.

There is no HTTP here: the admin API maps kinds (and a few codes) to statuses in one table
(admin_api/errors.py). Codes are stable; clients branch on them, so they never change
meaning. Misuse by our own code (a wrong type, a bad config value) stays a plain
TypeError/ValueError, because no user can fix it.
"""
from __future__ import annotations


class TrunxError(Exception):
    def __init__(self, code: str, message: str, details=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = {} if details is None else details

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidInput(TrunxError):
    pass


class Unsupported(TrunxError):
    pass


class TooLarge(TrunxError):
    pass


class Unauthorized(TrunxError):
    pass


class Forbidden(TrunxError):
    pass


class NotFound(TrunxError):
    pass


class Conflict(TrunxError):
    pass


class TooMany(TrunxError):
    pass


class NotConfigured(TrunxError):
    pass


class Unavailable(TrunxError):
    pass


class UpstreamError(TrunxError):
    pass


class UpstreamTimeout(UpstreamError):
    pass


class Internal(TrunxError):
    pass


KINDS = (InvalidInput, Unsupported, TooLarge, Unauthorized, Forbidden, NotFound, Conflict,
         TooMany, NotConfigured, Unavailable, UpstreamError, UpstreamTimeout, Internal)


def problem(field: str, code: str, message: str) -> dict:
    """One thing wrong with a request, shaped like the IVR validator's problems."""
    return {"field": field, "code": code, "message": message}


def invalid(field: str, code: str, message: str) -> InvalidInput:
    """The usual bad-input error: `invalid-request`, its details the one problem naming the
    field (`code` says how it is wrong)."""
    return InvalidInput("invalid-request", message, [problem(field, code, message)])
