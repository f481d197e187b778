"""The stamp viewer's server side: one key map for both pages, the compact pixel payload and
what it saves, and the survey facts (unit, time, links) experts see."""

from __future__ import annotations

import io
import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.test import Client
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from frontend.keymap import BOTH, KEY_MAP, bindings_for
from labeling import rendering, selectors, services, surveys
from labeling.pixel_payload import decode_stamp, encode_pixels
from simulation.triplets import generate_subjects

README = Path(settings.BASE_DIR) / "README.md"


# --- the key map ------------------------------------------------------------------------


def test_every_key_means_one_thing_on_every_page():
    seen: dict[str, str] = {}
    for binding in KEY_MAP:
        for key in binding.keys:
            assert key not in seen, f"{key} means both {seen[key]!r} and {binding.action!r}"
            seen[key] = binding.action
    # The arrow keys move between subjects; they never answer.
    assert all("←" not in b.keys and "→" not in b.keys for b in bindings_for("classify"))
    with pytest.raises(ValueError, match="page must be one of"):
        bindings_for("home")


def help_keys(html: str, dialog: str) -> list[tuple[list[str], str]]:
    """The (keys, action) rows of the key list inside the dialog `dialog`."""
    box = html.split(f'<dialog id="{dialog}"')[1].split("</dialog>")[0]
    rows = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", box, re.S)
    return [(re.findall(r"<kbd>(.*?)</kbd>", keys), action) for keys, action in rows]


def expected(page: str) -> list[tuple[list[str], str]]:
    return [(list(b.keys), b.action.replace("'", "&#x27;")) for b in bindings_for(page)]


@pytest.mark.django_db
def test_each_page_s_help_lists_its_keys_from_the_one_key_map(workflow, make_user):
    classify = Client().get(f"/classify/{workflow.slug}/").content.decode()
    assert help_keys(classify, "help") == expected("classify")
    assert help_keys(classify, "tutorial") == expected("classify")
    expert = make_user("expert", team="rubin")
    client = Client()
    client.force_login(expert)
    review = client.get(f"/review/{workflow.slug}/").content.decode()
    assert help_keys(review, "help") == expected("review")


def test_the_readme_documents_every_key_of_the_key_map():
    readme = README.read_text()
    table = readme.split("<!-- key map -->")[1]
    for binding in KEY_MAP:
        keys = " or ".join(f"<kbd>{k}</kbd>" for k in binding.keys)
        pages = ", ".join(p for p in BOTH if p in binding.pages)
        assert f"| {keys} | {binding.action} | {pages} |" in table, binding


# --- the pixel payload ------------------------------------------------------------------

stamp_values = st.one_of(st.floats(width=32, allow_infinity=False), st.just(math.nan))


KINDS = ("template", "science", "difference")


@st.composite
def cubes_and_windows(draw):
    """A (3, n, n) cube and, per kind, a window of it (rows x columns, not always square)."""
    n = draw(st.integers(1, 40))
    cube = draw(arrays(np.float32, (3, n, n), elements=stamp_values))

    def span():
        start = draw(st.integers(0, n - 1))
        return slice(start, draw(st.integers(start + 1, n)))

    return cube, {kind: (span(), span()) for kind in KINDS}


@hypothesis_settings(max_examples=60, deadline=None)
@given(cubes_and_windows())
def test_the_payload_carries_every_value_of_each_window_exactly_nan_included(cube_windows):
    cube, windows = cube_windows
    payload = json.loads(json.dumps(encode_pixels(cube, windows=windows, unit=None,
                                                  render_scale=6)))
    n = cube.shape[1]
    for i, kind in enumerate(KINDS):
        rows, cols = windows[kind]
        decoded = decode_stamp(payload, kind)
        assert decoded.dtype == np.float32
        assert payload["shape"][kind] == [rows.stop - rows.start, cols.stop - cols.start]
        # Bit for bit, so NaN is still NaN and -0.0 still -0.0; the window's FITS rows
        # upside down (the top of the picture first).
        assert decoded.tobytes() == cube[i][rows, cols][::-1].astype("<f4").tobytes()
        # The detection (the cube's middle pixel) in picture rows and columns.
        assert payload["centre"][kind] == [rows.stop - 1 - n // 2, n // 2 - cols.start]
        limits = payload["zscale"][kind]
        finite = cube[i][np.isfinite(cube[i])]
        if finite.size == 0:
            assert limits is None
        else:
            # Inside the data's range (zscale's line fit may overshoot by a rounding error).
            slack = 1e-6 * float(np.abs(finite).max())
            low, high = float(finite.min()), float(finite.max())
            assert low - slack <= limits[0] <= limits[1] <= high + slack


@hypothesis_settings(max_examples=30, deadline=None)
@given(cubes_and_windows())
def test_the_payload_is_in_the_served_picture_s_order(cube_windows):
    """No data where the served PNG draws no-data blue, and nowhere else (the centre
    marker's ticks aside): the values and the picture are the same grid, the same way up."""
    cube, windows = cube_windows
    payload = encode_pixels(cube, windows=windows, unit=None, render_scale=1)
    for kind in KINDS:
        png = rendering.render_stamp_png(cube, kind, scale=1, window=windows[kind])
        picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        blue = (picture == np.array(rendering.NAN_COLOUR, np.uint8)).all(axis=-1)
        marker = rendering.centre_marker_mask(picture.shape[:2], payload["centre"][kind])
        np.testing.assert_array_equal(blue[~marker],
                                      np.isnan(decode_stamp(payload, kind))[~marker])


def test_a_cube_of_another_shape_is_refused():
    with pytest.raises(ValueError, match=r"shape \(3, S, S\)"):
        encode_pixels(np.zeros((3, 4, 5), np.float32), windows={}, unit=None, render_scale=6)
    with pytest.raises(ValueError, match="window must be a non-empty slice"):
        encode_pixels(np.zeros((3, 4, 4), np.float32), unit=None, render_scale=6,
                      windows={kind: (slice(2, 2), slice(0, 4)) for kind in KINDS})


def old_pixel_json(subject_id: int) -> bytes:
    """The form pixel values took before this payload: per stamp, rows of numbers with 7
    significant digits and NaN as null, as Django's JsonResponse wrote them (over the same
    windows)."""
    payload = selectors.subject_pixels(subject_id)
    stamps = {
        kind: [[None if math.isnan(v) else float(f"{v:.7g}") for v in row]
               for row in decode_stamp(payload, kind).astype(np.float64).tolist()]
        for kind in payload["stamps"]
    }
    return json.dumps(stamps).encode()


@pytest.mark.django_db
def test_a_prefetched_subject_costs_its_images_only_and_its_values_half_as_much(
    workflow, artifacts
):
    subject_set = services.subject_set_attach(workflow=workflow, name="bytes")
    records = (s.record for s in generate_subjects(12, 21))
    ids = services.subjects_ingest(records, subject_set=subject_set).subject_ids
    client = Client()
    images, pixels, old = [], [], []
    for subject_id in ids:
        images.append(sum(len(client.get(f"/api/subjects/{subject_id}/images/{kind}.png").content)
                          for kind in ("template", "science", "difference")))
        pixels.append(len(client.get(f"/api/subjects/{subject_id}/pixels/").content))
        old.append(len(old_pixel_json(subject_id)))
    n = len(ids)
    figures = {
        "subjects": n,
        "images_bytes_per_subject": sum(images) / n,
        "before_prefetch_bytes_per_subject": (sum(images) + sum(old)) / n,
        "before_pixel_bytes_per_subject": sum(old) / n,
        "after_prefetch_bytes_per_subject": sum(images) / n,
        "after_pixel_bytes_on_first_use": sum(pixels) / n,
    }
    (artifacts / "prefetch_bytes.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nbytes per subject: {figures}")
    # float32 in base64 is 16/3 bytes a value; the JSON numbers took about 10 and more.
    before = figures["before_pixel_bytes_per_subject"]
    assert figures["after_pixel_bytes_on_first_use"] < 0.6 * before


@pytest.fixture
def artifacts() -> Path:
    path = Path(settings.BASE_DIR) / "artifacts" / "frontend"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- survey facts -----------------------------------------------------------------------

RUBIN = {"diaObjectId": 3068394045716021249, "midpointMjdTai": 60000.5}
ZTF = {"objectId": "ZTF21aaxtctv", "jd": 2459000.5}


def test_the_survey_decides_the_unit_and_the_time():
    assert surveys.stamp_unit(RUBIN) == "nJy"
    assert surveys.stamp_unit(ZTF) is None  # counts of unstated zero point: no unit claimed
    assert surveys.stamp_unit({}) is None
    # MJD 60000.5 TAI is 2023-02-25 12:00:00 TAI, 37 s ahead of UTC.
    assert surveys.observed_at(RUBIN) == datetime(2023, 2, 25, 11, 59, 23, tzinfo=UTC)
    assert surveys.observed_at(ZTF) == datetime(2020, 5, 31, tzinfo=UTC)
    assert surveys.observed_at({"jd": "soon"}) is None
    assert surveys.observed_at({"origin": "simulated"}) is None


def test_links_point_at_the_position_and_the_object_and_are_never_fetched():
    names = [link["name"] for link in surveys.sky_links(150.1, -2.5, ZTF)]
    assert names == ["Legacy Survey viewer", "ALeRCE", "Fink", "Lasair", "ANTARES"]
    urls = {link["name"]: link["url"] for link in surveys.sky_links(150.1, -2.5, ZTF)}
    assert "ra=150.100000&dec=-2.500000" in urls["Legacy Survey viewer"]
    assert urls["ALeRCE"] == "https://alerce.online/object/ZTF21aaxtctv"
    assert "ZTF21aaxtctv" in urls["ANTARES"]
    rubin = {link["name"]: link["url"] for link in surveys.sky_links(None, None, RUBIN)}
    assert set(rubin) == {"ALeRCE", "Fink", "Lasair", "ANTARES"}  # no position, no sky viewer
    assert all(str(RUBIN["diaObjectId"]) in url for url in rubin.values())
    assert surveys.sky_links(None, None, {}) == []
