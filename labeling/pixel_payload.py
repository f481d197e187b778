"""The pixel values a stamp viewer reads, encoded compactly. Pure numpy and astropy: nothing
here imports Django.

Each stamp travels as its float32 values, little-endian, row by row, in base64: the exact
stored values (NaN stays NaN, "no data"), a third of the JSON lists of numbers it replaces
(see the README's "The volunteer page"). Alongside: the stamps' size, their unit when the
survey states one, each stamp's zscale limits (so the viewer's zscale stretch is astropy's,
not a second implementation), and how the served images draw "no data" and the centre
marker, so that a stretch drawn in the browser looks like the served one.
"""

from __future__ import annotations

import base64

import numpy as np

from labeling import rendering
from labeling.records import STAMP_KINDS

ENCODING = "float32-le-base64"


def encode_pixels(cube: np.ndarray, *, unit: str | None, render_scale: int) -> dict:
    """The payload for a (3, S, S) cube of template, science and difference."""
    cube = np.asarray(cube)
    if cube.ndim != 3 or cube.shape[0] != len(STAMP_KINDS) or cube.shape[1] != cube.shape[2]:
        raise ValueError(f"cube must have shape (3, S, S), got {cube.shape}")
    values = cube.astype("<f4")
    return {
        "size": int(cube.shape[1]),
        "unit": unit,
        "encoding": ENCODING,
        "stamps": {
            kind: base64.b64encode(values[i].tobytes()).decode("ascii")
            for i, kind in enumerate(STAMP_KINDS)
        },
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
    """One stamp back as a float32 (S, S) array: what the browser's reader does."""
    size = payload["size"]
    raw = base64.b64decode(payload["stamps"][kind])
    return np.frombuffer(raw, dtype="<f4").reshape(size, size)


def _zscale_limits(stamp: np.ndarray) -> list[float] | None:
    # The served images' own zscale (rendering's), so both stretches agree on the limits.
    limits = rendering._zscale(stamp)
    # For a constant stamp the clamped limits can cross by a rounding error: in order, they
    # still say "one value".
    return None if limits is None else sorted([float(limits[0]), float(limits[1])])
