"""trunx's Asterisk configuration, shipped in the wheel as package data, and the tools that
put it on an Asterisk: `trunx asterisk install` (install.py) and `trunx asterisk check`
(check.py).

    conf/       a whole Asterisk config for a PBX that is trunx's alone (the development
                stack and the tests render it: @@NAME@@ placeholders are filled in)
    dialplan/   trunx's dialplan contexts, used as they are by both ways of running

Everything reads these folders through conf_dir() and dialplan_dir(), so an installed wheel
and a checkout behave the same.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def _data(name: str) -> Path:
    # The wheel installs as plain files (zip-safe is never asked for), so the traversable is
    # a real folder that Asterisk's config can be copied from.
    return Path(str(resources.files(__name__) / name))


def conf_dir() -> Path:
    """The shipped Asterisk config templates (asterisk.conf, pjsip.conf, ...)."""
    return _data("conf")


def dialplan_dir() -> Path:
    """The shipped dialplan (extensions.conf: inbound, outbound and trunx-* contexts)."""
    return _data("dialplan")
