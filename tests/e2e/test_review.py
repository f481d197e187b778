"""The expert review page in a real browser: labelling from a queue with the keyboard alone,
and what axe-core finds."""

from __future__ import annotations

import pytest

from labeling.models import ReferenceLabel
from tests.e2e.conftest import AXE, EXPERT_PASSWORD, build_review, record, sign_in

pytestmark = pytest.mark.e2e

# R, B and U label (and move on by themselves); N passes a subject without labelling it.
KEYS = ["r", "n", "b", "u", "r", "b"]
LABEL_OF_KEY = {"r": "real", "b": "bogus", "u": "unsure"}


def wait_for_review_subject(page, previous: int | None = None) -> int:
    page.wait_for_function(
        """previous => {
            const root = document.getElementById('review');
            return root.dataset.state === 'ready' && Number(root.dataset.subjectId) !== previous
                && document.querySelector('#facts dd') !== null;
        }""",
        arg=previous,
    )
    return int(page.locator("#review").get_attribute("data-subject-id"))


def test_an_expert_labels_five_subjects_from_a_queue_with_the_keyboard(
        page, django_user_model, artifacts):
    workflow, science, reference_set = build_review(django_user_model)
    url = f"/review/{workflow.slug}/"
    sign_in(page, "curator", EXPERT_PASSWORD, url)
    page.goto(f"{url}?queue=uncertain&set={reference_set.pk}")

    expected: dict[int, str] = {}
    passed: list[int] = []
    current = wait_for_review_subject(page)
    assert "ranked by run" in page.locator("#queue-status").text_content()
    for key in KEYS:
        page.keyboard.press(key)
        if key in LABEL_OF_KEY:
            expected[current] = LABEL_OF_KEY[key]
        else:
            passed.append(current)
        current = wait_for_review_subject(page, current)

    assert len(expected) == 5
    assert page.locator("#review").get_attribute("data-labelled") == "5"
    # The page's own record of the session, and its visible saved state.
    log = page.locator("#session-log li")
    assert {int(log.nth(i).get_attribute("data-subject-id")): log.nth(i).get_attribute("data-label")
            for i in range(log.count())} == expected
    assert page.locator("#save-state").get_attribute("data-state") == "saved"
    assert page.locator("#save-state").text_content().startswith("Saved:")
    # The labels are in the set, by this expert; the subject passed with N is not.
    stored = dict(ReferenceLabel.objects.filter(reference_set=reference_set, subject_id__in=science)
                  .values_list("subject_id", "label"))
    assert stored == expected
    assert set(ReferenceLabel.objects.filter(reference_set=reference_set, subject_id__in=expected)
               .values_list("expert__username", flat=True)) == {"curator"}
    assert not set(passed) & set(stored)

    # P goes back to the last subject labelled: the dossier shows this set's label and the
    # other team's disagreeing one.
    page.keyboard.press("p")
    back = wait_for_review_subject(page, current)
    assert back == list(expected)[-1]
    page.wait_for_function(
        "document.getElementById('set-label').textContent.includes('Bogus')")
    page.wait_for_function(
        "document.getElementById('history').textContent.includes('unlabelled → Bogus by curator')")
    assert page.locator("#teams-summary").get_attribute("data-disagree") == "false"
    assert page.locator("#trajectory svg polyline").count() == 1
    page.screenshot(path=str(artifacts / "review-desktop.png"), full_page=True)


def test_axe_finds_no_violations_on_the_review_page(page, django_user_model, artifacts):
    assert AXE.exists(), f"{AXE} is missing: `make test` runs `npm ci`"
    workflow, _, _ = build_review(django_user_model)
    url = f"/review/{workflow.slug}/"
    sign_in(page, "curator", EXPERT_PASSWORD, url)
    wait_for_review_subject(page)
    page.locator("details").first.evaluate("d => { d.open = true; }")
    page.add_script_tag(path=str(AXE))
    results = {}
    for state in ("page", "keys"):
        if state == "keys":
            page.keyboard.press("?")
        results[state] = page.evaluate(
            """async () => {
                const r = await axe.run(document, {resultTypes: ['violations']});
                return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => n.target.join(' '))}));
            }"""
        )
    record(artifacts, "axe-review.json", {"axe_version": page.evaluate("axe.version"), **results})
    assert results == {"page": [], "keys": []}
