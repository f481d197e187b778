"""The project page: About text from the admin, progress, answers per day, and the label sets
and models the volunteers' answers fed; never a truth, origin or score."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from projects import chart
from tests.conftest import classify
from tests.training.conftest import export_label_set
from tests.training.pages_fixtures import make_version


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=60))
def test_bars_are_in_proportion_and_the_largest_reaches_the_top(counts):
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(len(counts))]
    bars = chart.day_bars(days, counts, width=600, height=120)
    assert [b.day for b in bars] == days
    assert all(b.y + b.height == pytest.approx(120) for b in bars)
    assert all(b.x + b.width <= 600 + 1e-9 for b in bars)
    assert [b.x for b in bars] == sorted(b.x for b in bars)
    peak = max(counts)
    for bar, count in zip(bars, counts, strict=True):
        assert bar.height == pytest.approx(120 * count / peak if peak else 0.0)


@pytest.mark.django_db
def test_the_page_shows_about_progress_and_answers_per_day(workflow, subject_ids, make_user):
    workflow.project.description = "We look for <new> transients."
    workflow.project.save(update_fields=["description"])
    client = Client()
    client.get(f"/api/workflows/{workflow.pk}/queue/?n=5")
    classify(client, workflow.pk, subject_ids[0])
    home = Client().get("/").content.decode()
    assert f'href="/projects/{workflow.project_id}/"' in home
    page = Client().get(f"/projects/{workflow.project_id}/").content.decode()
    assert "We look for &lt;new&gt; transients." in page
    assert f"<strong>0</strong> of {len(subject_ids)} subjects retired" in page
    assert "1 answer in the last 30 days." in page
    today = date.today().isoformat()
    assert f"<title>{today}: 1</title>" in page
    assert f"<tr><td>{today}</td><td>1</td></tr>" in page
    assert "No training set has been made" in page


@pytest.mark.django_db
def test_the_page_lists_the_label_sets_and_models_the_answers_fed(workflow, make_user):
    label_set = export_label_set(workflow, n=16)
    base_version = make_version("v0.1", label_set)
    project = label_set.run.workflow.project
    page = Client().get(f"/projects/{project.pk}/").content.decode()
    assert (f"<td>{label_set.n_subjects}</td><td>{label_set.run.workflow.slug}</td>\n"
            f"      <td>{base_version.name}</td>") in page
    assert f'href="/label-sets/{label_set.number}/"' not in page  # volunteers cannot open it
    ml = Client()
    ml.force_login(make_user("ml", ml=True))
    as_ml = ml.get(f"/projects/{project.pk}/").content.decode()
    assert f'href="/label-sets/{label_set.number}/"' in as_ml


@pytest.mark.django_db
def test_an_unknown_project_is_404():
    assert Client().get("/projects/999999/").status_code == 404
