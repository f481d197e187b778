"""Many volunteers answering one subject at the same moment, on PostgreSQL's row locks.

SQLite serialises writers and ignores select_for_update, so these run only on PostgreSQL.
"""

import threading
import uuid

import pytest
from django.db import connection

from labeling import services
from labeling.errors import Conflict
from labeling.models import Classification, SubjectWorkflowStatus
from tests.conftest import add_subjects

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_at_once(jobs):
    """Start every job behind one barrier, each on its own database connection."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []
    results = [None] * len(jobs)

    def worker(index, job):
        try:
            barrier.wait()
            results[index] = job()
        except BaseException as exc:  # collected and re-checked by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def answer_job(volunteer, workflow, subject_id, answer, client_id=None):
    return lambda: services.classification_create(
        volunteer=volunteer, workflow_id=workflow.pk, subject_id=subject_id, answer=answer,
        client_id=client_id or uuid.uuid4(),
    )


def volunteers(n):
    return [services.volunteer_for_external_name(f"racer-{i}") for i in range(n)]


def test_agreeing_crowd_retires_the_subject_once_at_two():
    workflow = services.workflow_create(slug="race", project_name="race")
    subject_id = add_subjects(workflow, 1)[0]
    crowd = volunteers(16)
    results, errors = run_at_once([answer_job(v, workflow, subject_id, "real") for v in crowd])
    assert errors == []
    status = SubjectWorkflowStatus.objects.get(workflow=workflow, subject_id=subject_id)
    assert status.retired
    assert status.n_counted == 2
    assert Classification.objects.filter(subject_id=subject_id, counted=True).count() == 2
    assert Classification.objects.filter(subject_id=subject_id).count() == 16
    # Exactly the two counted answers saw the subject unretired before them.
    counted = [r for r in results if r.classification.counted]
    assert len(counted) == 2


def test_disagreeing_crowd_never_counts_more_than_seven():
    workflow = services.workflow_create(slug="race7", project_name="race")
    subject_id = add_subjects(workflow, 1)[0]
    crowd = volunteers(20)
    # The first two disagree, so the rule waits for seven.
    answer_job(crowd[0], workflow, subject_id, "real")()
    answer_job(crowd[1], workflow, subject_id, "bogus")()
    jobs = [answer_job(v, workflow, subject_id, ("real", "bogus")[i % 2])
            for i, v in enumerate(crowd[2:])]
    _, errors = run_at_once(jobs)
    assert errors == []
    status = SubjectWorkflowStatus.objects.get(workflow=workflow, subject_id=subject_id)
    assert status.retired
    assert status.n_counted == 7
    assert Classification.objects.filter(subject_id=subject_id, counted=True).count() == 7
    assert Classification.objects.filter(subject_id=subject_id).count() == 20


def test_the_same_client_id_sent_twice_at_once_is_stored_once():
    workflow = services.workflow_create(slug="replay", project_name="race")
    subject_id = add_subjects(workflow, 1)[0]
    volunteer = volunteers(1)[0]
    client_id = uuid.uuid4()
    results, errors = run_at_once(
        [answer_job(volunteer, workflow, subject_id, "real", client_id) for _ in range(6)]
    )
    assert errors == []
    assert sorted(r.created for r in results) == [False] * 5 + [True]
    assert Classification.objects.filter(client_id=client_id).count() == 1
    assert SubjectWorkflowStatus.objects.get(subject_id=subject_id).n_counted == 1


def test_one_volunteer_racing_two_answers_on_one_subject_keeps_one():
    workflow = services.workflow_create(slug="double", project_name="race")
    subject_id = add_subjects(workflow, 1)[0]
    volunteer = volunteers(1)[0]
    _, errors = run_at_once(
        [answer_job(volunteer, workflow, subject_id, a) for a in ("real", "bogus", "real")]
    )
    assert len(errors) == 2
    assert all(isinstance(e, Conflict) for e in errors)
    assert Classification.objects.filter(subject_id=subject_id).count() == 1


def test_one_client_id_racing_on_two_subjects_is_stored_once():
    workflow = services.workflow_create(slug="twins", project_name="race")
    first, second = add_subjects(workflow, 2)
    volunteer = volunteers(1)[0]
    client_id = uuid.uuid4()
    results, errors = run_at_once(
        [answer_job(volunteer, workflow, subject, "real", client_id) for subject in (first, second)]
    )
    assert errors == []
    assert sorted(r.created for r in results) == [False, True]
    assert Classification.objects.filter(client_id=client_id).count() == 1
    counted = SubjectWorkflowStatus.objects.filter(workflow=workflow).values_list("n_counted",
                                                                                  flat=True)
    assert sorted(counted) == [0, 1]
