"""A redelivered aggregation task running at the same time as the first delivery: the run ends
DONE with one set of results, and neither delivery fails (PostgreSQL, real concurrency)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from aggregation import services
from aggregation.models import AggregationRun, SubjectPosterior
from tests.aggregation.conftest import build_crowd

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WAIT_S = 120  # a bound on each wait, so a broken build fails rather than hangs


def _backend_waits_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


def test_a_redelivery_during_the_first_delivery_s_write_leaves_the_run_done(workflow,
                                                                           monkeypatch):
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save()
    crowd = build_crowd(workflow, n_subjects=8, n_volunteers=3)
    run = services.run_create(workflow=workflow, reference_sets=[crowd.reference])
    first_wrote, release_first = threading.Event(), threading.Event()
    second_pid: list[int] = []
    real_write_skills = services._write_skills

    def write_then_hold(run_, data, result):
        real_write_skills(run_, data, result)
        if threading.current_thread().name == "first":
            # Results written, transaction still open: the moment a redelivery collides.
            first_wrote.set()
            assert release_first.wait(WAIT_S)

    monkeypatch.setattr(services, "_write_skills", write_then_hold)
    outcomes, errors = {}, []

    def deliver():
        name = threading.current_thread().name
        try:
            if name == "second":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    second_pid.append(cursor.fetchone()[0])
            outcomes[name] = services.run_execute(run.pk).status
        except BaseException as exc:  # collected and checked below
            errors.append(exc)
        finally:
            connection.close()

    first = threading.Thread(target=deliver, name="first")
    first.start()
    assert first_wrote.wait(WAIT_S)
    second = threading.Thread(target=deliver, name="second")
    second.start()
    # The second delivery reaches the first one's locks (the run's row, or a posterior's key).
    for _ in range(WAIT_S * 20):
        if second_pid and _backend_waits_on_a_lock(second_pid[0]):
            break
        threading.Event().wait(0.05)
    else:
        pytest.fail("the second delivery never waited on the first one's write")
    release_first.set()
    first.join(WAIT_S)
    second.join(WAIT_S)
    assert errors == []
    assert outcomes == {"first": "done", "second": "done"}
    run.refresh_from_db()
    assert (run.status, run.error) == (AggregationRun.Status.DONE, "")
    assert SubjectPosterior.objects.filter(run=run).count() == len(crowd.subject_ids)


def test_a_failing_delivery_never_marks_a_finished_run_failed(workflow, monkeypatch):
    crowd = build_crowd(workflow, n_subjects=6, n_volunteers=2)
    run = services.run_create(workflow=workflow, reference_sets=[crowd.reference])
    services.run_execute(run.pk)

    def finished_elsewhere(run_, on_progress):
        raise RuntimeError("this delivery's connection dropped")

    # This delivery claims the run (RUNNING again) but, while it computes, another delivery
    # finishes the run; then this one fails.
    def other_delivery_finishes_then_this_one_fails(run_, on_progress):
        AggregationRun.objects.filter(pk=run_.pk).update(status=AggregationRun.Status.DONE)
        raise RuntimeError("this delivery's connection dropped")

    AggregationRun.objects.filter(pk=run.pk).update(status=AggregationRun.Status.RUNNING)
    monkeypatch.setattr(services, "_compute", other_delivery_finishes_then_this_one_fails)
    assert services.run_execute(run.pk).status == AggregationRun.Status.DONE
    run.refresh_from_db()
    assert (run.status, run.error) == (AggregationRun.Status.DONE, "")
