"""Training jobs under concurrency, on PostgreSQL (SQLite ignores select_for_update)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from tests.training.conftest import QUICK, export_label_set
from training import services
from training.ml import train
from training.models import JobStatus, ModelVersion

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_job_delivered_to_several_workers_at_once_is_trained_once(workflow, monkeypatch):
    label_set = export_label_set(workflow)
    job = services.training_job_create(label_set.number, options=QUICK, queue=False)
    trainings = []
    real_fit = train.fit

    def counting_fit(*args, **kwargs):
        trainings.append(threading.get_ident())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train, "fit", counting_fit)
    workers = 4
    barrier = threading.Barrier(workers)
    errors, outcomes = [], []

    def worker():
        try:
            barrier.wait()
            outcomes.append(services.training_job_execute(job.pk).status)
        except BaseException as exc:  # collected and checked below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(trainings) == 1
    # The worker that trained saw it done; the others found it running (fresh heartbeat).
    assert sorted(outcomes) == [JobStatus.DONE] + [JobStatus.RUNNING] * (workers - 1)
    assert ModelVersion.objects.count() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
