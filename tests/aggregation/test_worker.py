"""The whole path on real services: an answer commits in PostgreSQL, its online update goes
through Redis to a real Celery worker, and the live run changes; a batch run goes the same way.
"""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from aggregation import services
from aggregation.models import AggregationRun, AppliedClassification, SubjectPosterior
from config.celery import app
from labeling.models import Volunteer
from tests.aggregation.conftest import build_crowd

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.CELERY_BROKER_URL,
                       reason="needs a broker: set CELERY_BROKER_URL (CI does)"),
]
WAIT_S = 60


def _wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"the worker did not {what} within {WAIT_S} s")
        time.sleep(0.1)


@pytest.fixture
def worker(transactional_db):
    with start_worker(app, pool="solo", perform_ping_check=False,
                      queues=["celery", "online", "aggregation"], shutdown_timeout=30):
        yield


def test_an_answer_reaches_the_live_run_through_redis_and_a_worker(transactional_db, workflow,
                                                                    worker):
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save()
    crowd = build_crowd(workflow, n_subjects=8, n_volunteers=3)
    live = services.run_create(workflow=workflow, reference_sets=[crowd.reference],
                               mode="online")
    services.run_queue(live)  # outside a transaction: queued at once
    _wait_for(lambda: AggregationRun.objects.get(pk=live.pk).status == "done",
              "finish the live run")

    newcomer = Volunteer.objects.create(external_name="newcomer")
    answer = crowd.answer(newcomer, crowd.subject_ids[7], "bogus").classification
    _wait_for(lambda: AppliedClassification.objects.filter(classification=answer).exists(),
              "apply the new answer")
    posterior = SubjectPosterior.objects.get(run=live, subject_id=crowd.subject_ids[7])
    assert posterior.n_counted == 4  # three volunteers, then the newcomer

    # The answer's update matches a replay that includes it.
    replay = services.run_execute(
        services.run_create(workflow=workflow, reference_sets=[crowd.reference],
                            mode="online").pk
    )
    again = SubjectPosterior.objects.get(run=replay, subject_id=crowd.subject_ids[7])
    assert posterior.trajectory == pytest.approx(again.trajectory, abs=1e-12)
