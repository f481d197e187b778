"""The volunteer classification page in a real browser."""

from __future__ import annotations

import statistics

import pytest

from labeling.models import Classification, Volunteer
from tests.e2e.conftest import (
    build_workflow,
    next_subject_times,
    record,
    subject_id,
    wait_for_preloaded,
    wait_for_subject,
    wait_until_saved,
)

pytestmark = pytest.mark.e2e

KEYS = ["r", "b", "R", "B", "r", "b", "r", "r", "b", "b"]
ANSWER_OF_KEY = {"r": "real", "R": "real", "b": "bogus", "B": "bogus"}


def test_a_volunteer_classifies_ten_subjects_with_the_keyboard_alone(page, artifacts):
    workflow, _, _ = build_workflow(n_science=24)
    page.goto(f"/classify/{workflow.slug}/")

    # First visit: the tutorial is open and has the focus; Escape closes it.
    tutorial = page.locator("#tutorial")
    assert tutorial.evaluate("d => d.open")
    assert page.evaluate("document.getElementById('tutorial').contains(document.activeElement)")
    page.keyboard.press("Escape")
    assert not tutorial.evaluate("d => d.open")

    shown = [wait_for_subject(page)]
    # F flips template and science in place, and back.
    page.keyboard.press("f")
    assert page.locator("[data-slot=template] img").get_attribute("data-kind") == "science"
    assert page.locator("#flip").get_attribute("aria-pressed") == "true"
    page.keyboard.press("f")
    assert page.locator("[data-slot=template] img").get_attribute("data-kind") == "template"
    # The arrow keys move between subjects on the review page; here they answer nothing.
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowRight")
    assert subject_id(page) == shown[0]

    answers = {}
    for key in KEYS:
        answers[shown[-1]] = ANSWER_OF_KEY[key]
        # As for a volunteer who looks before answering: the next subject has been preloaded.
        wait_for_preloaded(page)
        page.keyboard.press(key)
        shown.append(wait_for_subject(page, previous=shown[-1]))
    wait_until_saved(page)
    assert page.locator("#count").inner_text() == "10"

    stored = Classification.objects.filter(workflow=workflow)
    assert stored.count() == 10
    assert len(set(shown)) == len(shown), "a subject was shown twice"
    assert {c.subject_id: c.answer for c in stored} == answers
    volunteers = {c.volunteer_id for c in stored}
    assert len(volunteers) == 1
    assert Volunteer.objects.get(pk=volunteers.pop()).user is None  # anonymous: a session

    times = next_subject_times(page)
    assert len(times) == 10
    report = {
        "measure": "next subject visible after an answer (ms): from the key's input event to "
                   "the first frame painted with the next subject (Performance API)",
        "samples_ms": [round(t, 2) for t in times],
        "median_ms": round(statistics.median(times), 2),
        "max_ms": round(max(times), 2),
        "within_100_ms": sum(t <= 100 for t in times),
    }
    record(artifacts, "next_subject_times.json", report)
    print(f"\nnext-subject times (ms): {report['samples_ms']} "
          f"median {report['median_ms']} max {report['max_ms']}")
    assert subject_id(page) == shown[-1]
