"""Regenerate the figures in README.md's Benchmarks section from a `make bench` summary.

    python -m bench.readme                  # bench/results/summary.md into README.md
    python -m bench.readme path/summary.md  # another summary (several: one after another)

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
    paths = [Path(arg) for arg in argv] or [RESULTS_DIR / SUMMARY_NAME]
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        print(f"bench.readme: no summary at {', '.join(missing)}: run `make bench` first",
              file=sys.stderr)
        return 2
    summary = "\n\n".join(path.read_text().strip() for path in paths)
    try:
        text = replace_summary(README.read_text(), summary)
    except ValueError as exc:
        print(f"bench.readme: {exc}", file=sys.stderr)
        return 2
    README.write_text(text)
    print(f"README.md: Benchmarks figures replaced from {', '.join(map(str, paths))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
