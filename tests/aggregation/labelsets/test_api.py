"""The label-set API: who may use it, listing, export requests and job status."""

from __future__ import annotations

import pytest

from aggregation.labelsets import services
from aggregation.models import AggregationRun, LabelSetExport
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def label_set(labelled):
    return services.label_set_export(labelled.run.pk, services.ExportOptions(scenario="unstable"))


def _urls(number: int) -> list[str]:
    return ["/api/label-sets/", f"/api/label-sets/{number}/",
            f"/api/label-sets/{number}/download/"]


def test_anonymous_visitors_volunteers_and_experts_are_refused(label_set, make_user, client):
    callers = {
        "anonymous": client,
        "volunteer": token_client(make_user("volunteer")),
        "expert": token_client(make_user("expert", team="rubin")),
    }
    for who, caller in callers.items():
        for url in _urls(label_set.number):
            response = caller.get(url)
            assert response.status_code == 403, (who, url)
            assert not getattr(response, "streaming", False)
        refused = caller.post("/api/label-sets/", {"run": label_set.run_id,
                                                   "scenario": "stable"}, format="json")
        assert refused.status_code == 403, who
    assert LabelSetExport.objects.count() == 0


@pytest.mark.parametrize("who", ["ml", "staff"])
def test_the_ml_team_and_staff_list_read_and_download(label_set, make_user, who):
    caller = token_client(make_user(who, staff=who == "staff", ml=who == "ml"))
    listing = caller.get("/api/label-sets/").json()
    assert listing["count"] == 1
    [row] = listing["results"]
    assert row["number"] == label_set.number
    assert row["manifest"] == label_set.manifest
    assert row["workflow"] == label_set.run.workflow.slug
    assert row["reference_sets"] == ["rubin"]
    assert row["download"].endswith(f"/api/label-sets/{label_set.number}/download/")
    detail = caller.get(f"/api/label-sets/{label_set.number}/").json()
    assert detail["archive_sha256"] == label_set.archive_sha256
    assert caller.get(row["download"]).status_code == 200


def test_the_list_is_paginated_newest_first(labelled, make_user):
    for seed in range(3):
        services.label_set_export(labelled.run.pk,
                                  services.ExportOptions(scenario="unstable", seed=seed))
    caller = token_client(make_user("ml", ml=True))
    first = caller.get("/api/label-sets/?page_size=2").json()
    assert first["count"] == 3
    assert [row["number"] for row in first["results"]] == [3, 2]
    second = caller.get(first["next"]).json()
    assert [row["number"] for row in second["results"]] == [1]


def test_an_unknown_label_set_is_a_json_404(label_set, make_user):
    caller = token_client(make_user("ml", ml=True))
    for url in [*_urls(999)[1:], "/api/label-sets/exports/999/"]:
        response = caller.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"] == "not_found"


def test_an_export_request_is_accepted_then_done_on_commit(
    labelled, make_user, django_capture_on_commit_callbacks
):
    user = make_user("ml", ml=True)
    caller = token_client(user)
    request = {"run": labelled.run.pk, "scenario": "stable", "split": [0.6, 0.2, 0.2],
               "seed": 4, "stratify": "origin", "fine_tune_from": "cnn-v3"}
    with django_capture_on_commit_callbacks(execute=True):
        response = caller.post("/api/label-sets/", request, format="json")
        assert response.status_code == 202
        job = response.json()
        assert job["status"] == "pending"
        assert job["label_set"] is None
        assert job["created_by"] == "ml"
    status = caller.get(f"/api/label-sets/exports/{job['id']}/").json()
    assert status["status"] == "done"
    label_set = caller.get(f"/api/label-sets/{status['label_set']}/").json()
    assert label_set["fine_tune_from"] == "cnn-v3"
    assert label_set["options"]["split"] == [0.6, 0.2, 0.2]
    assert label_set["options"]["stratify"] == "origin"
    assert label_set["created_by"] == "ml"


@pytest.mark.parametrize("body", [
    {"scenario": "stable", "split": [0.5, 0.5, 0.5]},
    {"scenario": "stable", "balance": "oversample"},
    {"scenario": "sometimes"},
    {"scenario": "stable", "seed": "one"},
    {"scenario": "stable", "mix_injections": "injections:1.5"},
    {},
])
def test_bad_export_requests_are_400_and_queue_nothing(labelled, make_user, body):
    caller = token_client(make_user("staff", staff=True))
    response = caller.post("/api/label-sets/", {"run": labelled.run.pk, **body}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert LabelSetExport.objects.count() == 0


def test_an_export_that_fails_in_the_worker_says_why_in_its_status(
    labelled, make_user, django_capture_on_commit_callbacks
):
    caller = token_client(make_user("ml", ml=True))
    with django_capture_on_commit_callbacks(execute=True):
        job = caller.post("/api/label-sets/", {"run": labelled.run.pk, "scenario": "stable",
                                               "mix_injections": "nowhere:0.2"},
                          format="json").json()
    status = caller.get(f"/api/label-sets/exports/{job['id']}/").json()
    assert status["status"] == "failed"
    assert "unknown subject set 'nowhere'" in status["error"]
    assert status["label_set"] is None


def test_an_export_of_an_unknown_or_unfinished_run_is_refused(labelled, make_user):
    caller = token_client(make_user("staff", staff=True))
    unknown = caller.post("/api/label-sets/", {"run": 99999, "scenario": "stable"},
                          format="json")
    assert unknown.status_code == 404
    AggregationRun.objects.filter(pk=labelled.run.pk).update(
        status=AggregationRun.Status.RUNNING)
    running = caller.post("/api/label-sets/", {"run": labelled.run.pk, "scenario": "stable"},
                          format="json")
    assert running.status_code == 400
    assert "only a finished run" in running.json()["detail"]
    assert LabelSetExport.objects.count() == 0


def test_the_endpoints_are_in_the_openapi_schema(make_user):
    schema = token_client(make_user("staff", staff=True)).get(
        "/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/api/label-sets/", "/api/label-sets/{number}/",
                 "/api/label-sets/{number}/download/", "/api/label-sets/exports/{job_id}/"):
        assert path in schema["paths"], path
    assert "post" in schema["paths"]["/api/label-sets/"]
