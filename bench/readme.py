"""Regenerate the figures in README.md's Benchmarks section from a `make bench` summary.

    python -m bench.readme                  # bench/results/summary.md into README.md
    python -m bench.readme path/summary.md  # another summary

Replaces what lies between the two marker lines below in README.md, and nothing else. Exits 2
with a reason when the summary or a marker is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.results import RESULTS_DIR, SUMMARY_NAME

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- bench-summary:begin (python -m bench.readme rewrites this part) -->"
END = "<!-- bench-summary:end -->"


def replace_summary(readme: str, summary: str) -> str:
    """`readme` with the text between the markers replaced by `summary`."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1:
        raise ValueError(f"README.md must hold each marker line exactly once: {BEGIN} and {END}")
    if readme.index(END) < readme.index(BEGIN):
        raise ValueError(f"{END} must come after {BEGIN}")
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{summary.strip()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    summary_path = Path(argv[0]) if argv else RESULTS_DIR / SUMMARY_NAME
    if not summary_path.exists():
        print(f"bench.readme: no summary at {summary_path}: run `make bench` first",
              file=sys.stderr)
        return 2
    try:
        text = replace_summary(README.read_text(), summary_path.read_text())
    except ValueError as exc:
        print(f"bench.readme: {exc}", file=sys.stderr)
        return 2
    README.write_text(text)
    print(f"README.md: Benchmarks figures replaced from {summary_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
