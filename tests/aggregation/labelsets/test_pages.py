"""The label-set pages: who may see them, the list, a set's manifest, plot, lineage and jobs."""

from __future__ import annotations

import pytest
from django.test import Client

from aggregation.labelsets import services
from aggregation.models import LabelSetExport

pytestmark = pytest.mark.django_db


@pytest.fixture
def label_set(labelled):
    return services.label_set_export(
        labelled.run.pk, services.ExportOptions(scenario="stable", stratify="origin"),
        fine_tune_from="cnn-v3",
    )


def _client(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _urls(number: int) -> list[str]:
    return ["/label-sets/", f"/label-sets/{number}/", f"/label-sets/{number}/breakdown.png"]


def test_anonymous_visitors_are_sent_to_sign_in(label_set):
    for url in _urls(label_set.number):
        response = _client().get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={url}"


def test_signed_in_volunteers_and_experts_are_told_why_not(label_set, make_user):
    for user in (make_user("volunteer"), make_user("expert", team="rubin")):
        for url in _urls(label_set.number):
            response = _client(user).get(url)
            assert response.status_code == 403, (user.username, url)
            page = response.content.decode()
            assert "for the ML team and staff" in page
            assert f"signed in as <strong>{user.username}</strong>" in page


@pytest.mark.parametrize("who", ["ml", "staff"])
def test_the_list_shows_each_set_with_its_counts_and_download(label_set, make_user, who):
    client = _client(make_user(who, staff=who == "staff", ml=who == "ml"))
    page = client.get("/label-sets/").content.decode()
    assert f'href="/label-sets/{label_set.number}/"' in page
    # The ML team cannot open aggregation runs: the number is shown, not linked.
    assert (f'href="/aggregation/runs/{label_set.run_id}/"' in page) == (who == "staff")
    assert f'href="/api/label-sets/{label_set.number}/download/"' in page
    assert "cnn-v3" in page
    counts = label_set.manifest["counts"]["train"]
    assert f"train {counts['real']['total']} / {counts['bogus']['total']}" in page


def test_a_set_s_page_shows_lineage_options_counts_checksums_and_the_plot(label_set, make_user):
    client = _client(make_user("ml", ml=True))
    page = client.get(f"/label-sets/{label_set.number}/").content.decode()
    run = label_set.run
    assert f'href="/aggregation/runs/{run.pk}/"' not in page
    assert f"run {run.pk}" in page
    assert f"<dd>{run.workflow.slug}</dd>" in page
    assert "<dd>rubin</dd>" in page
    assert "fine-tune from model version cnn-v3" in page
    assert "<td>stratify</td><td><code>origin</code></td>" in page
    for name, entry in label_set.manifest["files"].items():
        assert f"<td>{name}</td>" in page
        assert f"<code>{entry['sha256']}</code>" in page
    for split in ("train", "val", "test"):
        recorded = label_set.manifest["counts"][split]
        assert (f"<caption>{split}: {recorded['real']['total']} Real, "
                f"{recorded['bogus']['total']} Bogus</caption>") in page
        for origin, n in recorded["real"]["by_origin"].items():
            bogus = recorded["bogus"]["by_origin"].get(origin, 0)
            assert f"<tr><td>{origin}</td><td>{n}</td><td>{bogus}</td></tr>" in page
    assert f'src="/label-sets/{label_set.number}/breakdown.png"' in page
    plot = client.get(f"/label-sets/{label_set.number}/breakdown.png")
    assert plot.status_code == 200
    assert plot["Content-Type"] == "image/png"
    assert plot.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_failed_export_jobs_and_their_errors_are_shown(label_set, make_user):
    failed = LabelSetExport.objects.create(
        run=label_set.run, options={"scenario": "stable"}, status=LabelSetExport.Status.FAILED,
        error="unknown subject set 'fakes'",
    )
    client = _client(make_user("staff", staff=True))
    for url in ("/label-sets/", f"/label-sets/{label_set.number}/"):
        page = client.get(url).content.decode()
        assert f"<td>{failed.pk}</td>" in page
        assert "unknown subject set &#x27;fakes&#x27;" in page


def test_unknown_label_sets_are_404(label_set, make_user):
    client = _client(make_user("staff", staff=True))
    assert client.get("/label-sets/999/").status_code == 404
    assert client.get("/label-sets/999/breakdown.png").status_code == 404
