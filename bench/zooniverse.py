"""A Zooniverse export re-aggregated: our import + aggregate against the Zooniverse team's own
extract + reduce (panoptes-aggregation's question extractor and reducer) on the same file.

An export (2,000,000 rows by default: 400,000 subjects of five answers, 20,000 volunteers,
2% gold subjects with an expert answer) is written in Zooniverse's format, in time order,
untimed. Timed: `manage.py import_zooniverse --gold-as-reference` then `manage.py aggregate`
(batch SWAP) on PostgreSQL, the issue's target being under 3 minutes for 2,000,000 rows.

The side by side runs on a smaller export (100,000 rows by default: panoptes-aggregation's
extract and reduce take about a millisecond a row, an hour at full size): our import and
aggregate into a fresh project, and `panoptes_aggregation extract` and `reduce` on the same
file, one CPU each; the ratio is theirs over ours. panoptes-aggregation pins numpy below 2.3,
which the platform's numpy is not, so it lives in a virtualenv of its own (`make bench` builds
`.venv-panoptes` from requirements-panoptes.txt); without it the side by side is skipped with
a reason.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import subprocess
import tempfile
import time
from io import StringIO
from pathlib import Path

from bench.results import BenchError, Results, log
from tests.fixtures import zooniverse as zoo

FULL_ROWS = 2_000_000
COMPARE_ROWS = 100_000
PER_SUBJECT = 5
ROWS_PER_VOLUNTEER = 100
GOLD_FRACTION = 0.02
ACCURACY = 0.8
# Subjects whose answers are interleaved in time (an export is in time order, not by subject).
WINDOW = 1_000
REFERENCE_SET = "bench-zooniverse-gold"
ROOT = Path(__file__).resolve().parent.parent
PANOPTES_ENV = "PANOPTES_AGGREGATION"
PANOPTES_VENV_CLI = ROOT / ".venv-panoptes" / "bin" / "panoptes_aggregation"
EXTRACTOR_CONFIG = f"""\
workflow_id: {zoo.WORKFLOW_ID}
workflow_version: "12.4"
extractor_config:
  question_extractor:
  - task: T0
"""
REDUCER_CONFIG = """\
reducer_config:
  question_reducer: {}
"""


def write_export(path: Path, n_rows: int, *, seed: int = 0) -> int:
    """Write an export of about `n_rows` rows to `path`, streaming; returns the rows written."""
    rng = random.Random(seed)
    n_subjects = max(1, n_rows // PER_SUBJECT)
    n_volunteers = max(PER_SUBJECT + 1, n_rows // ROWS_PER_VOLUNTEER)
    volunteers = [zoo.logged_in(f"volunteer{k}", 1000 + k) for k in range(n_volunteers)]
    expert = zoo.logged_in("expert", 999)
    written, minute = 0, 0.0
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(zoo.COLUMNS)
        for start in range(1, n_subjects + 1, WINDOW):
            window = []
            for subject in range(start, min(start + WINDOW, n_subjects + 1)):
                truth = rng.choice(("Real", "Bogus"))
                gold = rng.random() < GOLD_FRACTION
                answers = [(volunteer, truth if rng.random() < ACCURACY else _other(truth))
                           for volunteer in rng.sample(volunteers, PER_SUBJECT)]
                window += [(subject, volunteer, answer, gold, False)
                           for volunteer, answer in answers]
                if gold:
                    window.append((subject, expert, truth, True, True))
            rng.shuffle(window)
            for subject, volunteer, answer, gold, is_expert in window:
                written += 1
                minute += 0.01
                row = zoo.row(written, subject, answer, minute=minute, gold=gold,
                              expert=is_expert, **volunteer)
                writer.writerow([row[column] for column in zoo.COLUMNS])
    return written


def _other(answer: str) -> str:
    return "Bogus" if answer == "Real" else "Real"


def panoptes_cli() -> Path | None:
    """panoptes-aggregation's command: $PANOPTES_AGGREGATION, .venv-panoptes, or the PATH."""
    named = os.environ.get(PANOPTES_ENV)
    if named:
        return Path(named)
    if PANOPTES_VENV_CLI.exists():
        return PANOPTES_VENV_CLI
    found = shutil.which("panoptes_aggregation")
    return Path(found) if found else None


def run(
    results: Results,
    *,
    rows: int = FULL_ROWS,
    compare_rows: int = COMPARE_ROWS,
    panoptes: Path | None = None,
) -> None:
    """Time our import + aggregate on `rows` rows, then both sides on `compare_rows` rows.
    Django must be set up (any database; the figures mean something on PostgreSQL only)."""
    with tempfile.TemporaryDirectory(prefix="bench-zooniverse-") as folder:
        path = Path(folder) / "classifications.csv"
        log(f"zooniverse: writing an export of about {rows} rows")
        n_rows = write_export(path, rows)
        results.add("zooniverse_rows", n_rows)
        _ours(results, "zooniverse", path, n_rows)
        if panoptes is None:
            log(f"zooniverse: panoptes-aggregation not installed (no ${PANOPTES_ENV}, no "
                f"{PANOPTES_VENV_CLI.relative_to(ROOT)}, none on the PATH): side by side "
                "skipped")
            return
        log(f"zooniverse: writing an export of about {compare_rows} rows for the side by side")
        n_rows = write_export(path, compare_rows)
        results.add("zooniverse_compare_rows", n_rows)
        ours = _ours(results, "zooniverse_compare", path, n_rows)
        theirs = _theirs(results, panoptes, path, Path(folder))
        results.add("zooniverse_compare_panoptes_over_ours", theirs / ours)


def _ours(results: Results, name: str, path: Path, n_rows: int) -> float:
    """Import and aggregate into a workflow of a project of its own; total seconds."""
    from django.core.management import call_command

    from labeling import services
    from labeling.models import Classification

    workflow = services.workflow_create(slug=f"bench-{name.replace('_', '-')}",
                                        project_name=f"Bench {name}")
    log(f"{name}: import_zooniverse")
    started = time.perf_counter()
    call_command("import_zooniverse", str(path), workflow=workflow.slug,
                 gold_as_reference=REFERENCE_SET, stdout=StringIO(), stderr=StringIO())
    imported_s = time.perf_counter() - started
    stored = Classification.objects.filter(workflow=workflow).count()
    if stored != n_rows:
        raise BenchError(f"the import stored {stored} classifications of {n_rows}")
    log(f"{name}: aggregate")
    started = time.perf_counter()
    call_command("aggregate", workflow=workflow.slug, reference_sets=REFERENCE_SET,
                 stdout=StringIO(), stderr=StringIO())
    aggregated_s = time.perf_counter() - started
    results.add(f"{name}_import_s", imported_s)
    results.add(f"{name}_import_rows_per_s", n_rows / imported_s)
    results.add(f"{name}_aggregate_s", aggregated_s)
    results.add(f"{name}_ours_total_s", imported_s + aggregated_s)
    return imported_s + aggregated_s


def _theirs(results: Results, cli: Path, path: Path, folder: Path) -> float:
    extractor = folder / "extractor.yaml"
    extractor.write_text(EXTRACTOR_CONFIG)
    reducer = folder / "reducer.yaml"
    reducer.write_text(REDUCER_CONFIG)
    log("zooniverse: panoptes_aggregation extract")
    extract_s = _timed([cli, "extract", path, extractor, "-d", folder, "-o", "bench", "-c", "1",
                        "-hb"])
    extracted = folder / "question_extractor_bench.csv"
    log("zooniverse: panoptes_aggregation reduce")
    reduce_s = _timed([cli, "reduce", extracted, reducer, "-d", folder, "-o", "bench", "-c",
                       "1", "-hb"])
    if not (folder / "question_reducer_bench.csv").exists():
        raise BenchError("panoptes_aggregation reduce wrote no question_reducer_bench.csv")
    results.add("zooniverse_compare_panoptes_extract_s", extract_s)
    results.add("zooniverse_compare_panoptes_reduce_s", reduce_s)
    results.add("zooniverse_compare_panoptes_total_s", extract_s + reduce_s)
    return extract_s + reduce_s


def _timed(command: list) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise BenchError(f"{Path(command[0]).name} {command[1]} failed "
                         f"({done.returncode}): {done.stderr.strip()[-2000:]}")
    return time.perf_counter() - started
