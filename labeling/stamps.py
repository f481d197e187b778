"""Postage-stamp normalisation and the stored form of a subject's stamp cube.

Pure numpy: nothing here imports Django, so the rules are unit-tested and benchmarked
without a database.

Centring rule. A stamp of length n along an axis has its detection at pixel index n // 2:
the exact centre when n is odd, and for even n the pixel just past the midpoint (a 50-pixel
axis has its detection at index 25), unless the record gives the detection's pixel (a cutout
clipped at a detector edge, where the reader found the detection from the alert's position).
Normalising to `size` maps the detection's input index to output index size // 2 on each
axis, cropping what falls outside and padding with NaN where the input does not reach; the
detection's distance from n // 2 is recorded as the centring offset. NaN is the "no data"
value throughout: NaN pixels in the input are legitimate (masked or off-detector) and are
kept, while +/-inf marks a corrupt stamp.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from labeling.records import FIT_PAD, FIT_RESAMPLE, STAMP_FITS, STAMP_KINDS, SubjectRecord

Shape = tuple[int, ...]

_FLOAT32_MAX = float(np.finfo(np.float32).max)
# Integer and floating pixels are accepted; booleans, complex, strings and objects are not
# pixel values (complex would silently lose its imaginary part in float32).
_NUMERIC_KINDS = frozenset("iuf")


class StampError(ValueError):
    """A stamp (or stored stamp cube) that cannot be used, with the reason."""


@dataclass(frozen=True)
class NormalisedTriplet:
    """The stored form of one subject's stamps.

    `cube` is float32 of shape (3, size, size) in the order template, science, difference;
    `original_shapes` are the shapes of the three input stamps in the same order;
    `centre_offset` is (rows, columns) from each input's index n // 2 to its detection pixel,
    (0, 0) unless the record gave the detection's pixel.
    """

    cube: np.ndarray
    original_shapes: tuple[Shape, Shape, Shape]
    centre_offset: tuple[int, int] = (0, 0)


def check_stamp(stamp: np.ndarray, label: str = "stamp") -> np.ndarray:
    """Return `stamp` as an ndarray if it can be normalised, else raise `StampError`.

    The checks do not depend on the target size, so readers call this to reject a bad
    record at read time with the same message the normaliser would give.
    """
    array = np.asarray(stamp)
    if array.ndim != 2:
        raise StampError(f"{label} must be 2-D, got shape {array.shape}")
    if array.size == 0:
        raise StampError(f"{label} is empty (shape {array.shape})")
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise StampError(f"{label} has non-numeric dtype {array.dtype}")
    if array.dtype.kind == "f":
        if np.isinf(array).any():
            raise StampError(f"{label} has +/-inf pixels (corrupt stamp)")
        finite = array[~np.isnan(array)]
        if finite.size == 0:
            raise StampError(f"{label} is entirely NaN")
        if np.abs(finite).max() > _FLOAT32_MAX:
            raise StampError(f"{label} has pixel values beyond the float32 range")
    return array


def _centred_span(length: int, size: int, centre: int) -> tuple[slice, slice]:
    """The input slice and output slice that align input index `centre` with size // 2."""
    offset = size // 2 - centre
    start = max(0, -offset)
    stop = min(length, size - offset)
    return slice(start, stop), slice(start + offset, stop + offset)


def _check_size(size: int) -> None:
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")


def resample_factor(shape: Shape, size: int, fit: str) -> float:
    """How much `fit` enlarges a stamp of `shape` in a (size, size) cube: 1 when padding, and
    when resampling a stamp smaller than the cube on both axes, size / its longer side."""
    if fit not in STAMP_FITS:
        raise ValueError(f"stamp fit must be one of {', '.join(STAMP_FITS)}, got {fit!r}")
    if fit == FIT_RESAMPLE and max(shape) < size:
        return size / max(shape)
    return 1.0


def normalise_stamp(
    stamp: np.ndarray,
    size: int,
    detection: tuple[int, int] | None = None,
    fit: str = FIT_PAD,
) -> tuple[np.ndarray, Shape]:
    """Fit a 2-D stamp into float32 (size, size), its detection on the centre pixel.

    `detection` is the (row, column) to put on the centre pixel, by default (h // 2, w // 2).
    `fit` FIT_PAD centre-crops or NaN-pads; FIT_RESAMPLE first enlarges a stamp smaller than
    the cube on both axes by `resample_factor` (bilinear; a pixel next to a NaN is NaN), so a
    30x30 Rubin cutout fills the cube instead of a 30x30 window in NaN. Returns the normalised
    stamp and the input's original shape. See the module docstring for the centring rule.
    Raises `StampError` for a stamp that cannot be used.
    """
    _check_size(size)
    array = check_stamp(stamp)
    row, col = detection if detection is not None else (array.shape[0] // 2, array.shape[1] // 2)
    if not (0 <= row < array.shape[0] and 0 <= col < array.shape[1]):
        raise StampError(f"detection pixel {(row, col)} lies outside the {array.shape} stamp")
    factor = resample_factor(array.shape, size, fit)
    if factor != 1.0:
        return _resampled(array.astype(np.float64), size, (row, col), factor), array.shape
    rows_in, rows_out = _centred_span(array.shape[0], size, row)
    cols_in, cols_out = _centred_span(array.shape[1], size, col)
    normalised = np.full((size, size), np.nan, dtype=np.float32)
    normalised[rows_out, cols_out] = array[rows_in, cols_in]
    return normalised, array.shape


def _resampled(
    array: np.ndarray, size: int, detection: tuple[int, int], factor: float
) -> np.ndarray:
    """`array` enlarged by `factor` about its detection pixel, which lands on size // 2."""
    offsets = (np.arange(size) - size // 2) / factor
    rows = detection[0] + offsets[:, None] + np.zeros((1, size))
    cols = detection[1] + offsets[None, :] + np.zeros((size, 1))
    # order=1 is bilinear with no prefilter, so a NaN spreads to its neighbours only; points
    # beyond the stamp's edge pixels are no data.
    resampled = ndimage.map_coordinates(array, [rows, cols], order=1, mode="constant",
                                        cval=np.nan)
    return resampled.astype(np.float32)


def display_window(
    original_shape: Shape, centre_offset: tuple[int, int], size: int, fit: str = FIT_PAD
) -> tuple[slice, slice]:
    """The rows and columns of a stored (size, size) plane that the native stamp covers.

    This is what a picture shows: the stamp at its native size, no padding around it (a
    stamp larger than the cube shows the cube's crop of it). A resampled stamp covers the
    cube along its longer side, and its window is the footprint of the enlarged stamp.
    """
    factor = resample_factor(tuple(original_shape), size, fit)
    spans = []
    for length, offset in zip(original_shape, centre_offset, strict=True):
        detection = length // 2 + offset
        first = size // 2 - detection * factor
        last = size // 2 + (length - 1 - detection) * factor
        spans.append(slice(max(0, math.ceil(first - 1e-9)), min(size, math.floor(last + 1e-9) + 1)))
    return spans[0], spans[1]


def normalise_triplet(record: SubjectRecord, size: int, fit: str = FIT_PAD) -> NormalisedTriplet:
    """Normalise a record's template, science and difference stamps into one cube."""
    _check_size(size)
    cube = np.empty((len(STAMP_KINDS), size, size), dtype=np.float32)
    shapes = []
    for plane, (kind, stamp) in enumerate(zip(STAMP_KINDS, record.stamps(), strict=True)):
        try:
            cube[plane], shape = normalise_stamp(stamp, size, record.detection_pixel, fit)
        except StampError as exc:
            raise StampError(f"{record.source} {kind}: {exc}") from exc
        shapes.append(shape)
    offset = (0, 0)
    if record.detection_pixel is not None:
        science_shape = shapes[STAMP_KINDS.index("science")]
        offset = (record.detection_pixel[0] - science_shape[0] // 2,
                  record.detection_pixel[1] - science_shape[1] // 2)
    return NormalisedTriplet(cube=cube, original_shapes=tuple(shapes), centre_offset=offset)


def _check_cube(cube: np.ndarray, size: int | None = None) -> None:
    """Raise `StampError` unless `cube` is float32 (3, S, S), with S == size when given."""
    is_cube = (
        cube.ndim == 3
        and cube.shape[0] == len(STAMP_KINDS)
        and cube.shape[1] == cube.shape[2]
        and (size is None or cube.shape[1] == size)
    )
    if cube.dtype != np.float32 or not is_cube:
        side = "S" if size is None else size
        raise StampError(
            f"stamp cube must be float32 (3, {side}, {side}), got {cube.dtype} {cube.shape}"
        )


def cube_to_bytes(cube: np.ndarray) -> bytes:
    """Serialise a (3, S, S) float32 cube losslessly as .npy bytes (NaN bits included)."""
    cube = np.asarray(cube)
    _check_cube(cube)
    buffer = io.BytesIO()
    np.save(buffer, cube, allow_pickle=False)
    return buffer.getvalue()


def cube_from_bytes(data: bytes, size: int) -> np.ndarray:
    """Load a cube stored by `cube_to_bytes`, checking it is float32 (3, size, size)."""
    buffer = io.BytesIO(data)
    # read_array parses only the .npy format (np.load would also accept zip archives).
    try:
        cube = np.lib.format.read_array(buffer, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise StampError(f"corrupt stamp cube bytes: {exc}") from exc
    if buffer.read(1):
        raise StampError("corrupt stamp cube bytes: trailing data after the array")
    _check_cube(cube, size)
    return cube
