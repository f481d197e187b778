"""The pixel values a stamp viewer reads, encoded compactly. Pure numpy and astropy: nothing
here imports Django.

Each stamp travels as exactly what its served picture shows (README, "Stamps: the display
contract"): the values of its display window, in picture order (labeling.rendering
`picture_of`: the top row first, so FITS row 0 comes last), as float32, little-endian, row by
row, in base64. NaN stays NaN ("no data"). Per stamp the payload gives its `shape` (rows,
columns: a clipped stamp is not square) and `centre`, the [row, column] of the detection
pixel in those rows (rendering's `drawn_pixel`), so the browser needs no orientation rule
of its own. Alongside: the unit when the survey states one, each stamp's zscale limits (so
the viewer's zscale stretch is astropy's, not a second implementation), and how the served
images draw "no data" and the centre marker, so that a stretch drawn in the browser looks
like the served one. The encoding takes about half the bytes of the JSON lists of numbers it
replaces, and a native window takes only its own pixels (see the README's "The volunteer
page" for the measured bytes).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import numpy as np

from labeling import rendering
from labeling.records import STAMP_KINDS

ENCODING = "float32-le-base64"


def encode_pixels(
    cube: np.ndarray,
    *,
    windows: Mapping[str, tuple[slice, slice]],
    unit: str | None,
    render_scale: int,
) -> dict:
    """The payload for a (3, S, S) cube of template, science and difference, each kind shown
    through its display window (`windows[kind]`: rows, columns of the cube)."""
    cube = np.asarray(cube)
    if cube.ndim != 3 or cube.shape[0] != len(STAMP_KINDS) or cube.shape[1] != cube.shape[2]:
        raise ValueError(f"cube must have shape (3, S, S), got {cube.shape}")
    size = cube.shape[1]
    values = cube.astype("<f4")
    pictures, centres = {}, {}
    for i, kind in enumerate(STAMP_KINDS):
        window = rendering.bounded_window(windows[kind], size)
        pictures[kind] = np.ascontiguousarray(rendering.picture_of(values[i], window))
        centres[kind] = list(rendering.drawn_pixel((size // 2, size // 2), window))
    return {
        "unit": unit,
        "encoding": ENCODING,
        "stamps": {kind: base64.b64encode(pictures[kind].tobytes()).decode("ascii")
                   for kind in STAMP_KINDS},
        "shape": {kind: list(pictures[kind].shape) for kind in STAMP_KINDS},
        "centre": centres,
        # The served stretch sees the whole plane (labeling.rendering), and so do these limits.
        "zscale": {kind: _zscale_limits(values[i]) for i, kind in enumerate(STAMP_KINDS)},
        "display": {
            "scale": render_scale,
            "nan_colour": list(rendering.NAN_COLOUR),
            "marker_colour": list(rendering.MARKER_COLOUR),
            "marker_gap": rendering.MARKER_GAP,
            "marker_length": rendering.MARKER_LENGTH,
            "asinh_softening": rendering.ASINH_SOFTENING,
        },
    }


def decode_stamp(payload: dict, kind: str) -> np.ndarray:
    """One stamp back as a float32 (rows, columns) array in picture order: what the browser's
    reader does."""
    raw = base64.b64decode(payload["stamps"][kind])
    return np.frombuffer(raw, dtype="<f4").reshape(payload["shape"][kind])


def _zscale_limits(stamp: np.ndarray) -> list[float] | None:
    # The served images' own zscale (rendering's), so both stretches agree on the limits.
    limits = rendering._zscale(stamp)
    # For a constant stamp the clamped limits can cross by a rounding error: in order, they
    # still say "one value".
    return None if limits is None else sorted([float(limits[0]), float(limits[1])])
