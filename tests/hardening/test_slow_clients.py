"""Slow clients cannot starve the web process behind nginx: with four connections sending their
headers slowly, /api/health/ through nginx (deploy/nginx.conf) still answers, while gunicorn
reached directly is starved by the same attack. Loopback only, every wait bounded."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ATTACKERS = 4
START_S = 60  # bound on waiting for a server to listen
HEALTHY_S = 10  # bound on one health request that must succeed
STARVED_S = 3  # how long a health request waits to show it is starved

pytestmark = pytest.mark.skipif(
    not Path(NGINX).exists(),
    reason="needs nginx (Debian package nginx-light; `make test` and CI install it)",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server on port {port} exited"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    pytest.fail(f"nothing listened on port {port} within {START_S} s")


@contextlib.contextmanager
def _running(command: list[str], port: int, **kwargs):
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               **kwargs)
    try:
        _wait_listening(port, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _nginx_conf(tmp_path: Path, listen: int, upstream: int) -> Path:
    """deploy/nginx.conf, pointed at loopback ports and a private folder."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    for old, new in [("server web:8000;", f"server 127.0.0.1:{upstream};"),
                     ("listen 80 default_server;", f"listen 127.0.0.1:{listen};"),
                     ("pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;"),
                     ("http {", f"http {{\n    access_log off;\n"
                                f"    client_body_temp_path {tmp_path}/body;\n"
                                f"    proxy_temp_path {tmp_path}/proxy;")]:
        assert old in conf, old
        conf = conf.replace(old, new)
    path = tmp_path / "nginx.conf"
    path.write_text(conf)
    return path


@contextlib.contextmanager
def _slow_clients(port: int):
    """ATTACKERS connections that send part of their headers and then nothing more."""
    sockets = []
    try:
        for _ in range(ATTACKERS):
            attacker = socket.create_connection(("127.0.0.1", port), 5)
            attacker.sendall(b"GET /api/health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            sockets.append(attacker)
        time.sleep(0.5)  # let the server pick the connections up
        yield
    finally:
        for attacker in sockets:
            attacker.close()


def _health(port: int, timeout: float) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/", timeout=timeout) as reply:
        return reply.status


def test_health_stays_up_behind_nginx_while_slow_clients_starve_bare_gunicorn(tmp_path):
    gunicorn_port, nginx_port = _free_port(), _free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "DATABASE_URL": "sqlite:///:memory:", "DJANGO_ALLOWED_HOSTS": "127.0.0.1"}
    # The production worker class, with fewer threads than attackers.
    gunicorn = [sys.executable, "-m", "gunicorn", "config.wsgi:application",
                "--bind", f"127.0.0.1:{gunicorn_port}", "--workers", "1",
                "--worker-class", "gthread", "--threads", "2", "--timeout", "60"]
    nginx = [NGINX, "-c", str(_nginx_conf(tmp_path, nginx_port, gunicorn_port)),
             "-p", str(tmp_path), "-g", f"daemon off; error_log {tmp_path}/error.log;"]
    with _running(gunicorn, gunicorn_port, cwd=ROOT, env=env), \
            _running(nginx, nginx_port):
        assert _health(gunicorn_port, HEALTHY_S) == 200
        # Through nginx: it holds the slow connections itself.
        with _slow_clients(nginx_port):
            assert [_health(nginx_port, HEALTHY_S) for _ in range(3)] == [200, 200, 200]
        # The same attack on gunicorn itself takes every thread: the check goes unanswered.
        with _slow_clients(gunicorn_port), pytest.raises(TimeoutError):
            _health(gunicorn_port, STARVED_S)
