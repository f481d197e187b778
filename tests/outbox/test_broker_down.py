"""With the broker stopped, answers are still stored and counted (the web process never talks
to it), work queued meanwhile waits in the outbox, and is sent once the broker is back.

The test runs its own redis-server on a free port and stops that one; the machine's Redis is
never touched.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis
from celery import Celery
from django.conf import settings
from rest_framework.test import APIClient

from aggregation import services as aggregation_services
from aggregation.models import SubjectPosterior
from config.celery import app as project_app
from labeling.models import Classification
from outbox import services
from outbox.models import OutboxMessage
from tests.aggregation.conftest import build_crowd
from tests.conftest import classify

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]
START_TIMEOUT_S = 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A throw-away redis-server (no persistence) that the test starts and stops."""

    def __init__(self, directory) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
            self.process = None

    def queue_length(self, queue: str) -> int:
        return redis.Redis(port=self.port).llen(queue)


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker_mode(monkeypatch):
    """The project's Celery app out of eager mode (as in production), and a record of every
    attempt to send through it."""
    monkeypatch.setitem(project_app.conf, "task_always_eager", False)
    attempts = []
    send = project_app.send_task

    def recorded(*args, **kwargs):
        attempts.append(args)
        return send(*args, **kwargs)

    monkeypatch.setattr(project_app, "send_task", recorded)
    return attempts


def _worker_app(url: str) -> Celery:
    app = Celery("broker-down-test")
    # The write URL: a CELERY_BROKER_URL in the environment overrides broker_url (CI's points
    # at the shared Redis, which must never be stopped).
    app.conf.update(broker_write_url=url, task_routes=settings.CELERY_TASK_ROUTES,
                    broker_connection_retry=False,
                    broker_connection_timeout=1, broker_transport_options={"max_retries": 0})
    return app


def test_answers_are_taken_with_the_broker_down_and_queued_work_is_sent_when_it_returns(
    transactional_db, workflow, own_redis, broker_mode
):
    app = _worker_app(own_redis.url)
    assert app.connection_for_write().as_uri().endswith(f":{own_redis.port}/0")
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save()
    crowd = build_crowd(workflow, n_subjects=8, n_volunteers=2)
    run = aggregation_services.run_create(workflow=workflow, reference_sets=[crowd.reference],
                                          mode="online")
    aggregation_services.run_execute(run.pk)  # the live run, built here
    OutboxMessage.objects.all().delete()

    own_redis.stop()
    client = APIClient()
    client.force_authenticate(crowd.volunteers[0].user or _user())
    replies = [classify(client, workflow.pk, s, "real").status_code for s in crowd.subject_ids]
    assert replies == [201] * len(crowd.subject_ids)
    assert Classification.objects.filter(volunteer__user__username="outage").count() == 8
    # The live state took every answer in its transaction, with no broker at all.
    assert sorted(SubjectPosterior.objects.filter(run=run).values_list("n_counted", flat=True)
                  ) == [3] * 8
    assert broker_mode == []

    queued = aggregation_services.run_create(workflow=workflow, reference_sets=[crowd.reference])
    aggregation_services.run_queue(queued)
    assert broker_mode == []
    waiting = OutboxMessage.objects.get()
    assert (waiting.task, waiting.args, waiting.sent_at) == (
        "aggregation.tasks.aggregate_workflow", [queued.pk], None)
    assert services.drain(app) == 0
    waiting.refresh_from_db()
    assert (waiting.sent_at, waiting.attempts) == (None, 1)
    assert waiting.last_error

    own_redis.start()
    assert services.drain(app) == 1
    waiting.refresh_from_db()
    assert waiting.sent_at is not None
    assert own_redis.queue_length("aggregation") == 1
    assert services.drain(app) == 0  # sent once
    assert own_redis.queue_length("aggregation") == 1


def _user():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("outage")
