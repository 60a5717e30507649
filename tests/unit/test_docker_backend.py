"""Which Asterisk the test fixtures run: a container only where a Docker engine answers the
Engine API's `GET /_ping` with `200 OK` (Docker Engine API reference, "Ping": the body is
`OK`). The engine here is a local stand-in on a unix socket, as Docker listens on one."""
from __future__ import annotations

import socket
import threading

import pytest

from devtools.stack import backend, docker_answers


def fake_engine(path: str, reply: bytes) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def serve():
        conn, _ = server.accept()
        with conn, server:
            conn.recv(4096)
            conn.sendall(reply)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_an_engine_answering_ping_is_docker(tmp_path):
    sock = str(tmp_path / "docker.sock")
    thread = fake_engine(sock, b"HTTP/1.1 200 OK\r\nApi-Version: 1.45\r\n"
                               b"Content-Type: text/plain\r\n\r\nOK")
    assert docker_answers(docker_host=f"unix://{sock}")
    thread.join(5)


def test_an_engine_in_error_is_not(tmp_path):
    sock = str(tmp_path / "docker.sock")
    thread = fake_engine(sock, b"HTTP/1.1 500 Internal Server Error\r\n\r\nboom")
    assert not docker_answers(docker_host=f"unix://{sock}")
    thread.join(5)


@pytest.mark.parametrize("host", ["unix:///nonexistent/docker.sock", "ssh://somewhere",
                                  "tcp://127.0.0.1:1"])
def test_no_engine_is_chroot(host, monkeypatch):
    assert not docker_answers(docker_host=host)
    monkeypatch.setenv("DOCKER_HOST", host)
    monkeypatch.delenv("TRUNX_STACK", raising=False)
    assert backend() == "chroot"


def test_trunx_stack_forces_a_backend(monkeypatch):
    monkeypatch.setenv("TRUNX_STACK", "docker")
    assert backend() == "docker"
    monkeypatch.setenv("TRUNX_STACK", "chroot")
    assert backend() == "chroot"
