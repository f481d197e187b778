"""Exactly once on PostgreSQL: concurrent answers, concurrent replays of one answer, and answers
racing a rebuild's swap each reach the live state once, as a fresh replay shows."""

from __future__ import annotations

import threading
import uuid

import pytest

from aggregation import services
from aggregation.models import AggregationRun
from labeling import services as labeling_services
from labeling.models import Classification
from tests.aggregation.conftest import build_crowd
from tests.aggregation.test_live import _state
from tests.labeling.test_concurrency import run_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def crowd(workflow):
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save()
    return build_crowd(workflow, n_subjects=10, n_volunteers=3)


def _online(crowd) -> AggregationRun:
    run = services.run_create(workflow=crowd.workflow, reference_sets=[crowd.reference],
                              mode="online")
    return services.run_execute(run.pk)


def _answer(crowd, volunteer, subject_id, answer, client_id=None):
    return lambda: labeling_services.classification_create(
        volunteer=volunteer, workflow_id=crowd.workflow.pk, subject_id=subject_id,
        answer=answer, client_id=client_id or uuid.uuid4(),
    )


def test_concurrent_answers_and_replays_reach_the_live_state_once(crowd):
    live = _online(crowd)
    newcomers = [labeling_services.volunteer_for_external_name(f"new-{i}") for i in range(6)]
    replayed = uuid.uuid4()
    jobs = [_answer(crowd, v, crowd.subject_ids[i % 2], "real" if i % 2 else "bogus")
            for i, v in enumerate(newcomers)]
    # The same answer sent four times at once (a client retrying): stored and applied once.
    jobs += [_answer(crowd, newcomers[0], crowd.subject_ids[5], "real", replayed)] * 4
    _, errors = run_at_once(jobs)
    assert errors == []
    assert Classification.objects.filter(client_id=replayed).count() == 1
    assert _state(live) == _state(_online(crowd))


def test_answers_racing_a_rebuild_are_neither_lost_nor_applied_twice(crowd):
    _online(crowd)
    newcomers = [labeling_services.volunteer_for_external_name(f"race-{i}") for i in range(4)]
    rebuild = services.run_create(workflow=crowd.workflow, reference_sets=[crowd.reference],
                                  mode="online")
    stop = threading.Event()

    def keep_answering(volunteer):
        def job():
            for subject_id in crowd.subject_ids:
                if stop.is_set():
                    return
                _answer(crowd, volunteer, subject_id, "real")()
        return job

    def rebuild_then_stop():
        try:
            return services.run_execute(rebuild.pk)
        finally:
            stop.set()

    _, errors = run_at_once([rebuild_then_stop] + [keep_answering(v) for v in newcomers])
    assert errors == []
    rebuild.refresh_from_db()
    assert rebuild.live
    # Every answer is in the rebuilt run exactly once: it equals a replay of them all.
    assert _state(rebuild) == _state(_online(crowd))
