"""The DIA triplet simulator: determinism, geometry, the origin and kind mix, and SNR."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.stats import spearmanr

from labeling.records import ANSWERS, KNOWN_ORIGINS
from simulation.triplets import (
    BATCH_SIZE,
    KIND_MIX,
    KIND_TRUTH,
    ORIGIN_PROPORTIONS,
    SimulatedBatch,
    generate_batch,
    generate_subjects,
)

SIZE = 51
CENTRE = SIZE // 2
POINT_SOURCE_KINDS = ["transient", "variable", "fading", "moving"]


@dataclass(frozen=True)
class Sample:
    """Catalogue fields of many subjects, and the pixels of the first `pixels.cubes`."""

    kinds: np.ndarray
    origins: np.ndarray
    snr: np.ndarray
    pixels: SimulatedBatch


@pytest.fixture(scope="module")
def sample() -> Sample:
    # 20000 subjects for the statistics, in slices so memory stays small.
    batches = [generate_batch(2024, start, start + 2500) for start in range(0, 20000, 2500)]
    return Sample(
        kinds=np.concatenate([b.kinds for b in batches]),
        origins=np.concatenate([b.origins for b in batches]),
        snr=np.concatenate([b.snr for b in batches]),
        pixels=batches[0],
    )


def assert_same_subject(a, b):
    assert a.truth == b.truth
    assert a.kind == b.kind
    for field in ("external_id", "source", "origin", "snr", "psf_flux", "psf_flux_err", "ra",
                  "dec", "band", "metadata"):
        assert getattr(a.record, field) == getattr(b.record, field), field
    for x, y in zip(a.record.stamps(), b.record.stamps(), strict=True):
        np.testing.assert_array_equal(x, y)  # NaN == NaN here


def test_same_seed_gives_identical_subjects():
    first = list(generate_subjects(40, seed=7))
    second = list(generate_subjects(40, seed=7))
    for a, b in zip(first, second, strict=True):
        assert_same_subject(a, b)


def test_different_seeds_give_different_subjects():
    a = generate_batch(1, 0, 5)
    b = generate_batch(2, 0, 5)
    assert not np.array_equal(a.cubes, b.cubes, equal_nan=True)


def test_generation_is_prefix_stable():
    # Lengths that end inside a batch, so batch boundaries fall in different places.
    short = list(generate_subjects(BATCH_SIZE + 3, seed=11))
    long = list(generate_subjects(2 * BATCH_SIZE + 10, seed=11))
    for a, b in zip(short, long, strict=False):
        assert_same_subject(a, b)


def test_any_slice_equals_the_same_subjects_of_a_larger_batch():
    whole = generate_batch(5, 0, 40)
    part = generate_batch(5, 13, 17)
    np.testing.assert_array_equal(part.cubes, whole.cubes[13:17])
    np.testing.assert_array_equal(part.snr, whole.snr[13:17])
    assert part.kinds == whole.kinds[13:17]
    assert [s.record.external_id for s in part.subjects()] == [
        f"sim-5-{i}" for i in range(13, 17)
    ]


def test_records_are_well_formed():
    subjects = list(generate_subjects(60, seed=3))
    assert len(subjects) == 60
    for index, subject in enumerate(subjects):
        record = subject.record
        assert record.external_id == f"sim-3-{index}"
        assert record.source == f"simulated[{index}]"
        for stamp in record.stamps():
            assert stamp.dtype == np.float32
            assert stamp.shape == (SIZE, SIZE)
        assert record.origin in ORIGIN_PROPORTIONS
        assert record.band in ("u", "g", "r", "i", "z", "y")
        assert subject.truth in ANSWERS
        assert subject.truth == KIND_TRUTH[subject.kind]
        assert record.snr == pytest.approx(record.psf_flux / record.psf_flux_err)
        assert record.psf_flux_err > 0
        assert 0 <= record.ra < 360
        assert -90 <= record.dec <= 90
        # Metadata is shown to nobody in particular, so it must not leak the answer.
        assert not {"truth", "kind", "label"} & set(record.metadata)
        assert all(isinstance(v, int | float) for v in record.metadata.values())


def test_size_is_configurable():
    (subject,) = generate_subjects(1, seed=0, size=33)
    assert all(stamp.shape == (33, 33) for stamp in subject.record.stamps())


@pytest.mark.parametrize(
    ("n", "seed", "size"), [(-1, 0, 51), (1, -1, 51), (1, 0, 5), (1.5, 0, 51)]
)
def test_bad_arguments_are_refused(n, seed, size):
    with pytest.raises(ValueError, match="must be"):
        list(generate_subjects(n, seed, size))


def test_proportion_tables_are_consistent():
    assert set(ORIGIN_PROPORTIONS) <= set(KNOWN_ORIGINS)
    assert math.isclose(sum(ORIGIN_PROPORTIONS.values()), 1.0)
    assert set(KIND_MIX) == set(ORIGIN_PROPORTIONS)
    for mix in KIND_MIX.values():
        assert set(mix) <= set(KIND_TRUTH)
        assert math.isclose(sum(mix.values()), 1.0)


def test_origins_follow_the_published_proportions(sample):
    n = len(sample.origins)
    for origin, p in ORIGIN_PROPORTIONS.items():
        observed = np.mean(sample.origins == origin)
        assert abs(observed - p) < 4 * math.sqrt(p * (1 - p) / n), origin


def test_truth_depends_on_origin(sample):
    real = np.array([KIND_TRUTH[k] == "real" for k in sample.kinds])

    def real_fraction(origin):
        return real[sample.origins == origin].mean()

    assert real_fraction("ss") > 0.85
    assert real_fraction("tns") > 0.85
    assert real_fraction("gaia") < 0.2
    assert real_fraction("reliability_cuts") < 0.45
    assert 0.3 < real_fraction("galaxy") < 0.7
    assert 0.35 < real.mean() < 0.6
    assert np.mean(sample.kinds[sample.origins == "ss"] == "moving") > 0.85


def test_every_kind_appears(sample):
    assert set(sample.kinds) == set(KIND_TRUTH)


def test_snr_spans_faint_to_bright(sample):
    for truth in ANSWERS:
        snr = np.abs(sample.snr[[KIND_TRUTH[k] == truth for k in sample.kinds]])
        assert np.mean(snr < 5) > 0.02, truth
        assert np.mean(snr > 100) > 0.1, truth


def test_fading_sources_have_negative_flux(sample):
    fading = sample.snr[sample.kinds == "fading"]
    brightening = sample.snr[np.isin(sample.kinds, ["transient", "variable", "moving"])]
    assert np.mean(fading < 0) > 0.95
    assert np.mean(brightening > 0) > 0.95


def test_bright_real_detections_are_centred(sample):
    batch = sample.pixels
    chosen = [i for i, kind in enumerate(batch.kinds)
              if kind in POINT_SOURCE_KINDS and abs(batch.snr[i]) > 50]
    assert len(chosen) > 100
    centred = []
    for i in chosen:
        # A PSF-sized smoothing, so a stray cosmic ray cannot outshine the detection; the
        # columns of a saturated neighbour's bleed trail (8 or more from the centre) left out.
        smoothed = np.abs(gaussian_filter(np.nan_to_num(batch.cubes[i, 2]), 1.5))
        smoothed[:, np.abs(np.arange(SIZE) - CENTRE) >= 8] = 0.0
        row, column = np.unravel_index(smoothed.argmax(), smoothed.shape)
        centred.append(max(abs(row - CENTRE), abs(column - CENTRE)) <= 2)
    assert np.mean(centred) > 0.97


def test_no_stamp_is_masked_at_the_centre(sample):
    cubes = sample.pixels.cubes
    assert not np.isnan(cubes[:, :, CENTRE, CENTRE]).any()
    assert np.isnan(cubes).any(axis=(1, 2, 3)).mean() > 0.02  # but masks do occur


def robust_sigma(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(np.median(np.abs(values - np.median(values))) / 0.6745)


def test_template_is_deeper_than_science(sample):
    rows, columns = np.mgrid[:SIZE, :SIZE]
    outskirts = np.hypot(rows - CENTRE, columns - CENTRE) > 10
    ratios = [robust_sigma(cube[0][outskirts]) / robust_sigma(cube[1][outskirts])
              for cube in sample.pixels.cubes[:300]]
    assert np.median(ratios) < 0.6


def test_reported_snr_agrees_with_an_aperture_measurement(sample):
    batch = sample.pixels
    rows, columns = np.mgrid[:SIZE, :SIZE]
    radius = np.hypot(rows - CENTRE, columns - CENTRE)
    aperture, outskirts = radius <= 3, radius >= 10
    reported, measured = [], []
    for i, kind in enumerate(batch.kinds):
        difference = batch.cubes[i, 2]
        if kind not in POINT_SOURCE_KINDS or np.isnan(difference[aperture]).any():
            continue
        noise = robust_sigma(difference[outskirts]) * math.sqrt(aperture.sum())
        measured.append(difference[aperture].sum() / noise)
        reported.append(batch.snr[i])
    assert len(reported) > 300
    assert spearmanr(reported, measured).statistic > 0.95
    ratio = np.array(measured) / np.array(reported)
    assert 0.7 < np.median(ratio) < 1.5


def test_psf_flux_error_matches_the_difference_noise(sample):
    """PSF fluxes measured on empty sky scatter by about the reported error.

    Faint asteroids, so that the error at the detection is mostly sky noise; the source,
    hosts and neighbours still add some Poisson noise there, hence the lower bound.
    """
    batch = sample.pixels
    axis = np.arange(SIZE)
    pulls = []
    for i, kind in enumerate(batch.kinds):
        difference = batch.cubes[i, 2]
        if kind != "moving" or abs(batch.snr[i]) > 10 or np.isnan(difference).any():
            continue
        sigma = (batch.seeing_arcsec[i] / (2 * math.sqrt(2 * math.log(2)))
                 / batch.pixel_scale_arcsec[i])
        profile = np.exp(-0.5 * (axis - 10) ** 2 / sigma**2)  # a corner, away from the source
        psf = np.outer(profile, profile) / profile.sum() ** 2
        pulls.append((psf * difference).sum() / (psf**2).sum() / batch.psf_flux_err[i])
    assert len(pulls) > 100
    assert 0.75 < robust_sigma(np.array(pulls)) < 1.1
    assert abs(np.median(pulls)) < 0.2
