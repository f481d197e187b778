"""The results pages: who may see them, what they show, and that the plots are images."""

from __future__ import annotations

import pytest
from django.test import Client

from aggregation import services
from aggregation.models import AggregationRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_run(crowd):
    run = services.run_create(workflow=crowd.workflow, reference_sets=[crowd.reference])
    return services.run_execute(run.pk)


def _client(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _urls(run) -> list[str]:
    return ["/aggregation/", f"/aggregation/runs/{run.pk}/",
            f"/aggregation/runs/{run.pk}/plots/skills.png"]


def test_anonymous_visitors_are_sent_to_sign_in(finished_run):
    for url in _urls(finished_run):
        response = _client().get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={url}"


def test_signed_in_volunteers_and_the_ml_team_are_told_why_not(finished_run, make_user):
    for user in (make_user("volunteer"), make_user("ml", ml=True)):
        for url in _urls(finished_run):
            response = _client(user).get(url)
            assert response.status_code == 403, (user.username, url)
            assert "for staff and experts" in response.content.decode()


@pytest.mark.parametrize("who", ["staff", "expert"])
def test_staff_and_experts_see_the_breakdown_and_the_plots(finished_run, make_user, who):
    user = make_user(who, staff=who == "staff", team="rubin" if who == "expert" else None)
    client = _client(user)
    listing = client.get("/aggregation/").content.decode()
    for row in finished_run.summary["breakdown"]:
        assert f"<td>{row['total_real']}</td><td>{row['total_bogus']}</td>" in listing
    page = client.get(f"/aggregation/runs/{finished_run.pk}/").content.decode()
    for name in ("volunteers", "skills", "posteriors", "trajectories"):
        assert f"/aggregation/runs/{finished_run.pk}/plots/{name}.png" in page
        response = client.get(f"/aggregation/runs/{finished_run.pk}/plots/{name}.png")
        assert response.status_code == 200
        assert response["Content-Type"] == "image/png"
        assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_unknown_runs_and_plots_are_404(finished_run, make_user):
    client = _client(make_user("boss", staff=True))
    assert client.get("/aggregation/runs/999999/").status_code == 404
    assert client.get(f"/aggregation/runs/{finished_run.pk}/plots/nothing.png").status_code == 404


def test_staff_start_a_run_from_the_runs_page(crowd, make_user, eager_celery,
                                              django_capture_on_commit_callbacks):
    client = _client(make_user("boss", staff=True))
    assert 'action="/aggregation/runs/new/"' in client.get("/aggregation/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/aggregation/runs/new/", {
            "workflow": crowd.workflow.slug, "reference_sets": crowd.reference.name,
            "mode": "batch", "union_policy": "drop", "prior": "0.3",
        })
    run = AggregationRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/aggregation/runs/{run.pk}/"
    assert (run.status, run.triggered_by, run.created_by.username) == ("done", "web", "boss")
    assert run.parameters["prior"] == 0.3


def test_a_bad_run_request_says_why_and_starts_nothing(crowd, make_user):
    client = _client(make_user("boss", staff=True))
    response = client.post("/aggregation/runs/new/", {
        "workflow": crowd.workflow.slug, "reference_sets": "no-such-set",
        "mode": "batch", "union_policy": "drop",
    })
    assert response.status_code == 400
    assert "unknown reference set(s): no-such-set" in response.content.decode()
    assert not AggregationRun.objects.exists()
    refused = _client(make_user("ml", ml=True)).post("/aggregation/runs/new/", {})
    assert refused.status_code == 403
    assert not AggregationRun.objects.exists()
