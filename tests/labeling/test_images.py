"""GET /api/subjects/{id}/images/{kind}.png: rendered once, cached, with cache headers."""

import io

import pytest
from PIL import Image
from rest_framework.test import APIClient

from labeling import rendering

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
