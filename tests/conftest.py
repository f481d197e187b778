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
def _fresh_cache():
    """Rate-limit counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _no_probation(settings):
    """Most tests watch what counts toward retirement, and give anonymous answers to do so:
    the anonymous probation is off unless a test turns it on (tests/labeling/test_serving.py
    and tests/accounts/test_merge.py do)."""
    settings.ANONYMOUS_PROBATION_ANSWERS = 0


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


def served_token(client: APIClient, workflow_id: int, subject_id: int) -> str:
    """The token the queue would give this client for the subject, as if it had been served
    (tests choose their subjects; `test_serving.py` covers the queue's own tokens)."""
    from django.conf import settings
    from django.core import signing

    from labeling import serving

    user_id = None
    authorization = getattr(client, "_credentials", {}).get("HTTP_AUTHORIZATION", "")
    if authorization.startswith("Token "):
        user_id = Token.objects.get(key=authorization.removeprefix("Token ")).user_id
    elif getattr(getattr(client, "handler", None), "_force_user", None) is not None:
        user_id = client.handler._force_user.pk
    elif settings.SESSION_COOKIE_NAME in client.cookies and "_auth_user_id" in client.session:
        # (reading client.session with no session cookie would create a session row)
        user_id = int(client.session["_auth_user_id"])
    if user_id is not None:
        identity = serving.Identity(f"user:{user_id}")
    else:
        cookie_signer = signing.get_cookie_signer(
            salt=signing._cookie_signer_salt(serving.VISITOR_COOKIE, serving._SALT))
        cookie = client.cookies.get(serving.VISITOR_COOKIE)
        if cookie is None:
            visitor = uuid.uuid4().hex
            client.cookies[serving.VISITOR_COOKIE] = cookie_signer.sign(visitor)
        else:
            visitor = cookie_signer.unsign(cookie.value)
        identity = serving.Identity(f"visitor:{visitor}")
    return serving.served_token(identity, workflow_id, subject_id)


def classify(client: APIClient, workflow_id: int, subject_id: int, answer: str = "real",
             client_id: uuid.UUID | None = None, token: str | None = None):
    """POST an answer as the client, with the token of a subject served to it unless given."""
    return client.post(
        "/api/classifications/",
        {"workflow": workflow_id, "subject": subject_id, "answer": answer,
         "client_id": str(client_id or uuid.uuid4()),
         "token": token if token is not None else served_token(client, workflow_id, subject_id)},
        format="json",
    )
