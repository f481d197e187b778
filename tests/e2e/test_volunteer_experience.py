"""Tutorial, field guide and help by keyboard; the pixel readout."""

from __future__ import annotations

import re

import pytest

from labeling import selectors
from labeling.pixel_payload import decode_stamp
from tests.e2e.conftest import build_workflow, tutorial_seen, wait_for_subject

pytestmark = pytest.mark.e2e

IS_OPEN = "selector => document.querySelector(selector).open"


def focus_in(page, selector: str) -> bool:
    return page.evaluate(f"document.querySelector('{selector}').contains(document.activeElement)")


def tab_to(page, element_id: str, limit: int = 30) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} cannot be reached with Tab")


def test_tutorial_field_guide_and_help_open_and_close_with_the_keyboard(page):
    workflow, _, labels = build_workflow(n_science=6, n_reference=10, seed=5)
    page.goto(f"/classify/{workflow.slug}/")

    # The first visit opens the tutorial, in steps, and keeps focus in it.
    assert page.evaluate(IS_OPEN, "#tutorial")
    assert page.locator("#tutorial-progress").inner_text() == "Step 1 of 4"
    for _ in range(25):
        page.keyboard.press("Tab")
        assert focus_in(page, "#tutorial"), "focus left the open tutorial"
    page.keyboard.press("Shift+Tab")
    assert focus_in(page, "#tutorial")
    # Next, by keyboard, to the experts' examples.
    page.locator("#tutorial-next").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    assert page.locator("#tutorial-progress").inner_text() == "Step 3 of 4"
    page.wait_for_selector("#tutorial-examples .example")
    examples = page.locator("#tutorial-examples .example")
    assert examples.count() == 4
    captions = " ".join(examples.all_inner_texts())
    assert "Real:" in captions
    assert "Bogus:" in captions
    page.keyboard.press("Enter")
    assert page.locator("#tutorial-progress").inner_text() == "Step 4 of 4"
    assert page.evaluate("document.activeElement.id") == "tutorial-start"  # Next is spent
    page.locator("#tutorial-back").click()
    assert page.locator("#tutorial-progress").inner_text() == "Step 3 of 4"
    page.keyboard.press("Escape")
    assert not page.evaluate(IS_OPEN, "#tutorial")
    wait_for_subject(page)

    # Seen once, it does not open by itself again; the Tutorial button brings it back.
    page.reload()
    wait_for_subject(page)
    assert not page.evaluate(IS_OPEN, "#tutorial")
    tab_to(page, "open-tutorial")
    page.keyboard.press("Enter")
    assert page.evaluate(IS_OPEN, "#tutorial")
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.id") == "open-tutorial", "focus restored"

    # The field guide: a button, or G, at any time; it sits beside the subject, so answering
    # goes on while it is open.
    tab_to(page, "open-guide")
    page.keyboard.press("Enter")
    assert page.evaluate(IS_OPEN, "#guide")
    assert page.locator("#open-guide").get_attribute("aria-expanded") == "true"
    assert focus_in(page, "#guide")
    guide = page.locator("#guide").inner_text()
    for entry in ("Dipole", "Cosmic ray", "Bad column", "Moving object", "Negative source"):
        assert entry in guide
    # Enter on the focused close button closes it too.
    assert page.evaluate("document.activeElement.matches('[data-close]')")
    page.keyboard.press("Enter")
    assert not page.evaluate(IS_OPEN, "#guide")
    assert page.evaluate("document.activeElement.id") == "open-guide"
    page.keyboard.press("g")
    assert page.evaluate(IS_OPEN, "#guide")
    before = int(page.locator("#classify").get_attribute("data-subject-id"))
    page.keyboard.press("r")
    wait_for_subject(page, previous=before)
    assert page.evaluate(IS_OPEN, "#guide")
    page.keyboard.press("Escape")
    assert not page.evaluate(IS_OPEN, "#guide")

    # ? opens the help.
    page.keyboard.press("?")
    assert page.evaluate(IS_OPEN, "#help")
    assert focus_in(page, "#help")
    assert "Answer Bogus" in page.locator("#help").inner_text()
    page.keyboard.press("Escape")
    assert not page.evaluate(IS_OPEN, "#help")
    assert len(labels) == 10


def test_pointing_at_a_stamp_reads_all_three_values_at_that_pixel(page, context):
    workflow, _, _ = build_workflow(n_science=4)
    tutorial_seen(context, workflow)
    page.goto(f"/classify/{workflow.slug}/")
    subject = wait_for_subject(page)
    payload = selectors.subject_pixels(subject)
    stamps = {kind: decode_stamp(payload, kind) for kind in ("template", "science", "difference")}
    frame = page.locator("[data-slot=difference] .frame")
    box = frame.bounding_box()
    rows, cols = payload["shape"]["difference"]
    assert (rows, cols) == (51, 51)  # a whole stamp: the picture fills its square frame
    # The centre of pixel (row 20, column 30).
    x = box["x"] + (30.5 / cols) * box["width"]
    y = box["y"] + (20.5 / rows) * box["height"]
    page.mouse.move(x, y)
    readout = page.locator("#pixel-readout")
    page.wait_for_function(
        "document.getElementById('pixel-readout').textContent.includes('from the centre')"
    )
    text = readout.inner_text()
    # Row 20 from the top is 5 rows above the centre row: y counts up, as in FITS.
    assert text.startswith("Difference stamp, pixel x +5, y +5 from the centre: ")
    assert text.endswith("(unit not known)")  # simulated stamps: no survey, no unit
    shown = dict(re.findall(r"(template|science|difference) (-?[0-9.e+-]+)", text))
    assert set(shown) == {"template", "science", "difference"}
    for kind, value in shown.items():
        expected = float(stamps[kind][20, 30])  # picture order: row 20 from the top
        assert float(value) == pytest.approx(expected, abs=0.05 + 1e-3 * abs(expected))
    assert page.locator("[data-slot=difference] .pixel-cursor").is_visible()
