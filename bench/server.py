"""The web server under test: gunicorn serving config.wsgi on a free local port.

Nothing is measured here. It starts gunicorn the way production would run it (no DEBUG,
persistent database connections), waits until it answers, and always stops it again, also
on errors and Ctrl-C, so that no worker outlives the benchmark.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class GunicornConfig:
    worker_class: str  # "sync" or "gthread"
    workers: int
    threads: int = 1

    @property
    def name(self) -> str:
        if self.worker_class == "gthread":
            return f"gthread_w{self.workers}_t{self.threads}"
        return f"{self.worker_class}_w{self.workers}"

    def describe(self) -> str:
        threads = f" --threads {self.threads}" if self.worker_class == "gthread" else ""
        return f"--worker-class {self.worker_class} --workers {self.workers}{threads}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gunicorn:
    """`with Gunicorn(config, database_url) as server:` serves on 127.0.0.1:`server.port`."""

    def __init__(self, config: GunicornConfig, database_url: str, media_root: Path) -> None:
        self.config = config
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url,
            # One connection per worker thread for the whole run (the settings keep them
            # 60 s by default): a new PostgreSQL connection costs more than a request.
            "DATABASE_CONN_MAX_AGE": "3600",
            "DJANGO_DEBUG": "false",
            "DJANGO_MEDIA_ROOT": str(media_root),
            "LOG_LEVEL": "WARNING",
            # A few volunteers stand in for thousands here: each answers far faster than a
            # person can, so the per-volunteer answer limit is lifted (its cost is still paid).
            "ANSWERS_PER_MINUTE": str(10**9),
        }
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> Gunicorn:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "config.wsgi:application",
                "--bind", f"127.0.0.1:{self.port}",
                *self.config.describe().split(),
                # Closed-loop clients reuse a connection at once; this only has to outlast
                # the moment between two requests.
                "--keep-alive", "10",
                # Heartbeat files on tmpfs, so that worker liveness never waits on the disk.
                "--worker-tmp-dir", "/dev/shm",
                "--log-level", "warning",
            ],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C reaches the benchmark, which stops gunicorn in order.
            start_new_session=True,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.port}/api/health/"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer {url} within {timeout_s:.0f} s:\n{self.log()}")

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGTERM lets the master stop its workers; SIGKILL to the group (ours, from
        # start_new_session) only if that hangs.
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __exit__(self, *exc_info) -> None:
        self.stop()
        self._log.close()
