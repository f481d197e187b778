"""Stamp rendering: size, NaN colour, centre marker, shared and symmetric stretches."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from labeling.records import STAMP_KINDS
from labeling.rendering import (
    MARKER_COLOUR,
    MID_GREY,
    NAN_COLOUR,
    centre_marker_mask,
    drawn_pixel,
    render_stamp_png,
)

SIZE = 31


def marker(size: int, scale: int = 1) -> np.ndarray:
    """The centre marker's pixels in the picture of a whole size x size cube."""
    return centre_marker_mask((size * scale, size * scale), (size - 1 - size // 2, size // 2),
                              scale)


def drawn(plane: np.ndarray) -> np.ndarray:
    """A cube plane in picture order: FITS row 0 at the bottom."""
    return plane[::-1]


def decode(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.mode == "RGB"
    return np.asarray(image)


def render(cube: np.ndarray, kind: str, scale: int = 1) -> np.ndarray:
    return decode(render_stamp_png(cube, kind, scale=scale))


def is_colour(rgb: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return (rgb == np.array(colour, dtype=np.uint8)).all(axis=-1)


def is_grey(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])


def upscale(mask: np.ndarray, scale: int) -> np.ndarray:
    return mask.repeat(scale, axis=0).repeat(scale, axis=1)


def noise_cube(seed: int = 0, size: int = SIZE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    template = rng.normal(0.0, 1.0, (size, size))
    science = template + rng.normal(0.0, 3.0, (size, size))
    return np.stack([template, science, science - template]).astype(np.float32)


@pytest.mark.parametrize("size", [51, 31, 8])
@pytest.mark.parametrize("scale", [1, 2, 5])
@pytest.mark.parametrize("kind", STAMP_KINDS)
def test_png_has_the_stamp_size_times_the_scale(kind, scale, size):
    rgb = render(noise_cube(size=size), kind, scale)
    assert rgb.shape == (size * scale, size * scale, 3)


@pytest.mark.parametrize("scale", [1, 3])
def test_upscaling_is_nearest_neighbour(scale):
    cube = noise_cube()
    small, large = render(cube, "science"), render(cube, "science", scale)
    outside = ~marker(SIZE, scale) & ~upscale(marker(SIZE), scale)
    assert np.array_equal(upscale(small, scale)[outside], large[outside])


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("kind", STAMP_KINDS)
def test_nan_pixels_and_only_they_get_the_nan_colour(kind, scale):
    cube = noise_cube()
    cube[0, :, 3] = np.nan  # a masked column in the template
    cube[1, 7, :] = np.nan  # a masked row in the science
    cube[2, 2:5, 20:23] = np.nan
    cube[:, SIZE // 2 - 1, SIZE // 2] = np.nan  # next to the centre, under no tick
    rgb = render(cube, kind, scale)
    ticks = marker(SIZE, scale)
    nan = upscale(drawn(np.isnan(cube[STAMP_KINDS.index(kind)])), scale)
    assert np.array_equal(is_colour(rgb, NAN_COLOUR)[~ticks], nan[~ticks])
    assert is_grey(rgb[~nan & ~ticks]).all()


def test_an_all_nan_template_renders_in_the_nan_colour():
    cube = noise_cube()
    cube[0] = np.nan
    ticks = marker(SIZE)
    assert is_colour(render(cube, "template"), NAN_COLOUR)[~ticks].all()
    science = render(cube, "science")  # the stretch then comes from the science alone
    assert is_grey(science[~ticks]).all()
    assert len(np.unique(science[~ticks][:, 0])) > 20


@pytest.mark.parametrize("value", [0.0, 5.0, -3.0e30])
def test_constant_stamps_render_as_one_grey(value):
    cube = np.full((3, SIZE, SIZE), value, dtype=np.float32)
    ticks = marker(SIZE)
    for kind in STAMP_KINDS:
        rgb = render(cube, kind)[~ticks]
        assert is_grey(rgb).all()
        assert len(np.unique(rgb[:, 0])) == 1, kind
    assert (render(np.zeros_like(cube), "difference")[~ticks] == MID_GREY).all()


def test_the_centre_marker_is_drawn_around_the_centre_pixel():
    for scale in (1, 2, 5):
        mask = marker(SIZE, scale)
        centre = slice(SIZE // 2 * scale, (SIZE // 2 + 1) * scale)
        assert mask.any()
        assert not mask[centre, centre].any()
        # A gap on every side of the centre pixel, then a tick on every side.
        rows, columns = np.nonzero(mask)
        middle = SIZE // 2 * scale + scale / 2
        assert {np.sign(r - middle) for r in rows} >= {-1, 1}
        assert {np.sign(c - middle) for c in columns} >= {-1, 1}
        rgb = render(noise_cube(), "difference", scale)
        assert is_colour(rgb, MARKER_COLOUR)[mask].all()
        assert not is_colour(rgb, MARKER_COLOUR)[~mask].any()


def test_marker_and_nan_colours_are_distinct_and_not_grey():
    assert NAN_COLOUR != MARKER_COLOUR
    for colour in (NAN_COLOUR, MARKER_COLOUR):
        assert len(set(colour)) > 1


def test_template_and_science_share_one_stretch():
    cube = noise_cube()
    cube[1] = cube[0]
    cube[1, 10:15, 10:15] += 40.0  # a bright source, in the science only
    template, science = render(cube, "template"), render(cube, "science")
    same = drawn(cube[0] == cube[1]) & ~marker(SIZE)
    assert np.array_equal(template[same], science[same])
    # ...and the stretch is not a trivial one: the shared pixels take many greys.
    assert len(np.unique(template[same][:, 0])) > 20


def test_difference_stretch_is_symmetric_about_zero():
    rng = np.random.default_rng(3)
    cube = noise_cube()
    half = SIZE // 2
    left = rng.normal(0.0, 5.0, (SIZE, half)).astype(np.float32)
    left[5, 5] = 300.0  # a bright source, and its negative twin
    cube[2, :, :half] = left
    cube[2, :, SIZE - half :] = -left[:, ::-1]
    cube[2, :, half] = 0.0
    rgb = drawn(render(cube, "difference")[..., 0].astype(int))  # back in cube row order
    ticks = drawn(marker(SIZE))
    mirrored = rgb[:, ::-1]
    usable = ~ticks & ~ticks[:, ::-1]
    assert np.array_equal((rgb + mirrored)[usable], np.full(usable.sum(), 2 * MID_GREY))
    assert (rgb[:, half][~ticks[:, half]] == MID_GREY).all()
    assert rgb[5, 5] > rgb[6, 6] > MID_GREY - 60  # brighter is whiter, noise stays visible


@pytest.mark.parametrize(
    ("cube", "kind", "scale"),
    [
        (np.zeros((3, 5, 6), np.float32), "science", 1),
        (np.zeros((2, 5, 5), np.float32), "science", 1),
        (np.zeros((3, 5, 5), np.float32), "residual", 1),
        (np.zeros((3, 5, 5), np.float32), "science", 0),
        (np.zeros((3, 5, 5), np.float32), "science", 1.5),
    ],
)
def test_bad_arguments_are_refused(cube, kind, scale):
    with pytest.raises(ValueError, match="must"):
        render_stamp_png(cube, kind, scale)


finite_cubes = st.integers(1, 12).flatmap(
    lambda size: arrays(
        np.float32,
        (3, size, size),
        elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
    )
)


@settings(max_examples=150)
@given(cube=finite_cubes, scale=st.integers(1, 3))
def test_any_finite_cube_renders_without_the_nan_colour(cube, scale):
    ticks = marker(cube.shape[1], scale)
    for kind in STAMP_KINDS:
        rgb = render(cube, kind, scale)
        assert rgb.shape == (cube.shape[1] * scale, cube.shape[1] * scale, 3)
        assert not is_colour(rgb, NAN_COLOUR).any()
        assert is_grey(rgb[~ticks]).all()


@settings(max_examples=100)
@given(cube=finite_cubes, data=st.data())
def test_nan_colour_marks_exactly_the_nan_pixels(cube, data):
    nan = data.draw(arrays(np.bool_, cube.shape))
    cube = np.where(nan, np.float32(np.nan), cube)
    ticks = marker(cube.shape[1])
    for plane, kind in enumerate(STAMP_KINDS):
        rgb = render(cube, kind)
        assert np.array_equal(is_colour(rgb, NAN_COLOUR)[~ticks], drawn(nan[plane])[~ticks])


# --- orientation and native-size windows (issue 19.1, 19.3) ------------------------------------


def test_a_marked_corner_renders_where_ds9_draws_it():
    """DS9 (and astropy's origin="lower") draws FITS pixel (row 0, column 0) at the bottom
    left. A bright block in that corner of the cube must come out at the picture's bottom
    left, and one in the last row's first column at the top left."""
    cube = np.random.default_rng(2).normal(0.0, 1.0, (3, SIZE, SIZE)).astype(np.float32)
    cube[:, 0:3, 0:3] = 100.0  # FITS rows 1-3, columns 1-3: DS9's bottom-left corner
    cube[:, SIZE - 2:, 0:2] = -100.0  # the top-left corner in DS9
    ticks = marker(SIZE)
    for kind in STAMP_KINDS:
        grey = render(cube, kind)[..., 0].astype(int)
        sky = np.median(grey[~ticks])
        assert grey[SIZE - 3:, 0:3].min() > sky + 50, kind  # picture's bottom left: bright
        assert grey[0:2, 0:2].max() < sky - 50, kind  # picture's top left: dark


def test_a_window_draws_only_the_native_stamp_at_its_own_size():
    """A 30x30 stamp NaN-padded into a 51x51 cube is drawn as a 30x30 picture: no padding."""
    cube = np.full((3, 51, 51), np.nan, dtype=np.float32)
    cube[:, 10:40, 10:40] = np.random.default_rng(0).normal(0, 1, (30, 30))
    window = (slice(10, 40), slice(10, 40))
    for kind in STAMP_KINDS:
        rgb = render_stamp_png(cube, kind, scale=2, window=window)
        picture = decode(rgb)
        assert picture.shape == (60, 60, 3)
        assert not is_colour(picture, NAN_COLOUR).any()
        assert is_colour(picture, MARKER_COLOUR).any()


def test_the_marker_follows_the_cube_centre_in_an_off_centre_window():
    cube = np.random.default_rng(1).normal(0, 1, (3, 51, 51)).astype(np.float32)
    window = (slice(0, 38), slice(13, 51))  # a clipped stamp's footprint
    picture = decode(render_stamp_png(cube, "science", window=window))
    centre = drawn_pixel((25, 25), window)
    assert centre == (12, 12)
    expected = centre_marker_mask(picture.shape[:2], centre)
    assert np.array_equal(is_colour(picture, MARKER_COLOUR), expected)
