"""Evaluation metrics: hand-worked cases, bad input, the stored dict, and properties
(hypothesis) that must hold on any scores and labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.ml.evaluation import (
    COMPLETENESS_MIN,
    PURITY_MIN,
    RECALL_AT_RANK_POINTS,
    SNR_BINS,
    THRESHOLDS,
    equal_point,
    evaluate,
    purity_completeness,
    recall_at_rank,
    requirement_ranges,
    roc_auc,
)

# Ranked by score: Real, Real, Bogus, Real, Bogus, Bogus.
SCORES = [0.9, 0.8, 0.7, 0.6, 0.4, 0.2]
LABELS = [1, 1, 0, 1, 0, 0]


def test_purity_and_completeness_by_hand():
    curve = purity_completeness(SCORES, LABELS, [0.0, 0.5, 0.6, 0.65, 0.75, 0.95])
    # t=0:    all six called Real: TP 3, FP 3         -> purity 1/2, completeness 1
    # t=0.5:  0.9 0.8 0.7 0.6 called: TP 3, FP 1      -> 3/4, 1
    # t=0.6:  the same four (score >= t counts)       -> 3/4, 1
    # t=0.65: 0.9 0.8 0.7: TP 2, FP 1                 -> 2/3, 2/3
    # t=0.75: 0.9 0.8: TP 2, FP 0                     -> 1, 2/3
    # t=0.95: nothing called: purity undefined        -> NaN, 0
    np.testing.assert_allclose(curve.purity, [1 / 2, 3 / 4, 3 / 4, 2 / 3, 1, np.nan])
    np.testing.assert_allclose(curve.completeness, [1, 1, 1, 2 / 3, 2 / 3, 0])
    assert (curve.n_real, curve.n_bogus) == (3, 3)


def test_the_default_grid_holds_the_decimal_thresholds_it_reports():
    assert THRESHOLDS.size == 201
    assert THRESHOLDS[35] == 0.175  # linspace alone gives 0.17500000000000002
    # A score of exactly 0.175 is called Real at the threshold reported as 0.175.
    assert purity_completeness([0.175], [1]).completeness[35] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        THRESHOLDS[0] = 0.5


def _two_range_case() -> tuple[list[float], list[int]]:
    # Reals: 18 at 0.902, 2 at 0.302. Bogus: 1 at 0.502, 19 at 0.102 (scores off the grid).
    # t in (0.102, 0.302]: 20 R + 1 B called -> purity 20/21 = 0.952, completeness 1    holds
    # t in (0.302, 0.502]: 18 R + 1 B        -> purity 18/19 = 0.947                    fails
    # t in (0.502, 0.902]: 18 R              -> purity 1, completeness 18/20 = 0.9      holds
    scores = [0.902] * 18 + [0.302] * 2 + [0.502] + [0.102] * 19
    return scores, [1] * 20 + [0] * 20


def test_the_requirement_holds_on_exactly_the_worked_out_ranges():
    curve = purity_completeness(*_two_range_case())
    assert requirement_ranges(curve) == [(0.105, 0.3), (0.505, 0.9)]
    # A stricter purity leaves only the second range.
    assert requirement_ranges(curve, purity_min=0.96) == [(0.505, 0.9)]
    requirement = evaluate(*_two_range_case())["requirement"]
    assert requirement["met"] is True
    assert requirement["ranges"] == [[0.105, 0.3], [0.505, 0.9]]
    assert requirement["message"] == ("purity >= 95% and completeness >= 90% both hold for "
                                      "thresholds 0.105-0.3 and 0.505-0.9")


def test_when_no_threshold_meets_the_requirement_the_best_purity_is_given():
    # Completeness >= 90% needs all three Reals, i.e. t <= 0.6, where the best purity is 3/4
    # (first at 0.405, the lowest grid threshold above 0.4).
    requirement = evaluate(SCORES, LABELS)["requirement"]
    assert requirement["met"] is False
    assert requirement["ranges"] == []
    assert requirement["best"] == {"threshold": 0.405, "purity": 0.75}
    assert requirement["message"] == (
        "no threshold meets purity >= 95% and completeness >= 90%: the best purity at "
        "completeness >= 90% is 75% (threshold 0.405)")
    assert requirement["purity_min"] == PURITY_MIN
    assert requirement["completeness_min"] == COMPLETENESS_MIN


def test_the_best_purity_counts_a_completeness_exactly_at_the_minimum():
    # Reals: 18 at 0.8, 2 at 0.3. Bogus: 1 at 0.9, 1 at 0.5, 18 at 0.02.
    # t in (0.5, 0.8]:  18 R + 1 B -> purity 18/19 = 94.7%, completeness 18/20 = 90% exactly
    # t in (0.3, 0.5]:  18 R + 2 B -> purity 90%
    # t in (0.02, 0.3]: 20 R + 2 B -> purity 90.9%, completeness 100%
    scores = [0.8] * 18 + [0.3] * 2 + [0.9, 0.5] + [0.02] * 18
    requirement = evaluate(scores, [1] * 20 + [0] * 20)["requirement"]
    assert requirement["message"] == (
        "no threshold meets purity >= 95% and completeness >= 90%: the best purity at "
        "completeness >= 90% is 94.7% (threshold 0.505)")


def test_the_requirement_limits_must_be_fractions():
    curve = purity_completeness(SCORES, LABELS)
    with pytest.raises(ValueError, match="purity_min"):
        requirement_ranges(curve, purity_min=95)


def test_equal_point_on_an_exact_grid_hit():
    # Up to 0.6 purity 3/4 < completeness 1; from 0.605 both are 2/3: the first zero.
    threshold, value = equal_point(purity_completeness(SCORES, LABELS))
    assert threshold == 0.605
    assert value == pytest.approx(2 / 3)


def test_equal_point_is_interpolated_between_grid_points():
    # t=0.5: purity 3/4, completeness 1 (difference -1/4); t=0.75: 1 and 2/3 (+1/3).
    # The difference is zero 1/4 / (1/4 + 1/3) = 3/7 of the way: t = 0.5 + 3/7 * 0.25 = 17/28,
    # purity = 3/4 + 3/7 * 1/4 = 6/7 (= completeness 1 - 3/7 * 1/3).
    threshold, value = equal_point(purity_completeness(SCORES, LABELS, [0.5, 0.75]))
    assert threshold == pytest.approx(17 / 28)
    assert value == pytest.approx(6 / 7)


def test_equal_point_is_none_when_the_curves_never_meet():
    # One Real and one Bogus, both 0.5: purity 1/2 < completeness 1 wherever defined.
    assert equal_point(purity_completeness([0.5, 0.5], [1, 0])) is None
    # No Real: completeness undefined everywhere.
    assert equal_point(purity_completeness([0.3, 0.7], [0, 0])) is None


def test_recall_at_rank_by_hand():
    recall, area = recall_at_rank(SCORES, LABELS)
    # Reals found in the top k: 1, 2, 2, 3, 3, 3 of 3.
    np.testing.assert_allclose(recall, [1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    # Perfect: 1/3, 2/3, 1, 1, 1, 1 (sum 5); here sum 14/3: area (14/3) / 5 = 14/15.
    assert area == pytest.approx(14 / 15)
    summary = evaluate(SCORES, LABELS)["recall_at_rank"]
    assert summary["k"] == [1, 2, 3, 4, 5, 6]
    assert summary["k_at_half"] == 2
    assert summary["k_at_90"] == 4
    assert summary["area"] == pytest.approx(14 / 15)


def test_recall_at_rank_breaks_ties_by_input_order():
    # Forty subjects scored 0.8, 0.5, 0.8, 0.5, ... (enough that an unstable sort would
    # reorder the ties). Among the twenty at 0.8 the first ten listed are Bogus, the last ten
    # Real: ranked in input order, no Real comes before rank 11, and all are in by rank 20.
    scores = [0.8, 0.5] * 20
    labels = [0] * 20 + [1, 0] * 10
    recall, _ = recall_at_rank(scores, labels)
    np.testing.assert_allclose(recall, [0] * 10 + list(np.arange(1, 11) / 10) + [1] * 20)
    # Equal scores with the Reals listed first rank them first: a perfect ranking.
    assert recall_at_rank([0.5] * 40, [1] * 20 + [0] * 20)[1] == 1.0


def test_perfect_and_reversed_rankings():
    labels = [1, 1, 1, 0, 0, 0, 0, 0]
    scores = np.linspace(0.9, 0.1, 8)
    recall, area = recall_at_rank(scores, labels)
    assert area == 1.0
    np.testing.assert_allclose(recall, [1 / 3, 2 / 3, 1, 1, 1, 1, 1, 1])
    # Reversed: the Reals are the last three; area (n_real + 1) / (2 N - n_real + 1) = 4/14.
    recall, area = recall_at_rank(scores[::-1], labels)
    np.testing.assert_allclose(recall, [0, 0, 0, 0, 0, 1 / 3, 2 / 3, 1])
    assert area == pytest.approx(4 / 14)
    assert roc_auc(scores, labels) == 1.0
    assert roc_auc(scores[::-1], labels) == 0.0


def test_recall_at_rank_needs_a_real():
    with pytest.raises(ValueError, match="at least one Real"):
        recall_at_rank([0.2, 0.4], [0, 0])


def test_roc_auc_by_hand():
    # Reals 0.9 0.8 0.6 against Bogus 0.7 0.4 0.2: 3 + 3 + 2 of 9 pairs won.
    assert roc_auc(SCORES, LABELS) == pytest.approx(8 / 9)
    # Reals 0.7 0.5 against Bogus 0.5 0.3: 0.7 wins twice, 0.5 ties once (1/2) and wins once.
    assert roc_auc([0.7, 0.5, 0.5, 0.3], [1, 1, 0, 0]) == pytest.approx(3.5 / 4)
    assert roc_auc([0.3, 0.6], [1, 1]) is None


@pytest.mark.parametrize(("scores", "labels", "message"), [
    ([0.1, 0.2], [1], "differ in length"),
    ([0.1, 0.2], [1, 2], "0 \\(Bogus\\) or 1 \\(Real\\)"),
    ([0.1, 0.2], ["real", "bogus"], "0 \\(Bogus\\) or 1 \\(Real\\)"),
    ([0.1, 1.2], [1, 0], "\\[0, 1\\]"),
    ([-0.1, 0.2], [1, 0], "\\[0, 1\\]"),
    ([0.1, float("nan")], [1, 0], "NaN"),
    ([], [], "at least one subject"),
    ([[0.1, 0.2]], [[1, 0]], "one-dimensional"),
    (["high", "low"], [1, 0], "scores must be numbers"),
])
def test_bad_input_is_named(scores, labels, message):
    for metric in (evaluate, purity_completeness, recall_at_rank, roc_auc):
        with pytest.raises(ValueError, match=message):
            metric(scores, labels)


def test_bad_grids_origins_and_snr_are_named():
    with pytest.raises(ValueError, match="strictly increasing"):
        purity_completeness(SCORES, LABELS, [0.5, 0.5])
    with pytest.raises(ValueError, match="non-empty"):
        purity_completeness(SCORES, LABELS, [])
    with pytest.raises(ValueError, match="origins must have one value per score"):
        evaluate(SCORES, LABELS, origins=["ss"])
    with pytest.raises(ValueError, match="snr must have one value per score"):
        evaluate(SCORES, LABELS, snr=[5.0, 6.0])


def test_boolean_labels_are_accepted():
    assert evaluate(SCORES, np.array(LABELS, bool)) == evaluate(SCORES, LABELS)


def test_per_origin_keeps_an_origin_with_one_class():
    origins = ["ss", "ss", "gaia", "ss", "gaia", "gaia"]
    per_origin = evaluate(SCORES, LABELS, origins=origins)["per_origin"]
    assert sorted(per_origin) == ["gaia", "ss"]
    # gaia: only Bogus (0.7, 0.4, 0.2): completeness undefined, purity 0 where anything called.
    gaia = per_origin["gaia"]
    assert (gaia["n"], gaia["n_real"], gaia["n_bogus"]) == (3, 0, 3)
    assert set(gaia["curve"]["completeness"]) == {None}
    assert set(gaia["curve"]["purity"]) == {0.0, None}
    assert gaia["requirement"]["met"] is False
    assert "no Real subjects" in gaia["requirement"]["message"]
    assert gaia["equal_point"] is None
    # ss: only Reals (0.9, 0.8, 0.6): purity 1, and completeness >= 90% up to 0.6.
    ss = per_origin["ss"]
    assert ss["requirement"]["ranges"] == [[0.0, 0.6]]


def test_only_bogus_leaves_the_ranking_measures_undefined():
    evaluation = evaluate([0.1, 0.3], [0, 0])
    assert evaluation["recall_at_rank"] is None
    assert evaluation["roc_auc"] is None
    json.dumps(evaluation, allow_nan=False)


def test_distribution_counts_each_class_in_50_bins():
    distribution = evaluate([0.0, 0.01, 1.0, 0.5], [0, 0, 1, 1])["distribution"]
    assert len(distribution["bins"]) == 51
    assert distribution["bins"][0] == 0.0
    assert distribution["bins"][-1] == 1.0
    # 0.0 and 0.01 fall in [0, 0.02); 1.0 in the last (closed) bin; 0.5 in [0.5, 0.52).
    assert distribution["bogus"][0] == 2
    assert sum(distribution["bogus"]) == 2
    assert distribution["real"][49] == 1
    assert distribution["real"][25] == 1
    assert sum(distribution["real"]) == 2


def test_reliability_against_snr_by_hand():
    scores = [0.2, 0.4, 0.9, 0.1, 0.3, 0.5]
    labels = [1, 1, 1, 0, 0, 1]
    # |SNR| 1 and 100 span the bins; -100 counts as 100; NaN is unknown.
    snr = [1.0, 1.0, -100.0, 100.0, 100.0, float("nan")]
    summary = evaluate(scores, labels, snr=snr)["snr"]
    assert summary["n_unknown"] == 1
    assert len(summary["edges"]) == SNR_BINS + 1
    assert summary["edges"][0] == pytest.approx(1.0)
    assert summary["edges"][-1] == pytest.approx(100.0)
    real, bogus = summary["real"], summary["bogus"]
    # Real at SNR 1: 0.2, 0.4 -> median 0.3, 16th 0.2 + 0.16 * 0.2, 84th 0.2 + 0.84 * 0.2.
    assert real["n"][0] == 2
    assert real["median"][0] == pytest.approx(0.3)
    assert real["p16"][0] == pytest.approx(0.232)
    assert real["p84"][0] == pytest.approx(0.368)
    # The largest |SNR| falls in the last bin: Real 0.9; Bogus 0.1, 0.3.
    assert real["n"][-1] == 1
    assert real["median"][-1] == pytest.approx(0.9)
    assert bogus["n"][-1] == 2
    assert bogus["median"][-1] == pytest.approx(0.2)
    assert bogus["n"][0] == 0
    assert bogus["median"][0] is None
    assert sum(real["n"]) + sum(bogus["n"]) + summary["n_unknown"] == len(scores)


def test_no_finite_snr_is_said_not_binned():
    summary = evaluate(SCORES, LABELS, snr=[float("nan")] * 6)["snr"]
    assert summary["n_unknown"] == 6
    assert summary["edges"] == []
    assert summary["real"]["n"] == []


def test_recall_at_rank_is_subsampled_for_large_sets_keeping_both_ends():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 5000)
    scores = np.clip(rng.normal(0.3 + 0.4 * labels, 0.2), 0, 1)
    summary = evaluate(scores, labels)["recall_at_rank"]
    ranks = np.array(summary["k"])
    assert ranks.size <= RECALL_AT_RANK_POINTS
    assert ranks[0] == 1
    assert ranks[-1] == 5000
    assert (np.diff(ranks) > 0).all()
    recall, area = recall_at_rank(scores, labels)
    np.testing.assert_allclose(summary["recall"], recall[ranks - 1], atol=1e-6)
    assert summary["area"] == pytest.approx(area, abs=1e-6)
    assert recall[summary["k_at_90"] - 1] >= 0.9 > recall[summary["k_at_90"] - 2]


def test_the_stored_evaluation_of_100000_subjects_is_compact():
    rng = np.random.default_rng(2)
    n = 100_000
    labels = rng.integers(0, 2, n)
    scores = np.clip(rng.normal(0.3 + 0.4 * labels, 0.2), 0, 1)
    origins = rng.choice(["ss", "gaia", "tns", "galaxy", "reliability_cuts", "injection"], n)
    evaluation = evaluate(scores, labels, origins=origins, snr=rng.lognormal(2, 1, n))
    assert len(json.dumps(evaluation, allow_nan=False)) < 64_000


# --- properties ------------------------------------------------------------------------------

# Scores on the grid as well as anywhere, so that ties and threshold hits happen.
SCORE = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]))
SUBJECTS = st.lists(st.tuples(SCORE, st.integers(0, 1)), min_size=1, max_size=60)
EXAMPLES = settings(max_examples=60, deadline=None)


def _split(subjects):
    scores, labels = zip(*subjects, strict=True)
    return np.array(scores), np.array(labels)


@EXAMPLES
@given(SUBJECTS, st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8, unique=True))
def test_curve_matches_counting_and_is_bounded(subjects, thresholds):
    scores, labels = _split(subjects)
    grid = np.sort(thresholds)
    curve = purity_completeness(scores, labels, grid)
    for index, threshold in enumerate(grid):
        called = scores >= threshold
        true_positives = int((called & (labels == 1)).sum())
        if called.any():
            assert curve.purity[index] == pytest.approx(true_positives / called.sum())
        else:
            assert np.isnan(curve.purity[index])
        if labels.any():
            assert curve.completeness[index] == pytest.approx(true_positives / labels.sum())
    for values in (curve.purity, curve.completeness):
        defined = values[np.isfinite(values)]
        assert ((defined >= 0) & (defined <= 1)).all()
    if labels.any():
        assert (np.diff(curve.completeness) <= 0).all()


@EXAMPLES
@given(SUBJECTS)
def test_requirement_ranges_are_maximal_runs_where_both_hold(subjects):
    curve = purity_completeness(*_split(subjects))
    with np.errstate(invalid="ignore"):
        holds = (curve.purity >= PURITY_MIN) & (curve.completeness >= COMPLETENESS_MIN)
    covered = np.zeros(curve.thresholds.size, bool)
    for low, high in requirement_ranges(curve):
        first = int(np.flatnonzero(curve.thresholds == low)[0])
        last = int(np.flatnonzero(curve.thresholds == high)[0])
        covered[first:last + 1] = True
        assert holds[first:last + 1].all()
        assert first == 0 or not holds[first - 1]
        assert last == curve.thresholds.size - 1 or not holds[last + 1]
    np.testing.assert_array_equal(covered, holds)


@EXAMPLES
@given(SUBJECTS)
def test_equal_point_lies_on_the_grid_span(subjects):
    crossing = equal_point(purity_completeness(*_split(subjects)))
    if crossing is not None:
        threshold, value = crossing
        assert THRESHOLDS[0] <= threshold <= THRESHOLDS[-1]
        assert 0.0 <= value <= 1.0


@EXAMPLES
@given(SUBJECTS)
def test_recall_at_rank_rises_to_one_and_its_area_is_a_fraction(subjects):
    scores, labels = _split(subjects)
    if not labels.any():
        labels[0] = 1
    recall, area = recall_at_rank(scores, labels)
    assert (np.diff(recall) >= 0).all()
    assert recall[-1] == 1.0
    assert 0.0 < area <= 1.0
    # Scoring the Reals above every Bogus is a perfect ranking.
    _, perfect_area = recall_at_rank(np.where(labels == 1, 0.9, 0.1), labels)
    assert perfect_area == 1.0


@EXAMPLES
@given(SUBJECTS)
def test_roc_auc_is_the_fraction_of_pairs_won(subjects):
    scores, labels = _split(subjects)
    real, bogus = scores[labels == 1], scores[labels == 0]
    auc = roc_auc(scores, labels)
    if real.size == 0 or bogus.size == 0:
        assert auc is None
        return
    wins = (real[:, None] > bogus[None, :]).sum() + 0.5 * (real[:, None] == bogus[None, :]).sum()
    assert auc == pytest.approx(wins / (real.size * bogus.size))


@EXAMPLES
@given(SUBJECTS, st.data())
def test_evaluate_is_plain_json_and_origins_partition_the_subjects(subjects, data):
    scores, labels = _split(subjects)
    origins = data.draw(st.lists(st.sampled_from(["ss", "gaia", "tns"]), min_size=scores.size,
                                 max_size=scores.size))
    snr = data.draw(st.lists(st.one_of(st.just(float("nan")), st.floats(-50.0, 500.0)),
                             min_size=scores.size, max_size=scores.size))
    evaluation = evaluate(scores, labels, origins=origins, snr=snr)
    assert json.loads(json.dumps(evaluation, allow_nan=False)) == evaluation
    per_origin = evaluation["per_origin"].values()
    assert sum(part["n"] for part in per_origin) == evaluation["n"] == scores.size
    assert sum(part["n_real"] for part in per_origin) == evaluation["n_real"]
    snr_summary = evaluation["snr"]
    binned = sum(snr_summary["real"]["n"]) + sum(snr_summary["bogus"]["n"])
    assert binned + snr_summary["n_unknown"] == scores.size
