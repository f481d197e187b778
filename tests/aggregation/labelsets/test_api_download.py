"""The archive download: streamed in bounded chunks, conditional requests, byte ranges (the
pure parser with hypothesis, then the view), and a missing archive."""

from __future__ import annotations

import hashlib
import os
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregation.labelsets import services, storage
from aggregation.labelsets.api import (
    DOWNLOAD_CHUNK_BYTES,
    ByteRange,
    RangeNotSatisfiable,
    parse_range,
)
from aggregation.models import LabelSet
from tests.conftest import token_client

# --- the parser ------------------------------------------------------------------------------

sizes = st.integers(0, 10**7)
positions = st.integers(0, 2 * 10**7)


def _as_range(byte_range: ByteRange | None, size: int) -> range:
    if byte_range is None:
        return range(size)
    return range(byte_range.start, byte_range.end + 1)


@given(size=sizes, first=positions, last=positions)
def test_a_first_last_range_is_the_python_slice(size, first, last):
    header = f"bytes={first}-{last}"
    if last < first:
        assert parse_range(header, size) is None  # invalid: ignored, the whole file is sent
    elif first >= size:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
    else:
        assert _as_range(parse_range(header, size), size) == range(size)[first:last + 1]


@given(size=sizes, first=positions)
def test_an_open_range_runs_to_the_end(size, first):
    if first >= size:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(f"bytes={first}-", size)
    else:
        assert _as_range(parse_range(f"bytes={first}-", size), size) == range(size)[first:]


@given(size=sizes, suffix=positions)
def test_a_suffix_range_is_the_last_bytes(size, suffix):
    if suffix == 0 or size == 0:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(f"bytes=-{suffix}", size)
    else:
        assert _as_range(parse_range(f"bytes=-{suffix}", size), size) == range(size)[-suffix:]


@given(size=sizes, header=st.text(max_size=40))
def test_any_header_gives_bytes_of_the_file_the_whole_file_or_416(size, header):
    try:
        found = parse_range(header, size)
    except RangeNotSatisfiable:
        return
    if found is not None:
        assert 0 <= found.start <= found.end < size


@pytest.mark.parametrize("header", [None, "", "bytes=", "bytes=-", "items=0-10", "bytes=0-1,4-5",
                                    "bytes=5-2", "bytes=a-b", "0-10"])
def test_absent_malformed_multiple_or_foreign_ranges_are_ignored(header):
    assert parse_range(header, 100) is None


# --- the view --------------------------------------------------------------------------------



@pytest.fixture
def label_set(labelled):
    return services.label_set_export(labelled.run.pk, services.ExportOptions(scenario="unstable"))


@pytest.fixture
def caller(make_user):
    return token_client(make_user("ml", ml=True))


def _url(label_set) -> str:
    return f"/api/label-sets/{label_set.number}/download/"


def _archive_bytes(label_set) -> bytes:
    return storage.archive_of(label_set.path).read_bytes()


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.django_db
def test_the_whole_archive_with_its_headers(label_set, caller):
    response = caller.get(_url(label_set))
    assert response.status_code == 200
    assert response.streaming
    body = _body(response)
    assert body == _archive_bytes(label_set)
    assert hashlib.sha256(body).hexdigest() == label_set.archive_sha256
    assert response["ETag"] == f'"{label_set.archive_sha256}"'
    assert response["Content-Length"] == str(label_set.archive_size)
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "application/x-tar"
    assert response["Content-Disposition"] == (
        f'attachment; filename="{storage.folder_name(label_set.number)}.tar"'
    )


@pytest.mark.django_db
def test_the_archive_is_streamed_in_bounded_chunks_never_read_whole(label_set, caller):
    # A 24 MiB archive in place of the export's: the view serves whatever file is registered.
    path = storage.archive_of(label_set.path)
    size = 24 * 2**20
    with open(path, "wb") as handle:
        for _ in range(size // 2**20):
            handle.write(os.urandom(2**20))
    LabelSet.objects.filter(pk=label_set.pk).update(archive_size=size)
    response = caller.get(_url(label_set))
    assert response.streaming
    tracemalloc.start()
    try:
        received = 0
        digest = hashlib.sha256()
        for chunk in response.streaming_content:
            assert len(chunk) <= DOWNLOAD_CHUNK_BYTES
            received += len(chunk)
            digest.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    # A few chunks at most were alive at once: nowhere near the file's 24 MiB.
    assert peak < 8 * DOWNLOAD_CHUNK_BYTES


@pytest.mark.django_db
@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-0", 0, 0),
    ("bytes=100-1099", 100, 1099),
    ("bytes=-512", -512, None),
    ("bytes=2000-", 2000, None),
    ("bytes=10-999999999999", 10, None),
])
def test_a_range_is_206_with_exactly_those_bytes(label_set, caller, header, first, last):
    data = _archive_bytes(label_set)
    size = len(data)
    start = first % size
    end = size - 1 if last is None else last
    response = caller.get(_url(label_set), HTTP_RANGE=header)
    assert response.status_code == 206
    assert _body(response) == data[start:end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert response["Content-Length"] == str(end - start + 1)
    assert response["ETag"] == f'"{label_set.archive_sha256}"'


@pytest.mark.django_db
def test_a_range_past_the_end_is_416(label_set, caller):
    response = caller.get(_url(label_set), HTTP_RANGE=f"bytes={label_set.archive_size}-")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{label_set.archive_size}"
    assert response.json()["error"] == "range_not_satisfiable"


@pytest.mark.django_db
def test_if_range_keeps_the_range_only_for_this_archive(label_set, caller):
    etag = f'"{label_set.archive_sha256}"'
    same = caller.get(_url(label_set), HTTP_RANGE="bytes=10-19", HTTP_IF_RANGE=etag)
    assert same.status_code == 206
    assert _body(same) == _archive_bytes(label_set)[10:20]
    for other in ('"0123abcd"', f"W/{etag}", "Wed, 21 Oct 2015 07:28:00 GMT"):
        changed = caller.get(_url(label_set), HTTP_RANGE="bytes=10-19", HTTP_IF_RANGE=other)
        assert changed.status_code == 200, other
        assert _body(changed) == _archive_bytes(label_set)


@pytest.mark.django_db
def test_if_none_match_with_the_etag_is_304(label_set, caller):
    etag = f'"{label_set.archive_sha256}"'
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = caller.get(_url(label_set), HTTP_IF_NONE_MATCH=header)
        assert response.status_code == 304, header
        assert response["ETag"] == etag
        assert not response.content
    assert caller.get(_url(label_set), HTTP_IF_NONE_MATCH='"other"').status_code == 200


@pytest.mark.django_db
def test_a_missing_or_changed_archive_is_a_500_that_says_so(label_set, caller):
    path = storage.archive_of(label_set.path)
    with open(path, "ab") as handle:
        handle.write(b"extra")
    changed = caller.get(_url(label_set))
    assert changed.status_code == 500
    assert changed.json()["error"] == "archive_missing"
    assert "has been changed" in changed.json()["detail"]
    path.unlink()
    missing = caller.get(_url(label_set))
    assert missing.status_code == 500
    assert missing.json() == {
        "error": "archive_missing",
        "detail": f"label set {label_set.number}'s archive is missing on the server; an "
                  "operator has to restore it (the export is immutable and is not redone)",
    }
