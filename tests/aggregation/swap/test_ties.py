"""The tie rule at Pr(Real) = 0.5 (aggregation.swap.ties): a tie is never a label, wherever a
label is made (majority vote, SWAP batch, online and EM)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.swap import (
    BOGUS,
    REAL,
    TIE_EPSILON,
    UNKNOWN,
    ClassificationTable,
    EmOptions,
    OnlineSwap,
    SwapParams,
    is_tie,
    majority_vote,
    swap_batch,
    swap_em,
    threshold_labels,
)


def test_values_at_one_half_within_the_band_are_ties():
    half_band = TIE_EPSILON / 4
    at = [0.5, 0.5 + 1.1e-16, 0.5 - 5.6e-17, 0.5 + 0.9 * half_band, 0.5 - 0.9 * half_band]
    assert is_tie(at).all()
    assert (threshold_labels(at) == UNKNOWN).all()
    assert threshold_labels([0.5 + 2 * half_band, 0.5 - 2 * half_band]).tolist() == [REAL, BOGUS]


def test_thresholds_away_from_one_half_are_unchanged_by_the_rule():
    p = np.array([0.05, 0.1, 0.5, 0.5 + 1e-16, 0.89, 0.9, 0.97])
    assert threshold_labels(p, 0.9, 0.1).tolist() == [
        BOGUS, BOGUS, UNKNOWN, UNKNOWN, UNKNOWN, REAL, REAL]


# Values whose mirror 1 - x is exact in floating point (dyadic grids, and anything near 0.5),
# so that the test is about the rule, not about rounding in 1 - x.
DYADIC = st.integers(0, 2**20).map(lambda k: k / 2**20)
NEAR_HALF = st.floats(0.5 - 1e-9, 0.5 + 1e-9)


@settings(max_examples=200)
@given(st.one_of(DYADIC, NEAR_HALF), st.integers(2**19, 2**20).map(lambda k: k / 2**20))
def test_the_rule_is_symmetric_between_the_classes(p, threshold):
    # Mirroring Pr(Real) mirrors the label: no side of 0.5 is favoured, at a tie or anywhere.
    mirror = {REAL: BOGUS, BOGUS: REAL, UNKNOWN: UNKNOWN}
    label = int(threshold_labels([p], threshold, 1 - threshold)[0])
    assert int(threshold_labels([1 - p], threshold, 1 - threshold)[0]) == mirror[label]


def _rounding_case(order):
    """Subject 0 gets "Real" from volunteers 0 and 1 and "Bogus" from 2 and 3, who have the
    skills of 0 and 1 with the classes swapped, so its log-odds are 0 in exact arithmetic; in
    floating point the four steps sum to +1.1e-16 in one order and -1.1e-16 in another."""
    # (Real refs answered right, Real refs seen, Bogus refs answered right, Bogus refs seen)
    counts = [(1, 1, 0, 1), (1, 2, 2, 2)]
    counts += [(b_ok, b_seen, r_ok, r_seen) for r_ok, r_seen, b_ok, b_seen in counts]
    rows, truth = [], [UNKNOWN]
    for volunteer, (r_ok, r_seen, b_ok, b_seen) in enumerate(counts):
        for i in range(r_seen):
            rows.append((len(truth), volunteer, i < r_ok))
            truth.append(REAL)
        for i in range(b_seen):
            rows.append((len(truth), volunteer, i >= b_ok))
            truth.append(BOGUS)
    rows += [(0, v, v < 2) for v in order]
    subject, volunteer, says = (np.array(column) for column in zip(*rows, strict=True))
    return (ClassificationTable(subject, volunteer, says, len(truth), 4),
            np.array(truth, np.int8))


@pytest.mark.parametrize(("order", "sign"), [((0, 1, 2, 3), 1), ((1, 2, 0, 3), -1)])
def test_swap_labels_a_rounding_tie_as_no_label_in_every_mode(order, sign):
    table, truth = _rounding_case(order)
    params = SwapParams(real_threshold=0.5, bogus_threshold=0.4, stability_window=1)
    batch = swap_batch(table, truth, params)
    assert np.sign(batch.log_odds[0]) == sign  # the rounding really is there ...
    assert abs(batch.log_odds[0]) < 1e-15  # ... and only rounding
    results = [
        batch,
        swap_batch(table, truth, params, skill_timing="at_classification"),
        OnlineSwap(params, truth).replay(table).result(table.n_subjects),
        swap_em(table, truth, params, EmOptions(max_iter=0)),
    ]
    for result in results:
        assert result.unstable_label[0] == UNKNOWN
        assert result.stable_label[0] == UNKNOWN


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=40))
def test_majority_vote_is_the_sign_of_the_vote_count(rows):
    table = ClassificationTable.from_arrays(
        [s for s, _ in rows], [0] * len(rows), [r for _, r in rows], n_subjects=6,
        n_volunteers=1)
    labels = majority_vote(table)
    for s in range(6):
        margin = sum(1 if r else -1 for subject, r in rows if subject == s)
        assert labels[s] == (REAL if margin > 0 else BOGUS if margin < 0 else UNKNOWN)
