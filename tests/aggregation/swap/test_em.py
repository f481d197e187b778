"""EM mode: Dawid-Skene-style skills from reference and non-reference subjects, with a learned
or fixed prior, a weak prior on the class balance, and an iteration cap it reports."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.swap import (
    REAL,
    UNKNOWN,
    ClassificationTable,
    EmOptions,
    SwapInputError,
    SwapParams,
    label_accuracy,
    majority_vote,
    swap_batch,
    swap_em,
    threshold_labels,
)


def synthetic(seed=3, n_subjects=1500, n_volunteers=40, per_subject=6, n_reference=20,
              real_fraction=0.4):
    """Volunteers of known skill; only `n_reference` subjects have known truth, so most
    volunteers see a reference subject once or twice, or never."""
    rng = np.random.default_rng(seed)
    true_label = (rng.random(n_subjects) < real_fraction).astype(np.int8)
    p_real = rng.uniform(0.55, 0.95, n_volunteers)
    p_bogus = rng.uniform(0.55, 0.95, n_volunteers)
    subject = np.repeat(np.arange(n_subjects), per_subject)
    volunteer = rng.integers(0, n_volunteers, subject.shape[0])
    order = rng.permutation(subject.shape[0])
    subject, volunteer = subject[order], volunteer[order]
    draw = rng.random(subject.shape[0])
    says = np.where(true_label[subject] == REAL, draw < p_real[volunteer],
                    draw >= p_bogus[volunteer])
    truth = np.full(n_subjects, UNKNOWN, np.int8)
    truth[:n_reference] = true_label[:n_reference]
    table = ClassificationTable(subject, volunteer, says, n_subjects, n_volunteers)
    return table, truth, true_label, p_real, p_bogus


def hostile(seed, n_subjects=108, n_volunteers=39, real_fraction=0.46, n_reference=3,
            fooling=0.5):
    """A small, skewed crowd like the bird-photo sets of crowd-labelling studies: every
    volunteer answers every subject, most are mediocre, and half the Bogus subjects fool
    nearly everyone into saying Real (their answers there are correlated, which Dawid-Skene's
    model does not expect). Three subjects have known truth."""
    rng = np.random.default_rng(seed)
    true_label = np.zeros(n_subjects, np.int8)
    true_label[:round(real_fraction * n_subjects)] = REAL
    rng.shuffle(true_label)
    p_real = rng.uniform(0.6, 0.95, n_volunteers)
    p_bogus = rng.uniform(0.5, 0.9, n_volunteers)
    fools = (true_label != REAL) & (rng.random(n_subjects) < fooling)
    subject = np.repeat(np.arange(n_subjects), n_volunteers)
    volunteer = np.tile(np.arange(n_volunteers), n_subjects)
    order = rng.permutation(subject.shape[0])
    subject, volunteer = subject[order], volunteer[order]
    says_bogus_right = np.where(fools[subject], 1 - p_real[volunteer], p_bogus[volunteer])
    draw = rng.random(subject.shape[0])
    says = np.where(true_label[subject] == REAL, draw < p_real[volunteer],
                    draw >= says_bogus_right)
    truth = np.full(n_subjects, UNKNOWN, np.int8)
    known = rng.choice(n_subjects, n_reference, replace=False)
    truth[known] = true_label[known]
    table = ClassificationTable(subject, volunteer, says, n_subjects, n_volunteers)
    return table, truth, true_label


def skill_error(result, p_real, p_bogus) -> float:
    return float(np.mean(np.abs(result.skills.p_real - p_real)
                         + np.abs(result.skills.p_bogus - p_bogus)))


def decision_accuracy(result, truth, true_label) -> float:
    """Accuracy of "the more likely class" (ties: no label) on the non-reference subjects."""
    science = np.where(truth == UNKNOWN, true_label, UNKNOWN)
    return label_accuracy(threshold_labels(result.p_real), science).accuracy


def test_em_recovers_skills_better_than_reference_only():
    table, truth, true_label, p_real, p_bogus = synthetic()
    params = SwapParams(require_reference=False)
    reference_only = swap_batch(table, truth, params)
    em = swap_em(table, truth, params)
    assert em.mode == "em"
    assert em.converged
    assert 1 < em.iterations < 100
    assert skill_error(em, p_real, p_bogus) < 0.5 * skill_error(reference_only, p_real, p_bogus)
    assert skill_error(em, p_real, p_bogus) < 0.1  # per volunteer, both skills together
    # ... and labels the non-reference subjects better.
    science = np.where(truth == UNKNOWN, true_label, UNKNOWN)
    em_acc = label_accuracy(em.unstable_label, science)
    ref_acc = label_accuracy(reference_only.unstable_label, science)
    assert em_acc.n_correct > ref_acc.n_correct


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), real_fraction=st.floats(0.2, 0.8))
def test_em_recovers_the_skills_it_was_generated_with(seed, real_fraction):
    # 1,500 subjects of six answers from 40 volunteers of known skills, 20 reference subjects.
    table, truth, _, p_real, p_bogus = synthetic(seed=seed, real_fraction=real_fraction)
    em = swap_em(table, truth, SwapParams(require_reference=False))
    assert em.converged
    assert skill_error(em, p_real, p_bogus) < 0.12  # mean |error|, both skills together


# The stated margin: on crowds of 100 subjects and 40 volunteers, EM's decisions are never
# worse than batch SWAP's by more than 5 percentage points (5 subjects). On 600 such crowds
# (3 to 9 answers a subject) the worst seen was 2.5 points; the mean was 10 points better.
EM_VS_BATCH_MARGIN = 0.05


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), per_subject=st.integers(3, 9),
       n_reference=st.integers(5, 20), real_fraction=st.floats(0.2, 0.8))
def test_em_is_never_much_worse_than_batch_swap(seed, per_subject, n_reference, real_fraction):
    table, truth, true_label, *_ = synthetic(
        seed=seed, n_subjects=100, n_volunteers=40, per_subject=per_subject,
        n_reference=n_reference, real_fraction=real_fraction,
    )
    params = SwapParams(require_reference=False)
    em = decision_accuracy(swap_em(table, truth, params), truth, true_label)
    batch = decision_accuracy(swap_batch(table, truth, params), truth, true_label)
    assert em >= batch - EM_VS_BATCH_MARGIN


@pytest.mark.parametrize("seed", [3, 5])
def test_em_on_a_small_hostile_crowd_does_not_collapse(seed):
    # Seeded with skills counted on three reference subjects (as before this rule), EM locked
    # onto the mirror image of these two crowds: prior 0.29 and 0.22, 76% and 69% of the
    # labels wrong, where majority vote got 76% and 69% right.
    table, truth, true_label = hostile(seed)
    params = SwapParams(require_reference=False)
    majority = label_accuracy(majority_vote(table), np.where(truth == UNKNOWN, true_label,
                                                             UNKNOWN)).accuracy
    for options in (EmOptions(), EmOptions(prior_mode="fixed")):
        em = swap_em(table, truth, params, options)
        labels = threshold_labels(em.p_real)
        assert 0.2 < (labels == REAL).mean() < 0.8  # not everything one class
        assert decision_accuracy(em, truth, true_label) >= majority - 0.05
        assert 0.3 < em.params.prior < 0.8


def test_the_prior_strength_damps_a_learned_prior_on_little_data():
    # The hostile crowd says Real to ~73% of its subjects (46% are): a learned prior follows
    # it up, and the Beta prior at the run's 0.5 holds it back in proportion to its strength.
    table, truth, _ = hostile(3)
    params = SwapParams(require_reference=False)
    free = swap_em(table, truth, params, EmOptions(prior_strength=0.0)).params.prior
    weak = swap_em(table, truth, params, EmOptions(prior_strength=20.0)).params.prior
    strong = swap_em(table, truth, params, EmOptions(prior_strength=1e6)).params.prior
    assert free > weak > strong > 0.5
    assert strong == pytest.approx(0.5, abs=1e-3)


def test_em_with_a_fixed_prior_keeps_it_and_still_learns_skills():
    table, truth, true_label, p_real, p_bogus = synthetic(n_subjects=2000)
    params = SwapParams(prior=0.4, require_reference=False)
    fixed = swap_em(table, truth, params, EmOptions(prior_mode="fixed"))
    assert fixed.params.prior == 0.4
    assert fixed.converged
    assert skill_error(fixed, p_real, p_bogus) < 0.1
    assert decision_accuracy(fixed, truth, true_label) > 0.9


def test_em_keeps_reference_counts_and_the_contribution_rule():
    table, truth, *_ = synthetic(n_reference=5)
    params = SwapParams()  # require_reference: most volunteers have none here
    em = swap_em(table, truth, params)
    batch = swap_batch(table, truth, params)
    assert np.array_equal(em.skills.n_real_seen, batch.skills.n_real_seen)
    assert np.array_equal(em.skills.contributes, batch.skills.contributes)
    assert not em.skills.contributes.all()
    # Volunteers without a reference still get EM skills (away from the 0.5 prior) ...
    learned = ~em.skills.contributes
    assert (np.abs(em.skills.p_real[learned] - 0.5) > 1e-3).any()
    # ... but their answers still add no trajectory points.
    assert np.array_equal(em.n_contributing, batch.n_contributing)


def test_em_reports_when_it_stopped_at_the_cap():
    table, truth, *_ = synthetic()
    em = swap_em(table, truth, SwapParams(require_reference=False),
                 EmOptions(max_iter=2, tol=0.0))
    assert em.iterations == 2
    assert not em.converged


def test_em_with_everything_known_learns_the_plain_counts():
    # When every subject is a reference subject, the soft labels are the hard ones and the
    # M-step is the reference count: without EM's own skill prior, EM stops after one
    # iteration at the batch skills ...
    table, _, true_label, *_ = synthetic(n_subjects=200)
    params = SwapParams()
    em = swap_em(table, true_label, params, EmOptions(skill_strength=0.0))
    batch = swap_batch(table, true_label, params)
    assert em.iterations == 1
    assert em.converged
    np.testing.assert_allclose(em.skills.p_real, batch.skills.p_real, atol=1e-12)
    np.testing.assert_allclose(em.p_real, batch.p_real, atol=1e-12)
    # ... and with it, at the counts with its pseudo-answers added.
    options = EmOptions(skill_mean=0.8, skill_strength=3.0)
    em = swap_em(table, true_label, params, options)
    counts = batch.skills
    expected = np.clip((0.5 * 2.0 + 0.8 * 3.0 + counts.n_real_correct)
                       / (2.0 + 3.0 + counts.n_real_seen), 0.05, 0.95)
    assert em.converged
    np.testing.assert_allclose(em.skills.p_real, expected, atol=1e-12)


@pytest.mark.parametrize("kwargs", [
    {"max_iter": -1}, {"max_iter": 2.5}, {"tol": -1.0}, {"tol": float("nan")},
    {"prior_mode": "guess"}, {"prior_strength": -1.0}, {"prior_strength": float("inf")},
    {"skill_mean": 0.0}, {"skill_mean": 1.0}, {"skill_strength": -2.0},
])
def test_em_options_are_checked(kwargs):
    with pytest.raises(SwapInputError):
        EmOptions(**kwargs)


def test_em_refuses_options_of_the_wrong_type():
    table, truth, *_ = synthetic(n_subjects=10)
    with pytest.raises(SwapInputError, match="EmOptions"):
        swap_em(table, truth, SwapParams(), {"max_iter": 3})


def test_em_can_learn_the_prior_when_the_given_one_is_wrong():
    # 40% of the subjects are Real; the run's prior says 50%.
    table, truth, true_label, p_real, p_bogus = synthetic(n_subjects=2000)
    params = SwapParams(require_reference=False)
    fixed = swap_em(table, truth, params, EmOptions(prior_mode="fixed"))
    learned = swap_em(table, truth, params)
    assert fixed.params.prior == 0.5
    assert learned.params.prior == pytest.approx(true_label.mean(), abs=0.03)
    assert learned.converged
    assert skill_error(learned, p_real, p_bogus) < skill_error(fixed, p_real, p_bogus)
