"""What an operator installs: the wheel, built as `python -m build` builds it, installed into
a fresh virtualenv, carries the Asterisk config and dialplan as package data and runs
`trunx --version` and `trunx asterisk install --dry-run` from there (no checkout on its
path); the systemd units pass `systemd-analyze verify` pointed at that install's `trunx`.

The venv gets the wheel alone (--no-deps): those two commands need nothing beyond the
standard library, and the dependencies are PyPI's to serve, not this test's to download.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import trunx

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "trunx", "agi_server",
           "admin_api")
UNITS = ("trunx-engine.service", "trunx-api.service")

pytestmark = pytest.mark.slow


# the venv's programs see no checkout: no PYTHONPATH, and they run from a temporary folder
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRUNX_CONFIG")}


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=CLEAN_ENV,
                          **kwargs)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a fresh venv holding only the freshly built wheel."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in SHIPPED:     # a copy, so the build's build/ and egg-info stay out of the tree
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                          if (REPO / name).is_dir() else {}))
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
         str(base / "dist")], cwd=src)
    (wheel,) = (base / "dist").glob("trunx-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("trunx/asterisk/conf/modules.conf", "trunx/asterisk/conf/pjsip.conf",
                     "trunx/asterisk/dialplan/extensions.conf", "admin_api/gunicorn_conf.py"):
        assert expected in names
    assert any(n.endswith(".dist-info/LICENSE") for n in names)
    assert not [n for n in names if n.startswith(("devtools/", "tests/", "bench/"))]
    assert not [n for n in names if "test-caller" in n or "carrier.conf" in n]
    venv.create(base / "venv", with_pip=True, clear=True)
    bin_dir = base / "venv" / "bin"
    run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)])
    return bin_dir


def test_the_wheel_runs_version_and_a_dry_run_install_from_its_own_data(installed, tmp_path):
    done = run([str(installed / "trunx"), "--version"], cwd=tmp_path)
    assert done.stdout.strip() == f"trunx {trunx.__version__}"
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "extensions.conf").write_text("[globals]\n\n[default]\n")
    (etc / "manager.conf").write_text("[general]\nenabled = yes\n")
    done = run([str(installed / "trunx"), "asterisk", "install", "--etc", str(etc),
                "--dry-run"], cwd=tmp_path)
    assert done.stdout.startswith("dry run: nothing written")
    # the dialplan came from the installed package, not from a checkout
    where = run([str(installed / "python"), "-c",
                 "import trunx.asterisk as a; print(a.dialplan_dir())"], cwd=tmp_path)
    assert str(installed.parent) in where.stdout
    assert "+[trunx-ivr]" in done.stdout and '+ #include "trunx/extensions.conf"' in done.stdout
    assert sorted(p.name for p in etc.iterdir()) == ["extensions.conf", "manager.conf"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze missing: `make deps` installs the systemd package")
def test_systemd_units_pass_verify(installed, tmp_path):
    for unit in UNITS:
        text = (REPO / "deploy" / "systemd" / unit).read_text()
        assert "ExecStart=/usr/local/bin/trunx " in text
        # the unit as installed by `pip install` into a venv at this path
        (tmp_path / unit).write_text(text.replace("/usr/local/bin/trunx",
                                                  str(installed / "trunx")))
    done = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / u) for u in UNITS)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
