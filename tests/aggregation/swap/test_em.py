"""EM mode: Dawid-Skene-style skills from reference and non-reference subjects."""

from __future__ import annotations

import numpy as np
import pytest

from aggregation.swap import (
    REAL,
    UNKNOWN,
    ClassificationTable,
    SwapParams,
    label_accuracy,
    swap_batch,
    swap_em,
)


def synthetic(seed=3, n_subjects=1500, n_volunteers=40, per_subject=6, n_reference=20):
    """Volunteers of known skill; only `n_reference` subjects have known truth, so most
    volunteers see a reference subject once or twice, or never."""
    rng = np.random.default_rng(seed)
    true_label = (rng.random(n_subjects) < 0.4).astype(np.int8)
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


def test_em_recovers_skills_better_than_reference_only():
    table, truth, true_label, p_real, p_bogus = synthetic()
    params = SwapParams(require_reference=False)
    reference_only = swap_batch(table, truth, params)
    em = swap_em(table, truth, params)
    assert em.mode == "em"
    assert em.converged
    assert 1 < em.iterations < 100

    def error(result):
        return np.mean(np.abs(result.skills.p_real - p_real)
                       + np.abs(result.skills.p_bogus - p_bogus))

    assert error(em) < 0.5 * error(reference_only)
    assert error(em) < 0.1  # per volunteer, both skills together
    # ... and labels the non-reference subjects better.
    science = np.where(truth == UNKNOWN, true_label, UNKNOWN)
    em_acc = label_accuracy(em.unstable_label, science)
    ref_acc = label_accuracy(reference_only.unstable_label, science)
    assert em_acc.n_correct > ref_acc.n_correct


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


def test_em_reports_when_it_stopped_before_converging():
    table, truth, *_ = synthetic()
    em = swap_em(table, truth, SwapParams(require_reference=False), max_iter=1, tol=0.0)
    assert em.iterations == 1
    assert not em.converged


def test_em_with_everything_known_learns_the_plain_counts():
    # When every subject is a reference subject, the soft labels are the hard ones and the
    # M-step is the reference count: EM stops after one iteration at the batch skills.
    table, _, true_label, *_ = synthetic(n_subjects=200)
    params = SwapParams()
    em = swap_em(table, true_label, params)
    batch = swap_batch(table, true_label, params)
    assert em.iterations == 1
    assert em.converged
    np.testing.assert_allclose(em.skills.p_real, batch.skills.p_real, atol=1e-12)
    np.testing.assert_allclose(em.p_real, batch.p_real, atol=1e-12)


@pytest.mark.parametrize("kwargs", [{"max_iter": -1}, {"tol": -1.0}, {"tol": float("nan")}])
def test_em_arguments_are_checked(kwargs):
    from aggregation.swap import SwapInputError

    table, truth, *_ = synthetic(n_subjects=10)
    with pytest.raises(SwapInputError):
        swap_em(table, truth, SwapParams(), **kwargs)


def test_em_can_learn_the_prior_when_the_given_one_is_wrong():
    # 40% of the subjects are Real; the run's prior says 50%.
    table, truth, true_label, p_real, p_bogus = synthetic(n_subjects=2000)
    params = SwapParams(require_reference=False)
    fixed = swap_em(table, truth, params)
    learned = swap_em(table, truth, params, learn_prior=True)
    assert fixed.params.prior == 0.5
    assert learned.params.prior == pytest.approx(true_label.mean(), abs=0.03)
    assert learned.converged

    def error(result):
        return np.mean(np.abs(result.skills.p_real - p_real)
                       + np.abs(result.skills.p_bogus - p_bogus))

    assert error(learned) < error(fixed)
