"""Shared fixtures: isolated media storage, a workflow with subjects, and the roles."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from django.contrib.auth.models import Group
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling import roles, services
from labeling.models import Workflow
from labeling.records import SubjectRecord

# Speed is measured by `make bench`, never asserted: hypothesis's per-example deadline would be
# a timed assertion that a busy CI machine can trip.
hypothesis_settings.register_profile("no-deadline", deadline=None)
hypothesis_settings.load_profile("no-deadline")


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" in engine:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL (CI does)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODELS_ROOT = tmp_path / "models"
    settings.LABEL_SETS_ROOT = tmp_path / "label-sets"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "media"},
        },
        "renders": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "renders", "allow_overwrite": True},
        },
    }


def make_record(external_id: str, rng: np.random.Generator, size: int = 51) -> SubjectRecord:
    template = rng.normal(100.0, 5.0, (size, size)).astype(np.float32)
    science = template + rng.normal(0.0, 5.0, (size, size)).astype(np.float32)
    return SubjectRecord(
        external_id=external_id,
        template=template,
        science=science,
        difference=science - template,
        source=f"test[{external_id}]",
        origin="ss",
        snr=10.0,
    )


def add_subjects(workflow: Workflow, n: int, seed: int = 0, set_name: str = "main") -> list[int]:
    rng = np.random.default_rng(seed)
    subject_set = services.subject_set_attach(workflow=workflow, name=set_name)
    report = services.subjects_ingest(
        (make_record(f"{set_name}-{seed}-{i}", rng) for i in range(n)), subject_set=subject_set
    )
    assert report.ok, report.rejected
    return report.subject_ids


@pytest.fixture
def workflow(db) -> Workflow:
    return services.workflow_create(slug="wf", project_name="Test project")


@pytest.fixture
def subject_ids(workflow) -> list[int]:
    return add_subjects(workflow, 12)


@pytest.fixture
def eager_celery():
    """Queued tasks run in this process, as with no broker configured. CI sets
    CELERY_BROKER_URL, and no worker consumes the queues during the tests
    (tests/aggregation/test_worker.py is where a real worker is exercised)."""
    from config.celery import app as celery_app

    before = {key: celery_app.conf[key] for key in ("task_always_eager", "task_eager_propagates")}
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    celery_app.conf.update(before)


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, *, staff: bool = False, team: str | None = None,
             ml: bool = False):
        user = django_user_model.objects.create_user(username, is_staff=staff)
        if team:
            user.groups.add(services.expert_team_get_or_create(team).group)
        if ml:
            user.groups.add(Group.objects.get_or_create(name=roles.ML_TEAM_GROUP)[0])
        return user

    return make


def token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def classify(client: APIClient, workflow_id: int, subject_id: int, answer: str = "real",
             client_id: uuid.UUID | None = None):
    return client.post(
        "/api/classifications/",
        {"workflow": workflow_id, "subject": subject_id, "answer": answer,
         "client_id": str(client_id or uuid.uuid4())},
        format="json",
    )
