"""An aggregation run read from PostgreSQL at scale: time per stage and peak memory.

Ten million counted classifications (2.5 million subjects, 20,000 volunteers, 8% of subjects
in a reference set) are generated inside PostgreSQL, then `manage.py aggregate` runs in a
child process whose peak resident memory the kernel reports when it exits. The rows reach
Python through `COPY ... (FORMAT binary)` in blocks, so memory stays far below a row-object
read (the issue's bound: 2 GB for ten million).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from psycopg import sql

from bench import seed
from bench.database import connect, insert_select
from bench.results import BenchError, Results, log

FULL_CLASSIFICATIONS = 10_000_000
CLASSIFICATIONS_PER_SUBJECT = 4
N_VOLUNTEERS = 20_000
REFERENCE_FRACTION = 0.08
WORKFLOW = "bench-aggregation"
REFERENCE_SET = "bench-experts"
ROOT = Path(__file__).resolve().parent.parent
# The bounds at ten million classifications: the whole command, and its peak memory.
TARGET_S = 30.0
TARGET_PEAK_MB = 2048.0


def run(results: Results, url: str, *, scale: float = 1.0) -> None:
    n_classifications = max(1000, int(FULL_CLASSIFICATIONS * scale))
    n_subjects = n_classifications // CLASSIFICATIONS_PER_SUBJECT
    log(f"aggregation: generating {n_classifications:,} classifications in PostgreSQL")
    started = time.monotonic()
    _seed(url, n_classifications, n_subjects)
    log(f"aggregation: generated in {time.monotonic() - started:.0f} s; running aggregate")

    command = [sys.executable, "manage.py", "aggregate", "--workflow", WORKFLOW,
               "--reference-sets", REFERENCE_SET]
    env = {**os.environ, "DATABASE_URL": url, "CELERY_BROKER_URL": ""}
    started = time.monotonic()
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    output = child.stdout.read().decode()
    child.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise BenchError(f"aggregate failed:\n{output}")

    from aggregation.models import AggregationRun

    aggregation_run = AggregationRun.objects.filter(workflow__slug=WORKFLOW).latest("pk")
    results.add("aggregation_db_classifications", aggregation_run.n_classifications)
    results.add("aggregation_db_subjects", aggregation_run.n_subjects)
    for stage, seconds in aggregation_run.timings.items():
        results.figure(f"aggregation_db_{stage}", seconds, unit="s")
    # The bounds are for ten million classifications; a smaller run reports its
    # figures and, with no target, a linear estimate for ten million.
    full = n_classifications == FULL_CLASSIFICATIONS
    results.figure("aggregation_db_command_s", wall, unit="s",
                   at_most=TARGET_S if full else None)
    if not full:
        # The stages scale with the rows; starting Python and Django does not.
        stages = sum(aggregation_run.timings.values())
        estimate = wall - stages + stages * FULL_CLASSIFICATIONS / n_classifications
        results.figure("aggregation_db_command_10m_linear_estimate_s", estimate, unit="s")
    # ru_maxrss is in kibibytes on Linux.
    results.figure("aggregation_db_peak_rss_mb", usage.ru_maxrss / 1024, unit="MB",
                   at_most=TARGET_PEAK_MB if full else None)


def _seed(url: str, n_classifications: int, n_subjects: int) -> None:
    from labeling import services

    workflow = services.workflow_create(slug=WORKFLOW, project_name="Aggregation benchmark")
    subject_set = services.subject_set_attach(workflow=workflow, name="bench")
    team = services.expert_team_get_or_create(REFERENCE_SET)
    reference_set = services.reference_set_get_or_create(name=REFERENCE_SET, team=team)
    with connect(url) as conn:
        # Stamp-less subjects: the aggregation reads ids only.
        insert_select(
            conn, "labeling_subject",
            {"project_id": "%(project)s", "subject_set_id": "%(set)s",
             "external_id": "'bench-' || g", "origin": "'ss'", "stamp_size": "51",
             "original_shapes": "'[]'"},
            "FROM generate_series(1, %(n)s) g",
            {"project": workflow.project_id, "set": subject_set.pk, "n": n_subjects},
        )
        seed.insert_volunteers(conn, "bench-", N_VOLUNTEERS)
        seed.insert_reference_labels(conn, reference_set.pk, subject_set.pk, REFERENCE_FRACTION)
        # Volunteer activity is heavy-tailed (a cube of a uniform draw), answers are coin flips:
        # the benchmark measures the machinery, not the science.
        # Deferred foreign-key checks of the rows above must fire before the table is altered.
        conn.commit()
        with _without_indexes(conn, "labeling_classification"):
            _insert_classifications(conn, workflow.pk, subject_set.pk, n_classifications,
                                    n_subjects)
        conn.execute("ANALYZE labeling_classification")


@contextlib.contextmanager
def _without_indexes(conn, table: str):
    """Drop a table's secondary indexes, unique and foreign-key constraints, and put them back
    afterwards: building each once is minutes faster than maintaining eight of them through
    ten million inserts. Only ever used on the throwaway benchmark database."""
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('u', 'f')", (table,)
    ).fetchall()
    for name, _ in constraints:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            sql.Identifier(table), sql.Identifier(name)))
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s"
        " AND indexname NOT LIKE '%%_pkey'", (table,)
    ).fetchall()
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    # No try/finally: DDL is transactional, so a failure rolls the drops back with the rest.
    yield
    for _, definition in indexes:
        conn.execute(definition)
    for name, definition in constraints:
        conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
            sql.Identifier(table), sql.Identifier(name)) + sql.SQL(definition))


def _insert_classifications(conn, workflow_id: int, subject_set_id: int, n_classifications: int,
                            n_subjects: int) -> None:
    insert_select(
        conn, "labeling_classification",
        {"client_id": "gen_random_uuid()",
         "volunteer_id": "v.first + floor(random() ^ 3 * %(nv)s)::bigint",
         "subject_id": "s.first + (g %% %(ns)s)", "workflow_id": "%(workflow)s",
         "answer": "CASE WHEN random() < 0.5 THEN 'real' ELSE 'bogus' END",
         "created_at": "now() + g * interval '1 millisecond'", "counted": "true"},
        "FROM generate_series(1, %(n)s) g,"
        " (SELECT min(id) AS first FROM labeling_volunteer"
        "  WHERE external_name LIKE 'bench-%%') v,"
        " (SELECT min(id) AS first FROM labeling_subject WHERE subject_set_id = %(set)s) s",
        {"nv": N_VOLUNTEERS, "ns": n_subjects, "workflow": workflow_id,
         "n": n_classifications, "set": subject_set_id},
    )
