"""What the wheel ships for Asterisk: found through the package, and free of the test
suite's scripted-caller contexts (the development stack adds those itself)."""
from __future__ import annotations

import re

from devtools.stack.asterisk import render_config
from trunx.asterisk import conf_dir, dialplan_dir
from trunx.asterisk.install import CONTEXTS


def contexts(text: str) -> set[str]:
    return set(re.findall(r"^\[([^\]]+)\]", text, re.M))


def test_the_shipped_dialplan_holds_trunx_contexts_and_no_test_caller():
    shipped = {p.name: p.read_text() for p in (*conf_dir().glob("*.conf"),
                                               *dialplan_dir().glob("*.conf"))}
    assert sorted(p.name for p in dialplan_dir().glob("*.conf")) == ["extensions.conf"]
    for name, text in shipped.items():
        assert "test-caller" not in text and "test-agent" not in text, name
    assert contexts((dialplan_dir() / "extensions.conf").read_text()) == set(CONTEXTS)


def test_the_dev_stack_adds_the_test_contexts_only_when_asked(tmp_path):
    values = {k: 1 for k in ("INSTANCE_DIR", "SYSTEM_NAME", "AMI_PORT", "AMI_USER",
                             "AMI_SECRET", "SIP_PORT", "CARRIER_SIP_PORT", "PBX_SIP_PORT",
                             "RTP_START", "RTP_END", "AGI_PORT", "SOUNDS_DIR")}
    render_config(tmp_path / "with", values)
    render_config(tmp_path / "without", values, test_contexts=False)
    assert '#include "dialplan/test-caller.conf"' in \
        (tmp_path / "with/extensions.conf").read_text()
    assert "test-caller" not in (tmp_path / "without/extensions.conf").read_text()
    # capacity: Asterisk raises its own open-file limit to this (docs/operators.md)
    assert (tmp_path / "with/asterisk.conf") \
        .read_text().count("maxfiles = 16384") == 1
