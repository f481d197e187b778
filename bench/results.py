"""What the benchmark tells its user: figures, progress and failures.

Nothing is measured here. Figures are printed on stdout as `name: value` lines as they are
measured and saved as JSON at the end, so bench/results/latest.json holds exactly what was
printed; progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


class BenchError(RuntimeError):
    """A failure that its message explains (PostgreSQL unreachable, an answer with the wrong
    status): printed without a traceback, and the benchmark exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Results:
    def __init__(self) -> None:
        self.figures: dict[str, float | int | str] = {}

    def add(self, name: str, value: float | int | str) -> None:
        if name in self.figures:
            raise ValueError(f"figure {name!r} reported twice")
        if isinstance(value, float):
            value = round(value, 3)
        self.figures[name] = value
        print(f"{name}: {value}", flush=True)

    def save(self, path: Path = RESULTS_DIR / "latest.json") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.figures, indent=2) + "\n")
        return path


def log(message: str) -> None:
    """Progress for the person watching; stdout stays `name: value` lines only."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)
