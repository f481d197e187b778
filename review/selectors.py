"""Reads for the expert review page: its queues and a subject's dossier.

Every read is a fixed number of queries, whatever the number of subjects. A queue page reads
its order from the run's stored ranking (review.models.QueueRanking: one row), drops the
subjects labelled in the chosen set, and reads votes and posteriors for the page's subjects
only. A run with no ranking yet (just finished, or a workflow too new for one) is ordered
here instead, from the workflow's subjects, votes and posteriors read as columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psycopg
from django.db import connection
from django.db.models import Count, Q, QuerySet

from aggregation import pgbinary
from aggregation.models import AggregationRun, SubjectPosterior, VolunteerSkill
from labeling.errors import InvalidInput, NotFound
from labeling.models import (
    Classification,
    ReferenceLabel,
    ReferenceSet,
    Subject,
    SubjectWorkflowStatus,
    Workflow,
)
from review import queues
from review.models import QueueRanking
from talk import selectors as talk_selectors

SUBJECT_FIELDS = (
    "id", "external_id", "origin", "snr", "psf_flux", "psf_flux_err", "reliability", "band",
    "ra", "dec", "metadata",
)


class NoRun(InvalidInput):
    """A queue ranked by the SWAP posterior was asked for before any run finished."""

    status_code = 409
    code = "no_run"


def workflow_by_slug(slug: str) -> Workflow:
    try:
        return Workflow.objects.select_related("project").get(slug=slug)
    except Workflow.DoesNotExist:
        raise NotFound(f"workflow {slug!r} does not exist") from None


def writable_sets(user) -> QuerySet[ReferenceSet]:
    """The reference sets of the user's teams: the sets the review page may write to."""
    return (
        ReferenceSet.objects.filter(team__group__user=user)
        .select_related("team").order_by("name").distinct()
    )


def reference_set_get(set_id: int) -> ReferenceSet:
    try:
        return ReferenceSet.objects.select_related("team").get(pk=set_id)
    except ReferenceSet.DoesNotExist:
        raise NotFound(f"reference set {set_id} does not exist") from None


def review_run(workflow: Workflow, run_id: int | None = None) -> AggregationRun | None:
    """The run whose posteriors rank the queues: `run_id` if given (it must be a finished
    run of this workflow), else the live run once finished, else the latest finished run."""
    finished = AggregationRun.objects.filter(status=AggregationRun.Status.DONE)
    if run_id is None:
        return (
            finished.filter(workflow=workflow).order_by("-live", "-created_at", "-pk").first()
        )
    run = AggregationRun.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"aggregation run {run_id} does not exist")
    if run.workflow_id != workflow.pk:
        raise InvalidInput(f"run {run_id} aggregated another workflow, not {workflow.slug!r}")
    if run.status != AggregationRun.Status.DONE:
        raise InvalidInput(f"run {run_id} has not finished (it is {run.status})")
    return run


@dataclass(frozen=True)
class QueuePage:
    name: str
    run: AggregationRun | None
    total: int
    offset: int
    limit: int
    subjects: list[dict]


def review_queue(
    *,
    workflow: Workflow,
    name: str,
    run: AggregationRun | None,
    reference_set: ReferenceSet | None = None,
    origin: str = "",
    seed: int = 0,
    offset: int = 0,
    limit: int = 50,
) -> QueuePage:
    """One page of a review queue (see `review.queues` for the orders), without the subjects
    already labelled in `reference_set`."""
    if name not in queues.QUEUES:
        raise NotFound(f"no queue {name!r}; the queues are {', '.join(queues.QUEUES)}")
    if name in queues.NEEDS_POSTERIOR and run is None:
        raise NoRun(
            f"the {name} queue ranks subjects by their SWAP posterior, and workflow "
            f"{workflow.slug!r} has no finished aggregation run yet: run `python manage.py "
            f"aggregate --workflow {workflow.slug} --reference-sets SETS` first (the random "
            "and origin queues work without one)"
        )
    if name == queues.ORIGIN and not origin:
        raise InvalidInput("the origin queue needs an origin handle (origin=...)")
    origin = origin if name == queues.ORIGIN else ""
    ranked = None if name in queues.ORDERED_PER_REQUEST else _ranked_page(
        run, name, origin, reference_set, seed, offset, limit)
    if ranked is None:
        candidates = candidates_of(workflow, run, reference_set, origin,
                                   with_reports=name == queues.REPORTED)
        order = queues.queue_order(name, candidates, seed=seed)
        window = order[offset:offset + limit]
        total = len(order)
    else:
        total, page_ids = ranked
        candidates = candidates_of(workflow, run, None, origin, subject_ids=page_ids)
        window = np.searchsorted(candidates.subject_id, page_ids)
    return QueuePage(
        name=name, run=run, total=total, offset=offset, limit=limit,
        subjects=_queue_rows(candidates, window),
    )


def _ranked_page(run: AggregationRun | None, name: str, origin: str,
                 reference_set: ReferenceSet | None, seed: int, offset: int, limit: int
                 ) -> tuple[int, np.ndarray] | None:
    """(the queue's length, the page's subject ids in review order) from the run's stored
    ranking, without the subjects labelled in `reference_set`; None when the run has no
    ranking for the queue."""
    if run is None:
        return None
    stored = _ranking_bytes(run, name, origin)
    if stored is None:  # an origin no subject had when the rankings were built, or none yet
        return None
    ids = np.frombuffer(stored, dtype="<i8").astype(np.int64)
    # The random queue's keys are drawn over every subject, labelled or not (labelling one
    # never reshuffles the others).
    keys = queues.random_keys(ids, seed) if name == queues.RANDOM else None
    if reference_set is not None:
        unlabelled = ~np.isin(ids, _labelled_ids(reference_set))
        ids = ids[unlabelled]
        keys = None if keys is None else keys[unlabelled]
    if keys is None:
        return len(ids), ids[offset:offset + limit]
    # Only the page's subjects, the offset + limit smallest keys, are sorted (as
    # review.queues sorts them all).
    first = np.arange(len(ids))
    if offset + limit < len(ids):
        first = np.argpartition(keys, offset + limit)[:offset + limit]
    ahead = first[np.lexsort((ids[first], keys[first]))]
    return len(ids), ids[ahead[offset:offset + limit]]


def _ranking_bytes(run: AggregationRun, name: str, origin: str) -> bytes | None:
    """A stored ranking's ids as bytes (on PostgreSQL fetched in binary: a bytea in text form
    is hex, twice the size to send and decode)."""
    rows = QueueRanking.objects.filter(run=run, queue=name, origin=origin)
    if connection.vendor != "postgresql":
        stored = rows.values_list("subject_ids", flat=True).first()
        return None if stored is None else bytes(stored)
    sql, params = rows.values_list("subject_ids").query.sql_with_params()
    connection.ensure_connection()
    # Django's cursors bind parameters client-side, which rules binary results out.
    with psycopg.Cursor(connection.connection) as cursor:
        row = cursor.execute(sql, params, binary=True).fetchone()
    return None if row is None else bytes(row[0])


def _labelled_ids(reference_set: ReferenceSet) -> np.ndarray:
    """The subject ids a reference set has labelled, as one array (on PostgreSQL, one binary
    array from the server: no Python object per label)."""
    labels = ReferenceLabel.objects.filter(reference_set=reference_set)
    if connection.vendor != "postgresql":
        return np.fromiter(labels.values_list("subject_id", flat=True), dtype=np.int64)
    sql, params = labels.values_list("subject_id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT array_send(coalesce(array_agg(subject_id), '{{}}'))"
                       f" FROM ({sql}) AS labelled (subject_id)", params)
        (data,) = cursor.fetchone()
    return pgbinary.decode_array(bytes(data), "int8")


def candidates_of(workflow: Workflow, run: AggregationRun | None,
                  reference_set: ReferenceSet | None, origin: str,
                  subject_ids: np.ndarray | None = None, *, with_reports: bool = False
                  ) -> queues.Candidates:
    """The workflow's subjects (of `origin`, if given; of `subject_ids` only, if given) with
    their counted votes and posteriors in `run`, in id order, as review.queues ranks them."""
    statuses = SubjectWorkflowStatus.objects.filter(workflow=workflow)
    votes = Classification.objects.filter(workflow=workflow, counted=True)
    posteriors = SubjectPosterior.objects.filter(run=run)
    if subject_ids is not None:
        chosen = [int(i) for i in subject_ids]
        statuses = statuses.filter(subject_id__in=chosen)
        votes = votes.filter(subject_id__in=chosen)
        posteriors = posteriors.filter(subject_id__in=chosen)
    if origin:
        statuses = statuses.filter(subject__origin=origin)
        votes = votes.filter(subject__origin=origin)
        posteriors = posteriors.filter(subject__origin=origin)
    rows = list(statuses.order_by("subject_id").values_list("subject_id", "subject__reliability"))
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    reliability = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=float)
    n = len(ids)

    votes = (
        votes.values("subject_id")
        .annotate(
            n_real=Count("pk", filter=Q(answer="real")),
            n_bogus=Count("pk", filter=Q(answer="bogus")),
            n_volunteers=Count("volunteer", distinct=True),
        )
        .values_list("subject_id", "n_real", "n_bogus", "n_volunteers")
    )
    counts = np.zeros((n, 3), dtype=np.int64)
    _place(counts, ids, [(r[0], r[1:]) for r in votes])

    p_real = np.full(n, np.nan)
    if run is not None:
        _place(p_real, ids, posteriors.values_list("subject_id", "p_real"))
    labelled = np.zeros(n, dtype=bool)
    if reference_set is not None:
        labelled = np.isin(ids, _labelled_ids(reference_set))
    n_reports = None
    if with_reports:  # Talk's open bad-image reports: only the reported queue counts them
        n_reports = np.zeros(n, dtype=np.int64)
        _place(n_reports, ids, talk_selectors.open_reports_in(workflow.pk))
    return queues.Candidates(
        subject_id=ids, n_real=counts[:, 0], n_bogus=counts[:, 1], n_volunteers=counts[:, 2],
        p_real=p_real, reliability=reliability, labelled=labelled, n_reports=n_reports,
    )


def _place(target: np.ndarray, ids: np.ndarray, pairs) -> None:
    """target[i] = value for each (subject id, value) whose id is ids[i]; others are skipped."""
    pairs = list(pairs)
    if not pairs or not len(ids):
        return
    keys = np.array([p[0] for p in pairs], dtype=np.int64)
    values = np.array([p[1] for p in pairs], dtype=target.dtype)
    at = np.minimum(np.searchsorted(ids, keys), len(ids) - 1)
    found = ids[at] == keys
    target[at[found]] = values[found]


def _queue_rows(candidates: queues.Candidates, window: np.ndarray) -> list[dict]:
    c = candidates
    subjects = Subject.objects.in_bulk(c.subject_id[window].tolist())
    return [
        {
            **{field: getattr(subjects[int(c.subject_id[i])], field) for field in SUBJECT_FIELDS},
            "n_real": int(c.n_real[i]),
            "n_bogus": int(c.n_bogus[i]),
            "n_volunteers": int(c.n_volunteers[i]),
            "p_real": None if np.isnan(c.p_real[i]) else float(c.p_real[i]),
        }
        for i in window
    ]


def subject_dossier(*, subject_id: int, workflow: Workflow, run: AggregationRun | None) -> dict:
    """What an expert sees beside the stamps: the subject's facts, the volunteers' votes with
    their skills in `run`, the posterior in `run`, and every team's reference label."""
    subject = (
        Subject.objects.filter(pk=subject_id, statuses__workflow=workflow)
        .values(*SUBJECT_FIELDS).first()
    )
    if subject is None:
        if not Subject.objects.filter(pk=subject_id).exists():
            raise NotFound(f"subject {subject_id} does not exist")
        raise NotFound(f"subject {subject_id} is not in workflow {workflow.slug!r}")
    votes = list(
        Classification.objects.filter(subject_id=subject_id, workflow=workflow)
        .order_by("created_at", "pk")
        .values("volunteer_id", "answer", "created_at", "counted", "not_counted_reason")
    )
    skills = {}
    posterior = None
    if run is not None:
        skills = {
            s["volunteer_id"]: s
            for s in VolunteerSkill.objects.filter(
                run=run, volunteer_id__in={v["volunteer_id"] for v in votes}
            ).values("volunteer_id", "p_real", "p_bogus", "contributes")
        }
        posterior = (
            SubjectPosterior.objects.filter(run=run, subject_id=subject_id)
            .values("p_real", "trajectory", "n_counted", "label", "stable").first()
        )
    for vote in votes:
        skill = skills.get(vote["volunteer_id"])
        vote["skill"] = None if skill is None else {
            "p_real": skill["p_real"], "p_bogus": skill["p_bogus"],
            "contributes": skill["contributes"],
        }
    counted = [v for v in votes if v["counted"]]
    return {
        "subject": subject,
        "votes": {
            "n_real": sum(v["answer"] == "real" for v in counted),
            "n_bogus": sum(v["answer"] == "bogus" for v in counted),
            "classifications": votes,
        },
        "run": run,
        "posterior": posterior,
        "reference_labels": list(
            ReferenceLabel.objects.filter(subject_id=subject_id)
            .select_related("reference_set__team", "expert")
            .order_by("reference_set__name")
        ),
    }
