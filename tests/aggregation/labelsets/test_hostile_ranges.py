"""Range headers with more digits than int() converts (4,300) are answered like any other range:
the byte-range rules hold for numbers of any length, and the download never gives a 500."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregation.labelsets import services
from aggregation.labelsets.api import ByteRange, RangeNotSatisfiable, parse_range
from tests.conftest import token_client

HUGE = 5000  # digits: past the interpreter's 4,300-digit limit on int() and str()


@contextmanager
def _any_int_length():
    """Lift the digit limit for the test's own arithmetic, never for parse_range."""
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(before)


def _expected(first: int | None, last: int | None, size: int) -> ByteRange | type | None:
    """RFC 9110's answer, worked with unbounded integers."""
    if first is None:
        if last == 0 or size == 0:
            return RangeNotSatisfiable
        return ByteRange(max(0, size - last), size - 1)
    if last is not None and last < first:
        return None
    if first >= size:
        return RangeNotSatisfiable
    return ByteRange(first, size - 1 if last is None else min(last, size - 1))


numbers = st.one_of(
    st.integers(0, 10**6),
    st.integers(0, 9).map(lambda d: 10 ** (HUGE - 1) + d),  # 5,000 digits
    st.integers(0, 9).map(lambda d: 10 ** (HUGE + 1) - 1 - d),  # 5,002 nines, near
)


@given(size=st.integers(0, 10**6), first=st.none() | numbers, last=st.none() | numbers,
       zeros=st.integers(0, 3))
def test_ranges_of_any_length_follow_the_rules(size, first, last, zeros):
    if first is None and last is None:
        return
    with _any_int_length():
        pad = "0" * zeros
        header = (f"bytes={'' if first is None else pad + str(first)}-"
                  f"{'' if last is None else pad + str(last)}")
        expected = _expected(first, last, size)
    if expected is RangeNotSatisfiable:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
    else:
        assert parse_range(header, size) == expected


@pytest.fixture
def label_set(labelled):
    return services.label_set_export(labelled.run.pk, services.ExportOptions(scenario="unstable"))


@pytest.mark.django_db
@pytest.mark.parametrize(("header", "status"), [
    (f"bytes={'9' * HUGE}-", 416),
    (f"bytes=-{'9' * HUGE}", 206),
    (f"bytes=0-{'9' * HUGE}", 206),
    (f"bytes={'9' * HUGE}-{'8' * HUGE}", 200),  # last before first: ignored, whole file
])
def test_a_range_with_thousands_of_digits_is_not_a_server_error(label_set, make_user,
                                                                header, status):
    caller = token_client(make_user("ml", ml=True))
    response = caller.get(f"/api/label-sets/{label_set.number}/download/", HTTP_RANGE=header)
    assert response.status_code == status
    if status == 416:
        assert response.json()["error"] == "range_not_satisfiable"
    else:
        assert b"".join(response.streaming_content)  # the archive's bytes, all or the range
