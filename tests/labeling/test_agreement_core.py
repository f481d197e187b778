"""The agreement maths without a database: a worked kappa example, the degenerate cases,
properties against an independent brute-force formula, and the consensus of the others."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeling.agreement.core import (
    CATEGORIES,
    CATEGORY_CODE,
    NO_CONSENSUS,
    Agreement,
    cohen_kappa,
    confusion_matrix,
    consensus_of_others,
    kappa_band,
    pair_agreement,
    percent_agreement,
    raters_against_consensus,
)

REAL, BOGUS, UNSURE = (CATEGORY_CODE[name] for name in ("real", "bogus", "unsure"))
K = len(CATEGORIES)


def _pairs(first_label: int, second_label: int, n: int) -> list[tuple[int, int]]:
    return [(first_label, second_label)] * n


def test_kappa_of_the_textbook_two_by_two_example():
    # The classic example: 50 subjects, two raters, Yes (= Real) and No (= Bogus).
    #                 B Yes   B No
    #      A Yes       a=20    b=5     A says Yes 25 times
    #      A No        c=10    d=15    A says No  25 times
    #                  B: Yes 30, No 20
    # p_o = (20 + 15) / 50 = 0.70
    # p_e = (25/50)(30/50) + (25/50)(20/50) = 0.30 + 0.20 = 0.50
    # kappa = (0.70 - 0.50) / (1 - 0.50) = 0.40
    pairs = (_pairs(REAL, REAL, 20) + _pairs(REAL, BOGUS, 5) + _pairs(BOGUS, REAL, 10)
             + _pairs(BOGUS, BOGUS, 15))
    first, second = np.array(pairs).T
    matrix = confusion_matrix(first, second)
    assert matrix[REAL, REAL] == 20
    assert matrix[REAL, BOGUS] == 5
    assert matrix[BOGUS, REAL] == 10
    assert matrix[BOGUS, BOGUS] == 15
    assert matrix.sum() == 50
    assert percent_agreement(matrix) == pytest.approx(70.0)
    assert cohen_kappa(matrix) == pytest.approx(0.40)
    assert kappa_band(cohen_kappa(matrix)) == "fair"
    # No Unsure anywhere: the Real/Bogus-only kappa is the same number.
    assert Agreement(matrix).kappa_real_bogus == pytest.approx(0.40)


def test_unsure_is_a_category_in_the_kappa_and_left_out_of_the_real_bogus_kappa():
    # Rows rater A, columns rater B (real, bogus, unsure).
    matrix = np.array([[4, 1, 2], [0, 3, 0], [1, 0, 2]])
    agreement = Agreement(matrix)
    # n = 13, trace = 9; rows (7, 3, 3), columns (5, 4, 4): sum r_k c_k = 35 + 12 + 12 = 59.
    # kappa = (13 * 9 - 59) / (13^2 - 59) = 58 / 110
    assert agreement.kappa == pytest.approx(58 / 110)
    # Real/Bogus only: [[4, 1], [0, 3]], n = 8, trace 7, rows (5, 3), columns (4, 4):
    # kappa = (8 * 7 - 32) / (64 - 32) = 0.75
    assert agreement.n_real_bogus == 8
    assert agreement.kappa_real_bogus == pytest.approx(0.75)


def test_no_subjects_in_common_gives_no_agreement_and_no_kappa():
    agreement = Agreement(confusion_matrix([], []))
    assert agreement.n == 0
    assert agreement.percent_agreement is None
    assert agreement.kappa is None
    assert agreement.kappa_band == "undefined"


def test_both_raters_constant_on_one_label_leaves_kappa_undefined():
    # p_o = p_e = 1: kappa is 0/0. Total agreement, but nothing to tell skill from chance.
    matrix = confusion_matrix([BOGUS] * 6, [BOGUS] * 6)
    assert percent_agreement(matrix) == 100.0
    assert cohen_kappa(matrix) is None


def test_both_raters_constant_on_different_labels_is_kappa_zero():
    # p_o = 0 and p_e = 0: no better than chance, and well defined.
    matrix = confusion_matrix([REAL] * 4, [BOGUS] * 4)
    assert percent_agreement(matrix) == 0.0
    assert cohen_kappa(matrix) == 0.0


def test_perfect_agreement_on_two_labels_is_exactly_one():
    labels = [REAL, BOGUS, UNSURE, REAL, BOGUS]
    assert cohen_kappa(confusion_matrix(labels, labels)) == 1.0
    assert kappa_band(1.0) == "almost perfect"


def test_complete_disagreement_on_balanced_labels_is_minus_one():
    assert cohen_kappa(confusion_matrix([REAL, BOGUS] * 3, [BOGUS, REAL] * 3)) == -1.0
    assert kappa_band(-1.0) == "poor"


@pytest.mark.parametrize(("kappa", "words"), [
    (0.0, "slight"), (0.2, "slight"), (0.21, "fair"), (0.41, "moderate"), (0.6, "moderate"),
    (0.61, "substantial"), (0.81, "almost perfect"), (-0.01, "poor"),
    # Between the published two-decimal bands: the band of the value as shown.
    (0.8049, "substantial"), (0.8051, "almost perfect"), (-0.004, "slight"),
])
def test_landis_and_koch_bands(kappa, words):
    assert kappa_band(kappa) == words


def test_confusion_matrix_rejects_unknown_codes_and_unpaired_labels():
    with pytest.raises(ValueError, match="codes"):
        confusion_matrix([0, K], [0, 0])
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix([0, 1], [0])


# --- properties --------------------------------------------------------------------------------

paired_labels = st.integers(1, 60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, K - 1), min_size=n, max_size=n),
    st.lists(st.integers(0, K - 1), min_size=n, max_size=n),
))


def _brute_force_kappa(first: list[int], second: list[int]) -> float | None:
    """Straight from the definition, one subject at a time, in floating point."""
    n = len(first)
    p_o = sum(a == b for a, b in zip(first, second, strict=True)) / n
    p_e = sum((first.count(k) / n) * (second.count(k) / n) for k in range(K))
    if math.isclose(p_e, 1.0):
        return None
    return (p_o - p_e) / (1 - p_e)


@given(paired_labels)
def test_kappa_matches_the_definition(pair):
    first, second = pair
    expected = _brute_force_kappa(first, second)
    got = cohen_kappa(confusion_matrix(first, second))
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-12)


@given(paired_labels)
def test_kappa_is_symmetric_and_bounded(pair):
    first, second = pair
    kappa = cohen_kappa(confusion_matrix(first, second))
    assert kappa == cohen_kappa(confusion_matrix(second, first))
    if kappa is not None:
        assert -1.0 <= kappa <= 1.0


@given(st.lists(st.integers(0, K - 1), min_size=1, max_size=60))
def test_a_rater_agrees_perfectly_with_themself(labels):
    kappa = cohen_kappa(confusion_matrix(labels, labels))
    if len(set(labels)) == 1:
        assert kappa is None
    else:
        assert kappa == 1.0


@given(paired_labels, st.randoms(use_true_random=False))
def test_kappa_does_not_depend_on_subject_order(pair, rng):
    first, second = pair
    order = list(range(len(first)))
    rng.shuffle(order)
    shuffled = confusion_matrix([first[i] for i in order], [second[i] for i in order])
    assert cohen_kappa(shuffled) == cohen_kappa(confusion_matrix(first, second))


def test_pair_agreement_compares_only_the_subjects_both_label():
    agreement = pair_agreement(
        np.array([10, 11, 12, 13]), np.array([REAL, BOGUS, REAL, UNSURE]),
        np.array([13, 12, 99, 10]), np.array([UNSURE, BOGUS, REAL, REAL]),
    )
    expected = np.zeros((K, K), np.int64)
    expected[REAL, REAL] = 1  # subject 10
    expected[REAL, BOGUS] = 1  # subject 12
    expected[UNSURE, UNSURE] = 1  # subject 13
    np.testing.assert_array_equal(agreement.confusion, expected)


# --- consensus of the others ---------------------------------------------------------------------


def _brute_force_consensus(subjects, raters, codes) -> list[int]:
    result = []
    for subject, rater in zip(subjects, raters, strict=True):
        others = Counter(code for s, r, code in zip(subjects, raters, codes, strict=True)
                         if s == subject and r != rater)
        ranked = others.most_common()
        if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
            result.append(NO_CONSENSUS)
        else:
            result.append(ranked[0][0])
    return result


def test_consensus_leaves_the_rater_out_and_ties_give_none():
    # Subject 1: A real, B real, C bogus. Subject 2: A bogus only.
    subjects = [1, 1, 1, 2]
    raters = [100, 200, 300, 100]
    codes = [REAL, REAL, BOGUS, BOGUS]
    consensus = consensus_of_others(subjects, raters, codes).tolist()
    # A sees B real vs C bogus: a tie. C sees two reals. Subject 2 has nobody else.
    assert consensus == [NO_CONSENSUS, NO_CONSENSUS, REAL, NO_CONSENSUS]


def test_an_expert_in_two_sets_is_not_their_own_consensus():
    # Rater 7 labels subject 1 in two sets; rater 8 once. Rater 7's consensus is rater 8 alone.
    consensus = consensus_of_others([1, 1, 1], [7, 7, 8], [REAL, REAL, BOGUS]).tolist()
    assert consensus == [BOGUS, BOGUS, REAL]


label_tables = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 4), st.integers(0, K - 1)), max_size=80,
)


@given(label_tables)
def test_consensus_matches_a_brute_force_count(rows):
    subjects, raters, codes = ([row[i] for row in rows] for i in range(3))
    got = consensus_of_others(subjects, raters, codes).tolist()
    assert got == _brute_force_consensus(subjects, raters, codes)


@given(label_tables)
def test_each_rater_is_scored_on_their_labels_that_have_a_consensus(rows):
    subjects, raters, codes = ([row[i] for row in rows] for i in range(3))
    consensus = _brute_force_consensus(subjects, raters, codes)
    reported = sorted(set(raters))
    for result in raters_against_consensus(subjects, raters, codes, np.array(reported)):
        own = [i for i, rater in enumerate(raters) if rater == result.rater]
        scored = [i for i in own if consensus[i] != NO_CONSENSUS]
        assert result.n_labelled == len(own)
        np.testing.assert_array_equal(
            result.with_consensus.confusion,
            confusion_matrix([codes[i] for i in scored], [consensus[i] for i in scored]),
        )
