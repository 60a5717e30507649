"""trunx asterisk install's plan on small config folders: what it writes, what it refuses,
and that it never changes an operator's line."""
from __future__ import annotations

import pytest

from trunx.asterisk import dialplan_dir
from trunx.asterisk.install import InstallError, Options, Trunk, apply, plan

STOCK = {
    "asterisk.conf": "[directories]\nastetcdir => /etc/asterisk\n",
    "extensions.conf": "[general]\nstatic=yes\n\n[globals]\nCONSOLE=Console/dsp\n\n"
                       "[default]\nexten => s,1,Hangup()",          # no final newline
    "manager.conf": "[general]\nenabled = yes\nport = 5038\n",
    "pjsip.conf": "; nothing but comments\n",
    "rtp.conf": "[general]\nrtpstart=10000\nrtpend=10999\n",
}


@pytest.fixture
def etc(tmp_path):
    for name, text in STOCK.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def snapshot(folder):
    return {p.relative_to(folder): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dry_run_plan_writes_nothing_and_a_second_install_changes_nothing(etc):
    before = snapshot(etc)
    first = plan(etc, Options(ami_secret="a-secret-of-ours"))
    assert snapshot(etc) == before
    assert sorted(str(c.path.relative_to(etc)) for c in first.changes) == [
        "extensions.conf", "manager.conf", "pjsip.conf", "trunx/dialplan.conf",
        "trunx/extensions.conf", "trunx/manager.conf", "trunx/pjsip.conf"]
    apply(first)
    for name in ("extensions.conf", "manager.conf", "pjsip.conf"):
        text = (etc / name).read_text()
        assert text.startswith(STOCK[name])
        assert text.endswith(f'#include "trunx/{name}"\n')
    # the operator's last line had no newline: the include goes on a line of its own
    assert "exten => s,1,Hangup()\n#include" in (etc / "extensions.conf").read_text()
    assert (etc / "trunx/dialplan.conf").read_text() == \
        (dialplan_dir() / "extensions.conf").read_text()
    again = plan(etc, Options())      # no secret given: the installed one is kept
    assert again.changes == []
    assert again.describe().startswith("nothing to change")
    assert again.ami_secret == "a-secret-of-ours"


def test_globals_are_added_to_the_operators_own(etc):
    text = plan(etc, Options(agi="agi://10.0.0.5:4600")).changes
    ours = next(c.new for c in text if c.path == etc / "trunx/extensions.conf")
    assert "[globals](+)\nTRUNX_AGI = agi://10.0.0.5:4600/ivr\n" in ours
    (etc / "extensions.conf").write_text("[default]\n")
    ours = next(c.new for c in plan(etc, Options()).changes
                if c.path == etc / "trunx/extensions.conf")
    assert "[globals]\nTRUNX_AGI" in ours


def test_backup_engines_are_tried_in_order(etc):
    """--agi-backup: TRUNX_AGI_2, _3 for the dialplan's failover ([trunx-ivr] tries the next
    while the last could not be reached)."""
    changes = plan(etc, Options(agi="agi://10.0.0.5:4573",
                                agi_backup=("agi://10.0.0.6:4573", "agi://10.0.0.7"))).changes
    ours = next(c.new for c in changes if c.path == etc / "trunx/extensions.conf")
    assert ("TRUNX_AGI = agi://10.0.0.5:4573/ivr\n"
            "; tried in order when the engine before cannot be reached\n"
            "TRUNX_AGI_2 = agi://10.0.0.6:4573/ivr\n"
            "TRUNX_AGI_3 = agi://10.0.0.7:4573/ivr\n") in ours
    dialplan = (dialplan_dir() / "extensions.conf").read_text()
    assert "Set(TRUNX_TRY=${TRUNX_AGI_${TRUNX_N}})" in dialplan


def test_trunk_with_registration_auth_and_identify(etc):
    trunk = Trunk("sip.example.net:5080", "acct42", "pa55word", match=("192.0.2.0/24",))
    text = next(c.new for c in plan(etc, Options(trunk=trunk)).changes
                if c.path == etc / "trunx/pjsip.conf")
    for expected in ("type = registration", "server_uri = sip:sip.example.net:5080",
                     "client_uri = sip:acct42@sip.example.net:5080", "outbound_auth = carrier-auth",
                     "username = acct42", "password = pa55word", "match = 192.0.2.0/24",
                     "contact = sip:sip.example.net:5080", "context = inbound",
                     "[trunx-udp]\ntype = transport"):
        assert expected in text, expected


def test_without_a_trunk_host_the_trunk_is_a_commented_template(etc):
    result = plan(etc, Options())
    text = next(c.new for c in result.changes if c.path == etc / "trunx/pjsip.conf")
    live = [line for line in text.splitlines() if line and not line.startswith(";")]
    assert live == ["[trunx-udp]", "type = transport", "protocol = udp", "bind = 0.0.0.0:5060"]
    assert any("template" in note for note in result.notes)


def test_an_operator_transport_is_used_not_ours(etc):
    (etc / "pjsip.conf").write_text("[udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0\n")
    text = next(c.new for c in plan(etc, Options(trunk=Trunk("203.0.113.9", register=False)))
                .changes if c.path == etc / "trunx/pjsip.conf")
    assert "trunx-udp" not in text and "type = registration" not in text


@pytest.mark.parametrize("file,text,named", [
    ("extensions.conf", "[inbound]\nexten => s,1,Hangup()\n", "inbound"),
    ("manager.conf", "[general]\n[trunx]\nsecret=x\n", "[trunx]"),
    ("pjsip.conf", "[carrier]\ntype=endpoint\n", "carrier"),
])
def test_a_name_the_operator_uses_refuses_the_install(etc, file, text, named):
    (etc / file).write_text(text)
    before = snapshot(etc)
    with pytest.raises(InstallError, match=named.replace("[", r"\[")):
        plan(etc, Options())
    assert snapshot(etc) == before


@pytest.mark.parametrize("options,field", [
    (Options(agi="http://127.0.0.1:4573"), "--agi"),
    (Options(agi="agi://127.0.0.1:4573/ivr\nexten"), "--agi"),
    (Options(agi_backup=("agi://10.0.0.6:4573/ivr\nexten",)), "--agi-backup"),
    (Options(ami_user="trunx]\n[admin"), "--ami-user"),
    (Options(ami_secret="short"), "--ami-secret"),
    (Options(sip_bind="0.0.0.0"), "--sip-bind"),
    (Options(ami_permit="0.0.0.0/0\nwrite=all"), "--ami-permit"),
    (Options(trunk=Trunk("sip.example.net", "u", "p a ss")), "--trunk-secret"),
    (Options(trunk=Trunk("sip.example.net\nbind=0.0.0.0")), "--trunk-host"),
    (Options(trunk=Trunk("sip.example.net")), "registration needs"),
    (Options(trunk=Trunk("sip.example.net", "u", "", register=False)), "go together"),
])
def test_bad_options_are_refused_by_name(etc, options, field):
    with pytest.raises(InstallError, match=field):
        plan(etc, options)


def test_a_folder_without_asterisk_config_is_refused(tmp_path):
    with pytest.raises(InstallError, match="no Asterisk config"):
        plan(tmp_path, Options())


def test_rtp_range_note_says_how_many_calls_fit(etc):
    assert any("holds 500 calls" in n and "widen it" in n for n in plan(etc, Options()).notes)
