"""Display rendering of stamp cubes as PNG images for volunteers.

Pure numpy, astropy and Pillow: nothing here imports Django, so the renderer is unit-tested
and benchmarked without a database.

The stretch. Template and science share one stretch, computed from the pixels of both
(the union of their zscale limits, then an asinh stretch), so blinking between them is
fair: a pixel value gives the same grey in either. The difference is stretched
symmetrically about zero, from -m to +m, with m a robust maximum of |difference| (its
`DIFFERENCE_PERCENTILE` percentile, or `DIFFERENCE_NOISE_FLOOR` noise sigmas when that is
more), through an odd asinh: zero is `MID_GREY`, and +v and -v give greys `MID_GREY` +/-
the same step, so a negative detection looks exactly as strong as a positive one.

The colours. Every data pixel is a grey (R = G = B). NaN ("no data") pixels are
`NAN_COLOUR` and the centre marker is `MARKER_COLOUR`: blue and orange from the Okabe-Ito
palette, which stay distinct from each other under protanopia, deuteranopia and
tritanopia; neither is a grey, so no data pixel can be mistaken for either. The marker is
four short ticks pointing at the centre pixel, leaving the pixels around it uncovered.

The orientation. Pictures follow the astronomical convention of DS9, astropy's
``origin="lower"``, Fritz and the Rubin Science Platform: FITS row 0 (the cube's row 0) is the
bottom row of the picture, and column 0 its left edge. Only pictures are flipped: the stored
cube, and so the CNN's input, keeps FITS row order.

Changing anything that alters the output image must bump `STRETCH_VERSION`: render caches
key on it.
"""

from __future__ import annotations

import io

import numpy as np
from astropy.visualization import ZScaleInterval
from PIL import Image

from labeling.records import STAMP_KINDS

STRETCH_VERSION = 2  # 2: FITS row 0 at the bottom, native-size windows

NAN_COLOUR = (0, 114, 178)  # Okabe-Ito blue
MARKER_COLOUR = (230, 159, 0)  # Okabe-Ito orange
# Greys for the difference run from 0 to 2 * MID_GREY, so that zero sits exactly midway.
MID_GREY = 127
ASINH_SOFTENING = 0.1  # astropy's AsinhStretch default: linear below ~0.1, then logarithmic
DIFFERENCE_PERCENTILE = 99.5
# ... but never less than this many noise sigmas, or a stamp of pure noise (or one with a
# one-pixel hit) would stretch its noise to full contrast and bury the detection.
DIFFERENCE_NOISE_FLOOR = 10.0
# The ticks cover stamp pixels MARKER_GAP + 1 .. MARKER_GAP + MARKER_LENGTH from the centre.
MARKER_GAP = 4
MARKER_LENGTH = 4


def render_stamp_png(
    cube: np.ndarray,
    kind: str,
    scale: int = 1,
    window: tuple[slice, slice] | None = None,
) -> bytes:
    """Render one stamp of a (3, S, S) cube as an RGB PNG, FITS row 0 at the bottom.

    `kind` is "template", "science" or "difference"; `scale` enlarges each stamp pixel to a
    scale x scale block (nearest neighbour, so pixels stay sharp). `window` (rows, columns of
    the cube) is the part to draw, by default all of it: `labeling.stamps.display_window`
    gives the stamp's native footprint, so the picture carries no padding. The picture is
    (window rows * scale) pixels high, (window columns * scale) wide; see `drawn_pixel` for
    how a picture pixel maps back to the cube.
    """
    cube = np.asarray(cube)
    if cube.ndim != 3 or cube.shape[0] != len(STAMP_KINDS) or cube.shape[1] != cube.shape[2]:
        raise ValueError(f"cube must have shape (3, S, S), got {cube.shape}")
    if kind not in STAMP_KINDS:
        raise ValueError(f"kind must be one of {', '.join(STAMP_KINDS)}, got {kind!r}")
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    size = cube.shape[1]
    rows, cols = bounded_window(window, size)

    # The stretch sees the whole planes, so a window changes what is drawn, never its greys.
    stamp = cube[STAMP_KINDS.index(kind)].astype(np.float64)
    if kind == "difference":
        grey = _difference_greys(stamp)
    else:
        grey = _direct_greys(stamp, _shared_limits(cube[0], cube[1]))
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    rgb[np.isnan(stamp)] = NAN_COLOUR
    rgb = picture_of(rgb, (rows, cols))
    rgb = rgb.repeat(scale, axis=0).repeat(scale, axis=1)
    centre = drawn_pixel((size // 2, size // 2), (rows, cols))
    rgb[centre_marker_mask(rgb.shape[:2], centre, scale)] = MARKER_COLOUR
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
    return buffer.getvalue()


def bounded_window(window: tuple[slice, slice] | None, size: int) -> tuple[slice, slice]:
    """`window` (rows, columns) of a (size, size) plane with explicit bounds, the whole plane
    for None; ValueError for an empty or strided one."""
    if window is None:
        return slice(0, size), slice(0, size)
    spans = []
    for span in window:
        start, stop, step = span.indices(size)
        if step != 1 or start >= stop:
            raise ValueError(f"window must be a non-empty slice of 0..{size}, got {span}")
        spans.append(slice(start, stop))
    return spans[0], spans[1]


def picture_of(plane: np.ndarray, window: tuple[slice, slice]) -> np.ndarray:
    """The part of `plane` (rows, columns, ...) that a picture of `window` shows, in picture
    order: its first row is the picture's top row. Astronomical orientation (DS9, astropy
    origin="lower"): the window's FITS row 0 is the picture's bottom row. The served images and
    the viewer's pixel values (labeling.pixel_payload) both take their order from here."""
    rows, cols = window
    return plane[rows, cols][::-1]


def drawn_pixel(cube_pixel: tuple[int, int], window: tuple[slice, slice]) -> tuple[int, int]:
    """The (row from the top, column from the left) at which the picture of `window` draws
    the cube's pixel (row, column): the window's last row is drawn at the top."""
    rows, cols = window
    return rows.stop - 1 - cube_pixel[0], cube_pixel[1] - cols.start


def centre_marker_mask(
    shape: tuple[int, int], centre: tuple[int, int], scale: int = 1
) -> np.ndarray:
    """The picture pixels the centre marker covers: a picture of `shape` (height, width, in
    picture pixels) whose stamp pixel `centre` (row from the top, column) is marked, each
    stamp pixel drawn `scale` picture pixels wide."""
    mask = np.zeros(shape, dtype=bool)
    thickness = max(1, scale // 3)
    # The ticks run along the middle of the centre pixel's row and column.
    row_band = slice(centre[0] * scale + (scale - thickness) // 2,
                     centre[0] * scale + (scale - thickness) // 2 + thickness)
    col_band = slice(centre[1] * scale + (scale - thickness) // 2,
                     centre[1] * scale + (scale - thickness) // 2 + thickness)
    for axis, (band, position, length) in enumerate(
        ((row_band, centre[1], shape[1]), (col_band, centre[0], shape[0]))
    ):
        inner = min(length, (position + MARKER_GAP + 1) * scale)
        outer = min(length, (position + MARKER_GAP + MARKER_LENGTH + 1) * scale)
        near = max(0, (position - MARKER_GAP - MARKER_LENGTH) * scale)
        far = max(0, (position - MARKER_GAP) * scale)
        for span in (slice(inner, outer), slice(near, far)):
            if axis == 0:
                mask[band, span] = True  # ticks left and right of the centre, on its row
            else:
                mask[span, band] = True  # ticks above and below, on its column
    return mask


def _asinh(t: np.ndarray) -> np.ndarray:
    """asinh stretch of t in [0, 1] onto [0, 1]."""
    return np.arcsinh(t / ASINH_SOFTENING) / np.arcsinh(1 / ASINH_SOFTENING)


def _finite(stamp: np.ndarray) -> np.ndarray:
    values = np.asarray(stamp, dtype=np.float64).ravel()
    return values[np.isfinite(values)]


def _zscale(stamp: np.ndarray) -> tuple[float, float] | None:
    """zscale limits of a stamp's finite pixels, None when it has none."""
    values = _finite(stamp)
    if values.size == 0:
        return None
    low, high = ZScaleInterval().get_limits(values)
    # zscale extrapolates a line fit, which for odd samples can land outside the data.
    return max(low, values.min()), min(high, values.max())


def _shared_limits(template: np.ndarray, science: np.ndarray) -> tuple[float, float]:
    """The union of the template's and the science's zscale limits.

    The union rather than zscale of the pooled pixels: the deep template's low noise would
    otherwise narrow the limits until the science's noise is all black and white.
    """
    limits = [lim for lim in (_zscale(template), _zscale(science)) if lim is not None]
    if not limits:
        return 0.0, 1.0  # nothing to show: every pixel is NaN-coloured anyway
    return float(min(low for low, _ in limits)), float(max(high for _, high in limits))


def _direct_greys(stamp: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    low, high = limits
    if low < high:
        # Clip before dividing: (x - low) of extreme values could overflow.
        t = (np.clip(stamp, low, high) - low) / (high - low)
    else:  # a constant image: one mid-level grey, no division by zero
        t = np.full(stamp.shape, 0.5)
    return np.rint(255 * _asinh(np.nan_to_num(t))).astype(np.uint8)


def _difference_greys(stamp: np.ndarray) -> np.ndarray:
    magnitude = np.abs(_finite(stamp))
    robust_max = 0.0
    if magnitude.size:
        # median |d| / 0.6745 is the noise sigma of a zero-mean difference.
        noise = np.median(magnitude) / 0.6745
        robust_max = max(np.percentile(magnitude, DIFFERENCE_PERCENTILE),
                         DIFFERENCE_NOISE_FLOOR * noise)
        if robust_max <= 0:  # nearly all zeros: let the rare non-zero pixels set the range
            robust_max = magnitude.max()
    if robust_max <= 0:  # all zeros (or no data): everything is mid-grey
        robust_max = 1.0
    t = np.nan_to_num(np.minimum(np.abs(stamp), robust_max) / robust_max)
    # Stretch |t| and put the sign back, so +v and -v land equally far from MID_GREY.
    step = np.rint(MID_GREY * _asinh(t)).astype(np.int16)
    return (MID_GREY + np.where(stamp < 0, -step, step)).astype(np.uint8)
