"""The simulator's realism (issue 19): imperfectly subtracted variable stars are Real and
misregistration dipoles Bogus, each with the pixels that say so; two pixel scales, varied
PSF wings, correlated noise, sky and gradients, varied saturation and bleed trails."""

from __future__ import annotations

import numpy as np
import pytest

from simulation.triplets import (
    INSTRUMENT_PROPORTIONS,
    INSTRUMENTS,
    KIND_EXPLANATION,
    KIND_MIX,
    KIND_TRUTH,
    generate_batch,
    generate_subjects,
)

SIZE = 51
CENTRE = SIZE // 2
FWHM_PER_SIGMA = 2 * np.sqrt(2 * np.log(2))


@pytest.fixture(scope="module")
def batches():
    return [generate_batch(7, start, start + 1000) for start in range(0, 4000, 1000)]


def robust_sigma(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.median(np.abs(values - np.median(values))) / 0.6745)


def centre_boxes(batches, kind: str, min_snr: float = 30.0):
    """(box around the centre of the difference, sky sigma, snr) of bright subjects of `kind`."""
    for batch in batches:
        for i, k in enumerate(batch.kinds):
            difference = batch.cubes[i, 2]
            box = difference[CENTRE - 6:CENTRE + 7, CENTRE - 6:CENTRE + 7]
            if k == kind and abs(batch.snr[i]) >= min_snr and not np.isnan(box).any():
                yield box, robust_sigma(difference), batch.snr[i]


def test_the_new_kinds_keep_their_truth_labels():
    assert KIND_TRUTH["variable_residual"] == "real"
    assert KIND_TRUTH["dipole"] == "bogus"
    assert "variable_residual" in KIND_EXPLANATION
    assert any("variable_residual" in mix for mix in KIND_MIX.values())
    seen = set()
    for subject in generate_subjects(600, seed=11):
        assert subject.truth == KIND_TRUTH[subject.kind]
        assert not {"kind", "truth"} & set(subject.record.metadata)
        seen.add(subject.kind)
    assert {"variable_residual", "dipole"} <= seen


def test_a_misregistration_dipole_has_both_lobes_and_no_net_flux(batches):
    boxes = list(centre_boxes(batches, "dipole"))
    assert len(boxes) > 200
    net = [abs(box.sum()) / np.abs(box).sum() for box, _, _ in boxes]
    both = [box.max() > 5 * sigma and box.min() < -5 * sigma for box, sigma, _ in boxes]
    assert np.median(net) < 0.1
    assert np.mean(both) > 0.9


def test_an_imperfectly_subtracted_variable_has_residual_lobes_and_net_flux(batches):
    boxes = list(centre_boxes(batches, "variable_residual"))
    assert len(boxes) > 20
    net = np.array([abs(box.sum()) / np.abs(box).sum() for box, _, _ in boxes])
    same_sign = [np.sign(box.sum()) == np.sign(snr) for box, _, snr in boxes]
    both = [box.max() > 5 * sigma and box.min() < -5 * sigma for box, sigma, _ in boxes]
    assert np.median(net) > 0.6  # the change dominates ...
    assert np.mean(same_sign) > 0.9  # ... in the direction reported
    assert np.mean(both) > 0.25  # and often a negative and a positive lobe show
    # Both directions: brighter and fainter than the template.
    assert min(snr for *_, snr in boxes) < 0 < max(snr for *_, snr in boxes)


def test_subjects_come_from_both_pixel_scales_with_their_seeing(batches):
    instruments = np.concatenate([b.instruments for b in batches])
    scale = np.concatenate([b.pixel_scale_arcsec for b in batches])
    seeing = np.concatenate([b.seeing_arcsec for b in batches])
    for name, share in INSTRUMENT_PROPORTIONS.items():
        chosen = instruments == name
        assert abs(chosen.mean() - share) < 0.03
        instrument = INSTRUMENTS[name]
        assert (scale[chosen] == instrument.pixel_scale_arcsec).all()
        low, high = instrument.seeing_fwhm_arcsec
        assert ((seeing[chosen] >= low) & (seeing[chosen] <= high)).all()
    # ZTF's PSF spans fewer pixels than Rubin's.
    sigma_px = seeing / FWHM_PER_SIGMA / scale
    assert np.median(sigma_px[instruments == "ztf"]) < 0.6 * np.median(
        sigma_px[instruments == "rubin"])
    metadata = next(generate_subjects(1, seed=7)).record.metadata
    assert metadata["pixel_scale_arcsec"] == scale[0]


def _neighbour_correlation(image: np.ndarray) -> float:
    sky = image[:10].astype(np.float64)
    sky = np.clip(sky - np.median(sky), -4 * robust_sigma(sky), 4 * robust_sigma(sky))
    return float(np.corrcoef(sky[:, :-1].ravel(), sky[:, 1:].ravel())[0, 1])


def test_template_noise_is_correlated_as_in_real_coadds(batches):
    quiet = [i for i, k in enumerate(batches[0].kinds)
             if not np.isnan(batches[0].cubes[i, :, :10]).any()][:300]
    template = np.median([_neighbour_correlation(batches[0].cubes[i, 0]) for i in quiet])
    science = np.median([_neighbour_correlation(batches[0].cubes[i, 1]) for i in quiet])
    # Real ZTF cutouts (tests' sky rows): about 0.0 in the science, 0.4 in the reference.
    assert template > 0.3
    assert science < 0.15
    assert template > science + 0.2


def test_ztf_stamps_carry_their_sky_which_the_difference_cancels(batches):
    batch = batches[0]
    for i, instrument in enumerate(batch.instruments[:200]):
        science, difference = batch.cubes[i, 1, :10], batch.cubes[i, 2, :10]
        if np.isnan(science).any() or np.isnan(difference).any():
            continue
        level = np.median(science) / robust_sigma(science)
        if instrument == "ztf":
            assert level > 10
        else:
            assert abs(level) < 3
        assert abs(np.median(difference)) < 2 * robust_sigma(difference)


def test_science_backgrounds_have_gradients(batches):
    batch = batches[0]
    rows, columns = np.mgrid[:SIZE, :SIZE]
    design = np.column_stack([np.ones(SIZE * SIZE), rows.ravel(), columns.ravel()])
    significant = []
    for i in range(200):
        science = batch.cubes[i, 1].astype(np.float64)
        if np.isnan(science).any():
            continue
        sigma = robust_sigma(science)
        keep = np.abs(science - np.median(science)).ravel() < 3 * sigma  # sky pixels only
        coefficients, *_ = np.linalg.lstsq(design[keep], science.ravel()[keep], rcond=None)
        edge = np.hypot(*coefficients[1:]) * CENTRE
        significant.append(edge > 0.1 * sigma)
    assert np.mean(significant) > 0.6  # 0.8 here; 0.2 with no gradient


def test_saturation_levels_vary_and_bright_stars_bleed(batches):
    plateaus = []
    for batch in batches:
        for i, kind in enumerate(batch.kinds):
            if kind == "bright_star":
                science = batch.cubes[i, 1]
                top = np.nanmax(science)
                column = science[:, int(np.nanargmax(science) % SIZE)]
                assert (column == top).sum() >= 3  # a bleed trail at the saturation level
                plateaus.append(top / (INSTRUMENTS[batch.instruments[i]].pixel_scale_arcsec
                                       / 0.2) ** 2)
    assert len(plateaus) > 100
    assert np.percentile(plateaus, 90) / np.percentile(plateaus, 10) > 1.5
