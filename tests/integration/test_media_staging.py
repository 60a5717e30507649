"""Staging into a local folder and over SFTP to a real sshd on loopback."""
import os
import subprocess
from pathlib import Path

import pytest

from admin_api.errors import status_for
from tests.fakes.sshd import SSHD, Sshd
from tests.integration.conftest_media import make_tone, require
from trunx.config import Config
from trunx.media import LocalStager, MediaError, SftpStager, make_stager


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    require(SSHD, "ssh-keygen")
    with Sshd(tmp_path_factory.mktemp("ssh")) as server:
        yield server


@pytest.fixture
def wav(tmp_path):
    require("sox")
    return make_tone(tmp_path / "src.wav", 1.0, 8000, 1)


@pytest.fixture
def big_wav(tmp_path):
    require("sox")
    return make_tone(tmp_path / "big.wav", 30.0, 44100, 2)   # ~5 MB: many SFTP chunks


@pytest.fixture
def remote(tmp_path):
    # sshd runs on this machine, so the "remote" folder can be checked directly too
    return tmp_path / "asterisk" / "sounds" / "trunx"


@pytest.fixture
def stager(sshd, remote):
    return SftpStager(sshd.host, sshd.port, sshd.user, str(remote),
                      key_file=sshd.client_key, known_hosts=sshd.known_hosts, timeout=5)


def test_local_put_exists_delete(tmp_path, wav):
    s = LocalStager(str(tmp_path / "sounds"))
    assert not s.exists("aud_1")
    final = s.put(wav, "aud_1")
    assert final == str(tmp_path / "sounds" / "aud_1.wav")
    assert Path(final).read_bytes() == Path(wav).read_bytes()
    assert oct(os.stat(final).st_mode & 0o777) == "0o644"
    assert s.exists("aud_1") and os.listdir(tmp_path / "sounds") == ["aud_1.wav"]
    assert s.delete("aud_1") and not s.exists("aud_1")
    assert s.delete("aud_1") is False
    with pytest.raises(MediaError) as e:
        s.put(wav, "../escape")
    assert e.value.code == "invalid-asset-id"


def test_local_failed_put_keeps_the_old_file(tmp_path, wav):
    s = LocalStager(str(tmp_path / "sounds"))
    s.put(wav, "aud_1")
    with pytest.raises(FileNotFoundError):
        s.put(str(tmp_path / "missing.wav"), "aud_1")
    assert Path(tmp_path / "sounds" / "aud_1.wav").read_bytes() == Path(wav).read_bytes()
    assert os.listdir(tmp_path / "sounds") == ["aud_1.wav"]


def test_sftp_put_exists_delete(stager, remote, wav):
    assert not stager.exists("aud_abc123")
    final = stager.put(wav, "aud_abc123")          # also makes the remote folder (mkdir -p)
    assert final == f"{remote}/aud_abc123.wav"
    assert (remote / "aud_abc123.wav").read_bytes() == Path(wav).read_bytes()
    assert oct(os.stat(final).st_mode & 0o777) == "0o644"
    assert stager.exists("aud_abc123")
    assert stager.delete("aud_abc123") is True
    assert not stager.exists("aud_abc123") and os.listdir(remote) == []
    assert stager.delete("aud_abc123") is False


def test_sftp_restaging_replaces_the_file(stager, remote, wav, big_wav):
    stager.put(wav, "aud_1")
    stager.put(big_wav, "aud_1")
    assert (remote / "aud_1.wav").read_bytes() == Path(big_wav).read_bytes()
    assert os.listdir(remote) == ["aud_1.wav"]


class Interrupted(Exception):
    pass


def stop_at_chunk(n):
    """A put progress callback that gives up after n chunks, as a killed worker would."""
    seen = []

    def progress(sent, total):
        seen.append(sent)
        if len(seen) == n:
            raise Interrupted(f"stopped at {sent} of {total} bytes")
    return progress


def test_sftp_put_stopped_midway_leaves_nothing(stager, remote, wav, big_wav):
    stager.put(wav, "aud_keep")
    with pytest.raises(Interrupted):
        stager.put(big_wav, "aud_new", progress=stop_at_chunk(3))
    with pytest.raises(Interrupted):                          # over an existing asset
        stager.put(big_wav, "aud_keep", progress=stop_at_chunk(3))
    assert not stager.exists("aud_new")
    assert (remote / "aud_keep.wav").read_bytes() == Path(wav).read_bytes()
    assert os.listdir(remote) == ["aud_keep.wav"]             # temp files were removed


def test_sftp_connection_cut_midway_leaves_no_final_file(sshd, stager, remote, big_wav):
    calls = []

    def cut(sent, total):
        calls.append(sent)
        if len(calls) == 2:
            sshd.kill_sessions()        # the network drops, as far as both ends can tell

    with pytest.raises(MediaError) as e:
        stager.put(big_wav, "aud_cut", progress=cut)
    assert e.value.code == "staging-failed" and status_for(e.value) == 502
    assert not (remote / "aud_cut.wav").exists()
    assert not stager.exists("aud_cut")           # and sshd still serves new connections


def test_sftp_unknown_host_key_is_refused(sshd, remote, tmp_path, wav):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"[{sshd.host}]:{sshd.port} "
                     + " ".join(Path(str(other) + ".pub").read_text().split()[:2]) + "\n")
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    for known_hosts in (wrong, empty):
        s = SftpStager(sshd.host, sshd.port, sshd.user, str(remote),
                       key_file=sshd.client_key, known_hosts=str(known_hosts))
        with pytest.raises(MediaError) as e:
            s.put(wav, "aud_1")
        assert e.value.code == "staging-host-key"
        assert e.value.details["offered"] == sshd.host_key_fingerprint()
    assert not remote.exists()


def test_sftp_wrong_client_key_is_refused(sshd, remote, tmp_path, wav):
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    s = SftpStager(sshd.host, sshd.port, sshd.user, str(remote),
                   key_file=str(stranger), known_hosts=sshd.known_hosts)
    with pytest.raises(MediaError) as e:
        s.exists("aud_1")
    assert e.value.code == "staging-failed"
    assert e.value.details["reason"] == "AuthenticationException"


def test_make_stager_from_config(sshd, remote, wav, tmp_path):
    config = Config(data_dir=str(tmp_path / "data"), staging="sftp", sftp_host=sshd.host,
                    sftp_port=sshd.port, sftp_user=sshd.user, sftp_key_file=sshd.client_key,
                    sftp_known_hosts=sshd.known_hosts, asterisk_sounds_dir=str(remote))
    s = make_stager(config)
    s.put(wav, "aud_cfg")
    assert (remote / "aud_cfg.wav").exists()


def test_rendered_prompt_staged_where_asterisk_looks(tmp_path):
    from trunx.media import asterisk_path, render_tts
    require("sox", "espeak-ng")
    config = Config(data_dir=str(tmp_path / "data"), sounds_dir=str(tmp_path / "sounds"))
    rendered = render_tts("Welcome.", None, None, None, config)
    make_stager(config).put(rendered.path, "aud_welcome")
    assert asterisk_path("aud_welcome", config) + ".wav" == str(tmp_path / "sounds" /
                                                                 "aud_welcome.wav")
    assert Path(asterisk_path("aud_welcome", config) + ".wav").read_bytes() == \
        Path(rendered.path).read_bytes()
