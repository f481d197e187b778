"""What the benchmark tells its user: figures, their targets, progress and failures.

Nothing is measured here. Figures are printed on stdout as `name: value` lines as they are
measured. At the end `save` writes one JSON of every figure (with its unit and target, and the
machine's load average before and after the run) and a Markdown summary next to it: a table
of the figures that have a target (value, target, ratio value/target, met or not), then every
other figure. The README's Benchmarks section is regenerated from that summary
(`python -m bench.readme`).

A benchmark module reports with `results.figure(name, value, unit=..., at_most=...)` (or
`at_least=...` where more is better); `results.add(name, value)` is a figure with no unit and
no target.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SUMMARY_NAME = "summary.md"


class BenchError(RuntimeError):
    """A failure that its message explains (PostgreSQL unreachable, an answer with the wrong
    status): printed without a traceback, and the benchmark exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Target:
    """A figure's target: `value` is a bound, an upper one (`at_most`) or a lower one."""

    value: float
    at_most: bool

    def met(self, figure: float) -> bool:
        return figure <= self.value if self.at_most else figure >= self.value

    def describe(self, unit: str) -> str:
        bound = "<=" if self.at_most else ">="
        return f"{bound} {_number(self.value)}{f' {unit}' if unit else ''}"


def _number(value: float | int | str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    magnitude = abs(value)
    return f"{value:,.1f}" if magnitude >= 100 else f"{value:.3g}"


def load_average() -> tuple[float, float, float]:
    """The machine's 1, 5 and 15-minute load averages: other work sharing the cores makes
    wall times longer, so every summary says how busy the machine was."""
    return os.getloadavg()


class Results:
    def __init__(self) -> None:
        self.figures: dict[str, float | int | str] = {}
        self.units: dict[str, str] = {}
        self.targets: dict[str, Target] = {}
        self.started_at = dt.datetime.now(dt.UTC)
        self.load_before = load_average()

    def add(self, name: str, value: float | int | str) -> None:
        """A figure with no unit and no target."""
        self.figure(name, value)

    def figure(
        self, name: str, value: float | int | str, *, unit: str = "",
        at_most: float | None = None, at_least: float | None = None,
    ) -> None:
        """Report a figure; `at_most` or `at_least` is its target, if it has one."""
        if name in self.figures:
            raise ValueError(f"figure {name!r} reported twice")
        if at_most is not None and at_least is not None:
            raise ValueError(f"figure {name!r}: give at_most or at_least, not both")
        if isinstance(value, float):
            value = round(value, 3)
        self.figures[name] = value
        if unit:
            self.units[name] = unit
        bound = at_most if at_most is not None else at_least
        if bound is not None:
            if not isinstance(value, int | float):
                raise ValueError(f"figure {name!r} has a target, so it must be a number")
            self.targets[name] = Target(float(bound), at_most=at_most is not None)
        print(f"{name}: {value}", flush=True)

    def ratio(self, name: str) -> float | None:
        """value / target of a figure with a target (for an upper bound, <= 1 is met)."""
        target = self.targets.get(name)
        if target is None or not target.value:
            return None
        return float(self.figures[name]) / target.value

    def as_json(self) -> dict:
        return {
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(), "platform": platform.platform(),
                "python": sys.version.split()[0],
                "load_average_before": list(self.load_before),
                "load_average_after": list(load_average()),
            },
            "figures": self.figures,
            "units": self.units,
            "targets": {name: asdict(target) for name, target in self.targets.items()},
        }

    def save(self, path: Path = RESULTS_DIR / "latest.json") -> Path:
        """Write the JSON to `path` and the Markdown summary next to it (`summary.md` for
        latest.json, `summary-<names>.md` for latest-<names>.json)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.as_json()
        path.write_text(json.dumps(data, indent=2) + "\n")
        summary_path(path).write_text(summary_markdown(data))
        return path


def summary_path(json_path: Path) -> Path:
    """Where the summary of `json_path` goes: summary.md for latest.json,
    summary-<names>.md for latest-<names>.json."""
    return json_path.with_name(f"summary{json_path.stem.removeprefix('latest')}.md")


def summary_markdown(data: dict) -> str:
    """The Markdown summary of a saved run (the JSON `Results.as_json` writes)."""
    figures, units = data["figures"], data["units"]
    targets = {name: Target(**t) for name, t in data["targets"].items()}
    machine = data["machine"]
    before = ", ".join(f"{x:.2f}" for x in machine["load_average_before"])
    after = ", ".join(f"{x:.2f}" for x in machine["load_average_after"])
    lines = [
        f"Measured {data['started_at']} on {machine['cpus']} CPUs ({machine['platform']}, "
        f"Python {machine['python']}); load average (1, 5, 15 min) {before} before the run "
        f"and {after} after it.",
        "",
    ]
    if targets:
        met = sum(target.met(float(figures[name])) for name, target in targets.items())
        lines += [
            f"Targets: {met} of {len(targets)} met.",
            "",
            "| figure | value | target | ratio value/target | met |",
            "|---|---|---|---|---|",
        ]
        for name, target in targets.items():
            value = figures[name]
            unit = units.get(name, "")
            ratio = float(value) / target.value if target.value else float("nan")
            lines.append(
                f"| `{name}` | {_number(value)}{f' {unit}' if unit else ''} "
                f"| {target.describe(unit)} | {ratio:.2f} "
                f"| {'yes' if target.met(float(value)) else '**no**'} |"
            )
        lines.append("")
    others = [name for name in figures if name not in targets]
    if others:
        lines += ["| figure | value |", "|---|---|"]
        for name in others:
            unit = units.get(name, "")
            lines.append(f"| `{name}` | {_number(figures[name])}{f' {unit}' if unit else ''} |")
        lines.append("")
    return "\n".join(lines)


def log(message: str) -> None:
    """Progress for the person watching; stdout stays `name: value` lines only."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)
