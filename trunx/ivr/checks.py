"""Warnings a publish answers about what would go wrong at call time, without refusing it.

- `no-transfer-target`: a transfer node names neither `to` nor `agent` and the account has
  no default transfer target (PATCH /api/account `default_transfer`): callers reaching it
  hear the polite fallback (or go to the server's `transfer_dial` if one is configured).
- `audio-not-found`: an audio reference is neither an asset of the account nor a sound the
  staging target holds. Asterisk may still have a sound of that name among its own; if it
  has not, the engine skips the prompt (path event `prompt-missing`) and the call goes on.
"""
from __future__ import annotations

import logging
import re

from trunx.ivr.program import Program
from trunx.ivr.tree import Problem

log = logging.getLogger(__name__)

_SOUND_EXT = re.compile(r"\.(wav|mp3|gsm|ulaw|alaw|sln|g722|ogg)$", re.IGNORECASE)


def publish_warnings(program: Program, definition: dict, sounds: set, config) -> list:
    return (_bare_transfers(program, config)
            + _missing_sounds(definition, sounds, config))


def _bare_transfers(program: Program, config) -> list:
    bare = program.bare_transfers()
    if not bare:
        return []
    from trunx.models import Account

    if _default_transfer is None:
        _prepare()
    rows = _default_transfer.rows(Account._meta.database, program.account)
    if rows and rows[0][0]:
        return []
    then = ("callers go to the server's transfer_dial" if config.transfer_dial
            else "callers hear the fallback prompt")
    return [Problem(f"nodes.{name}", "no-transfer-target",
                    f"transfer node {name!r} names no to or agent and the account has no "
                    f"default_transfer (PATCH /api/account); {then}")
            for name in bare]


_default_transfer = None    # the account's default_transfer, SQL built once (every POST /ivr)


def _prepare() -> None:
    global _default_transfer
    from trunx import db
    from trunx.models import Account

    _default_transfer = db.Prepared(lambda: Account.select(Account.default_transfer)
                                    .where(Account.id == ""))


def _missing_sounds(definition: dict, sounds: set, config) -> list:
    """`sounds`: the refs that resolved to no asset. One staging check per distinct name."""
    if not sounds:
        return []
    stager = _stager(config)
    held = {ref: stager is not None and _staged(stager, ref) for ref in sounds}
    return [Problem(f"nodes.{name}.{key}", "audio-not-found",
                    f"audio {node[key]!r} is not an audio asset of this account nor a sound "
                    "the staging target holds; unless Asterisk has a sound of that name, "
                    "callers hear nothing there and the call goes on")
            for name, node in definition["nodes"].items()
            for key in ("audio", "invalid_audio")
            if node.get(key) in held and not held[node[key]]]


def _stager(config):
    """One stager for a publish's checks (making one per name cost more than its check)."""
    from trunx.media import make_stager
    from trunx.media.errors import MediaError

    try:
        return make_stager(config)
    except (MediaError, ValueError, OSError) as exc:   # no target to ask: nothing is held
        log.info("audio not checked against the staging target: %s", exc)
        return None


def _staged(stager, ref: str) -> bool:
    from trunx.media.errors import MediaError

    try:
        return stager.exists(_SOUND_EXT.sub("", ref))
    except (MediaError, ValueError, OSError) as exc:
        # a name the stager cannot hold (a path, dots) or a stager out of reach: not held
        log.info("audio %r not checked against the staging target: %s", ref, exc)
        return False
