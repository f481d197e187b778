"""The registry's API: who may use it, requesting jobs, reading progress, versions and files."""

from __future__ import annotations

import csv
import hashlib
import io

import pytest
from rest_framework.test import APIClient

from tests.conftest import add_subjects, token_client
from tests.training.conftest import QUICK
from training.models import JobStatus, ScoringJob, SubjectScore, TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def ml(make_user):
    return token_client(make_user("ml", ml=True))


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize("who", ["volunteer", "expert", "anonymous"])
@pytest.mark.parametrize("url", [
    "/api/models/", "/api/models/v0.1/", "/api/models/v0.1/weights/", "/api/models/v0.1/onnx/",
    "/api/models/v0.1/scores.csv", "/api/training-jobs/", "/api/scoring-jobs/",
])
def test_only_the_ml_team_and_staff_use_the_registry(make_user, base_version, who, url):
    client = (APIClient() if who == "anonymous"
              else token_client(make_user(who, team="rubin" if who == "expert" else None)))
    assert client.get(url).status_code in (401, 403)
    assert token_client(make_user("boss", staff=True)).get(url).status_code == 200


def test_a_training_request_is_accepted_and_its_progress_readable(
        ml, label_set, eager_celery, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        reply = ml.post("/api/training-jobs/",
                        {"label_set": label_set.number, "name": "v0.5", **QUICK}, format="json")

    assert reply.status_code == 202, reply.json()
    assert reply.json()["trigger"] == "api"
    # The job was queued on commit and, with eager Celery, ran then.
    progress = ml.get(f"/api/training-jobs/{reply.json()['id']}/").json()
    assert (progress["status"], progress["model_version"]) == ("done", "v0.5")
    assert [row["epoch"] for row in progress["history"]] == [1, 2]
    assert progress["epoch"] == 2
    assert progress["options"]["epochs"] == 2
    version = ml.get("/api/models/v0.5/").json()
    assert version["evaluation"]["requirement"]["message"]
    assert version["label_set"] == label_set.number


@pytest.mark.parametrize(("payload", "status", "needle"), [
    ({}, 400, "label_set"),
    ({"label_set": 99}, 404, "no label set 99"),
    ({"label_set": 1, "parent": "v7"}, 404, "no model version 'v7'"),
    ({"label_set": 1, "epochs": "many"}, 400, "epochs"),
    ({"label_set": 1, "epochs": 0}, 400, "epochs"),
])
def test_bad_training_requests_get_a_json_error_and_queue_nothing(ml, label_set, payload,
                                                                  status, needle):
    reply = ml.post("/api/training-jobs/", payload, format="json")
    assert reply.status_code == status
    assert reply.json()["error"] in ("invalid", "not_found")
    assert needle in str(reply.json())
    assert not TrainingJob.objects.exists()


def test_a_training_job_in_progress_reports_its_epoch_and_batches(ml, label_set):
    job = TrainingJob.objects.create(
        name="v0.3", label_set=label_set, options=QUICK, trigger="api",
        status=JobStatus.RUNNING, epoch=1, batches_done=3, batches_total=9,
        history=[{"epoch": 1, "train_loss": 0.7, "val_loss": 0.69, "seconds": 1.0}],
    )
    reply = ml.get(f"/api/training-jobs/{job.pk}/").json()
    assert (reply["status"], reply["epoch"], reply["batches_done"], reply["batches_total"]) == (
        "running", 1, 3, 9)
    assert reply["history"][0]["val_loss"] == 0.69
    assert ml.get("/api/training-jobs/12345/").status_code == 404


@pytest.mark.parametrize(("kind", "field"), [("weights", "weights_sha256"),
                                              ("onnx", "onnx_sha256")])
def test_a_versions_files_download_with_their_sha256(ml, base_version, kind, field):
    reply = ml.get(f"/api/models/{base_version.name}/{kind}/")
    assert reply.status_code == 200
    assert hashlib.sha256(body(reply)).hexdigest() == getattr(base_version, field)
    assert reply["ETag"] == f'"{getattr(base_version, field)}"'
    again = ml.get(f"/api/models/{base_version.name}/{kind}/", HTTP_IF_NONE_MATCH=reply["ETag"])
    assert again.status_code == 304


def test_scoring_through_the_api_stores_scores_readable_as_csv(
        ml, workflow, base_version, eager_celery, django_capture_on_commit_callbacks):
    ids = add_subjects(workflow, 6, seed=3, set_name="visit-9")

    with django_capture_on_commit_callbacks(execute=True):
        reply = ml.post("/api/scoring-jobs/",
                        {"model": base_version.name, "subject_set": "visit-9"}, format="json")

    assert reply.status_code == 202, reply.json()
    job = ml.get(f"/api/scoring-jobs/{reply.json()['id']}/").json()
    assert (job["status"], job["n_done"]) == ("done", 6)
    rows = list(csv.DictReader(io.StringIO(body(ml.get(
        f"/api/models/{base_version.name}/scores.csv?subject_set=visit-9")).decode())))
    assert [int(row["subject_id"]) for row in rows] == sorted(ids)
    stored = dict(SubjectScore.objects.values_list("subject_id", "reliability"))
    assert all(abs(float(row["reliability"]) - stored[int(row["subject_id"])]) < 1e-6
               for row in rows)


@pytest.mark.parametrize(("payload", "status", "error"), [
    ({"model": "v0.1"}, 400, "invalid"),
    ({"model": "v9", "subject_set": "main"}, 404, "not_found"),
    ({"model": "v0.1", "subject_set": "nope"}, 404, "not_found"),
])
def test_bad_scoring_requests_get_a_json_error(ml, base_version, payload, status, error):
    reply = ml.post("/api/scoring-jobs/", payload, format="json")
    assert (reply.status_code, reply.json()["error"]) == (status, error)
    assert not ScoringJob.objects.exists()
