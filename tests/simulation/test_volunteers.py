"""The simulated volunteer population: determinism, the heavy tail, the type mixture and
the low-SNR bias."""

from __future__ import annotations

import numpy as np
import pytest

from simulation.volunteers import (
    SKILL_MIXTURE,
    SNR_HALF,
    VOLUNTEER_TYPES,
    answer,
    make_population,
    p_says_real,
    visibility,
)


@pytest.fixture(scope="module")
def population():
    return make_population(20_000, seed=11)


def test_the_same_seed_gives_the_same_population_and_answers():
    a, b = make_population(300, seed=4), make_population(300, seed=4)
    for field in ("activity", "sensitivity", "specificity", "types"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    volunteers = np.arange(300)
    truth = volunteers % 2 == 0
    snr = np.geomspace(3, 1000, 300)
    np.testing.assert_array_equal(
        answer(a, volunteers, truth, snr, np.random.default_rng(1)),
        answer(b, volunteers, truth, snr, np.random.default_rng(1)),
    )
    other = make_population(300, seed=5)
    assert not np.array_equal(a.activity, other.activity)


def test_a_volunteer_does_not_depend_on_the_population_size():
    # sim-SEED-I keeps its skill when a re-run asks for more volunteers.
    small, large = make_population(15, seed=3), make_population(2500, seed=3)
    for field in ("activity", "sensitivity", "specificity", "types"):
        np.testing.assert_array_equal(getattr(small, field), getattr(large, field)[:15])
    assert len(make_population(0, seed=3)) == 0


@pytest.mark.parametrize(("n", "seed"), [(-1, 0), (5, -2), (2.5, 0)])
def test_bad_sizes_and_seeds_are_rejected(n, seed):
    with pytest.raises(ValueError, match="non-negative integer"):
        make_population(n, seed)


def test_activity_is_heavy_tailed(population):
    activity = population.activity
    # Most would give fewer than 100 classifications (82% expected)...
    assert 0.79 < np.mean(activity < 100) < 0.85
    # ... and a few over 10,000 (0.29% expected: 58 of 20,000), so a population of 1,000
    # has about three.
    assert 30 < np.sum(activity > 10_000) < 90
    # The top 1% would give over half of all classifications (57% expected).
    top = np.sort(activity)[::-1][: len(activity) // 100]
    assert top.sum() / activity.sum() > 0.45
    np.testing.assert_allclose(population.weights.sum(), 1.0)


def test_the_type_mixture_is_present_in_its_proportions(population):
    assert set(VOLUNTEER_TYPES) == {"competent", "near_random", "optimistic", "pessimistic"}
    for name, prior in SKILL_MIXTURE.items():
        share = np.mean(population.types == name)
        assert share == pytest.approx(prior.proportion, abs=0.015), name


def test_each_type_answers_as_its_name_says(population):
    sens, spec, types = population.sensitivity, population.specificity, population.types
    assert np.all((sens > 0) & (sens < 1) & (spec > 0) & (spec < 1))
    competent = types == "competent"
    assert np.median(sens[competent]) > 0.85
    assert np.median(spec[competent]) > 0.85
    near_random = types == "near_random"
    assert np.all(np.abs(sens[near_random] - 0.5) < 0.3)
    assert np.all(np.abs(spec[near_random] - 0.5) < 0.3)
    # Optimists nearly always say Real, whatever the truth; pessimists nearly always Bogus.
    optimistic, pessimistic = types == "optimistic", types == "pessimistic"
    assert np.median(sens[optimistic]) > 0.95
    assert np.median(1 - spec[optimistic]) > 0.85
    assert np.median(spec[pessimistic]) > 0.95
    assert np.median(1 - sens[pessimistic]) > 0.85


def test_answers_follow_the_skills(population):
    rng = np.random.default_rng(0)
    competent = np.flatnonzero(population.types == "competent")[:200]
    volunteers = np.repeat(competent, 100)
    bright = np.full(volunteers.shape, 500.0)
    said_real_on_real = answer(population, volunteers, True, bright, rng).mean()
    said_real_on_bogus = answer(population, volunteers, False, bright, rng).mean()
    assert said_real_on_real == pytest.approx(population.sensitivity[competent].mean(), abs=0.01)
    assert said_real_on_bogus == pytest.approx(
        1 - population.specificity[competent].mean(), abs=0.01
    )
    # Scalars in, a plain bool out.
    assert isinstance(answer(population, 0, True, 20.0, rng), bool)


def test_low_snr_reals_are_called_bogus_more_often(population):
    rng = np.random.default_rng(7)
    volunteers = np.repeat(np.arange(2000), 10)
    faint = answer(population, volunteers, True, np.full(volunteers.shape, 4.0), rng)
    bright = answer(population, volunteers, True, np.full(volunteers.shape, 100.0), rng)
    # The same volunteers, the same number of Reals: the faint ones get far fewer Real votes.
    assert faint.mean() < bright.mean() - 0.3
    # A fading source's negative SNR is as faint as its size says.
    np.testing.assert_allclose(visibility(-4.0), visibility(4.0))


def test_visibility_and_the_probabilities_behind_the_bias(population):
    snr = np.array([3.0, SNR_HALF, 10.0, 20.0, 1000.0])
    v = visibility(snr)
    assert np.all(np.diff(v) > 0)
    assert v[1] == pytest.approx(0.5)
    assert v[-1] > 0.999
    assert visibility(np.nan) == 1.0
    for i in range(50):
        on_real = p_says_real(population, i, True, snr)
        on_bogus = p_says_real(population, i, False, snr)
        # Bogus subjects do not depend on SNR; a faint Real drifts towards how the volunteer
        # answers a Bogus, and a bright Real is answered with the volunteer's sensitivity.
        np.testing.assert_allclose(on_bogus, 1 - population.specificity[i])
        assert on_real[-1] == pytest.approx(population.sensitivity[i], abs=1e-3)
        if population.sensitivity[i] > 1 - population.specificity[i]:
            assert np.all(np.diff(on_real) > 0)
