"""How the page looks on a desktop, a phone and at 200% zoom, and what axe-core finds."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import (
    AXE,
    DESKTOP,
    build_workflow,
    record,
    tutorial_seen,
    wait_for_preloaded,
    wait_for_subject,
)

pytestmark = pytest.mark.e2e

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True}
# 200% zoom of a 1280 x 900 window: half the CSS pixels, each drawn twice as large.
ZOOM_200 = {"viewport": {"width": 640, "height": 450}, "device_scale_factor": 2}


def fits_without_horizontal_scroll(page) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def open_ready(page, workflow):
    page.goto(f"/classify/{workflow.slug}/")
    first = wait_for_subject(page)
    wait_for_preloaded(page)
    return first


@pytest.mark.parametrize(
    ("name", "options"),
    [("desktop", {"viewport": DESKTOP}), ("phone", PHONE), ("zoom200", ZOOM_200)],
)
def test_screenshots_of_the_classify_page(browser, live_server, artifacts, name, options):
    workflow, _, _ = build_workflow(n_science=8, n_reference=2, feedback=True)
    context = browser.new_context(base_url=live_server.url, **options)
    try:
        tutorial_seen(context, workflow)
        page = context.new_page()
        open_ready(page, workflow)
        stamps = page.locator(".stamp")
        boxes = [stamps.nth(i).bounding_box() for i in range(3)]
        # Side by side at every size, so that a phone shows all three at once
        # (tests/e2e/test_layout.py checks what is on screen).
        assert len({round(b["y"]) for b in boxes}) == 1, "stamps side by side"
        if name == "desktop":
            assert all(b["width"] >= 300 for b in boxes), "stamps large"
        assert fits_without_horizontal_scroll(page)
        # The answers stay in reach at every size.
        for button in ("#answer-real", "#answer-bogus"):
            assert page.locator(button).is_visible()
        assert page.locator(".frame img").first.evaluate(
            "img => getComputedStyle(img).imageRendering"
        ) == "pixelated"
        if name == "desktop":
            # Show the pixel readout: point at the centre of the difference.
            frame = page.locator("[data-slot=difference] .frame").bounding_box()
            page.mouse.move(frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2)
            page.wait_for_function(
                "/difference -?[0-9]/.test(document.getElementById('pixel-readout').textContent)"
            )
        page.screenshot(path=str(artifacts / f"classify-{name}.png"))
    finally:
        context.close()


def test_axe_finds_no_serious_or_critical_violations(page, context, artifacts):
    assert AXE.exists(), f"{AXE} is missing: `make test` runs `npm ci`"
    workflow, _, _ = build_workflow(n_science=8, n_reference=4, feedback=True)
    page.goto(f"/classify/{workflow.slug}/")
    wait_for_subject(page)
    page.add_script_tag(path=str(AXE))
    results = {}
    for state, dialog in (("tutorial", "#tutorial"), ("page", None), ("field guide", "#guide"),
                          ("help", "#help")):
        if dialog is None:
            page.keyboard.press("Escape")
        elif state != "tutorial":
            page.keyboard.press("Escape")
            page.evaluate(f"document.querySelector('{dialog}').showModal()")
        report = page.evaluate(
            """async () => {
                const r = await axe.run(document, {resultTypes: ['violations']});
                return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => n.target.join(' '))}));
            }"""
        )
        results[state] = report
        if dialog:
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(artifacts / f"classify-{dialog[1:]}.png"))
    record(artifacts, "axe.json", {"axe_version": page.evaluate("axe.version"), **results})
    print("\naxe-core violations by state:",
          {state: [(v["id"], v["impact"]) for v in found] for state, found in results.items()})
    serious = {state: [v for v in found if v["impact"] in ("serious", "critical")]
               for state, found in results.items()}
    assert serious == {state: [] for state in results}
