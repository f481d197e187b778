"""SWAP pinned to examples worked by hand (every number derived in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from aggregation.swap import (
    BOGUS,
    REAL,
    UNKNOWN,
    OnlineSwap,
    SubjectState,
    SwapParams,
    VolunteerState,
    online_step,
    swap_batch,
    volunteer_skills,
)

from .helpers import odds_to_p, table

A, B, C = 0, 1, 2  # volunteers
# Subject 0 is a reference Real, subject 1 a reference Bogus, subject 2 has no known truth.
TRUTH = np.array([REAL, BOGUS, UNKNOWN], np.int8)
ROWS = [
    (0, A, True),  # A calls the Real a Real: right
    (1, A, False),  # A calls the Bogus a Bogus: right
    (0, B, False),  # B calls the Real a Bogus: wrong
    (1, B, False),  # B calls the Bogus a Bogus: right
    (2, A, True),
    (2, C, False),  # C has no reference classification at all
    (2, A, False),
]
PARAMS = SwapParams()  # prior 0.5, Laplace pseudo-counts (1 + correct) / (2 + seen)


def test_final_skills_are_laplace_counts():
    skills = volunteer_skills(table(ROWS, 3, 3), TRUTH, PARAMS)
    # A: 1 of 1 Real right -> (1 + 1) / (2 + 1) = 2/3; 1 of 1 Bogus right -> 2/3.
    # B: 0 of 1 Real right -> (1 + 0) / (2 + 1) = 1/3; 1 of 1 Bogus right -> 2/3.
    # C: nothing seen -> (1 + 0) / (2 + 0) = 1/2 each, and does not contribute.
    assert skills.p_real == pytest.approx([2 / 3, 1 / 3, 1 / 2], abs=1e-15)
    assert skills.p_bogus == pytest.approx([2 / 3, 2 / 3, 1 / 2], abs=1e-15)
    assert skills.n_real_seen.tolist() == [1, 1, 0]
    assert skills.n_real_correct.tolist() == [1, 0, 0]
    assert skills.n_bogus_seen.tolist() == [1, 1, 0]
    assert skills.n_bogus_correct.tolist() == [1, 1, 0]
    assert skills.contributes.tolist() == [True, True, False]


def test_batch_with_final_skills():
    result = swap_batch(table(ROWS, 3, 3), TRUTH, PARAMS)
    assert result.mode == "batch"
    # Odds start at 0.5 / 0.5 = 1. A "Real" multiplies them by p_real / (1 - p_bogus), a
    # "Bogus" by (1 - p_real) / p_bogus.
    # A: Real x (2/3)/(1/3) = 2, Bogus x (1/3)/(2/3) = 1/2.  B: Real x (1/3)/(1/3) = 1 and
    # Bogus x (2/3)/(2/3) = 1: p_real + p_bogus = 1, B is a coin and moves nothing.
    # Subject 0: A Real -> odds 2 (2/3); B Bogus -> x1 -> 2/3.
    # Subject 1: A Bogus -> odds 1/2 (1/3); B Bogus -> x1 -> 1/3.
    # Subject 2: A Real -> odds 2 (2/3); C does not contribute (no point); A Bogus -> odds 1.
    assert result.trajectory(0) == pytest.approx([2 / 3, 2 / 3], abs=1e-12)
    assert result.trajectory(1) == pytest.approx([1 / 3, 1 / 3], abs=1e-12)
    assert result.trajectory(2) == pytest.approx([2 / 3, 1 / 2], abs=1e-12)
    assert result.p_real == pytest.approx([2 / 3, 1 / 3, 1 / 2], abs=1e-12)
    # Final log-odds: ln 2, ln 1/2, ln 1.
    assert result.log_odds == pytest.approx([np.log(2), -np.log(2), 0.0], abs=1e-12)
    assert result.n_counted.tolist() == [2, 2, 3]  # C's classification is counted ...
    assert result.n_contributing.tolist() == [2, 2, 2]  # ... but adds no point
    # Nothing reaches 0.9 or 0.1.
    assert result.unstable_label.tolist() == [UNKNOWN] * 3
    assert result.stable_label.tolist() == [UNKNOWN] * 3


def test_skill_at_classification_time_space_warps_order():
    result = swap_batch(table(ROWS, 3, 3), TRUTH, PARAMS, skill_timing="at_classification")
    assert result.mode == "online"
    # Row 0: A has no reference yet: no contribution; then A learns (Real 1/1).
    # Row 1: A now has p_real = (1+1)/(2+1) = 2/3, p_bogus = (1+0)/(2+0) = 1/2. Bogus on
    #        subject 1: odds x (1/3)/(1/2) = 2/3 -> Pr 0.4. A learns (Bogus 1/1 -> 2/3).
    # Row 2: B has no reference yet: subject 0 unchanged. B learns (Real 0/1 -> 1/3).
    # Row 3: B: p_real 1/3, p_bogus 1/2. Bogus: x (2/3)/(1/2) = 4/3 -> odds 8/9 -> 8/17.
    # Row 4: A (2/3, 2/3) Real on subject 2: odds 2 -> 2/3.  Row 5: C: no contribution.
    # Row 6: A Bogus: x 1/2 -> odds 1 -> 1/2.
    assert result.trajectory(0).size == 0
    assert result.p_real[0] == 0.5  # the prior, exactly
    assert result.log_odds[0] == 0.0
    assert result.trajectory(1) == pytest.approx([0.4, 8 / 17], abs=1e-12)
    assert result.trajectory(2) == pytest.approx([2 / 3, 1 / 2], abs=1e-12)
    # The skills reported are the final ones.
    assert result.skills.p_real == pytest.approx([2 / 3, 1 / 3, 1 / 2], abs=1e-15)

    replay = OnlineSwap(PARAMS, TRUTH).replay(table(ROWS, 3, 3)).result(3, 3)
    assert replay.trajectory(1) == pytest.approx([0.4, 8 / 17], abs=1e-12)
    assert replay.p_real == pytest.approx(result.p_real, abs=1e-12)


def test_clamp_stops_one_reference_label_from_collapsing_the_posterior():
    # Almost no pseudo-count: one right answer on a reference Real gives p_real ~ 1, which
    # the ceiling holds at 0.95; p_bogus stays at the skill prior 0.5 (no Bogus seen).
    params = SwapParams(skill_strength=1e-9)
    rows = [(0, A, True), (1, A, True)]
    result = swap_batch(table(rows, 2, 1), np.array([REAL, UNKNOWN], np.int8), params)
    assert result.skills.p_real[0] == 0.95
    assert result.skills.p_bogus[0] == pytest.approx(0.5)
    # Subject 1: odds 1 x 0.95 / (1 - 0.5) = 1.9 -> Pr 1.9 / 2.9, not 1.
    assert result.p_real[1] == pytest.approx(1.9 / 2.9, abs=1e-9)


def test_space_warps_pseudo_counts_and_a_small_prior():
    # Space Warps: skills start at 0.5 with 4 pseudo-counts, P = (2 + correct) / (4 + seen),
    # and a prior of 2e-4. A volunteer right on 4 of 4 reference Reals and 2 of 2 Bogus:
    # p_real = 6/8 = 0.75, p_bogus = 4/6 = 2/3. Two "Real" answers on an unknown subject:
    # odds (2e-4 / (1 - 2e-4)) x (0.75 / (1/3))^2 = (2e-4 / 0.9998) x 5.0625.
    params = SwapParams(prior=2e-4, skill_strength=4.0)
    rows = [(s, A, True) for s in range(4)] + [(4, A, False), (5, A, False)]
    rows += [(6, A, True), (6, A, True)]
    truth = np.array([REAL] * 4 + [BOGUS] * 2 + [UNKNOWN], np.int8)
    result = swap_batch(table(rows, 7, 1), truth, params)
    assert result.skills.p_real[0] == pytest.approx(0.75, abs=1e-15)
    assert result.skills.p_bogus[0] == pytest.approx(2 / 3, abs=1e-15)
    odds = 2e-4 / 0.9998 * 2.25
    assert result.trajectory(6) == pytest.approx([odds_to_p(odds), odds_to_p(odds * 2.25)],
                                                 rel=1e-12)


def test_stable_after_three_confident_votes():
    # Two expert-like volunteers at the ceiling (strength tiny, all reference answers right):
    # p_real = p_bogus = 0.95, so each "Real" multiplies the odds by 0.95 / 0.05 = 19.
    params = SwapParams(skill_strength=1e-9)
    rows = [(0, A, True), (1, A, False), (2, A, True), (2, A, True), (2, A, True)]
    truth = np.array([REAL, BOGUS, UNKNOWN], np.int8)
    result = swap_batch(table(rows, 3, 1), truth, params)
    # Subject 2: odds 19, 361, 6859 -> 0.95, 0.99723, 0.99985: three points >= 0.9.
    assert result.trajectory(2) == pytest.approx([19 / 20, 361 / 362, 6859 / 6860], abs=1e-9)
    assert result.stable_label[2] == REAL
    assert result.unstable_label[2] == REAL
    # Subjects 0 and 1 have one point each: past the threshold but not stable.
    assert result.unstable_label[:2].tolist() == [REAL, BOGUS]
    assert result.stable_label[:2].tolist() == [UNKNOWN, UNKNOWN]


def test_online_step_by_hand():
    params = PARAMS
    subject = SubjectState.initial(params)
    assert subject.p_real == pytest.approx(0.5)
    newcomer = VolunteerState()
    # Without a reference classification the newcomer does not contribute, but the
    # classification is counted, and they learn from it (the subject is a reference Real).
    subject, newcomer = online_step(subject, newcomer, True, REAL, params)
    assert subject.trajectory == ()
    assert subject.n_counted == 1
    assert newcomer == VolunteerState(n_real_seen=1, n_real_correct=1)
    # Now p_real = 2/3, p_bogus = 1/2: "Real" multiplies the odds by (2/3) / (1/2) = 4/3.
    subject, newcomer = online_step(subject, newcomer, True, REAL, params)
    assert subject.trajectory == pytest.approx((4 / 7,), abs=1e-15)
    assert subject.p_real == pytest.approx(4 / 7, abs=1e-15)
    assert subject.n_counted == 2
    assert newcomer == VolunteerState(n_real_seen=2, n_real_correct=2)
    assert newcomer.skills(params) == pytest.approx((3 / 4, 1 / 2))


def test_require_reference_off_lets_everyone_contribute():
    params = SwapParams(require_reference=False)
    # C has no reference: skills 1/2 and 1/2, so a vote multiplies the odds by 1 anyway, but
    # it does add a trajectory point now.
    result = swap_batch(table([(0, C, True)], 1, 3), np.array([UNKNOWN], np.int8), params)
    assert result.trajectory(0) == pytest.approx([0.5])
    assert result.skills.contributes.all()
