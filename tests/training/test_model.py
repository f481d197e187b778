"""RealBogusCNN and normalise_stamps: the architecture of DESIGN.md and a normalisation that
turns any raw stamp, NaN and inf included, into bounded finite numbers."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from training.ml.model import (
    STAMP_CLIP,
    STAMP_SHAPE,
    RealBogusCNN,
    normalise_stamps,
    parameter_count,
)


def reference_normalisation(stamps: np.ndarray) -> np.ndarray:
    """The definition, written plainly in float64 with numpy's NaN-aware statistics."""
    finite = np.isfinite(stamps)
    values = np.where(finite, stamps, np.nan).astype(np.float64)
    mean = np.nanmean(values, axis=(2, 3), keepdims=True)
    std = np.nanstd(values, axis=(2, 3), keepdims=True)
    scaled = np.clip((values - mean) / std, -STAMP_CLIP, STAMP_CLIP)
    return np.where(finite, scaled, 0.0)


def test_each_stage_has_the_shape_of_the_design():
    model = RealBogusCNN()
    x = torch.randn(2, *STAMP_SHAPE)
    # A 5x5 convolution without padding takes 4 pixels off a side, a max-pool 2 halves it
    # (rounding down): 51 -> 47 -> 23 -> 19 -> 9 -> 5 -> 2.
    size, expected = STAMP_SHAPE[1], []
    for filters in (16, 32, 64):
        size -= 4
        expected += [(2, filters, size, size)] * 2  # conv, ReLU
        size //= 2
        expected += [(2, filters, size, size)] * 2  # max-pool, dropout
    shapes = []
    z = normalise_stamps(x)
    for layer in model.features:
        for stage in layer:
            z = stage(z)
            shapes.append(tuple(z.shape))
    assert shapes == expected
    assert tuple(model.classifier(z).shape) == (2, 1)
    assert tuple(model(x).shape) == (2,)
    assert tuple(model.logits(x).shape) == (2,)


def test_the_parameter_count_is_that_of_the_design():
    conv = 0
    channels = (3, 16, 32, 64)
    for c_in, c_out in pairwise(channels):
        conv += c_in * c_out * 5 * 5 + c_out  # 5x5 kernels per (input, output) pair + biases
    dense = (64 * 2 * 2) * 32 + 32 + 32 * 1 + 1  # 64 maps of 2x2 -> 32 -> 1
    assert conv + dense == 73_569
    assert parameter_count(RealBogusCNN()) == conv + dense


def test_forward_is_the_sigmoid_of_the_logits():
    model = RealBogusCNN().eval()
    x = torch.randn(4, *STAMP_SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(model(x), torch.sigmoid(model.logits(x)))


def test_normalisation_is_mean_and_std_of_the_finite_pixels():
    rng = np.random.default_rng(3)
    stamps = rng.normal(50.0, 7.0, (3, 3, 11, 13)).astype(np.float32)
    stamps[0, 0, 2] = np.nan  # a masked row
    stamps[1, 2, :, 4] = np.inf
    stamps[2, 1, 5, 5] = 1e30  # a cosmic ray: clipped
    stamps[2, 1, 6, 6] = -np.inf
    got = normalise_stamps(torch.from_numpy(stamps)).numpy()
    np.testing.assert_allclose(got, reference_normalisation(stamps), atol=1e-4)
    assert got[2, 1, 5, 5] == STAMP_CLIP


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 2), st.just(3), st.integers(1, 12),
                                    st.integers(1, 12)),
              elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
              # Mostly one background value with a few others: lone outliers, which sit
              # up to sqrt(pixels - 1) = 12 sigma out, beyond the clip.
              fill=st.floats(width=32, allow_nan=True, allow_infinity=True)))
def test_any_stamps_normalise_to_finite_values_within_the_clip(stamps):
    got = normalise_stamps(torch.from_numpy(stamps)).numpy()
    assert np.isfinite(got).all()
    assert (np.abs(got) <= STAMP_CLIP).all()
    assert (got[~np.isfinite(stamps)] == 0).all()


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(1e-3, 1e3),
       offset_in_sigmas=st.floats(-100, 100), nan_fraction=st.floats(0, 0.5))
def test_normalisation_ignores_the_flux_scale_and_zero_point(seed, scale, offset_in_sigmas,
                                                               nan_fraction):
    rng = np.random.default_rng(seed)
    stamps = rng.normal(0.0, 1.0, (1, *STAMP_SHAPE))
    stamps[rng.random(stamps.shape) < nan_fraction] = np.nan
    # Only one channel changes units: channels are normalised independently.
    rescaled = stamps.copy()
    rescaled[0, 2] = scale * stamps[0, 2] + scale * offset_in_sigmas
    original = normalise_stamps(torch.from_numpy(stamps.astype(np.float32)))
    changed = normalise_stamps(torch.from_numpy(rescaled.astype(np.float32)))
    # The tolerance covers float32 rounding of an offset 100 sigma away and the tiny
    # epsilon added to the standard deviation.
    torch.testing.assert_close(changed, original, atol=2e-3, rtol=1e-3)


def test_an_all_nan_channel_becomes_zeros_and_leaves_the_others_alone():
    stamps = torch.randn(2, *STAMP_SHAPE)
    masked = stamps.clone()
    masked[1, 0] = float("nan")
    got = normalise_stamps(masked)
    assert torch.equal(got[1, 0], torch.zeros_like(got[1, 0]))
    torch.testing.assert_close(got[1, 1:], normalise_stamps(stamps)[1, 1:])
    torch.testing.assert_close(got[0], normalise_stamps(stamps)[0])


def test_a_constant_channel_becomes_zeros():
    stamps = torch.full((1, *STAMP_SHAPE), 1234.5)
    assert torch.equal(normalise_stamps(stamps), torch.zeros_like(stamps))


def test_the_model_scores_stamps_with_missing_data():
    stamps = torch.randn(5, *STAMP_SHAPE) * 100
    stamps[0, :, 10] = float("nan")  # a NaN row
    stamps[1, :, :, 40:] = float("nan")  # a chip edge
    stamps[2] = float("nan")  # nothing at all
    stamps[3, 2, 25, 25] = float("inf")
    stamps[4, 1] = 3e38
    model = RealBogusCNN().eval()
    with torch.no_grad():
        scores = model(stamps)
        logits = model.logits(stamps)
    assert torch.isfinite(scores).all()
    assert torch.isfinite(logits).all()
    assert ((scores >= 0) & (scores <= 1)).all()


def test_the_model_scores_raw_stamps_in_any_units():
    # The normalisation is inside forward: nJy or ADU, with or without a pedestal, same score.
    model = RealBogusCNN().eval()
    stamps = torch.randn(3, *STAMP_SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(model(stamps * 40.0 + 7.0), model(stamps), atol=1e-5,
                                   rtol=1e-4)


@pytest.mark.parametrize(("shape", "dtype"), [
    ((2, 3, 50, 50), torch.float32),
    ((3, 51, 51), torch.float32),
    ((2, 1, 51, 51), torch.float32),
    ((2, 3, 51, 51), torch.float64),
])
def test_wrong_stamps_are_refused_with_a_clear_message(shape, dtype):
    model = RealBogusCNN()
    with pytest.raises(ValueError, match=r"\(N, 3, 51, 51\)|float32"):
        model(torch.zeros(shape, dtype=dtype))


def test_a_non_tensor_is_refused():
    with pytest.raises(ValueError, match=r"torch\.Tensor"):
        RealBogusCNN()(np.zeros((1, *STAMP_SHAPE), np.float32))
