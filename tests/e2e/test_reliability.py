"""No answer is lost or counted twice, and the queue never serves what it must not."""

from __future__ import annotations

import uuid

import pytest

from labeling import selectors, services
from labeling.models import Classification, SubjectWorkflowStatus, Volunteer
from tests.e2e.conftest import (
    build_workflow,
    classify_everything,
    outbox,
    sign_in,
    tutorial_seen,
    wait_for_preloaded,
    wait_for_subject,
    wait_for_subject_or_done,
    wait_until_saved,
)

pytestmark = pytest.mark.e2e

CLASSIFICATIONS = "**/api/classifications/"


def answer_offline(page, context, keys) -> list[int]:
    """Cut the network, answer one subject per key; the ids answered."""
    shown = [wait_for_subject(page)]
    wait_for_preloaded(page, len(keys))
    context.set_offline(True)
    for key in keys:
        page.keyboard.press(key)
        shown.append(wait_for_subject(page, previous=shown[-1]))
    page.wait_for_function("document.getElementById('sync').dataset.state === 'offline'")
    return shown[:-1]


def test_answers_made_offline_are_kept_then_stored_exactly_once(page, context):
    workflow, _, _ = build_workflow(n_science=16)
    tutorial_seen(context, workflow)
    page.goto(f"/classify/{workflow.slug}/")
    answered = answer_offline(page, context, ["r", "b", "R"])

    sync = page.locator("#sync")
    assert sync.get_attribute("data-pending") == "3"
    assert "Offline: 3 answers kept" in sync.inner_text()
    kept = outbox(page)
    assert [item["subject"] for item in kept] == answered
    assert not Classification.objects.filter(workflow=workflow).exists()

    context.set_offline(False)
    wait_until_saved(page)
    stored = Classification.objects.filter(workflow=workflow)
    assert sorted(str(c.client_id) for c in stored) == sorted(item["client_id"] for item in kept)
    assert sorted(c.subject_id for c in stored) == sorted(answered)
    assert [c.answer for c in stored.order_by("created_at")] == ["real", "bogus", "real"]
    assert "All answers saved" in sync.inner_text()


def test_unsent_answers_survive_a_reload_and_a_lost_reply_never_counts_twice(page, context,
                                                                            settings):
    # Counting is what this test watches: the anonymous probation (test_serving.py) is off.
    settings.ANONYMOUS_PROBATION_ANSWERS = 0
    workflow, _, _ = build_workflow(n_science=16)
    tutorial_seen(context, workflow)
    page.goto(f"/classify/{workflow.slug}/")
    answered = answer_offline(page, context, ["b", "r", "b"])
    kept = outbox(page)
    assert len(kept) == 3

    # The network comes back but the server's replies are lost on the way: the first answer
    # is stored while the page hears nothing and keeps it to send again.
    def lose_the_reply(route):
        route.fetch()
        route.abort()

    page.route(CLASSIFICATIONS, lose_the_reply)
    with page.expect_event("requestfailed", lambda r: "/api/classifications/" in r.url):
        context.set_offline(False)
    assert Classification.objects.filter(workflow=workflow).count() >= 1
    page.unroute(CLASSIFICATIONS)

    statuses = []
    page.on("response", lambda r: "/api/classifications/" in r.url and statuses.append(r.status))
    page.reload()
    wait_until_saved(page)

    stored = Classification.objects.filter(workflow=workflow)
    assert stored.count() == 3
    assert sorted(str(c.client_id) for c in stored) == sorted(item["client_id"] for item in kept)
    assert 200 in statuses, "the stored answer was sent again and replayed, not stored twice"
    counted = SubjectWorkflowStatus.objects.filter(workflow=workflow, subject_id__in=answered)
    assert sorted(s.n_counted for s in counted) == [1, 1, 1]
    # The page asks the server for its count again after a replay.
    page.wait_for_function("document.getElementById('count').textContent === '3'")


def test_a_signed_in_volunteer_never_sees_retired_or_already_seen_subjects(
    page, context, django_user_model
):
    workflow, ids, _ = build_workflow(n_science=12)
    user = django_user_model.objects.create_user("vera", password="pw-12345!x")
    me = Volunteer.objects.create(user=user)
    seen, retired, left = ids[:3], ids[3:7], ids[7:]
    for subject in seen:
        services.classification_create(volunteer=me, workflow_id=workflow.pk, subject_id=subject,
                                       answer="real", client_id=uuid.uuid4())
    others = [services.volunteer_for_external_name(f"other-{i}") for i in range(2)]
    for subject in retired:
        for other in others:
            services.classification_create(volunteer=other, workflow_id=workflow.pk,
                                           subject_id=subject, answer="bogus",
                                           client_id=uuid.uuid4())
    assert SubjectWorkflowStatus.objects.filter(workflow=workflow, retired=True).count() == 4

    tutorial_seen(context, workflow)
    sign_in(page, "vera", "pw-12345!x", f"/classify/{workflow.slug}/")
    assert "Signed in as vera" in page.locator("header").inner_text()
    shown = classify_everything(page, key="b")

    assert len(shown) == len(set(shown))
    assert sorted(shown) == sorted(left)
    assert page.locator("#done-title").inner_text() == "You have seen everything"
    assert page.evaluate("document.activeElement.id") == "done"
    wait_until_saved(page)
    mine = Classification.objects.filter(workflow=workflow, volunteer=me)
    assert sorted(mine.values_list("subject_id", flat=True)) == sorted(seen + left)
    assert page.locator("#count").inner_text() == str(len(seen + left))


def test_a_finished_workflow_says_so(page, context):
    workflow, ids, _ = build_workflow(n_science=2)
    others = [services.volunteer_for_external_name(f"other-{i}") for i in range(2)]
    for subject in ids:
        for other in others:
            services.classification_create(volunteer=other, workflow_id=workflow.pk,
                                           subject_id=subject, answer="real",
                                           client_id=uuid.uuid4())
    tutorial_seen(context, workflow)
    page.goto(f"/classify/{workflow.slug}/")
    assert classify_everything(page) == []
    assert page.locator("#done-title").inner_text() == "This workflow is finished"


def test_reference_feedback_is_shown_and_tutorial_examples_are_never_served(page, context):
    workflow, science, labels = build_workflow(n_science=3, n_reference=10, seed=5,
                                               feedback=True, gold_rate=1.0)
    examples = {example.subject_id for example in selectors.tutorial_examples(workflow)}
    assert len(examples) == 4
    tutorial_seen(context, workflow)
    page.goto(f"/classify/{workflow.slug}/")

    shown = []
    current = wait_for_subject(page)
    feedback_seen = 0
    while current is not None:
        shown.append(current)
        page.keyboard.press("r")
        if current in labels:
            label = labels[current]
            page.wait_for_function(
                "id => document.getElementById('feedback').dataset.subject === String(id)",
                arg=current,
            )
            text = page.locator("#feedback-text").inner_text()
            assert f"Experts labelled this {label.label.capitalize()}: {label.explanation}" in text
            assert text.startswith("You said Real.")
            feedback_seen += 1
        current = wait_for_subject_or_done(page, current)
    assert feedback_seen == len(labels) - len(examples)
    assert not examples & set(shown)
    assert set(shown) == set(science) | (set(labels) - examples)
