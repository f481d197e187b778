"""Where the cores go while a load runs: CPU time of the web server, of PostgreSQL, of the
load generator and of everything else on the machine over the measured window, as a
percentage of one core (this machine has two, so 200 is all of it).

The three share the machine, so a throughput figure means little without the split: a load
generator eating half a core, or a database pegged at 100, changes what the number says
about the application. "Everything else" is whatever else the machine was running (a test
suite, a build): when it is large, the run was disturbed and its figures are low. Read from
/proc; processes that start during the window count whole.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Process:
    pid: int
    ppid: int
    comm: str
    ticks: int


def _busy_ticks() -> int:
    """Ticks all CPUs spent on anything but idling and waiting for the disk (proc(5))."""
    # The "cpu" line: user nice system idle iowait irq softirq steal ...
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(ticks) - ticks[3] - ticks[4]


def _processes() -> list[_Process]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited while we looked
            continue
        # The command name is in parentheses and may hold spaces; the fields after it are not.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        # utime and stime, the 14th and 15th fields of stat(5)
        ticks = int(fields[11]) + int(fields[12])
        found.append(_Process(int(entry.name), int(fields[1]), comm, ticks))
    return found


@dataclass(frozen=True)
class _Snapshot:
    wall: float
    own_cpu: float
    busy: int
    server: dict[int, int]
    postgres: dict[int, int]


@dataclass(frozen=True)
class CpuShare:
    server_pct: float
    postgres_pct: float
    loadgen_pct: float
    other_pct: float


class CpuMeter:
    """CPU of the gunicorn process tree under `server_pid`, of every `postgres` process, and
    of this process (the load generator), between `start()` and `stop()`."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._start: _Snapshot | None = None
        self.share: CpuShare | None = None

    def _snapshot(self) -> _Snapshot:
        processes = _processes()
        server = {
            p.pid: p.ticks for p in processes if self.server_pid in (p.pid, p.ppid)
        }
        postgres = {p.pid: p.ticks for p in processes if p.comm == "postgres"}
        return _Snapshot(time.monotonic(), time.process_time(), _busy_ticks(), server, postgres)

    def start(self) -> None:
        self._start = self._snapshot()

    def stop(self) -> None:
        if self._start is None:
            raise RuntimeError("CpuMeter.stop() before start()")
        before, after = self._start, self._snapshot()
        wall = after.wall - before.wall

        def pct(ticks: int) -> float:
            return 100.0 * ticks / _TICKS_PER_S / wall

        def process_ticks(start: dict[int, int], end: dict[int, int]) -> int:
            return sum(t - start.get(pid, 0) for pid, t in end.items())

        server = pct(process_ticks(before.server, after.server))
        postgres = pct(process_ticks(before.postgres, after.postgres))
        loadgen = 100.0 * (after.own_cpu - before.own_cpu) / wall
        self.share = CpuShare(
            server_pct=server,
            postgres_pct=postgres,
            loadgen_pct=loadgen,
            other_pct=pct(after.busy - before.busy) - server - postgres - loadgen,
        )
