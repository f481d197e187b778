"""Stamp normalisation and the stored cube format (labeling.stamps)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from labeling.records import SubjectRecord
from labeling.stamps import (
    FIT_PAD,
    FIT_RESAMPLE,
    STAMP_FITS,
    NormalisedTriplet,
    StampError,
    cube_from_bytes,
    cube_to_bytes,
    display_window,
    normalise_stamp,
    normalise_triplet,
)


def _ramp(shape: tuple[int, int], dtype: type = np.float32) -> np.ndarray:
    """Every pixel distinct, so a misplaced pixel cannot go unnoticed."""
    return np.arange(shape[0] * shape[1], dtype=dtype).reshape(shape)


def _expected(stamp: np.ndarray, size: int) -> np.ndarray:
    """The centring rule written pixel by pixel: output (r, c) shows input
    (r - size // 2 + h // 2, c - size // 2 + w // 2), or NaN where that is outside the input."""
    height, width = stamp.shape
    expected = np.full((size, size), np.nan, dtype=np.float32)
    for row in range(size):
        for col in range(size):
            source_row = row - size // 2 + height // 2
            source_col = col - size // 2 + width // 2
            if 0 <= source_row < height and 0 <= source_col < width:
                expected[row, col] = stamp[source_row, source_col]
    return expected


def _record(template: np.ndarray, science: np.ndarray, difference: np.ndarray) -> SubjectRecord:
    return SubjectRecord(
        external_id="42", template=template, science=science, difference=difference, source="t[0]"
    )


# --- normalise_stamp: geometry -------------------------------------------------------------


def test_larger_odd_stamp_is_centre_cropped() -> None:
    stamp = _ramp((53, 53))
    normalised, shape = normalise_stamp(stamp, 51)
    np.testing.assert_array_equal(normalised, stamp[1:52, 1:52])
    assert shape == (53, 53)


def test_smaller_odd_stamp_is_nan_padded_around_the_centre() -> None:
    stamp = _ramp((41, 41))
    normalised, shape = normalise_stamp(stamp, 51)
    np.testing.assert_array_equal(normalised[5:46, 5:46], stamp)
    border = np.ones((51, 51), dtype=bool)
    border[5:46, 5:46] = False
    assert np.isnan(normalised[border]).all()
    assert shape == (41, 41)


def test_even_stamp_puts_the_pixel_past_the_midpoint_at_the_centre() -> None:
    stamp = _ramp((50, 50))
    normalised, _ = normalise_stamp(stamp, 51)
    assert normalised[25, 25] == stamp[25, 25]
    assert normalised[0, 0] == stamp[0, 0]
    assert np.isnan(normalised[50, :]).all()
    assert np.isnan(normalised[:, 50]).all()


def test_even_target_size_puts_the_centre_at_size_over_two() -> None:
    stamp = _ramp((3, 3))
    normalised, _ = normalise_stamp(stamp, 4)
    assert normalised[2, 2] == stamp[1, 1]
    np.testing.assert_array_equal(normalised[1:4, 1:4], stamp)
    assert np.isnan(normalised[0, :]).all()
    assert np.isnan(normalised[:, 0]).all()


def test_rectangular_stamp_is_cropped_on_one_axis_and_padded_on_the_other() -> None:
    stamp = _ramp((45, 57))
    normalised, shape = normalise_stamp(stamp, 51)
    np.testing.assert_array_equal(normalised, _expected(stamp, 51))
    assert normalised[25, 25] == stamp[22, 28]
    assert np.isnan(normalised[:3]).all()
    assert np.isnan(normalised[48:]).all()
    assert not np.isnan(normalised[3:48]).any()
    assert shape == (45, 57)


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.int64, np.float64, ">f4", "<f8"])
def test_any_numeric_dtype_becomes_float32(dtype: str) -> None:
    stamp = _ramp((5, 5)).astype(dtype)
    normalised, _ = normalise_stamp(stamp, 5)
    assert normalised.dtype == np.float32
    np.testing.assert_array_equal(normalised, _ramp((5, 5)))


def test_nan_pixels_of_the_input_are_kept() -> None:
    stamp = _ramp((5, 5))
    stamp[0, 1] = np.nan
    normalised, _ = normalise_stamp(stamp, 5)
    assert np.isnan(normalised[0, 1])
    assert np.isnan(normalised).sum() == 1


def test_the_input_is_not_modified() -> None:
    stamp = _ramp((7, 7))
    before = stamp.copy()
    normalise_stamp(stamp, 3)
    np.testing.assert_array_equal(stamp, before)


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        normalise_stamp(_ramp((3, 3)), 0)


# --- normalise_stamp: rejections -----------------------------------------------------------


def _all_nan() -> np.ndarray:
    return np.full((5, 5), np.nan, dtype=np.float32)


def _with(value: float) -> np.ndarray:
    stamp = _ramp((5, 5), np.float64)
    stamp[1, 3] = value
    return stamp


@pytest.mark.parametrize(
    ("stamp", "message"),
    [
        (np.zeros(5, dtype=np.float32), "must be 2-D"),
        (np.zeros((2, 5, 5), dtype=np.float32), "must be 2-D"),
        (np.zeros((0, 5), dtype=np.float32), "empty"),
        (np.full((3, 3), "a"), "non-numeric"),
        (np.zeros((3, 3), dtype=np.complex64), "non-numeric"),
        (np.zeros((3, 3), dtype=bool), "non-numeric"),
        (np.zeros((3, 3), dtype=object), "non-numeric"),
        (_all_nan(), "entirely NaN"),
        (_with(np.inf), "inf"),
        (_with(-np.inf), "inf"),
        (_with(1e300), "float32 range"),
    ],
    ids=[
        "1-d",
        "3-d",
        "empty",
        "strings",
        "complex",
        "bool",
        "object",
        "all-nan",
        "plus-inf",
        "minus-inf",
        "beyond-float32",
    ],
)
def test_unusable_stamps_raise_stamp_error(stamp: np.ndarray, message: str) -> None:
    with pytest.raises(StampError, match=message):
        normalise_stamp(stamp, 5)


def test_stamp_error_is_a_value_error() -> None:
    assert issubclass(StampError, ValueError)


# --- normalise_stamp: properties -----------------------------------------------------------

_sides = st.integers(min_value=1, max_value=40)
_finite_pixels = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def _stamps(draw: st.DrawFn, pixels: st.SearchStrategy[float] = _finite_pixels) -> np.ndarray:
    shape = (draw(_sides), draw(_sides))
    return draw(hnp.arrays(np.float32, shape, elements=pixels))


@given(stamp=_stamps(), size=_sides)
def test_output_is_always_size_by_size_float32_with_the_original_shape(
    stamp: np.ndarray, size: int
) -> None:
    normalised, shape = normalise_stamp(stamp, size)
    assert normalised.shape == (size, size)
    assert normalised.dtype == np.float32
    assert shape == stamp.shape


@given(stamp=_stamps(), size=_sides)
def test_centre_pixel_is_preserved(stamp: np.ndarray, size: int) -> None:
    normalised, _ = normalise_stamp(stamp, size)
    height, width = stamp.shape
    assert normalised[size // 2, size // 2] == stamp[height // 2, width // 2]


@given(stamp=_stamps(), size=_sides)
def test_nan_padding_only_where_the_input_does_not_reach(stamp: np.ndarray, size: int) -> None:
    normalised, _ = normalise_stamp(stamp, size)
    np.testing.assert_array_equal(normalised, _expected(stamp, size))


@given(
    stamp=_stamps(st.one_of(_finite_pixels, st.just(float("nan")))),
    size=_sides,
)
def test_nan_pixels_pass_through_and_nothing_else_turns_nan(stamp: np.ndarray, size: int) -> None:
    if np.isnan(stamp).all():
        with pytest.raises(StampError, match="entirely NaN"):
            normalise_stamp(stamp, size)
        return
    normalised, _ = normalise_stamp(stamp, size)
    np.testing.assert_array_equal(normalised, _expected(stamp, size))


# --- normalise_triplet ---------------------------------------------------------------------


def test_triplet_cube_is_template_science_difference_with_original_shapes() -> None:
    template = np.full((41, 41), 1.0, dtype=np.float32)
    science = np.full((45, 37), 2.0, dtype=np.float64)
    difference = np.full((63, 63), 3, dtype=np.int32)
    triplet = normalise_triplet(_record(template, science, difference), 51)
    assert isinstance(triplet, NormalisedTriplet)
    assert triplet.cube.shape == (3, 51, 51)
    assert triplet.cube.dtype == np.float32
    assert [triplet.cube[plane, 25, 25] for plane in range(3)] == [1.0, 2.0, 3.0]
    assert triplet.original_shapes == ((41, 41), (45, 37), (63, 63))


def test_triplet_error_names_the_record_and_the_stamp() -> None:
    good = _ramp((5, 5))
    with pytest.raises(StampError, match=r"t\[0\] science: .*entirely NaN"):
        normalise_triplet(_record(good, _all_nan(), good), 5)


# --- stored cube bytes ---------------------------------------------------------------------


def _cube(size: int = 5) -> np.ndarray:
    return np.arange(3 * size * size, dtype=np.float32).reshape(3, size, size)


def test_cube_round_trips_with_nan_payloads_bit_exact() -> None:
    cube = _cube()
    bits = cube.view(np.uint32)
    bits[0, 0, 0] = 0x7FC00000  # the canonical quiet NaN
    bits[1, 2, 3] = 0x7FC00001  # a NaN with a payload
    bits[2, 4, 4] = 0xFFC12345  # a negative NaN with a payload
    restored = cube_from_bytes(cube_to_bytes(cube), 5)
    assert restored.dtype == np.float32
    np.testing.assert_array_equal(restored.view(np.uint32), bits)


@given(
    cube=hnp.arrays(
        np.float32,
        st.integers(1, 12).map(lambda size: (3, size, size)),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    )
)
def test_any_float32_cube_round_trips_bit_exact(cube: np.ndarray) -> None:
    restored = cube_from_bytes(cube_to_bytes(cube), cube.shape[1])
    np.testing.assert_array_equal(restored.view(np.uint32), cube.view(np.uint32))


@pytest.mark.parametrize(
    "cube",
    [
        _cube().astype(np.float64),
        np.zeros((2, 5, 5), dtype=np.float32),
        np.zeros((3, 5, 4), dtype=np.float32),
        np.zeros((5, 5), dtype=np.float32),
    ],
    ids=["float64", "two-planes", "not-square", "2-d"],
)
def test_cube_to_bytes_refuses_anything_but_a_float32_cube(cube: np.ndarray) -> None:
    with pytest.raises(StampError, match="float32"):
        cube_to_bytes(cube)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, cube=_cube())
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "corrupt"),
        (b"definitely not a numpy array", "corrupt"),
        (_npy_bytes(_cube())[:-7], "corrupt"),
        (_npy_bytes(_cube()) + b"\x00", "trailing"),
        (_npz_bytes(), "corrupt"),
        (_npy_bytes(np.array([{"a": 1}], dtype=object)), "corrupt"),
        (_npy_bytes(_cube().astype(np.float64)), "float32"),
        (_npy_bytes(_cube(6)), r"\(3, 5, 5\)"),
        (_npy_bytes(np.zeros((4, 5, 5), dtype=np.float32)), r"\(3, 5, 5\)"),
    ],
    ids=[
        "empty",
        "garbage",
        "truncated",
        "trailing-bytes",
        "npz-archive",
        "pickled-object",
        "float64",
        "wrong-size",
        "four-planes",
    ],
)
def test_cube_from_bytes_rejects_corrupt_or_mismatched_data(data: bytes, message: str) -> None:
    with pytest.raises(StampError, match=message):
        cube_from_bytes(data, 5)


# --- an explicit detection pixel, native windows and the pad-or-resample fit ----------------


def test_an_explicit_detection_pixel_lands_on_the_centre_and_is_the_offset() -> None:
    stamp = _ramp((63, 44))  # clipped on the left: the detection is at column 12, not 22
    normalised, _ = normalise_stamp(stamp, 51, detection=(31, 12))
    assert normalised[25, 25] == stamp[31, 12]
    record = SubjectRecord("clipped", stamp, stamp, stamp, "test", detection_pixel=(31, 12))
    assert normalise_triplet(record, 51).centre_offset == (0, -10)


def test_a_detection_pixel_outside_the_stamp_is_refused() -> None:
    with pytest.raises(StampError, match="lies outside"):
        normalise_stamp(_ramp((30, 30)), 51, detection=(30, 2))


def test_resample_fills_the_cube_with_a_30x30_stamp_and_keeps_the_detection_centred() -> None:
    stamp = np.ones((30, 30), dtype=np.float32)
    stamp[15, 15] = 50.0
    padded, _ = normalise_stamp(stamp, 51, fit=FIT_PAD)
    resampled, shape = normalise_stamp(stamp, 51, fit=FIT_RESAMPLE)
    assert shape == (30, 30)
    assert np.isnan(padded).mean() > 0.6  # the Rubin complaint: 65% no data
    assert np.isnan(resampled).mean() < 0.1
    assert resampled[25, 25] == 50.0
    assert np.nanargmax(resampled) == np.ravel_multi_index((25, 25), (51, 51))


def test_resample_leaves_a_stamp_as_large_as_the_cube_alone() -> None:
    stamp = _ramp((63, 63))
    np.testing.assert_array_equal(normalise_stamp(stamp, 51, fit=FIT_RESAMPLE)[0],
                                  normalise_stamp(stamp, 51, fit=FIT_PAD)[0])


def test_an_unknown_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="stamp fit must be one of pad, resample"):
        normalise_stamp(_ramp((30, 30)), 51, fit="stretch")


@given(
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    size=st.integers(1, 60),
    fit=st.sampled_from(STAMP_FITS),
    data=st.data(),
)
def test_the_display_window_is_exactly_where_the_cube_holds_the_stamp(
    height: int, width: int, size: int, fit: str, data
) -> None:
    """The picture shows the window; the window must be the footprint of the stamp's data in
    the cube (no padding drawn, no data left out), for every shape, detection and fit."""
    detection = (data.draw(st.integers(0, height - 1)), data.draw(st.integers(0, width - 1)))
    stamp = np.ones((height, width), dtype=np.float32)
    normalised, _ = normalise_stamp(stamp, size, detection, fit)
    offset = (detection[0] - height // 2, detection[1] - width // 2)
    rows, cols = display_window((height, width), offset, size, fit)
    has_data = ~np.isnan(normalised)
    expected_rows = np.flatnonzero(has_data.any(axis=1))
    expected_cols = np.flatnonzero(has_data.any(axis=0))
    assert (rows.start, rows.stop) == (expected_rows[0], expected_rows[-1] + 1)
    assert (cols.start, cols.stop) == (expected_cols[0], expected_cols[-1] + 1)
    assert has_data[rows, cols].all()
