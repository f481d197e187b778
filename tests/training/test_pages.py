"""The model-registry pages: who may see them, the version list as a lineage with the jobs not
done, one version's evaluation, figures and loss, the comparison of two versions on one test
split, a training job's progress; and the presenters that work out what they show."""

from __future__ import annotations

import math
import re

import pytest
from django.test import Client
from hypothesis import example, given
from hypothesis import strategies as st

from labeling.models import SubjectSet
from tests.training.pages_fixtures import BEST_EPOCH, HISTORY, make_job, make_version
from training import presenters, storage
from training.models import Evaluation, JobStatus, ScoringJob

PNG = b"\x89PNG\r\n\x1a\n"


def _client(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def second_label_set(label_set):
    """Another export of the same run, split with another seed: other test subjects."""
    from aggregation.labelsets.services import ExportOptions, label_set_export

    options = ExportOptions.from_dict({"scenario": "unstable", "balance": "none", "seed": 1})
    return label_set_export(label_set.run_id, options)


@pytest.fixture
def registry(label_set):
    """v0.1 (meets the requirement) fine-tuned into v0.2 (does not), a failed and a running
    training job, and a scoring job."""
    base = make_version("v0.1", label_set, met=True)
    child = make_version("v0.2", label_set, parent=base, met=False, seed=1)
    failed = make_job(label_set, "v0.3", status=JobStatus.FAILED,
                      error="label set 1 has no test subjects")
    running = make_job(label_set, "v0.4", parent=child, epoch=1, batches_done=5,
                       batches_total=20, history=HISTORY[:1])
    scoring = ScoringJob.objects.create(model_version=child, subject_set=SubjectSet.objects.first(),
                                        status=JobStatus.RUNNING, n_total=48, n_done=12)
    return {"base": base, "child": child, "failed": failed, "running": running,
            "scoring": scoring}


def _urls(registry) -> list[str]:
    urls = ["/models/", "/models/v0.2/", "/models/compare/?a=v0.1&b=v0.2",
            f"/models/jobs/{registry['running'].pk}/"]
    for figure in presenters.FIGURES:
        urls += [f"/models/v0.2/figures/{figure}.png",
                 f"/models/compare/figures/{figure}.png?a=v0.1&b=v0.2"]
    return urls


# --- who may see them ------------------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_sign_in(registry):
    client = _client()
    for url in _urls(registry):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url


@pytest.mark.django_db
def test_volunteers_and_experts_are_refused(registry, make_user):
    for user in (make_user("volunteer"), make_user("expert", team="rubin")):
        client = _client(user)
        for url in _urls(registry):
            assert client.get(url).status_code == 403, (user.username, url)
    assert not Evaluation.objects.exclude(label_set=registry["base"].label_set).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["ml", "staff"])
def test_the_ml_team_and_staff_see_every_page_and_figure(registry, make_user, who):
    client = _client(make_user(who, staff=who == "staff", ml=who == "ml"))
    for url in _urls(registry):
        response = client.get(url)
        assert response.status_code == 200, url
        if ".png" in url:
            assert response["Content-Type"] == "image/png"
            assert response.content.startswith(PNG)
            # An evaluation never changes: the figure may be kept, by this browser only.
            assert response["Cache-Control"].startswith("private")


@pytest.mark.django_db
def test_the_home_page_links_to_the_registry_only_for_those_who_may_use_it(make_user):
    for user, shown in ((make_user("ml", ml=True), True), (make_user("boss", staff=True), True),
                        (make_user("volunteer"), False),
                        (make_user("expert", team="rubin"), False)):
        page = _client(user).get("/").content.decode()
        assert ('href="/models/"' in page) is shown, user.username


# --- the list ----------------------------------------------------------------------------------


@pytest.fixture
def ml_client(make_user):
    return _client(make_user("ml", ml=True))


@pytest.mark.django_db
def test_the_list_shows_the_lineage_with_each_requirement_sentence(registry, ml_client):
    page = ml_client.get("/models/").content.decode()
    base, child = registry["base"], registry["child"]
    rows = re.findall(r'<tr data-version="([^"]+)">(.*?)</tr>', page, re.S)
    assert [name for name, _ in rows] == ["v0.1", "v0.2"], "the parent comes first"
    base_row, child_row = (row for _, row in rows)
    assert 'lineage-depth-0"' in base_row
    assert "none (base model)" in base_row
    assert 'lineage-depth-1"' in child_row
    assert '<a href="/models/v0.1/">v0.1</a>' in child_row, "the child names its parent"
    assert f'href="/label-sets/{base.label_set.number}/"' in base_row
    met = base.evaluations.get().metrics["requirement"]
    not_met = child.evaluations.get().metrics["requirement"]
    assert met["met"]
    assert not not_met["met"]
    assert ('class="requirement requirement-met"><strong>Requirement met:</strong> '
            + _html(met["message"])) in base_row
    assert ('class="requirement requirement-not-met"><strong>Requirement not met:</strong> '
            + _html(not_met["message"])) in child_row
    assert "no threshold meets" in not_met["message"]


def _html(text: str) -> str:
    return text.replace(">", "&gt;")


@pytest.mark.django_db
def test_the_list_shows_jobs_not_done_with_progress_or_error_and_scoring_jobs(registry,
                                                                             ml_client):
    page = ml_client.get("/models/").content.decode()
    failed, running = registry["failed"], registry["running"]
    assert f'href="/models/jobs/{failed.pk}/"' in page
    assert '<pre class="job-error">label set 1 has no test subjects</pre>' in page
    assert f'href="/models/jobs/{running.pk}/"' in page
    assert 'max="3" value="1"' in page
    assert "epoch 1 of 3 done" in page
    assert 'max="20" value="5"' in page
    assert "batch 5 of 20 of epoch 2" in page
    assert "12 of 48" in page, "the scoring job's progress"
    # The compare form offers every version.
    assert page.count('<option value="v0.1">') == 2
    assert page.count('<option value="v0.2">') == 2


@pytest.mark.django_db
def test_the_list_s_query_count_does_not_grow_with_versions_and_jobs(
        label_set, ml_client, django_assert_max_num_queries):
    subject_set = SubjectSet.objects.first()

    def add(start: int, stop: int) -> None:
        for i in range(start, stop):
            parent = make_version(f"v1.{i}", label_set, met=i % 2 == 0, seed=i)
            make_version(f"v2.{i}", label_set, parent=parent, evaluated=i % 3 != 0, seed=i)
            make_job(label_set, f"v3.{i}", parent=parent, epoch=1, batches_total=4)
            make_job(label_set, f"v4.{i}", status=JobStatus.FAILED, error=f"error {i}")
            ScoringJob.objects.create(model_version=parent, subject_set=subject_set)

    add(0, 1)
    ml_client.get("/models/")  # the session and the user's groups are read once, first
    with django_assert_max_num_queries(8) as few:
        assert ml_client.get("/models/").status_code == 200
    add(1, 4)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = ml_client.get("/models/").content.decode()
    assert page.count("<tr data-version=") == 8
    assert page.count("<tr data-job=") == 8


# --- one version ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_version_s_page_shows_lineage_files_loss_and_its_evaluation(registry, ml_client):
    base, child = registry["base"], registry["child"]
    make_version("v0.5", base.label_set, parent=child, seed=5)
    page = ml_client.get("/models/v0.2/").content.decode()
    assert '<dd id="ancestors"><a href="/models/v0.1/">v0.1</a></dd>' in page
    assert '<dd id="children"><a href="/models/v0.5/">v0.5</a></dd>' in page
    assert f'href="/label-sets/{child.label_set.number}/"' in page
    assert f"<code class=\"hash\">{child.weights_sha256}</code>" in page
    assert f"({storage.path_of(child.weights_path).stat().st_size} bytes)" in page
    assert "largest score difference 2.5e-07" in page
    assert "made for a page test from seed 1" in page
    assert "/models/compare/?a=v0.1&amp;b=v0.2" in page, "a link to compare with the parent"
    # The loss chart: one point per epoch for each curve, the kept epoch ringed and named.
    assert len(re.findall(r'<circle class="train-marker"', page)) == len(HISTORY)
    assert len(re.findall(r'<rect class="val-marker"', page)) == len(HISTORY)
    assert f"best epoch {BEST_EPOCH}: validation loss 0.4800" in page
    assert f'<tr data-epoch="{BEST_EPOCH}" class="best-epoch"><td>{BEST_EPOCH} (best)</td>' in page
    # Its evaluation, said plainly: the requirement is not met.
    metrics = child.evaluations.get().metrics
    assert ("<strong>Requirement not met:</strong> "
            + _html(metrics["requirement"]["message"])) in page
    assert f"<tr><td>Test subjects</td><td>{metrics['n']}</td></tr>" in page
    assert f"<tr><td>ROC AUC</td><td>{metrics['roc_auc']:.3f}</td></tr>" in page
    for origin, part in metrics["per_origin"].items():
        assert (f"<tr><td>{origin}</td><td>{part['n']}</td><td>{part['n_real']}</td>"
                f"<td>{part['n_bogus']}</td>") in page
    for figure in presenters.FIGURES:
        assert f'src="/models/v0.2/figures/{figure}.png"' in page
    assert "12 of 48" in page, "its scoring job"


@pytest.mark.django_db
def test_a_version_that_meets_the_requirement_says_where(registry, ml_client):
    page = ml_client.get("/models/v0.1/").content.decode()
    requirement = registry["base"].evaluations.get().metrics["requirement"]
    assert "<strong>Requirement met:</strong> " + _html(requirement["message"]) in page
    low, high = requirement["ranges"][0]
    assert f"<dd>{low:g} to {high:g}</dd>" in page
    assert "none: a base model, trained from scratch" in page


@pytest.mark.django_db
def test_unknown_versions_and_figures_are_404(registry, ml_client):
    assert ml_client.get("/models/v9.9/").status_code == 404
    assert ml_client.get("/models/v9.9/figures/distribution.png").status_code == 404
    assert ml_client.get("/models/v0.1/figures/confusion.png").status_code == 404
    assert ml_client.get("/models/compare/figures/confusion.png?a=v0.1&b=v0.2").status_code \
        == 404
    unevaluated = make_version("v0.9", registry["base"].label_set, evaluated=False)
    assert ml_client.get(f"/models/{unevaluated.name}/figures/distribution.png").status_code \
        == 404
    assert "has no evaluation on its label set" in ml_client.get("/models/v0.9/").content.decode()


# --- comparing two versions ----------------------------------------------------------------------


@pytest.mark.django_db
def test_compare_evaluates_both_on_b_s_label_set_by_default(
        label_set, second_label_set, ml_client, django_capture_on_commit_callbacks):
    make_version("v0.1", label_set)
    make_version("v0.2", second_label_set, evaluated=False, seed=2)
    # Neither is evaluated there yet: the page says a worker is on it, and queues both.
    with django_capture_on_commit_callbacks(execute=True):
        pending = ml_client.get("/models/compare/?a=v0.1&b=v0.2")
    assert pending.status_code == 202
    assert "v0.1 and v0.2 are being evaluated on label set" in pending.content.decode()
    page = ml_client.get("/models/compare/?a=v0.1&b=v0.2").content.decode()
    # Both were scored on v0.2's test split by the queued tasks, and the evaluations stored.
    evaluations = Evaluation.objects.filter(label_set=second_label_set)
    assert set(evaluations.values_list("model_version__name", flat=True)) == {"v0.1", "v0.2"}
    a = evaluations.get(model_version__name="v0.1").metrics
    test_split = second_label_set.manifest["counts"]["test"]
    assert a["n"] == test_split["real"]["total"] + test_split["bogus"]["total"]
    assert f"v0.1 and v0.2 on label set {second_label_set.number}" in page
    assert "Difference (v0.2 \N{MINUS SIGN} v0.1)" in page
    b = evaluations.get(model_version__name="v0.2").metrics
    assert f"<tr><td>Test subjects</td><td>{a['n']}</td><td>{b['n']}</td><td>+0</td></tr>" in page
    query = f"a=v0.1&amp;b=v0.2&amp;label_set={second_label_set.number}"
    for figure in presenters.FIGURES:
        assert f'src="/models/compare/figures/{figure}.png?{query}"' in page
        png = ml_client.get(f"/models/compare/figures/{figure}.png?{query.replace('&amp;', '&')}")
        assert png.status_code == 200
        assert png.content.startswith(PNG)


@pytest.mark.django_db
def test_compare_on_a_chosen_label_set_scores_both_there(
        label_set, second_label_set, ml_client, django_capture_on_commit_callbacks):
    make_version("v0.1", label_set)
    make_version("v0.2", second_label_set, seed=2)
    url = f"/models/compare/?a=v0.1&b=v0.2&label_set={label_set.number}"
    with django_capture_on_commit_callbacks(execute=True):
        assert ml_client.get(url).status_code == 202  # v0.2 is queued for evaluation there
    assert ml_client.get(url).status_code == 200
    assert set(Evaluation.objects.filter(label_set=label_set)
               .values_list("model_version__name", flat=True)) == {"v0.1", "v0.2"}


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "status", "message"), [
    ("", 400, "pick two versions to compare"),
    ("?a=v0.1", 400, "pick two versions to compare"),
    ("?a=v0.1&b=v0.1", 400, "pick two different versions: a and b are both v0.1"),
    ("?a=v0.1&b=v7", 404, "no model version &#x27;v7&#x27;"),
    ("?a=v0.1&b=v0.2&label_set=99", 404, "no label set 99"),
    ("?a=v0.1&b=v0.2&label_set=one", 400, "label_set must be a label set number"),
])
def test_bad_compare_requests_say_what_is_wrong(registry, ml_client, query, status, message):
    for url in (f"/models/compare/{query}", f"/models/compare/figures/distribution.png{query}"):
        response = ml_client.get(url)
        assert response.status_code == status, url
        page = response.content.decode()
        assert message in page, page
        assert '<form class="compare-form"' in page, "the form to try again"
    assert not Evaluation.objects.filter(label_set__number=99).exists()


# --- a training job --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_running_job_s_page_shows_progress_and_polls_the_api(registry, ml_client):
    job = registry["running"]
    page = ml_client.get(f"/models/jobs/{job.pk}/").content.decode()
    assert 'data-status="running"' in page
    assert 'max="3" value="1"' in page
    assert "epoch 1 of 3 done" in page
    assert "batch 5 of 20 of epoch 2" in page
    assert f'"api": "/api/training-jobs/{job.pk}/"' in page
    assert "training/training_job.js" in page
    assert f'<a href="/models/jobs/{job.pk}/">refresh it</a>' in page
    assert '<tr data-epoch="1" class="best-epoch">' in page
    assert '<a href="/models/v0.2/">v0.2</a>' in page, "the version it starts from"
    assert '<div id="job-error" hidden>' in page


@pytest.mark.django_db
def test_a_failed_job_s_page_shows_its_error_and_does_not_poll(registry, ml_client):
    page = ml_client.get(f"/models/jobs/{registry['failed'].pk}/").content.decode()
    assert '<div id="job-error">' in page
    assert "label set 1 has no test subjects" in page
    assert "none: the job failed" in page
    assert "training_job.js" not in page
    assert "refresh it" not in page


@pytest.mark.django_db
def test_a_done_job_s_page_links_to_its_version(registry, ml_client):
    job = make_job(registry["base"].label_set, "v0.6", status=JobStatus.DONE, epoch=3,
                   history=HISTORY)
    version = make_version("v0.6", job.label_set)
    job.model_version = version
    job.save(update_fields=["model_version"])
    page = ml_client.get(f"/models/jobs/{job.pk}/").content.decode()
    assert '<a href="/models/v0.6/">model version v0.6</a> is registered' in page
    assert "training_job.js" not in page
    assert ml_client.get("/models/jobs/999999/").status_code == 404


# --- presenters ---------------------------------------------------------------------------------


class Node:
    def __init__(self, pk: int, parent_id: int | None):
        self.pk, self.parent_id = pk, parent_id


@st.composite
def forests(draw) -> list[Node]:
    """Versions 1..n, each with no parent, an earlier version, or one not in the list (0)."""
    n = draw(st.integers(0, 30))
    return [Node(pk, draw(st.sampled_from([None, 0, *range(1, pk)]))) for pk in range(1, n + 1)]


@given(forests())
def test_lineage_rows_put_each_version_once_right_under_its_parent(versions):
    rows = presenters.lineage_rows(versions)
    assert sorted(row.version.pk for row in rows) == [v.pk for v in versions]
    position = {row.version.pk: i for i, row in enumerate(rows)}
    depth = {row.version.pk: row.depth for row in rows}
    for row in rows:
        parent = row.version.parent_id
        if parent in position:
            assert position[parent] < position[row.version.pk]
            assert row.depth == depth[parent] + 1
            # Everything between the parent and this row descends from the parent.
            for between in rows[position[parent] + 1:position[row.version.pk]]:
                assert between.depth > depth[parent]
        else:
            assert row.depth == 0
        assert row.indent == min(row.depth, presenters.MAX_INDENT)


def test_lineage_rows_list_siblings_newest_first():
    rows = presenters.lineage_rows([Node(1, None), Node(2, 1), Node(3, 1), Node(4, None)])
    assert [(row.version.pk, row.depth) for row in rows] == [(4, 0), (1, 0), (3, 1), (2, 1)]


@given(st.floats(1e-6, 1e6))
def test_nice_ceiling_is_a_round_number_at_most_twice_the_value(value):
    top = presenters.nice_ceiling(value)
    assert value <= top * (1 + 1e-9)
    assert top <= 2 * value * (1 + 1e-9)
    mantissa = top / 10 ** math.floor(math.log10(top))
    assert any(abs(mantissa - step) < 1e-9 for step in (1, 2, 2.5, 5, 10))


# Epoch label steps: 1, 2, 5, 10, 20, 50, ...
STEPS = [multiple * 10 ** power for power in range(5) for multiple in (1, 2, 5)]


@given(st.integers(1, 10_000))
def test_the_epoch_step_is_the_smallest_that_gives_at_most_ten_labels(last_epoch):
    step = presenters.epoch_step(last_epoch)
    assert step in STEPS
    assert math.ceil(last_epoch / step) <= presenters.MAX_EPOCH_TICKS
    smaller = STEPS[:STEPS.index(step)]
    assert all(math.ceil(last_epoch / s) > presenters.MAX_EPOCH_TICKS for s in smaller)


history_rows = st.lists(st.tuples(st.floats(0.0, 50.0), st.floats(0.0, 50.0)), max_size=40)


@given(history_rows, st.integers(0, 60))
@example([(0.0, 5e-324)], 0)  # a subnormal loss: its power of ten underflows to 0
def test_the_loss_chart_stays_in_its_frame_and_rings_the_lowest_validation_loss(losses,
                                                                                planned):
    history = [{"epoch": i + 1, "train_loss": train, "val_loss": val, "seconds": 1.0}
               for i, (train, val) in enumerate(losses)]
    chart = presenters.loss_chart(history, planned_epochs=planned)
    frame = chart.frame
    markers = chart.train_markers + chart.val_markers
    assert len(chart.train_markers) == len(chart.val_markers) == len(history)
    for marker in markers:
        assert frame.left <= marker.x <= frame.right_edge
        assert frame.top <= marker.y <= frame.bottom_edge
    if history:
        best = min(history, key=lambda row: row["val_loss"])
        assert chart.best.label.startswith(f"best epoch {best['epoch']}:")
        lowest = max(marker.y for marker in chart.val_markers)  # SVG y grows downwards
        assert chart.best.y == lowest
    else:
        assert chart.best is None
        assert chart.train_points == ""
    # The epoch axis runs from 1 to the last epoch planned or run, labelled every `step`.
    last = max(planned, len(history), 1)
    labels = [int(tick.label) for tick in chart.epoch_ticks]
    step = presenters.epoch_step(last)
    assert labels[0] == 1
    assert last - step < labels[-1] <= last
    assert all(label % step == 0 for label in labels[1:])
    assert [tick.position for tick in chart.loss_ticks] == sorted(
        (tick.position for tick in chart.loss_ticks), reverse=True)
    assert chart.loss_ticks[0].label == "0"


def test_the_loss_chart_takes_the_kept_epoch_when_told():
    chart = presenters.loss_chart(HISTORY, best_epoch=3)
    assert chart.best.label == "best epoch 3: validation loss 0.5100"
    rows = presenters.epoch_rows(HISTORY, 3)
    assert [row.best for row in rows] == [False, False, True]
    assert rows[0].train_loss == "0.6900"
    assert rows[0].seconds == "1.5"


def test_job_progress_never_plans_fewer_epochs_than_run_nor_more_batches_than_exist():
    progress = presenters.job_progress(epoch=4, options={"epochs": 3}, batches_done=9,
                                       batches_total=8)
    assert (progress.epochs_planned, progress.batches_done) == (4, 8)
    assert progress.epochs_text == "epoch 4 of 4 done"
    waiting = presenters.job_progress(epoch=0, options={}, batches_done=0, batches_total=0)
    assert waiting.batches_text == "no batch yet"
    assert waiting.epochs_text == "epoch 0 of 0 done"


def test_compared_numbers_are_b_minus_a():
    a = {"n": 10, "n_real": 5, "n_bogus": 5, "roc_auc": 0.8, "equal_point": None,
         "recall_at_rank": {"area": 0.9, "k_at_half": 3, "k_at_90": 7},
         "requirement": {"met": False, "ranges": []}}
    b = {**a, "roc_auc": 0.8123, "equal_point": {"threshold": 0.5, "value": 0.91},
         "recall_at_rank": {"area": 0.9, "k_at_half": 2, "k_at_90": 9},
         "requirement": {"met": True, "ranges": [[0.4, 0.55], [0.6, 0.6]]}}
    rows = {row.label: row for row in presenters.compare(a, b)}
    assert (rows["Survey requirement met"].a, rows["Survey requirement met"].b) == ("no", "yes")
    assert rows["Thresholds where it holds"].b == "0.4 to 0.55, 0.6"
    assert rows["Thresholds where it holds"].a == "none"
    assert (rows["ROC AUC"].a, rows["ROC AUC"].b, rows["ROC AUC"].difference) == (
        "0.800", "0.812", "+0.012")
    area = rows[presenters.RECALL_AREA.label]
    assert area.difference == "+0.000"
    assert rows["Rank K where recall reaches 50%"].difference == "-1"
    assert rows["Rank K where recall reaches 90%"].difference == "+2"
    equal = rows["Threshold where purity = completeness"]
    assert (equal.a, equal.b, equal.difference) == ("undefined", "0.500", "")


def test_summaries_say_the_equal_point_and_per_origin_rows_are_by_origin():
    metrics = {"n": 4, "n_real": 2, "n_bogus": 2, "roc_auc": None, "recall_at_rank": None,
               "equal_point": {"threshold": 0.4125, "value": 0.875},
               "requirement": {"met": False, "ranges": [], "message": "no threshold meets it"},
               "per_origin": {
                   "ss": {"n": 2, "n_real": 1, "n_bogus": 1, "equal_point": None,
                          "requirement": {"met": True, "message": "holds for 0.1 to 0.9"}},
                   "gaia": {"n": 2, "n_real": 1, "n_bogus": 1,
                            "equal_point": {"threshold": 0.5, "value": 1.0},
                            "requirement": {"met": False, "message": "no threshold"}}}}
    summary = presenters.summarise(metrics)
    assert (summary.met, summary.message, summary.ranges) == (False, "no threshold meets it",
                                                              "none")
    assert summary.equal_point == "0.875 at threshold 0.4125"
    assert summary.recall_area == "undefined"
    assert dict(summary.numbers)["ROC AUC"] == "undefined"
    rows = presenters.per_origin_rows(metrics)
    assert [row.origin for row in rows] == ["gaia", "ss"]
    assert rows[0].equal_point == "1.000 at threshold 0.5"
    assert rows[1].equal_point == "purity and completeness never meet"
    assert rows[1].met
    assert presenters.per_origin_rows({"requirement": {}}) == []
