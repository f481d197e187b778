"""Writes for the review app: building the queues' rankings (see review.models.QueueRanking).

The ordering is `review.queues`' own; this module runs it once per run and queue, off the
request path, and stores the order.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from django.db import transaction

from aggregation.models import AggregationRun
from labeling.models import SubjectWorkflowStatus
from review import queues, selectors
from review.models import QueueRanking

RANKING_DTYPE = np.dtype("<i8")


def rankings_build(run_id: int) -> int:
    """(Re)build every queue's ranking under a finished run; the number of rankings stored.

    Safe to run twice or concurrently: a run's rankings are replaced in one transaction."""
    run = AggregationRun.objects.select_related("workflow").filter(
        pk=run_id, status=AggregationRun.Status.DONE
    ).first()
    if run is None:
        return 0
    workflow = run.workflow
    rankings = []
    everyone = selectors.candidates_of(workflow, run, None, "")
    for name in queues.QUEUES:
        if name == queues.ORIGIN or name in queues.ORDERED_PER_REQUEST:
            continue  # the origin queue per origin handle, below
        if name == queues.RANDOM:
            # The seed is the request's: store the subjects in id order, shuffled per request.
            ids = everyone.subject_id
        else:
            ids = everyone.subject_id[queues.queue_order(name, everyone)]
        rankings.append(_ranking(run, name, "", ids))
    # The origin queue per origin handle, from the same candidates: read once, not per origin.
    origin_of = dict(
        SubjectWorkflowStatus.objects.filter(workflow=workflow)
        .values_list("subject_id", "subject__origin").iterator(chunk_size=50_000)
    )
    origins = np.array([origin_of[i] for i in everyone.subject_id.tolist()], dtype=object)
    for origin in sorted(set(origins.tolist()) - {""}):
        chosen = origins == origin
        subset = dataclasses.replace(everyone, **{
            field.name: getattr(everyone, field.name)[chosen]
            for field in dataclasses.fields(queues.Candidates)
            if getattr(everyone, field.name) is not None  # n_reports: the reported queue's only
        })
        order = queues.queue_order(queues.ORIGIN, subset)
        rankings.append(_ranking(run, queues.ORIGIN, origin, subset.subject_id[order]))
    with transaction.atomic():
        QueueRanking.objects.filter(run=run).delete()
        QueueRanking.objects.bulk_create(rankings)
    return len(rankings)


def _ranking(run: AggregationRun, queue: str, origin: str, ids: np.ndarray) -> QueueRanking:
    return QueueRanking(
        workflow_id=run.workflow_id, run=run, queue=queue, origin=origin,
        subject_ids=np.ascontiguousarray(ids, dtype=RANKING_DTYPE).tobytes(),
    )


def rankings_refresh() -> list[int]:
    """Rebuild the rankings of every active workflow's review run (the live run once
    finished, else the latest finished run): the periodic task, so that live votes and live
    posteriors reach the order within its interval. The runs rebuilt."""
    from labeling.models import Workflow

    rebuilt = []
    for workflow in Workflow.objects.filter(active=True):
        run = selectors.review_run(workflow)
        if run is not None:
            rankings_build(run.pk)
            rebuilt.append(run.pk)
    return rebuilt
