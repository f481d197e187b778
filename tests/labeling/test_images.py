"""GET /api/subjects/{id}/images/{kind}.png: rendered once, cached, with cache headers."""

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image
from rest_framework.test import APIClient

from labeling import rendering, selectors, services, stamps
from labeling.models import Subject
from labeling.pixel_payload import decode_stamp
from labeling.records import SubjectRecord

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("kind", ["template", "science", "difference"])
def test_each_stamp_renders_as_a_png_at_display_scale(subject_ids, settings, kind):
    response = APIClient().get(f"/api/subjects/{subject_ids[0]}/images/{kind}.png")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert "max-age" in response["Cache-Control"]
    image = Image.open(io.BytesIO(response.content))
    side = settings.STAMP_SIZE * settings.RENDER_SCALE
    assert image.size == (side, side)


def test_renders_are_cached_and_revalidated_by_etag(subject_ids, monkeypatch):
    client = APIClient()
    url = f"/api/subjects/{subject_ids[0]}/images/science.png"
    first = client.get(url)
    calls = []
    monkeypatch.setattr(rendering, "render_stamp_png",
                        lambda *args, **kwargs: calls.append(args) or b"")
    second = client.get(url)
    assert second.content == first.content
    assert calls == []
    not_modified = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert not_modified.status_code == 304
    assert not_modified.content == b""


@pytest.mark.parametrize(
    "path", ["/api/subjects/{id}/images/noise.png", "/api/subjects/999999/images/science.png"]
)
def test_unknown_kind_or_subject_gets_a_json_404(subject_ids, path):
    response = APIClient().get(path.format(id=subject_ids[0]))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def _ingest_one(workflow, record):
    subject_set = services.subject_set_attach(workflow=workflow, name="native")
    return services.subjects_ingest([record], subject_set=subject_set).subject_ids[0]


def _rubin_sized(rng, shape=(30, 30)) -> SubjectRecord:
    template = rng.normal(0.0, 1.0, shape).astype(np.float32)
    science = template + rng.normal(0.0, 1.0, shape).astype(np.float32)
    return SubjectRecord("rubin-30", template, science, science - template, "test")


def _picture(subject_id, kind):
    response = APIClient().get(f"/api/subjects/{subject_id}/images/{kind}.png")
    assert response.status_code == 200
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def test_a_30x30_stamp_is_drawn_at_its_native_size_without_padding(workflow, settings):
    """Rubin's 30x30 cutouts were NaN-padded to 51x51, 65% of each picture no-data blue."""
    subject_id = _ingest_one(workflow, _rubin_sized(np.random.default_rng(0)))
    for kind in ("template", "science", "difference"):
        picture = _picture(subject_id, kind)
        assert picture.shape[:2] == (30 * settings.RENDER_SCALE, 30 * settings.RENDER_SCALE)
        nan_pixels = (picture == np.array(rendering.NAN_COLOUR, dtype=np.uint8)).all(axis=-1)
        assert not nan_pixels.any()
    # ...while the stored cube, what the CNN reads, stays 51x51.
    subject = Subject.objects.get(pk=subject_id)
    cube = stamps.cube_from_bytes(subject.stamps.read(), 51)
    assert np.isnan(cube).mean() > 0.6


def test_the_pixel_values_cover_the_same_window_in_picture_order(workflow, settings):
    record = _rubin_sized(np.random.default_rng(1), shape=(30, 36))
    subject_id = _ingest_one(workflow, record)
    payload = selectors.subject_pixels(subject_id)
    for kind, stamp in zip(("template", "science", "difference"), record.stamps(), strict=True):
        assert payload["shape"][kind] == [30, 36]
        # The same window as the served picture, FITS row 0 last.
        assert _picture(subject_id, kind).shape[:2] == (30 * settings.RENDER_SCALE,
                                                        36 * settings.RENDER_SCALE)
        np.testing.assert_array_equal(decode_stamp(payload, kind), stamp[::-1])
        # The detection (index n // 2 = 15, 18) is drawn 30 - 1 - 15 = 14 rows from the top.
        assert payload["centre"][kind] == [14, 18]


def test_a_clipped_stamp_s_values_put_the_detection_where_the_alert_does(workflow):
    """An edge-clipped cutout: 40 rows by 63 columns, the detection at row 31 (not 20)."""
    rng = np.random.default_rng(5)
    record = dataclasses.replace(_rubin_sized(rng, shape=(40, 63)), detection_pixel=(31, 30))
    payload = selectors.subject_pixels(_ingest_one(workflow, record))
    # In the 51x51 cube the detection sits at (25, 25): the cube holds stamp rows 6..39 (the
    # 6 below row 0 do not exist) and columns 5..55 of the 63.
    assert payload["shape"]["science"] == [34, 51]
    # Picture order: stamp row 39 is the top row, so the detection is 39 - 31 = 8 rows down.
    assert payload["centre"]["science"] == [8, 25]
    np.testing.assert_array_equal(decode_stamp(payload, "science"),
                                  record.science[6:40, 5:56][::-1])
def test_the_resample_setting_fills_the_cube_and_is_recorded(workflow, settings):
    settings.STAMP_FIT = "resample"
    subject_id = _ingest_one(workflow, _rubin_sized(np.random.default_rng(2)))
    subject = Subject.objects.get(pk=subject_id)
    assert subject.stamp_fit == "resample"
    cube = stamps.cube_from_bytes(subject.stamps.read(), 51)
    assert np.isnan(cube).mean() < 0.1
    picture = _picture(subject_id, "science")
    window = stamps.display_window((30, 30), (0, 0), 51, "resample")
    side = (window[0].stop - window[0].start) * settings.RENDER_SCALE
    assert picture.shape[:2] == (side, side)
