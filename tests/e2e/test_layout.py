"""The classify page at phone, tablet and desktop sizes: what must be on screen without
scrolling, what must never be covered, and what axe-core finds. Screenshots of each size go
to artifacts/e2e/ (docs/classify-phone.png and docs/classify-desktop.png are copies)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import (
    AXE,
    AXE_RUN,
    build_workflow,
    record,
    tutorial_seen,
    wait_for_subject,
)

pytestmark = pytest.mark.e2e

SIZES = {
    "phone": {"width": 390, "height": 844},
    "tablet": {"width": 768, "height": 1024},
    "desktop": {"width": 1280, "height": 900},
}
PHONE_LANDSCAPE = {"width": 844, "height": 390}

# The boxes of the stamps and answer buttons, and whether each lies wholly in the window.
ON_SCREEN = """() => {
    const inside = (el) => {
        const r = el.getBoundingClientRect();
        return r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth
            && r.width > 0 && r.height > 0;
    };
    const items = [...document.querySelectorAll('.stamp .frame'),
                   document.getElementById('answer-real'), document.getElementById('answer-bogus')];
    return items.map((el) => [el.closest('[data-slot]')?.dataset.slot || el.id, inside(el)]);
}"""

# At every scroll position, each stamp centre in the window must show the stamp itself: the
# slots of the stamps that something covers there.
CENTRES_COVERED = """() => {
    const covered = new Set();
    const end = document.documentElement.scrollHeight - innerHeight;
    for (let y = 0; y <= end + 20; y += 20) {
        window.scrollTo(0, Math.min(y, end));
        for (const frame of document.querySelectorAll('.stamp .frame')) {
            const r = frame.getBoundingClientRect();
            const cx = r.left + r.width / 2;
            const cy = r.top + r.height / 2;
            if (cy < 0 || cy >= innerHeight || cx < 0 || cx >= innerWidth) continue;
            if (!frame.contains(document.elementFromPoint(cx, cy))) {
                covered.add(`${frame.closest('[data-slot]').dataset.slot} at scroll ${y}`);
            }
        }
    }
    window.scrollTo(0, 0);
    return [...covered];
}"""


def open_page(browser, live_server, viewport, workflow, *, phone: bool):
    context = browser.new_context(viewport=viewport, base_url=live_server.url,
                                  is_mobile=phone, has_touch=phone)
    context.set_default_timeout(15_000)
    tutorial_seen(context, workflow)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"/classify/{workflow.slug}/")
    return context, page, errors


@pytest.mark.parametrize("size", list(SIZES))
def test_every_stamp_and_both_answers_are_on_screen_and_each_subject_starts_at_the_top(
        browser, live_server, artifacts, size):
    workflow, _, _ = build_workflow(n_science=6)
    phone = size == "phone"
    context, page, errors = open_page(browser, live_server, SIZES[size], workflow, phone=phone)
    try:
        first = wait_for_subject(page)
        assert all(inside for _, inside in page.evaluate(ON_SCREEN)), page.evaluate(ON_SCREEN)
        page.screenshot(path=str(artifacts / f"classify-{size}.png"))

        # Scrolled down (to the readout, the feedback), an answer brings the next subject
        # back to the top of the screen.
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        if phone:
            page.locator("#answer-bogus").tap()
        else:
            page.keyboard.press("b")
        wait_for_subject(page, previous=first)
        assert all(inside for _, inside in page.evaluate(ON_SCREEN)), page.evaluate(ON_SCREEN)

        page.add_script_tag(path=str(AXE))
        violations = page.evaluate(AXE_RUN)
        record(artifacts, f"axe-classify-{size}.json", violations)
        assert violations == []
    finally:
        context.close()
    assert not errors, errors


def test_in_landscape_on_a_phone_nothing_covers_the_stamp_centres(browser, live_server, artifacts):
    workflow, _, _ = build_workflow(n_science=3)
    context, page, errors = open_page(browser, live_server, PHONE_LANDSCAPE, workflow, phone=True)
    try:
        wait_for_subject(page)
        assert page.evaluate(CENTRES_COVERED) == []
        # The answers are still reachable: on screen, beside the stamps.
        page.locator("[data-slot=difference] .frame").scroll_into_view_if_needed()
        for answer in ("#answer-real", "#answer-bogus"):
            assert page.locator(answer).is_visible()
            box = page.locator(answer).bounding_box()
            assert box["y"] >= 0
            assert box["y"] + box["height"] <= PHONE_LANDSCAPE["height"]
        page.screenshot(path=str(artifacts / "classify-phone-landscape.png"))
    finally:
        context.close()
    assert not errors, errors


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_the_tutorial_s_start_button_is_always_on_screen_and_the_guide_hides_no_stamp(
        browser, live_server, artifacts, size):
    workflow, _, _ = build_workflow(n_science=3, n_reference=4, seed=5)
    phone = size == "phone"
    context = browser.new_context(viewport=SIZES[size], base_url=live_server.url,
                                  is_mobile=phone, has_touch=phone)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto(f"/classify/{workflow.slug}/")
        start = page.locator("#tutorial-start")
        for n in range(1, 5):
            assert page.locator("#tutorial-progress").inner_text() == f"Step {n} of 4"
            assert fully_on_screen(page, "#tutorial-start"), f"Start is off screen at step {n}"
            if n == 3:
                page.wait_for_selector("#tutorial-examples .example")
                page.screenshot(path=str(artifacts / f"tutorial-{size}.png"))
            if n < 4:
                page.locator("#tutorial-next").click()
        start.click()
        wait_for_subject(page)

        page.locator("#open-guide").click()
        assert page.evaluate("document.getElementById('guide').open")
        covered = page.evaluate(CENTRES_COVERED)
        assert covered == []
        if not phone:  # beside the subject: all three stamps whole on screen with the guide
            assert all(inside for slot, inside in page.evaluate(ON_SCREEN)
                       if slot in ("template", "science", "difference"))
        page.screenshot(path=str(artifacts / f"guide-{size}.png"))
        page.add_script_tag(path=str(AXE))
        violations = page.evaluate(AXE_RUN)
        record(artifacts, f"axe-guide-{size}.json", violations)
        assert violations == []
    finally:
        context.close()


def fully_on_screen(page, selector: str) -> bool:
    return page.evaluate(
        """selector => {
            const r = document.querySelector(selector).getBoundingClientRect();
            return r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth;
        }""",
        selector,
    )
