"""The model-registry pages in a real browser: a training job's page follows the job as the
worker moves it on (without a reload), and axe-core finds nothing on the list and version
pages."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from labeling import roles, services
from labeling.models import SubjectSet
from tests.e2e.conftest import AXE, record, sign_in
from tests.training.conftest import export_label_set
from tests.training.pages_fixtures import HISTORY, make_job, make_version
from training.models import JobStatus, ScoringJob, TrainingJob
from training.presenters import FIGURES

pytestmark = pytest.mark.e2e

TRAINER_PASSWORD = "pw-trainer-12345!"


def trainer(django_user_model):
    """A member of the ML team, who may use the model registry."""
    user = django_user_model.objects.create_user("trainer", password=TRAINER_PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=roles.ML_TEAM_GROUP)[0])
    return user


def label_set():
    return export_label_set(services.workflow_create(slug="models", project_name="Models"))


def wait_for_text(page, selector: str, text: str) -> None:
    page.wait_for_function(
        "([selector, text]) => (document.querySelector(selector)?.textContent || '')"
        ".includes(text)",
        arg=[selector, text],
    )


def test_a_running_job_s_page_follows_the_job_until_its_version_is_registered(
        page, django_user_model, artifacts):
    trainer(django_user_model)
    data = label_set()
    parent = make_version("v0.1", data)
    job = make_job(data, "v0.2", parent=parent, epoch=1, batches_done=3, batches_total=10,
                   history=HISTORY[:1])
    url = f"/models/jobs/{job.pk}/"
    sign_in(page, "trainer", TRAINER_PASSWORD, url)
    assert page.locator("#epochs-so-far tbody tr").count() == 1
    assert page.locator("#epoch-progress-text").text_content() == "epoch 1 of 3 done"

    # The worker finishes epoch 2: the page shows it, its losses and the new point.
    TrainingJob.objects.filter(pk=job.pk).update(epoch=2, history=HISTORY[:2], batches_done=0)
    page.wait_for_selector('#epochs-so-far tr[data-epoch="2"]')
    row = page.locator('#epochs-so-far tr[data-epoch="2"]').text_content()
    assert "0.5200" in row
    assert "0.4800" in row
    assert page.locator("#epochs-so-far .val-marker").count() == 2
    assert page.locator("#epoch-progress").get_attribute("value") == "2"
    assert page.locator("#epoch-progress-text").text_content() == "epoch 2 of 3 done"
    wait_for_text(page, "#announce", "Epoch 2 of 3 finished: training loss 0.5200, "
                                     "validation loss 0.4800.")
    assert page.locator("#training-job").get_attribute("data-status") == "running"

    # The job is done and its version registered: the page links to it and stops polling.
    version = make_version("v0.2", data, parent=parent)
    TrainingJob.objects.filter(pk=job.pk).update(
        status=JobStatus.DONE, model_version=version, epoch=3, history=HISTORY)
    page.wait_for_selector('#job-version a[href="/models/v0.2/"]')
    wait_for_text(page, "#announce", "Training done: model version v0.2 is registered.")
    assert page.locator("#training-job").get_attribute("data-status") == "done"
    assert page.locator("#epochs-so-far tbody tr").count() == 3
    assert page.locator("#batch-progress").count() == 0
    assert page.locator("#refresh-note").count() == 0
    page.screenshot(path=str(artifacts / "training-job-done.png"), full_page=True)
    page.click('#job-version a[href="/models/v0.2/"]')
    page.wait_for_url("**/models/v0.2/")
    assert page.locator("h1").text_content() == "Model version v0.2"


def axe_violations(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' '))}));
        }"""
    )


def test_axe_finds_no_violations_on_the_list_and_version_pages(page, django_user_model,
                                                               artifacts):
    assert AXE.exists(), f"{AXE} is missing: `make test` runs `npm ci`"
    trainer(django_user_model)
    data = label_set()
    base = make_version("v0.1", data, met=True)
    child = make_version("v0.2", data, parent=base, met=False, seed=1)
    make_job(data, "v0.3", parent=child, epoch=1, batches_done=4, batches_total=10,
             history=HISTORY[:1])
    make_job(data, "v0.4", status=JobStatus.FAILED, error="label set 1 has no test subjects")
    ScoringJob.objects.create(model_version=child, subject_set=SubjectSet.objects.first(),
                              status=JobStatus.FAILED, n_total=48, n_done=12,
                              error="subject set 'main' has stamps of size [63]")
    sign_in(page, "trainer", TRAINER_PASSWORD, "/models/")
    results = {}
    for name, url in (("list", "/models/"), ("version", "/models/v0.2/")):
        page.goto(url)
        if name == "version":
            # Every figure reaches the browser as an image (they load lazily, when in view).
            figures = page.locator(".figures img")
            assert figures.count() == len(FIGURES)
            for i in range(figures.count()):
                figures.nth(i).scroll_into_view_if_needed()
            page.wait_for_function("[...document.querySelectorAll('.figures img')]"
                                   ".every(image => image.complete && image.naturalWidth > 0)")
        page.wait_for_load_state("networkidle")
        results[name] = axe_violations(page)
        page.screenshot(path=str(artifacts / f"models-{name}.png"), full_page=True)
    record(artifacts, "axe-models.json", {"axe_version": page.evaluate("axe.version"), **results})
    assert results == {"list": [], "version": []}
