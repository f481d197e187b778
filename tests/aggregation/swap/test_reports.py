"""Reports: majority vote, breakdown table, accuracy, volunteer fractions, label flips and the
early-stable metrics of Zhou et al. 2026 on worked sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aggregation.swap import (
    BOGUS,
    REAL,
    TIE_RULE,
    UNKNOWN,
    BreakdownRow,
    SwapInputError,
    SwapParams,
    breakdown,
    esc_fraction,
    esc_score,
    exponential_weight,
    format_breakdown,
    label_accuracy,
    label_flips,
    majority_vote,
    swap_batch,
    volunteer_reference_fractions,
)

from .helpers import table


def csr(*trajectories):
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in trajectories])]).astype(np.int64)
    values = np.concatenate([np.asarray(t, float) for t in trajectories])
    return offsets, values


# ---------------------------------------------------------------------------- majority vote


def test_majority_vote_and_its_tie_rule():
    rows = [(0, 0, True), (0, 1, True), (0, 2, False),  # 2-1 Real
            (1, 0, False), (1, 1, False), (1, 2, True),  # 2-1 Bogus
            (2, 0, True), (2, 1, False),  # 1-1: a tie
            (4, 0, True)]  # subject 3 has no answers at all
    assert majority_vote(table(rows, 5, 3)).tolist() == [REAL, BOGUS, UNKNOWN, UNKNOWN, REAL]
    assert "tie" in TIE_RULE
    assert "UNKNOWN" in TIE_RULE


# ---------------------------------------------------------------------------- breakdown


def _run_with_labels():
    # Volunteer 0 is perfect on 2 reference subjects; with strength ~0 and the clamp each of
    # their answers multiplies the odds by 19 or 1/19. Subjects 2-4 get 3 Real answers
    # (stable Real), subject 5 gets 3 Bogus (stable Bogus), subject 6 one Real (unstable Real
    # only), subject 7 a Real then a Bogus (back to 0.5: no label).
    rows = [(0, 0, True), (1, 0, False)]
    for s in (2, 3, 4):
        rows += [(s, 0, True)] * 3
    rows += [(5, 0, False)] * 3 + [(6, 0, True), (7, 0, True), (7, 0, False)]
    truth = np.array([REAL, BOGUS] + [UNKNOWN] * 6, np.int8)
    return swap_batch(table(rows, 8, 1), truth, SwapParams(skill_strength=1e-9))


def test_breakdown_counts_each_scenario():
    rows = breakdown(_run_with_labels(), "rubin")
    # stable: subjects 2, 3, 4 Real and 5 Bogus. unstable adds the one-point subjects 0 (Real)
    # and 1 (Bogus) and subject 6 (Real).
    assert rows == [BreakdownRow("stable", "rubin", 3, 1),
                    BreakdownRow("unstable", "rubin", 5, 2)]


def test_format_breakdown_is_an_aligned_table():
    text = format_breakdown([BreakdownRow("stable", "Rubin", 8236, 40402),
                             BreakdownRow("unstable", "Oxford and Rubin", 23889, 57570)])
    lines = text.splitlines()
    assert lines[0].split() == ["Scenario", "Total", "Real", "Total", "Bogus", "Reference",
                                "Data"]
    assert "8,236" in lines[1]
    assert "40,402" in lines[1]
    assert "Oxford and Rubin" in lines[2]
    # Numbers are right-aligned under their headers.
    for header in ("Total Real", "Total Bogus"):
        end = lines[0].index(header) + len(header)
        assert lines[1][end - 1].isdigit()
        assert lines[2][end - 1].isdigit()
        assert lines[1][end] == " "
        assert lines[2][end] == " "


# ---------------------------------------------------------------------------- accuracy


def test_label_accuracy_counts_only_labelled_subjects_with_known_truth():
    labels = np.array([REAL, BOGUS, REAL, UNKNOWN, REAL], np.int8)
    truth = np.array([REAL, REAL, UNKNOWN, BOGUS, BOGUS], np.int8)
    acc = label_accuracy(labels, truth)
    # Known truth: subjects 0, 1, 3, 4; labelled among them: 0, 1, 4; right: 0.
    assert (acc.n_subjects, acc.n_labelled, acc.n_correct) == (4, 3, 1)
    assert acc.accuracy == pytest.approx(1 / 3)
    assert acc.coverage == pytest.approx(3 / 4)
    empty = label_accuracy(np.full(2, UNKNOWN, np.int8), np.array([REAL, BOGUS], np.int8))
    assert empty.n_labelled == 0
    assert math.isnan(empty.accuracy)


def test_volunteer_reference_fractions():
    rows = [(0, 0, True), (1, 0, True), (2, 0, True), (3, 0, True),  # always "Real"
            (0, 1, False), (2, 1, False),  # always "Bogus"
            (3, 2, True)]  # only an unknown subject
    truth = np.array([REAL, BOGUS, BOGUS, UNKNOWN], np.int8)
    f = volunteer_reference_fractions(table(rows, 4, 3), truth)
    assert f.n_classifications.tolist() == [4, 2, 1]
    assert f.n_ref_real.tolist() == [1, 1, 0]
    assert f.n_ref_bogus.tolist() == [2, 1, 0]
    np.testing.assert_array_equal(f.frac_real_correct, [1.0, 0.0, np.nan])
    np.testing.assert_array_equal(f.frac_bogus_correct, [0.0, 1.0, np.nan])
    assert f.optimistic().tolist() == [True, False, False]
    assert f.pessimistic().tolist() == [False, True, False]


# ---------------------------------------------------------------------------- flips


def test_label_flips():
    offsets, values = csr([0.4, 0.6, 0.4, 0.4], [0.5, 0.49], [0.9], [0.1], [0.2, 0.3])
    assert label_flips(offsets, values).tolist() == [2, 1, 0, 0, 0]
    # Subjects 2 and 3 sit on different sides, but flips never cross subjects.
    assert label_flips(offsets, values, threshold=0.25).tolist() == [0, 0, 0, 0, 1]
    assert label_flips(np.array([0, 0]), np.empty(0)).tolist() == [0]


# ---------------------------------------------------------------------------- ESC fraction


def test_esc_fraction_worked():
    # A true Real climbing 0.5, 0.75, 0.875, 0.875, 0.875; steps 0.25, 0.125, 0, 0.
    rising = [0.5, 0.75, 0.875, 0.875, 0.875]
    offsets, values = csr(rising, rising, rising)
    truth = np.array([REAL, BOGUS, UNKNOWN], np.int8)
    # epsilon 0.25, rho 0.5, k 3: points 1-3 are all >= 0.5 (0.5 counts) and their steps are
    # <= 0.25: tau = 3 of T = 5. As a Bogus the true-class probabilities 0.5, 0.25, ... never
    # qualify: 1. Unknown truth: NaN.
    got = esc_fraction(offsets, values, truth, epsilon=0.25, rho=0.5, k=3)
    np.testing.assert_array_equal(got, [3 / 5, 1.0, np.nan])
    # epsilon 0.2: the 0.25 step breaks the first window; points 2-4 qualify: tau = 4.
    assert esc_fraction(offsets, values, truth, epsilon=0.2, rho=0.5, k=3)[0] == 4 / 5
    # rho 0.8: only points 3-5 are >= 0.8: tau = 5.
    assert esc_fraction(offsets, values, truth, epsilon=0.25, rho=0.8, k=3)[0] == 1.0
    assert esc_fraction(offsets, values, truth, epsilon=0.25, rho=0.8, k=2)[0] == 4 / 5
    # k longer than the trajectory: never converges.
    assert esc_fraction(offsets, values, truth, epsilon=0.25, rho=0.5, k=6)[0] == 1.0


def test_esc_fraction_needs_a_run_not_scattered_points():
    # A true Bogus (p* = 1 - p): p* = 0.9, 0.9, 0.1, 0.9, 0.9, 0.9. With k = 3 the first two
    # good points are cut by the bad third one; the window 4-6 qualifies: tau = 6 of 6.
    offsets, values = csr([0.1, 0.1, 0.9, 0.1, 0.1, 0.1], [])
    truth = np.array([BOGUS, BOGUS], np.int8)
    got = esc_fraction(offsets, values, truth, epsilon=1.0, rho=0.5, k=3)
    np.testing.assert_array_equal(got, [1.0, np.nan])  # 6/6, and empty -> NaN


@pytest.mark.parametrize("kwargs", [{"k": 1}, {"epsilon": -0.1}, {"rho": 1.5}])
def test_esc_fraction_parameters_are_checked(kwargs):
    offsets, values = csr([0.5])
    with pytest.raises(SwapInputError):
        esc_fraction(offsets, values, np.array([REAL], np.int8), **kwargs)


# ---------------------------------------------------------------------------- ESC score


def test_exponential_weight():
    w = exponential_weight(2.0)
    assert w(np.array([0.0, 1.0])).tolist() == [0.0, 1.0]
    assert w(np.array([0.5]))[0] == pytest.approx((math.e - 1) / (math.e**2 - 1))
    with pytest.raises(SwapInputError):
        exponential_weight(0.0)


def test_esc_score_worked():
    # True Real, p = 0.5, 0.75, 1.0 (T = 3). Terms t = 1, 2: w(1/3) * 0.25 * -ln 0.5 and
    # w(2/3) * 0.25 * -ln 0.75; Z = 0.25 * (w(1/3) + w(2/3)).
    offsets, values = csr([0.5, 0.75, 1.0], [0.5, 0.75, 1.0])
    truth = np.array([REAL, BOGUS], np.int8)
    w1 = math.expm1(2 / 3) / math.expm1(2)
    w2 = math.expm1(4 / 3) / math.expm1(2)
    expected_real = (w1 * math.log(2) + w2 * math.log(4 / 3)) / (w1 + w2)
    # As a Bogus: p* = 0.5, 0.25 at t = 1, 2: -ln 0.5 and -ln 0.25.
    expected_bogus = (w1 * math.log(2) + w2 * math.log(4)) / (w1 + w2)
    got = esc_score(offsets, values, truth)
    assert got == pytest.approx([expected_real, expected_bogus], rel=1e-12)
    # With a flat weight it is the movement-weighted mean of -ln p*.
    flat = esc_score(offsets, values, truth, weight=np.ones_like)
    assert flat[0] == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, rel=1e-12)


def test_esc_score_when_nothing_moves_and_edge_cases():
    offsets, values = csr([0.8, 0.8, 0.8], [0.8, 0.8], [0.8], [0.3, 0.6])
    truth = np.array([REAL, BOGUS, REAL, UNKNOWN], np.int8)
    got = esc_score(offsets, values, truth)
    # Z = 0: -ln p_{T,*} (see the docstring), 0.8 for the Real, 0.2 for the Bogus; T = 1 and
    # unknown truth: NaN.
    np.testing.assert_allclose(got[:2], [-math.log(0.8), -math.log(0.2)], rtol=1e-12)
    assert np.isnan(got[2:]).all()


def test_esc_score_stays_finite_when_a_posterior_rounds_to_certainty():
    offsets, values = csr([0.5, 1.0, 1.0])
    got = esc_score(offsets, values, np.array([BOGUS], np.int8))
    assert np.isfinite(got).all()
    assert got[0] > 0


def test_esc_metrics_favour_early_stable_trajectories():
    early = [0.95, 0.97, 0.98, 0.99, 0.99, 0.99]
    late = [0.4, 0.6, 0.3, 0.7, 0.95, 0.99]
    offsets, values = csr(early, late)
    truth = np.array([REAL, REAL], np.int8)
    frac = esc_fraction(offsets, values, truth, epsilon=0.1, rho=0.5, k=3)
    score = esc_score(offsets, values, truth)
    assert frac[0] < frac[1]
    assert score[0] < score[1]
