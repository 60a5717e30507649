"""`trunx asterisk install` on Debian's stock /etc/asterisk (the root's own, as the asterisk
package installs it), then real calls through that Asterisk and a carrier that demands
registration and digest auth:

- the install, run as an operator runs it (the `trunx` command), writes trunx's files and
  appends three #include lines; a second run changes nothing;
- Asterisk boots on the result, registers with the carrier (which challenges it), and
  `trunx asterisk check` says what is missing (the engine) until the engine runs;
- a call from the carrier crosses the trunk (identified by address) and walks the seed IVR;
- a call out through [outbound] is challenged by the carrier, authenticates and is answered.
"""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from devtools.demo import publish_demo, stage_prompts
from devtools.stack import Asterisk, free_port, wait_until
from devtools.stack.ami import AmiClient, originate_local
from tests.engine_support import SEED_DID, make_config, running_engine
from tests.store_support import store_on
from trunx import db
from trunx.asterisk.install import CONTEXTS
from trunx.models import Account, Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

TRUNK_SECRET = "carrier-gave-us-this"
AMI_SECRET = "operator-chose-this-one"


def trunx_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trunx", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture(scope="module")
def stack(asterisk_root, tmp_path_factory):
    """The carrier (registration + auth required), then the stock Asterisk with trunx
    installed by the CLI; yields (pbx, carrier, the install's first and second outputs)."""
    agi_port = free_port()
    outputs = []
    pbx_ports = {"ami_port": free_port(), "sip_port": None}
    carrier = Asterisk(asterisk_root, "carrier", role="carrier_auth",
                       values={"TRUNK_SECRET": TRUNK_SECRET})
    pbx_ports["sip_port"] = carrier.pbx_sip_port

    def install(etc):
        argv = ["asterisk", "install", "--etc", str(etc), "--agi", f"agi://127.0.0.1:{agi_port}",
                "--ami-bind", f"127.0.0.1:{pbx_ports['ami_port']}", "--ami-secret", AMI_SECRET,
                "--sip-bind", f"127.0.0.1:{pbx_ports['sip_port']}",
                "--trunk-host", f"127.0.0.1:{carrier.sip_port}", "--trunk-user", "pbx",
                "--trunk-secret", TRUNK_SECRET, "--trunk-match", f"127.0.0.1:{carrier.sip_port}"]
        for _ in range(2):
            done = trunx_cli(*argv)
            assert done.returncode == 0, done.stdout + done.stderr
            outputs.append(done.stdout)

    pbx = Asterisk(asterisk_root, "stock", role="stock", agi_port=agi_port,
                   ami_port=pbx_ports["ami_port"], sip_port=pbx_ports["sip_port"],
                   ami_secret=AMI_SECRET, prepare=install, boot_timeout=90)
    with carrier, pbx:
        yield pbx, carrier, outputs


def test_install_appends_includes_once_and_leaves_the_operators_lines(stack, asterisk_root):
    pbx, _, (first, second) = stack
    etc = pbx.instance_dir_host / "etc"
    for name in ("extensions", "manager", "pjsip"):
        stock = (asterisk_root / "etc/asterisk" / f"{name}.conf").read_text()
        mine = (etc / f"{name}.conf").read_text()
        assert mine.startswith(stock), f"{name}.conf: the operator's lines were changed"
        assert mine.count(f'#include "trunx/{name}.conf"') == 1
    assert "append to" in first and "trunx/pjsip.conf" in first
    assert second.startswith("nothing to change"), second
    assert "holds 5,000 calls" in first     # Debian's rtp.conf: 10000-20000


async def test_registers_and_check_names_what_is_missing(stack, tmp_path, redis_server):
    pbx, carrier, _ = stack
    wait_until(lambda: "Registered" in pbx.cli("pjsip show registrations"), timeout=20,
               message="the PBX registered with the carrier")
    assert "Avail" in carrier.cli("pjsip show aor pbx") or \
        "sip:pbx@127.0.0.1" in carrier.cli("pjsip show aor pbx")
    args = ["asterisk", "check", "--host", "127.0.0.1", "--port", str(pbx.ami_port),
            "--user", "trunx", "--secret", AMI_SECRET]
    before = trunx_cli(*args)
    assert before.returncode == 1, before.stdout + before.stderr
    assert "MISSING  nothing answers FastAGI" in before.stdout
    assert f"ok       trunx's {len(CONTEXTS)} dialplan contexts are loaded" in before.stdout
    assert "ok       the AMI user may send every action the engine uses" in before.stdout
    assert "modules trunx needs are loaded" in before.stdout
    cfg = make_config(tmp_path, redis_server.url, agi_port=pbx.agi_port)
    async with running_engine(cfg):
        after = await asyncio.to_thread(trunx_cli, *args)
    assert after.returncode == 0, after.stdout
    assert after.stdout.endswith("trunx can run on this Asterisk\n")
    wrong = trunx_cli(*args[:-1], "not-the-secret")
    assert wrong.returncode == 1 and "AMI refused user 'trunx'" in wrong.stdout


async def test_a_carrier_call_reaches_the_ivr(stack, tmp_path, redis_server, redis):
    pbx, carrier, _ = stack
    wait_until(lambda: "Registered" in pbx.cli("pjsip show registrations"), timeout=20,
               message="the PBX registered with the carrier")
    cfg = make_config(tmp_path, redis_server.url, agi_port=pbx.agi_port,
                      sounds_dir=str(pbx.sounds_dir_host),
                      asterisk_sounds_dir=pbx.sounds_dir_in_root, gather_timeout=2.0)
    db.connect(cfg)
    account = Account.create(name="stock-install")
    stage_prompts(account, cfg)
    publish_demo(store_on(redis), account, cfg)
    async with running_engine(cfg), \
            AmiClient(carrier.ami_port, carrier.watch_user, carrier.ami_secret) as ami:
        await originate_local(ami, SEED_DID, "w1-d1-w1.5-d2", context="to-pbx")
        async with asyncio.timeout(60):
            while (row := Call.get_or_none(Call.to_number == SEED_DID,
                                           Call.ended_at.is_null(False))) is None:
                await asyncio.sleep(0.2)
    assert row.direction == "inbound"
    assert [p["node"] for p in row.path if p["event"] == "enter"] == \
        ["welcome", "has_business", "unqualified"]


async def test_a_call_out_authenticates_with_the_carrier(stack):
    pbx, carrier, _ = stack
    wait_until(lambda: "Registered" in pbx.cli("pjsip show registrations"), timeout=20,
               message="the PBX registered with the carrier")
    # +1NXX555010X answers and records what it hears (devtools/stack/dialplan/carrier.conf)
    async with AmiClient(pbx.ami_port, "trunx", AMI_SECRET) as ami:
        call = await originate_local(ami, "+12025550101", "w1-h", context="outbound")
        response = await ami.wait_event(call.is_originate_response(), timeout=20)
    assert response["Response"] == "Success", response
    wait_until(lambda: carrier.finished_recordings("12025550101-*.wav"), timeout=10,
               message="the carrier's recording of the answered call")
