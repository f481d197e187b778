"""The ML team in the browser: export a label set with its options, train and fine-tune on it,
score a subject set, through the same services as the API and the commands."""

from __future__ import annotations

import pytest
from django.test import Client

from aggregation.models import LabelSet, LabelSetExport
from tests.training.conftest import QUICK
from training.models import ScoringJob, TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def ml_client(make_user) -> Client:
    client = Client()
    client.force_login(make_user("ml", ml=True))
    return client


def test_an_export_from_the_form_makes_a_label_set_with_its_options(
        label_set, ml_client, django_capture_on_commit_callbacks):
    before = LabelSet.objects.count()
    form = ml_client.get("/label-sets/export/").content.decode()
    assert f'<option value="{label_set.run_id}">run {label_set.run_id}:' in form
    with django_capture_on_commit_callbacks(execute=True):
        response = ml_client.post("/label-sets/export/", {
            "run": label_set.run_id, "scenario": "unstable", "balance": "none",
            "split": "0.6,0.2,0.2", "seed": 7, "stratify": "none",
        })
    assert response.status_code == 302
    assert response["Location"] == "/label-sets/"
    made = LabelSet.objects.order_by("-number").first()
    assert LabelSet.objects.count() == before + 1
    assert made.options["split"] == [0.6, 0.2, 0.2]
    assert made.options["seed"] == 7
    assert LabelSetExport.objects.get(label_set=made).created_by.username == "ml"


def test_a_bad_export_request_says_why_and_makes_nothing(label_set, ml_client):
    before = LabelSet.objects.count()
    response = ml_client.post("/label-sets/export/", {
        "run": label_set.run_id, "scenario": "unstable", "balance": "none",
        "split": "0.9,0.9,0.1", "seed": 0, "stratify": "none",
    })
    assert response.status_code == 400
    assert "split" in response.content.decode()
    assert LabelSet.objects.count() == before
    assert not LabelSetExport.objects.exists()


def test_training_and_fine_tuning_from_the_form(label_set, ml_client,
                                                django_capture_on_commit_callbacks):
    page = ml_client.get(f"/label-sets/{label_set.number}/").content.decode()
    assert f'href="/models/train/?label_set={label_set.number}"' in page
    options = {**QUICK, "batch_size": 16, "learning_rate": 1e-3, "weight_decay": 0.0}
    with django_capture_on_commit_callbacks(execute=True):
        response = ml_client.post("/models/train/", {"label_set": label_set.number,
                                                     "name": "v7.1", **options})
    job = TrainingJob.objects.get(name="v7.1")
    assert response.status_code == 302
    assert response["Location"] == f"/models/jobs/{job.pk}/"
    assert (job.status, job.trigger, job.created_by.username) == ("done", "web", "ml")
    assert job.options["batch_size"] == 16
    with django_capture_on_commit_callbacks(execute=True):
        tuned = ml_client.post("/models/train/", {"label_set": label_set.number,
                                                  "name": "v7.2", "parent": "v7.1", **options})
    assert tuned.status_code == 302
    assert TrainingJob.objects.get(name="v7.2").model_version.parent.name == "v7.1"


def test_a_bad_training_request_says_why_and_queues_nothing(label_set, ml_client):
    response = ml_client.post("/models/train/", {"label_set": 999, "epochs": 1, "batch_size": 8,
                                                 "learning_rate": 0.1, "weight_decay": 0,
                                                 "patience": 1, "seed": 0})
    assert response.status_code == 404
    assert "999" in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_scoring_a_subject_set_from_the_form(base_version, ml_client,
                                             django_capture_on_commit_callbacks):
    subject_set = base_version.label_set.run.workflow.subject_sets.get()
    page = ml_client.get(f"/models/{base_version.name}/").content.decode()
    assert f'href="/models/{base_version.name}/score/"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = ml_client.post(f"/models/{base_version.name}/score/",
                                  {"subject_set": subject_set.pk})
    assert response.status_code == 302
    job = ScoringJob.objects.get()
    assert (job.status, job.subject_set_id, job.n_done) == ("done", subject_set.pk, job.n_total)
    assert job.n_total > 0


def test_volunteers_cannot_act_and_anonymous_visitors_are_sent_to_sign_in(label_set, make_user):
    volunteer = Client()
    volunteer.force_login(make_user("volunteer"))
    for url, data in [("/label-sets/export/", {"run": label_set.run_id}),
                      ("/models/train/", {"label_set": label_set.number})]:
        refused = volunteer.post(url, data)
        assert refused.status_code == 403
        assert "ML team and staff" in refused.content.decode()
        assert Client().post(url, data)["Location"] == f"/accounts/login/?next={url}"
    assert not TrainingJob.objects.exists()
    assert not LabelSetExport.objects.exists()
