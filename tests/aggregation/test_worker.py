"""The whole path on real services: a live run is built by a real Celery worker through
Redis, and then every answer updates it in its own transaction, with no worker involved.
"""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from aggregation import services
from aggregation.models import AggregationRun, SubjectPosterior
from config.celery import app
from labeling.models import Volunteer
from outbox import services as outbox
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
                      queues=["celery", "aggregation"], shutdown_timeout=30):
        yield


def test_a_live_run_built_by_a_worker_takes_each_answer_in_its_transaction(
    transactional_db, workflow, worker
):
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save()
    crowd = build_crowd(workflow, n_subjects=8, n_volunteers=3)
    live = services.run_create(workflow=workflow, reference_sets=[crowd.reference],
                               mode="online")
    services.run_queue(live)  # recorded in the outbox; the periodic drain sends it
    assert outbox.drain() == 1
    _wait_for(lambda: AggregationRun.objects.get(pk=live.pk).live, "build the live run")

    newcomer = Volunteer.objects.create(external_name="newcomer")
    crowd.answer(newcomer, crowd.subject_ids[7], "bogus")
    posterior = SubjectPosterior.objects.get(run=live, subject_id=crowd.subject_ids[7])
    assert posterior.n_counted == 4  # three volunteers, then the newcomer

    # The answer's update matches a replay that includes it.
    replay = services.run_execute(
        services.run_create(workflow=workflow, reference_sets=[crowd.reference],
                            mode="online").pk
    )
    again = SubjectPosterior.objects.get(run=replay, subject_id=crowd.subject_ids[7])
    assert posterior.trajectory == pytest.approx(again.trajectory, abs=1e-12)
