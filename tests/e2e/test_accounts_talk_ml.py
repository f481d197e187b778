"""Accounts, Talk, the project page and the ML team's forms in a real browser: sign-up to a
first answer, the anonymous-to-account merge, a Talk comment, a bad-image report reaching the
experts' review queue, an ML-team member exporting and training; axe-core on each new page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from labeling import roles, services
from labeling.models import Classification, Volunteer
from talk.models import BadImageReport, Comment
from tests.e2e.conftest import (
    AXE,
    build_workflow,
    record,
    sign_in,
    tutorial_seen,
    wait_for_subject,
    wait_until_saved,
)
from training.models import TrainingJob

pytestmark = pytest.mark.e2e
PASSWORD = "pw-browser-12345!"


def axe_violations(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' '))}));
        }"""
    )


def check_axe(page, artifacts, name: str) -> None:
    assert AXE.exists(), f"{AXE} is missing: `make test` runs `npm ci`"
    page.wait_for_load_state("networkidle")
    violations = axe_violations(page)
    record(artifacts, f"axe-{name}.json", violations)
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    assert violations == [], name


def answer(page, key: str = "r", previous: int | None = None) -> int:
    shown = wait_for_subject(page, previous)
    page.keyboard.press(key)
    return shown


def test_sign_up_to_a_first_answer(page, context, django_user_model, artifacts):
    workflow, _, _ = build_workflow("signup")
    tutorial_seen(context, workflow)
    page.goto("/")
    page.click("text=Create an account")
    check_axe(page, artifacts, "signup")
    page.fill("#id_username", "newbie")
    page.fill("#id_email", "newbie@example.org")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    page.goto(f"/classify/{workflow.slug}/")
    first = answer(page)
    wait_for_subject(page, first)
    wait_until_saved(page)
    user = django_user_model.objects.get(username="newbie")
    assert Classification.objects.get(volunteer__user=user).subject_id == first


def test_anonymous_answers_join_the_account_on_sign_in(page, context, django_user_model,
                                                      artifacts):
    """Issue 18's case: the account once opened the classify page signed in (it has its own
    volunteer identity); three anonymous answers in this browser used to be lost to it."""
    workflow, _, _ = build_workflow("merge")
    tutorial_seen(context, workflow)
    member = django_user_model.objects.create_user("member", email="m@example.org",
                                                   password=PASSWORD)
    Volunteer.objects.create(user=member)
    page.goto(f"/classify/{workflow.slug}/")
    shown = None
    for _ in range(3):
        shown = answer(page, "b", shown)
    wait_for_subject(page, shown)
    wait_until_saved(page)
    sign_in(page, "member", PASSWORD, "/accounts/me/")
    assert page.locator("#answer-count").inner_text().startswith("You have given 3 answers")
    assert "3 answer(s) you gave in this browser" in page.locator(".messages").inner_text()
    check_axe(page, artifacts, "volunteer-page")
    assert Classification.objects.filter(volunteer__user=member).count() == 3


def test_a_talk_comment_from_the_classify_page(page, context, django_user_model, artifacts):
    workflow, _, _ = build_workflow("talk")
    tutorial_seen(context, workflow)
    django_user_model.objects.create_user("talker", password=PASSWORD)
    sign_in(page, "talker", PASSWORD, f"/classify/{workflow.slug}/")
    current = wait_for_subject(page)
    link = page.locator("#talk-link")
    assert link.get_attribute("href") == f"/talk/subjects/{current}/"
    page.goto(link.get_attribute("href"))
    page.fill("#comment-body", "A <b>dipole</b>, I think.")
    page.click("#comment-form button[type=submit]")
    page.wait_for_selector("#thread .comment")
    assert page.locator("#thread .comment-body").inner_text() == "A <b>dipole</b>, I think."
    check_axe(page, artifacts, "talk-thread")
    assert Comment.objects.get().subject_id == current


def test_a_bad_image_report_reaches_the_experts_review_queue(page, context, browser,
                                                            live_server, django_user_model,
                                                            artifacts):
    workflow, _, _ = build_workflow("report")
    tutorial_seen(context, workflow)
    page.goto(f"/classify/{workflow.slug}/")
    reported = wait_for_subject(page)
    page.click("#report-bad-image")
    page.wait_for_function("document.getElementById('report-status').textContent"
                           ".startsWith('Reported')")
    assert BadImageReport.objects.get().subject_id == reported

    team = services.expert_team_get_or_create("report-experts")
    services.reference_set_get_or_create(name="report-ref", team=team)
    expert = django_user_model.objects.create_user("expert", password=PASSWORD)
    expert.groups.add(team.group)
    expert_context = browser.new_context(base_url=live_server.url)
    try:
        review = expert_context.new_page()
        sign_in(review, "expert", PASSWORD, f"/review/{workflow.slug}/")
        review.goto(f"/review/{workflow.slug}/?queue=reported")
        review.wait_for_function(
            "id => document.getElementById('review').dataset.subjectId === String(id)",
            arg=reported)
    finally:
        expert_context.close()


def test_an_ml_team_member_exports_and_trains_from_the_browser(page, django_user_model,
                                                              eager_celery, artifacts):
    from tests.aggregation.labelsets.conftest import labelled_run

    workflow = services.workflow_create(slug="ml", project_name="ML in the browser")
    run = labelled_run(workflow, n=32).run
    user = django_user_model.objects.create_user("trainer", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=roles.ML_TEAM_GROUP)[0])
    sign_in(page, "trainer", PASSWORD, "/label-sets/")
    page.click("#export-link")
    check_axe(page, artifacts, "export-form")
    page.select_option("#id_run", str(run.pk))
    page.select_option("#id_scenario", "unstable")
    page.select_option("#id_balance", "none")
    page.click(".action-form button[type=submit]")
    page.wait_for_url("**/label-sets/")
    page.click("table a[href^='/label-sets/1/']")
    # The ML team cannot open aggregation runs: the run is named, not linked.
    assert page.locator(f"a[href='/aggregation/runs/{run.pk}/']").count() == 0
    page.click("#train-link")
    check_axe(page, artifacts, "train-form")
    for field, value in {"#id_name": "v9.1", "#id_epochs": "1", "#id_patience": "1",
                         "#id_batch_size": "16"}.items():
        page.fill(field, value)
    # With eager Celery the job trains inside the request: give it time on a busy machine.
    with page.expect_navigation(url="**/models/jobs/*/", timeout=180_000):
        page.click(".action-form button[type=submit]", no_wait_after=True)
    job = TrainingJob.objects.get(name="v9.1")
    assert job.status == "done", job.error
    assert job.created_by == user

    page.goto(f"/projects/{workflow.project_id}/")
    assert "v9.1" in page.locator("#label-sets-fed").inner_text()
    check_axe(page, artifacts, "project-page")
    page.goto(f"/aggregation/runs/{run.pk}/")
    assert "for staff and experts" in page.locator("#refusal-reason").inner_text()
    check_axe(page, artifacts, "refusal-page")


def test_the_new_volunteer_pages_fit_a_phone(browser, live_server, django_user_model,
                                             artifacts):
    from tests.e2e.test_look_and_access import PHONE, fits_without_horizontal_scroll

    workflow, science, _ = build_workflow("phone")
    user = django_user_model.objects.create_user("phoner", password=PASSWORD)
    Comment.objects.create(subject_id=science[0], author=user, body="x" * 300)
    context = browser.new_context(base_url=live_server.url, **PHONE)
    try:
        page = context.new_page()
        pages = [("phone-sign-up", "/accounts/signup/"), ("phone-home", "/"),
                 ("phone-volunteer-page", "/accounts/me/"),
                 ("phone-talk-thread", f"/talk/subjects/{science[0]}/"),
                 ("phone-project-page", f"/projects/{workflow.project_id}/")]
        for name, url in pages:
            if name == "phone-volunteer-page":
                sign_in(page, "phoner", PASSWORD, url)
            page.goto(url)
            assert fits_without_horizontal_scroll(page), name
            check_axe(page, artifacts, name)
    finally:
        context.close()
