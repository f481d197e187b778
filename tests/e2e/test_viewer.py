"""The shared stamp viewer in a real browser: flip captions, stretch and zoom with their keys,
on the classify and the review page alike."""

from __future__ import annotations

import numpy as np
import pytest

from labeling import selectors, services
from labeling.models import Subject
from labeling.pixel_payload import decode_stamp
from labeling.records import SubjectRecord
from tests.e2e.conftest import (
    AXE,
    AXE_RUN,
    EXPERT_PASSWORD,
    build_review,
    build_workflow,
    sign_in,
    tutorial_seen,
    wait_for_subject,
)
from tests.e2e.test_review import wait_for_review_subject

pytestmark = pytest.mark.e2e

CAPTIONS = "[...document.querySelectorAll('.stamp figcaption')].map(c => c.innerText.trim())"


def drawn_grey(page, slot: str, row: int, col: int) -> list[int]:
    """The RGB the canvas in `slot` shows at the centre of stamp pixel (row, col)."""
    return page.evaluate(
        """([slot, row, col]) => {
            const canvas = document.querySelector(`[data-slot=${slot}] canvas`);
            const scale = canvas.width / Number(canvas.dataset.cols);
            const x = Math.floor((col + 0.5) * scale);
            const y = Math.floor((row + 0.5) * scale);
            return [...canvas.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3)];
        }""",
        [slot, row, col],
    )


def js_round(x: float) -> int:
    """JavaScript's Math.round (halves up), not Python's round (halves to even)."""
    return int(np.floor(x + 0.5))


def wait_rendered(page, stretch: str) -> None:
    page.wait_for_function(
        "s => document.getElementById('stamps').dataset.rendered === s", arg=stretch)


def test_flip_captions_say_which_stamp_is_where(page, context):
    workflow, _, _ = build_workflow(n_science=3)
    tutorial_seen(context, workflow)
    page.goto(f"/classify/{workflow.slug}/")
    wait_for_subject(page)
    assert page.evaluate(CAPTIONS) == ["Template", "Science", "Difference"]
    page.keyboard.press("f")
    assert page.evaluate(CAPTIONS) == [
        "Science (in the template\u2019s place)", "Template (in the science\u2019s place)",
        "Difference"]
    page.keyboard.press("f")
    assert page.evaluate(CAPTIONS) == ["Template", "Science", "Difference"]


def test_stretch_and_zoom_keys_redraw_the_stamps_and_keep_to_the_next_subject(page, context):
    workflow, _, _ = build_workflow(n_science=4)
    tutorial_seen(context, workflow)
    page.goto(f"/classify/{workflow.slug}/")
    subject = wait_for_subject(page)
    payload = selectors.subject_pixels(subject)
    template = decode_stamp(payload, "template").astype(np.float64)
    science = decode_stamp(payload, "science").astype(np.float64)

    page.keyboard.press("s")
    wait_rendered(page, "zscale")
    assert page.locator("#stretch").inner_text().startswith("Stretch: zscale")
    page.keyboard.press("s")
    wait_rendered(page, "minmax")
    # min-max: template and science share the range of both, linearly.
    low = min(np.nanmin(template), np.nanmin(science))
    high = max(np.nanmax(template), np.nanmax(science))
    difference = decode_stamp(payload, "difference").astype(np.float64)
    m = np.nanmax(np.abs(difference))
    for row, col in [(3, 4), (40, 12), (25, 45)]:
        grey = js_round(255 * (science[row, col] - low) / (high - low))
        assert drawn_grey(page, "science", row, col) == [grey] * 3
        # The difference: zero is mid-grey, +v and -v equally far from it.
        d = difference[row, col]
        step = js_round(127 * abs(d) / m)
        assert drawn_grey(page, "difference", row, col) == [127 + (step if d >= 0 else -step)] * 3
    page.keyboard.press("f")  # flipping moves the drawn stamps too
    assert page.locator("[data-slot=template] canvas").get_attribute("data-kind") == "science"
    page.keyboard.press("f")

    # The chosen stretch holds for the next subject, drawn before or as it is shown.
    page.keyboard.press("r")
    second = wait_for_subject(page, previous=subject)
    wait_rendered(page, "minmax")
    page.keyboard.press("s")
    wait_rendered(page, "asinh")
    # asinh: the min-max range through asinh(t / a) / asinh(1 / a), a as the served images'.
    payload = selectors.subject_pixels(second)
    a = payload["display"]["asinh_softening"]
    template = decode_stamp(payload, "template").astype(np.float64)
    science = decode_stamp(payload, "science").astype(np.float64)
    low = min(np.nanmin(template), np.nanmin(science))
    high = max(np.nanmax(template), np.nanmax(science))
    for row, col in [(5, 5), (30, 40)]:
        t = (template[row, col] - low) / (high - low)
        grey = js_round(255 * np.arcsinh(t / a) / np.arcsinh(1 / a))
        assert drawn_grey(page, "template", row, col) == [grey] * 3
    page.keyboard.press("s")
    wait_rendered(page, "served")
    assert page.locator("[data-slot=science] img").count() == 1
    assert page.locator("[data-slot=science] canvas").count() == 0

    # Z zooms on the centre: pointing at the frame's middle still reads the centre pixel.
    frame = page.locator("[data-slot=difference] .frame").bounding_box()
    for zoom in ("2", "4"):
        page.keyboard.press("z")
        assert page.locator("#stamps").get_attribute("data-zoom") == zoom
        view = page.locator("[data-slot=difference] .view").bounding_box()
        assert view["width"] == pytest.approx(int(zoom) * frame["width"], rel=0.01)
        page.mouse.move(frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2)
        page.wait_for_function(
            "document.getElementById('pixel-readout').textContent.includes('from the centre')")
        assert "pixel x +0, y +0 from the centre" in page.locator("#pixel-readout").inner_text()
    page.keyboard.press("z")
    assert page.locator("#stamps").get_attribute("data-zoom") == "1"


def test_the_review_page_has_the_same_viewer_keys_and_arrows_move(page, django_user_model):
    workflow, _, reference_set = build_review(django_user_model)
    url = f"/review/{workflow.slug}/"
    sign_in(page, "curator", EXPERT_PASSWORD, url)
    page.goto(f"{url}?queue=uncertain&set={reference_set.pk}")
    first = wait_for_review_subject(page)
    page.keyboard.press("f")
    assert page.evaluate(CAPTIONS)[0] == "Science (in the template\u2019s place)"
    page.keyboard.press("s")
    wait_rendered(page, "zscale")
    page.keyboard.press("z")
    assert page.locator("#stamps").get_attribute("data-zoom") == "2"
    page.keyboard.press("ArrowRight")
    second = wait_for_review_subject(page, first)
    wait_rendered(page, "zscale")
    assert page.evaluate(CAPTIONS)[0] == "Template"  # a new subject starts unflipped
    page.keyboard.press("ArrowLeft")
    assert wait_for_review_subject(page, second) == first
    wait_rendered(page, "zscale")
    # The drawn stamps, zoomed, are as accessible as the served ones.
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(AXE_RUN)
    assert violations == []


def test_experts_see_where_and_when_in_what_unit_and_where_else_to_look(page, django_user_model):
    workflow, science, reference_set = build_review(django_user_model, n_science=4,
                                                    n_reference=2, n_volunteers=2)
    # As ingested from Rubin alerts: the diaSource's object id and time, a position.
    Subject.objects.filter(pk__in=science).update(
        ra=150.025, dec=-2.5125,
        metadata={"diaObjectId": 170, "midpointMjdTai": 60000.5})
    url = f"/review/{workflow.slug}/"
    sign_in(page, "curator", EXPERT_PASSWORD, url)
    page.goto(f"{url}?queue=origin&origin=ss&set={reference_set.pk}")
    subject = wait_for_review_subject(page)
    if subject not in science:
        page.keyboard.press("n")
        subject = wait_for_review_subject(page, subject)
    assert subject in science
    facts = dict(zip(page.locator("#facts dt").all_inner_texts(),
                     page.locator("#facts dd").all_inner_texts(), strict=True))
    assert facts["RA, Dec (deg)"] == (
        "150.025000, -2.512500 (10h00m06.00s -02\u00b030\u203245.0\u2033)")
    assert facts["Observed (UTC)"] == "2023-02-25 11:59:23"
    assert facts["Stamp unit"] == "nJy"
    links = page.locator("#links a")
    assert links.all_inner_texts() == [
        "Legacy Survey viewer", "ALeRCE", "Fink", "Lasair", "ANTARES"]
    assert "ra=150.025000&dec=-2.512500" in links.first.get_attribute("href")
    assert links.first.get_attribute("rel") == "noopener noreferrer"
    # The readout gives all three values in nJy.
    frame = page.locator("[data-slot=science] .frame").bounding_box()
    page.mouse.move(frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2)
    page.wait_for_function(
        "document.getElementById('pixel-readout').textContent.includes('from the centre')")
    assert page.locator("#pixel-readout").inner_text().count(" nJy") == 3


def picture_corners(page, slot: str) -> dict:
    """What the stamp in `slot` shows at its picture's top-left and bottom-left pixels (the
    served image drawn onto a scratch canvas, or the drawn canvas itself), and its size."""
    return page.evaluate(
        """slot => {
            const shown = document.querySelector(`[data-slot=${slot}] [data-kind]`);
            let canvas = shown;
            if (shown instanceof HTMLImageElement) {
                canvas = document.createElement('canvas');
                canvas.width = shown.naturalWidth;
                canvas.height = shown.naturalHeight;
                canvas.getContext('2d').drawImage(shown, 0, 0);
            }
            const at = (x, y) => [
                ...canvas.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3)];
            return {width: canvas.width, height: canvas.height, topLeft: at(0, 0),
                    bottomLeft: at(0, canvas.height - 1)};
        }""",
        slot,
    )


def test_a_clipped_stamp_is_drawn_read_and_zoomed_the_way_up_its_png_is(page, context, settings):
    """An edge-clipped ZTF-like cutout, 40 rows by 63 columns, the detection at FITS row 31:
    its picture is 34 x 51 stamp pixels (rows 6..39, columns 5..55 of the stamp), FITS row 0
    at the bottom. Its FITS top-left corner (row 39, column 5) is marked bright and its
    bottom-left (row 6, column 5) dark: the served PNG, the drawn canvas and the readout must
    all find them where DS9 would draw them."""
    assert settings.STAMP_SIZE == 51  # the geometry below is worked out for the 51 cube
    rng = np.random.default_rng(8)
    shape = (40, 63)
    template = rng.normal(0.0, 1.0, shape).astype(np.float32)
    science = template + rng.normal(0.0, 1.0, shape).astype(np.float32)
    difference = science - template
    for stamp, mark in ((template, 1000.0), (science, 2000.0), (difference, 3000.0)):
        stamp[39, 5] = mark  # FITS top-left of what the picture shows
        stamp[6, 5] = -mark  # FITS bottom-left
    workflow = services.workflow_create(slug="clipped", project_name="Clipped stamps")
    subject_set = services.subject_set_attach(workflow=workflow, name="clipped")
    record = SubjectRecord("clipped-1", template, science, difference, "e2e",
                           detection_pixel=(31, 30))
    report = services.subjects_ingest([record], subject_set=subject_set)
    assert report.ok, report.rejected
    tutorial_seen(context, workflow)
    page.goto(f"/classify/{workflow.slug}/")
    wait_for_subject(page)

    # The served picture: 34 x 51, not stretched into the square frame.
    served = picture_corners(page, "science")
    scale = settings.RENDER_SCALE
    assert (served["height"], served["width"]) == (34 * scale, 51 * scale)
    assert served["topLeft"] == [255] * 3
    assert served["bottomLeft"] == [0] * 3
    view = page.locator("[data-slot=science] .view").bounding_box()
    frame = page.locator("[data-slot=science] .frame").bounding_box()
    assert view["width"] / view["height"] == pytest.approx(51 / 34, rel=0.02)
    assert view["width"] == pytest.approx(frame["width"] - 2, abs=1.5)  # inside the border
    image = page.locator("[data-slot=science] img").bounding_box()
    assert image["height"] == pytest.approx(view["height"], abs=1)

    # The readout at the picture's top-left pixel reads the FITS top-left values: 25 columns
    # left of the detection and, y counting up, 39 - 31 = 8 rows above it.
    page.mouse.move(view["x"] + 0.5 / 51 * view["width"], view["y"] + 0.5 / 34 * view["height"])
    page.wait_for_function(
        "document.getElementById('pixel-readout').textContent.includes('from the centre')")
    assert page.locator("#pixel-readout").inner_text() == (
        "Science stamp, pixel x -25, y +8 from the centre: template 1000.0, science 2000.0, "
        "difference 3000.0 (unit not known)")
    page.mouse.move(view["x"] + 0.5 / 51 * view["width"],
                    view["y"] + 33.5 / 34 * view["height"])
    page.wait_for_function(
        "document.getElementById('pixel-readout').textContent.includes('y -25')")
    assert page.locator("#pixel-readout").inner_text().startswith(
        "Science stamp, pixel x -25, y -25 from the centre: template -1000.0, science -2000.0")

    # The drawn stretches: the same size, the same way up.
    page.keyboard.press("s")
    wait_rendered(page, "zscale")
    page.keyboard.press("s")
    wait_rendered(page, "minmax")
    for slot in ("template", "science", "difference"):
        drawn = picture_corners(page, slot)
        assert (drawn["height"], drawn["width"]) == (34 * scale, 51 * scale)
    # min-max: the science's mark is the brightest value of template and science together.
    assert picture_corners(page, "science")["topLeft"] == [255] * 3
    assert picture_corners(page, "science")["bottomLeft"] == [0] * 3
    difference_corners = picture_corners(page, "difference")
    assert difference_corners["topLeft"] == [254] * 3  # 127 + 127: the largest +|d|
    assert difference_corners["bottomLeft"] == [0] * 3  # 127 - 127

    # Zoomed, the detection pixel stays put: the middle of the frame is not the middle of the
    # picture here, but the zoom is about the detection.
    page.keyboard.press("z")
    centre_x = view["x"] + 25.5 / 51 * view["width"]
    centre_y = view["y"] + 8.5 / 34 * view["height"]
    page.mouse.move(centre_x, centre_y)
    page.wait_for_function(
        "document.getElementById('pixel-readout').textContent.includes('x +0, y +0')")
