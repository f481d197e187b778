"""Reads for aggregation: classifications as arrays (streamed), reference truth, run results.

A run over ten million classifications must not hold ten million model instances or Python
tuples: on PostgreSQL the rows arrive through `COPY ... TO STDOUT (FORMAT binary)` as blocks
of a million rows, each column of a block one array that numpy decodes at once (see
`aggregation.pgbinary`); elsewhere a server-side iterator feeds fixed-size chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction
from django.db.models import Max, QuerySet

from aggregation import pgbinary
from aggregation.models import AggregationRun, SubjectPosterior, VolunteerSkill
from aggregation.swap import BOGUS, REAL, UNKNOWN, ClassificationTable
from labeling import rules
from labeling import selectors as labeling_selectors
from labeling.errors import InvalidInput, NotFound
from labeling.models import Classification, ReferenceLabel, ReferenceSet, Subject, Workflow
from labeling.records import (
    DEFAULT_UNION_POLICY,
    UNION_POLICIES,
    union_label,
)
from simulation.triplets import TRUTH_METADATA_KEY

# Reference-set lists are written "rubin+oxford" (as DMTN-337 names them) or "rubin,oxford".
REFERENCE_SEPARATORS = ("+", ",")
LABEL_CODES = {"real": REAL, "bogus": BOGUS}
# Where a run keeps its union policy: in its summary, written when the run is created.
UNION_POLICY_KEY = "union_policy"
_CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class ClassificationData:
    """The answers of a workflow SWAP reads (`swap_evidence`), in time order, as a table.

    `subject_ids[i]` and `volunteer_ids[j]` are the database ids behind table indices i, j.
    """

    table: ClassificationTable
    subject_ids: np.ndarray
    volunteer_ids: np.ndarray
    last_classification_id: int | None


def _split_names(spec: str) -> list[str]:
    names = [spec]
    for separator in REFERENCE_SEPARATORS:
        names = [part for name in names for part in name.split(separator)]
    return [name.strip() for name in names if name.strip()]


def reference_sets_parse(spec: str) -> list[ReferenceSet]:
    """`rubin`, `rubin+oxford` or `rubin,oxford` -> the reference sets, all of which must exist,
    in the order given (the union's order, which the `first` policy follows)."""
    names = _split_names(spec)
    if not names:
        raise InvalidInput("name at least one reference set, e.g. rubin or rubin+oxford")
    found = {s.name: s for s in ReferenceSet.objects.filter(name__in=names)}
    missing = [name for name in names if name not in found]
    if missing:
        known = ", ".join(ReferenceSet.objects.order_by("name").values_list("name", flat=True))
        raise InvalidInput(
            f"unknown reference set(s): {', '.join(missing)} (known: {known or 'none'})"
        )
    return [found[name] for name in dict.fromkeys(names)]


def classification_data(workflow_id: int, *, through_id: int | None = None) -> ClassificationData:
    """The workflow's answers SWAP reads (up to `through_id`), ordered by server time."""
    if connection.vendor == "postgresql":
        columns = _array_columns(workflow_id, through_id)
    else:
        columns = _iterator_columns(workflow_id, through_id)
    ids, subjects, volunteers, says_real = columns
    last = int(ids.max()) if len(ids) else None
    del ids, columns
    # Each raw id column is dropped as soon as its dense index exists: at ten million rows
    # every int64 column is 80 MB.
    subject_ids, subject_index = np.unique(subjects, return_inverse=True)
    del subjects
    volunteer_ids, volunteer_index = np.unique(volunteers, return_inverse=True)
    del volunteers
    table = ClassificationTable(
        subject=subject_index,
        volunteer=volunteer_index,
        says_real=says_real,
        n_subjects=len(subject_ids),
        n_volunteers=len(volunteer_ids),
    )
    return ClassificationData(table, subject_ids, volunteer_ids, last)


def last_classification_id(workflow_id: int) -> int | None:
    """The highest classification id such that every lower one is committed.

    On PostgreSQL a SHARE lock waits for every open insert into the table to commit, and
    later inserts draw higher ids from the sequence, so nothing at or below the mark can
    still appear afterwards. The lock lasts one statement: answers wait milliseconds.
    """
    with transaction.atomic():
        lock_classifications()
        return Classification.objects.filter(workflow_id=workflow_id).aggregate(m=Max("pk"))["m"]


def lock_classifications() -> None:
    """Until the caller's transaction ends, new classifications wait, and every one already
    being inserted has committed (PostgreSQL; SQLite serialises writers anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Classification._meta.db_table} IN SHARE MODE")


def evidence_after(workflow_id: int, after_id: int, through_id: int | None):
    """(id, subject id, volunteer id, answer) of the answers SWAP reads with ids in
    (after_id, through_id], in the order a replay applies them."""
    rows = swap_evidence(Classification.objects.filter(workflow_id=workflow_id, pk__gt=after_id))
    if through_id is not None:
        rows = rows.filter(pk__lte=through_id)
    return rows.order_by("created_at", "pk").values_list(
        "pk", "subject_id", "volunteer_id", "answer"
    )


def swap_evidence(classifications: QuerySet[Classification]) -> QuerySet[Classification]:
    """The answers SWAP reads, by `labeling.rules.swap_reads`: every answer except a
    volunteer's repeats and experts' answers on reference subjects, counted toward retirement
    or not. Everything that feeds SWAP (runs, the live state, imports) filters through here."""
    return classifications.exclude(not_counted_reason__in=rules.NOT_SWAP_EVIDENCE)


def _evidence(workflow_id: int, through_id: int | None):
    rows = swap_evidence(Classification.objects.filter(workflow_id=workflow_id))
    if through_id is not None:
        rows = rows.filter(pk__lte=through_id)
    return rows.order_by("created_at", "pk")


def _iterator_columns(workflow_id: int, through_id: int | None) -> tuple[np.ndarray, ...]:
    rows = _evidence(workflow_id, through_id).values_list(
        "pk", "subject_id", "volunteer_id", "answer"
    )
    chunks: list[tuple[np.ndarray, ...]] = []
    batch: list[tuple] = []
    for row in rows.iterator(chunk_size=_CHUNK_ROWS):
        batch.append(row)
        if len(batch) == _CHUNK_ROWS:
            chunks.append(_columns_of(batch))
            batch = []
    if batch:
        chunks.append(_columns_of(batch))
    return _concatenate(chunks)


def _columns_of(batch: list[tuple]) -> tuple[np.ndarray, ...]:
    ids, subjects, volunteers, answers = zip(*batch, strict=True)
    return (
        np.array(ids, dtype=np.int64),
        np.array(subjects, dtype=np.int64),
        np.array(volunteers, dtype=np.int64),
        np.array(answers) == "real",
    )


# Rows per block of the PostgreSQL read: ids are grouped id // _BLOCK_IDS, so a block holds
# at most this many rows (12 MB per int8 column).
_BLOCK_IDS = 1_000_000
# The columns `_array_columns` reads, each as one array per block.
_ARRAY_COLUMNS = (
    ("id", "int8"), ("subject_id", "int8"), ("volunteer_id", "int8"),
    ("answer = 'real'", "bool"), ("created_at", "timestamptz"),
)


def _array_columns(workflow_id: int, through_id: int | None) -> tuple[np.ndarray, ...]:
    """The rows of `_evidence` on PostgreSQL, as columns, through `COPY ... TO STDOUT (FORMAT
    binary)` in blocks: each COPY row is a block of up to _BLOCK_IDS rows, every column one
    array in its binary form (`array_send`) that numpy decodes at once. The rows are put in
    time order here (a stable sort by server time, then id), not by the server."""
    query = _evidence(workflow_id, through_id).order_by().values_list(
        "pk", "subject_id", "volunteer_id", "answer", "created_at"
    ).query
    rows_sql, params = query.sql_with_params()
    aggregates = ", ".join(
        f"array_send(array_agg({expression}))" for expression, _ in _ARRAY_COLUMNS
    )
    # Django's SELECT stays as it is (the row filter drops in); its columns are named here.
    sql = (
        f"SELECT {aggregates} FROM ({rows_sql}) AS rows (id, subject_id, volunteer_id, answer,"
        f" created_at) GROUP BY id / {_BLOCK_IDS}"
    )
    blocks = []
    with connection.cursor() as cursor:
        statement = cursor.cursor.mogrify(sql, params)
        with cursor.cursor.copy(f"COPY ({statement}) TO STDOUT (FORMAT binary)") as copy:
            for row in pgbinary.decode_copy_rows(copy):
                blocks.append(tuple(
                    pgbinary.decode_array(data, pg_type)
                    for data, (_, pg_type) in zip(row, _ARRAY_COLUMNS, strict=True)
                ))
    ids, subjects, volunteers, says_real, created = _concatenate(blocks, 5)
    del blocks
    order = np.lexsort((ids, created))
    del created
    return ids[order], subjects[order], volunteers[order], says_real[order]


def _concatenate(chunks: list[tuple[np.ndarray, ...]], n_columns: int = 4
                 ) -> tuple[np.ndarray, ...]:
    """Each column's chunks joined: ids, subjects, volunteers (int64), says Real (bool), and
    any further int64 columns."""
    if not chunks:
        kinds = [np.int64, np.int64, np.int64, bool][:n_columns]
        return tuple(np.empty(0, kind) for kind in kinds + [np.int64] * (n_columns - 4))
    return tuple(np.concatenate(parts) for parts in zip(*chunks, strict=True))


@dataclass(frozen=True)
class ReferenceTruth:
    """Known labels for a table's subjects under a union of reference sets."""

    truth: np.ndarray  # int8 per subject index: REAL, BOGUS or UNKNOWN
    conflicts: list[int]  # subject ids the sets label differently (the policy settled them)


def reference_truth(
    subject_ids: np.ndarray,
    reference_sets: Sequence[ReferenceSet],
    union_policy: str = DEFAULT_UNION_POLICY,
) -> ReferenceTruth:
    """The union of the sets' Real and Bogus labels (Unsure is no truth), each subject
    settled by `records.union_label` under `union_policy`; `reference_sets` in the union's
    order (the first-named set first). The conflicts listed are those among `subject_ids`."""
    settled, conflicts = _union(
        ReferenceLabel.objects.all(), reference_sets, union_policy
    )
    truth = np.full(len(subject_ids), UNKNOWN, dtype=np.int8)
    if settled:
        ids = np.fromiter(settled, dtype=np.int64, count=len(settled))
        codes = np.fromiter(settled.values(), dtype=np.int8, count=len(settled))
        _place(truth, subject_ids, ids, codes)
    conflicts_here = np.array(sorted(conflicts), dtype=np.int64)
    conflicts_here = conflicts_here[np.isin(conflicts_here, subject_ids)]
    return ReferenceTruth(truth, conflicts_here.tolist())


def run_reference_truth(run: AggregationRun, subject_ids: np.ndarray) -> ReferenceTruth:
    """`reference_truth` under the run's sets and union policy, without the tutorial's
    example subjects: the tutorial shows their answers, so they calibrate nobody."""
    reference = reference_truth(subject_ids, run_reference_sets(run), run_union_policy(run))
    examples = _tutorial_subject_ids(run.workflow)
    if examples:
        ids = np.array(sorted(examples), dtype=np.int64)
        _place(reference.truth, subject_ids, ids, np.full(len(ids), UNKNOWN, dtype=np.int8))
    return reference


def _tutorial_subject_ids(workflow: Workflow) -> set[int]:
    return {example.subject_id for example in labeling_selectors.tutorial_examples(workflow)}


def _union(
    labels: QuerySet[ReferenceLabel], reference_sets: Sequence[ReferenceSet], policy: str
) -> tuple[dict[int, int], list[int]]:
    """({subject id: REAL or BOGUS}, conflicting subject ids) of `labels` under the union."""
    _require_union_policy(policy)
    rank = {reference_set.pk: i for i, reference_set in enumerate(reference_sets)}
    by_subject: dict[int, list[tuple[int, str]]] = {}
    rows = labels.counted().filter(reference_set__in=list(rank)).values_list(
        "subject_id", "reference_set_id", "label"
    )
    for subject_id, set_id, label in rows.iterator(chunk_size=_CHUNK_ROWS):
        by_subject.setdefault(subject_id, []).append((rank[set_id], label))
    settled: dict[int, int] = {}
    conflicts: list[int] = []
    for subject_id, ranked in by_subject.items():
        label, conflict = union_label([label for _, label in sorted(ranked)], policy)
        if conflict:
            conflicts.append(subject_id)
        if label is not None:
            settled[subject_id] = LABEL_CODES[label]
    return settled, conflicts


def _require_union_policy(policy: str) -> None:
    if policy not in UNION_POLICIES:
        raise InvalidInput(
            f"union policy must be one of {', '.join(UNION_POLICIES)}, got {policy!r}"
        )


def run_reference_sets(run: AggregationRun) -> list[ReferenceSet]:
    """A run's reference sets in the order its reference name gives them: the union's order."""
    order = {name: i for i, name in enumerate(_split_names(run.reference_name))}
    return sorted(run.reference_sets.all(), key=lambda s: order.get(s.name, len(order)))


def run_union_policy(run: AggregationRun) -> str:
    """The union policy a run was created with (runs from before policies existed: drop)."""
    return run.summary.get(UNION_POLICY_KEY, DEFAULT_UNION_POLICY)


def subject_truth_for(run: AggregationRun, subject_id: int) -> int:
    """One subject's truth under a run's reference sets and union policy (for the live step):
    the same settlement as `run_reference_truth`, tutorial examples included. One query for a
    subject no set labels, which is most of them."""
    rows = list(
        ReferenceLabel.objects.counted()
        .filter(subject_id=subject_id, reference_set__aggregation_runs=run)
        .values_list("reference_set__name", "label")
    )
    if not rows:
        return UNKNOWN
    order = {name: i for i, name in enumerate(_split_names(run.reference_name))}
    ranked = sorted(rows, key=lambda row: order.get(row[0], len(order)))
    label, _ = union_label([label for _, label in ranked], run_union_policy(run))
    if label is None or subject_id in _tutorial_subject_ids(run.workflow):
        return UNKNOWN
    return LABEL_CODES[label]


def simulated_truth(workflow: Workflow, subject_ids: np.ndarray) -> np.ndarray | None:
    """Truth the simulator stored in subject metadata, or None when no subject has any.

    Read by project and matched by id, never with an IN list of every subject: a run can
    hold millions.
    """
    truth = np.full(len(subject_ids), UNKNOWN, dtype=np.int8)
    rows = Subject.objects.filter(
        project_id=workflow.project_id, metadata__has_key=TRUTH_METADATA_KEY
    ).values_list("pk", f"metadata__{TRUTH_METADATA_KEY}")
    ids, codes = [], []
    for subject_id, label in rows.iterator(chunk_size=_CHUNK_ROWS):
        if label in LABEL_CODES:
            ids.append(subject_id)
            codes.append(LABEL_CODES[label])
    if not ids:
        return None
    _place(truth, subject_ids, np.array(ids, dtype=np.int64), np.array(codes, dtype=np.int8))
    return truth


def _place(target: np.ndarray, subject_ids: np.ndarray, ids: np.ndarray, values: np.ndarray):
    """target[i] = value for each (id, value) whose id is subject_ids[i]; other ids are ignored."""
    position = np.searchsorted(subject_ids, ids)
    inside = position < len(subject_ids)
    inside[inside] = subject_ids[position[inside]] == ids[inside]
    target[position[inside]] = values[inside]


# --- results, for the pages and the plots -------------------------------------------------


def run_get(run_id: int) -> AggregationRun:
    try:
        return AggregationRun.objects.select_related("workflow").get(pk=run_id)
    except AggregationRun.DoesNotExist:
        raise NotFound(f"no aggregation run {run_id}") from None


def runs_list(workflow: Workflow | None = None):
    runs = AggregationRun.objects.select_related("workflow").prefetch_related("reference_sets")
    return runs.filter(workflow=workflow) if workflow else runs


def breakdown_table(runs: Iterable[AggregationRun]) -> list[dict]:
    """DMTN-337 Table 4 over finished runs: scenario x reference set -> total Real, Bogus."""
    rows = []
    for run in runs:
        if run.status != AggregationRun.Status.DONE:
            continue
        for row in run.summary.get("breakdown", []):
            rows.append({"run": run.pk, "mode": run.mode, **row})
    return rows


def posterior_arrays(run: AggregationRun) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_real, trajectory offsets, trajectory values) of every subject a run scored."""
    p_real, lengths, values = [], [], []
    rows = SubjectPosterior.objects.filter(run=run).order_by("subject_id").values_list(
        "p_real", "trajectory"
    )
    for p, trajectory in rows.iterator(chunk_size=_CHUNK_ROWS):
        p_real.append(p)
        lengths.append(len(trajectory))
        values.extend(trajectory)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    return np.array(p_real, dtype=np.float64), offsets, np.array(values, dtype=np.float64)


SKILL_FIELDS = (
    "n_classifications", "n_real_seen", "n_real_correct", "n_bogus_seen",
    "n_bogus_correct", "p_real", "p_bogus", "contributes",
)


def skill_arrays(run: AggregationRun) -> dict[str, np.ndarray]:
    """Per-volunteer columns of a run's skills, as arrays named like the model fields."""
    rows = list(VolunteerSkill.objects.filter(run=run).values_list(*SKILL_FIELDS))
    columns = zip(*rows, strict=True) if rows else [[] for _ in SKILL_FIELDS]
    return {name: np.array(column) for name, column in zip(SKILL_FIELDS, columns, strict=True)}
