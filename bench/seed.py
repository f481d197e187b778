"""Bulk seeding shared by the benchmarks: a workflow, its subjects and status rows, and
volunteers with API tokens.

Nothing is measured here. Subjects are written straight into the tables with COPY instead
of through the ingest pipeline: the benchmarks time serving, not ingest, and every subject
points at one stamps file because nothing here renders images.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
from tqdm import tqdm

from bench.database import copy_rows, insert_select, reserve_ids

# Rows per COPY chunk: large enough that Python's per-chunk cost vanishes, small enough
# that the progress bar moves.
CHUNK = 20_000
NULL = "\\N"  # COPY's text format for NULL


def make_workflow(slug: str):
    """A workflow with the default retirement rule, and the subject set its subjects join."""
    from labeling import services

    workflow = services.workflow_create(slug=slug, project_name=f"bench {slug}")
    subject_set = services.subject_set_attach(workflow=workflow, name=f"{slug}-subjects")
    return workflow, subject_set


def write_stamps(project_id: int) -> str:
    """One stamps file, as ingest writes it, that every benchmark subject points at."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from labeling import stamps

    cube = np.random.default_rng(0).normal(100.0, 5.0, (3, 51, 51)).astype(np.float32)
    return default_storage.save(
        f"bench/{project_id}/stamps.npy", ContentFile(stamps.cube_to_bytes(cube))
    )


def _chunks(n: int, make_lines, desc: str) -> Iterator[str]:
    with tqdm(total=n, desc=desc, unit="row", unit_scale=True, leave=False) as bar:
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            yield make_lines(start, stop)
            bar.update(stop - start)


def copy_subjects(
    conn: psycopg.Connection, subject_set, n: int, created_at: str = "now"
) -> np.ndarray:
    """COPY `n` subjects into `subject_set`; return their ids (consecutive)."""
    first = reserve_ids(conn, "labeling_subject", n)
    stamps_name = write_stamps(subject_set.project_id)
    shapes = "[[51, 51], [51, 51], [51, 51]]"
    snr = np.random.default_rng(1).lognormal(2.3, 0.6, n)

    def lines(start: int, stop: int) -> str:
        return "".join(
            f"{first + i}\t{subject_set.project_id}\t{subject_set.pk}\tbench-{first + i}\t"
            f"ss\t{snr[i]:.3f}\t\t{{}}\t{stamps_name}\t51\t{shapes}\t\t{created_at}\n"
            for i in range(start, stop)
        )

    copy_rows(
        conn, "labeling_subject",
        ["id", "project_id", "subject_set_id", "external_id", "origin", "snr", "band",
         "metadata", "stamps", "stamp_size", "original_shapes", "source", "created_at"],
        _chunks(n, lines, "subjects"),
    )
    return np.arange(first, first + n)


def copy_statuses(
    conn: psycopg.Connection,
    workflow_id: int,
    subject_ids: np.ndarray,
    *,
    n_counted: np.ndarray | None = None,
    first_answer: np.ndarray | None = None,
    unanimous: np.ndarray | None = None,
    retired_at: np.ndarray | None = None,
) -> None:
    """COPY one SubjectWorkflowStatus per subject, fresh unless the state arrays are given.

    `retired_at` holds ISO timestamps, "" for an unretired subject. The random key is
    uniform, as ingest draws it: queue selection relies on that.
    """
    n = len(subject_ids)
    random_key = np.random.default_rng(2).random(n)
    if n_counted is None:
        n_counted = np.zeros(n, dtype=np.int64)
        first_answer = np.full(n, "", dtype=object)
        unanimous = np.ones(n, dtype=bool)
        retired_at = np.full(n, "", dtype=object)

    def lines(start: int, stop: int) -> str:
        return "".join(
            f"{workflow_id}\t{subject_ids[i]}\t{n_counted[i]}\t{first_answer[i]}\t"
            f"{'t' if unanimous[i] else 'f'}\t{'t' if retired_at[i] else 'f'}\t"
            f"{retired_at[i] or NULL}\t0\t{random_key[i]:.17g}\n"
            for i in range(start, stop)
        )

    copy_rows(
        conn, "labeling_subjectworkflowstatus",
        ["workflow_id", "subject_id", "n_counted", "first_answer", "unanimous", "retired",
         "retired_at", "priority", "random_key"],
        _chunks(n, lines, "subject statuses"),
    )


def volunteers_with_tokens(prefix: str, n: int) -> list[tuple[int, str]]:
    """`n` signed-in volunteers with DRF tokens; returns (volunteer id, token key) pairs.

    Passwords are left unusable: hashing one costs about a second of PBKDF2, and the
    benchmark authenticates with tokens only.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from rest_framework.authtoken.models import Token

    from labeling.models import Volunteer

    user_model = get_user_model()
    users = user_model.objects.bulk_create(
        user_model(username=f"{prefix}-{i}", password=make_password(None)) for i in range(n)
    )
    tokens = Token.objects.bulk_create(
        Token(key=Token.generate_key(), user=user) for user in users
    )
    volunteers = Volunteer.objects.bulk_create(Volunteer(user=user) for user in users)
    return [(v.pk, t.key) for v, t in zip(volunteers, tokens, strict=True)]


def token_users(tokens: list[str]) -> dict[str, int]:
    """{DRF token key: its user's id}."""
    from rest_framework.authtoken.models import Token

    return dict(Token.objects.filter(key__in=tokens).values_list("key", "user_id"))


def served_token(user_id: int, workflow_id: int, subject_id: int) -> str:
    """The token the queue would give this signed-in volunteer for the subject: the
    benchmark's clients answer subjects chosen for them, as if the queue had served them."""
    from labeling import serving

    return serving.served_token(serving.Identity(f"user:{user_id}"), workflow_id, subject_id)


def live_run(workflow) -> None:
    """Give the workflow a live SWAP run (empty: no answers yet), so that every answer the
    benchmark sends takes the live step in its transaction, as in production."""
    from aggregation import services as aggregation_services
    from labeling import services

    team = services.expert_team_get_or_create("bench-experts")
    reference_set = services.reference_set_get_or_create(name="bench-gold", team=team)
    run = aggregation_services.run_create(workflow=workflow, reference_sets=[reference_set],
                                          mode="online")
    aggregation_services.run_execute(run.pk)


def insert_volunteers(conn: psycopg.Connection, prefix: str, n: int) -> None:
    """`n` volunteers named `prefix` + 1..n, generated inside PostgreSQL."""
    insert_select(
        conn, "labeling_volunteer", {"external_name": "%(prefix)s || g"},
        "FROM generate_series(1, %(n)s) g", {"prefix": prefix, "n": n},
    )


def insert_reference_labels(conn: psycopg.Connection, reference_set_id: int,
                            subject_set_id: int, fraction: float) -> None:
    """A coin-flip reference label on about `fraction` of the subject set's subjects."""
    insert_select(
        conn, "labeling_referencelabel",
        {"reference_set_id": "%(reference_set)s", "subject_id": "id",
         "label": "CASE WHEN random() < 0.5 THEN 'real' ELSE 'bogus' END"},
        "FROM labeling_subject WHERE subject_set_id = %(set)s AND random() < %(fraction)s",
        {"reference_set": reference_set_id, "set": subject_set_id, "fraction": fraction},
    )
