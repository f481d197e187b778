"""Properties of the label-set plan: selection, balance, split and injections (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aggregation.labelsets.core import (
    TRAIN,
    PlanError,
    check_fractions,
    injection_target,
    plan_label_set,
    selection_mask,
    split_sizes,
)
from aggregation.swap.types import BOGUS, REAL, UNKNOWN

EXAMPLES = settings(max_examples=40)


@st.composite
def fractions_st(draw):
    """Three fractions >= 0 summing to 1, some of them zero now and then."""
    weights = draw(st.lists(st.one_of(st.just(0), st.integers(1, 20)), min_size=3, max_size=3))
    assume(sum(weights) > 0)
    return tuple(w / sum(weights) for w in weights)


@st.composite
def pool_st(draw, max_size=80):
    n = draw(st.integers(0, max_size))
    labels = np.array(draw(st.lists(st.sampled_from([REAL, BOGUS]), min_size=n, max_size=n)),
                      dtype=np.int8)
    groups = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=np.int64)
    ids = np.arange(100, 100 + n, dtype=np.int64)
    return ids, labels, groups


@EXAMPLES
@given(pool=pool_st(), fractions=fractions_st(), seed=st.integers(0, 2**32 - 1),
       stratified=st.booleans())
def test_balanced_classes_are_exactly_equal_in_every_group(pool, fractions, seed, stratified):
    ids, labels, groups = pool
    groups = groups if stratified else np.zeros_like(groups)
    plan = plan_label_set(ids, labels, groups, balance=True, fractions=fractions, seed=seed)
    kept_labels, kept_groups = labels[plan.selected], groups[plan.selected]
    for group in np.unique(groups):
        in_group = groups == group
        real, bogus = (in_group & (labels == REAL)).sum(), (in_group & (labels == BOGUS)).sum()
        kept = kept_groups == group
        # Exactly balanced, and nothing thrown away beyond the surplus of the larger class.
        assert (kept & (kept_labels == REAL)).sum() == min(real, bogus)
        assert (kept & (kept_labels == BOGUS)).sum() == min(real, bogus)


@EXAMPLES
@given(pool=pool_st(), fractions=fractions_st(), seed=st.integers(0, 2**32 - 1),
       balance=st.booleans())
def test_every_kept_subject_is_in_exactly_one_split(pool, fractions, seed, balance):
    ids, labels, groups = pool
    plan = plan_label_set(ids, labels, groups, balance=balance, fractions=fractions, seed=seed)
    assert len(plan.split) == len(plan.selected)
    assert len(np.unique(plan.selected)) == len(plan.selected)
    assert set(np.unique(plan.split)) <= {0, 1, 2}
    parts = [set(plan.split_of(i).tolist()) for i in range(3)]
    assert sum(len(p) for p in parts) == len(parts[0] | parts[1] | parts[2])  # disjoint
    assert parts[0] | parts[1] | parts[2] == set(plan.selected.tolist())
    if not balance:
        assert len(plan.selected) == len(ids)


@EXAMPLES
@given(pool=pool_st(), fractions=fractions_st(), seed=st.integers(0, 2**32 - 1),
       stratified=st.booleans(), balance=st.booleans())
def test_each_stratum_is_split_within_one_subject_of_the_fractions(pool, fractions, seed,
                                                                  stratified, balance):
    ids, labels, groups = pool
    groups = groups if stratified else np.zeros_like(groups)
    plan = plan_label_set(ids, labels, groups, balance=balance, fractions=fractions, seed=seed)
    kept_labels, kept_groups = labels[plan.selected], groups[plan.selected]
    for group, label in set(zip(kept_groups.tolist(), kept_labels.tolist(), strict=True)):
        members = (kept_groups == group) & (kept_labels == label)
        n = int(members.sum())
        for index, fraction in enumerate(fractions):
            size = int((members & (plan.split == index)).sum())
            assert abs(size - fraction * n) < 1
            if fraction == 0:
                assert size == 0


@EXAMPLES
@given(n=st.integers(0, 10_000), fractions=fractions_st())
def test_split_sizes_add_up_and_stay_within_one_of_the_fractions(n, fractions):
    sizes = split_sizes(n, fractions)
    assert sizes.sum() == n
    assert all(abs(s - f * n) < 1 for s, f in zip(sizes, fractions, strict=True))


@EXAMPLES
@given(pool=pool_st(), fractions=fractions_st(), seed=st.integers(0, 2**32 - 1))
def test_the_same_seed_reproduces_the_plan(pool, fractions, seed):
    ids, labels, groups = pool
    first = plan_label_set(ids, labels, groups, balance=True, fractions=fractions, seed=seed)
    again = plan_label_set(ids, labels, groups, balance=True, fractions=fractions, seed=seed)
    assert np.array_equal(first.selected, again.selected)
    assert np.array_equal(first.split, again.split)


@settings(max_examples=30)
@given(seeds=st.lists(st.integers(0, 2**32 - 1), min_size=2, max_size=2, unique=True))
def test_a_different_seed_draws_a_different_plan(seeds):
    # 300 Real and 100 Bogus: the chance that two seeds keep the same 100 Real subjects and
    # split them alike is below 1e-80.
    labels = np.array([REAL] * 300 + [BOGUS] * 100, dtype=np.int8)
    ids, groups = np.arange(400), np.zeros(400, dtype=np.int64)
    a, b = (plan_label_set(ids, labels, groups, balance=True, fractions=(0.8, 0.1, 0.1),
                           seed=seed) for seed in seeds)
    assert not np.array_equal(a.selected, b.selected)
    assert not np.array_equal(a.split_of(TRAIN), b.split_of(TRAIN))


@pytest.mark.parametrize("fractions", [
    (0.8, 0.1), (0.8, 0.1, 0.1, 0.0), (0.8, 0.3, 0.1), (0.5, 0.2, 0.2), (1.2, -0.1, -0.1),
    (float("nan"), 0.5, 0.5), (float("inf"), 0, 0), ("0.8", 0.1, 0.1), (True, 0, 0),
])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(PlanError):
        check_fractions(fractions)


@EXAMPLES
@given(fractions=fractions_st())
def test_good_fractions_pass_and_sum_to_one(fractions):
    checked = check_fractions(fractions)
    assert math.isclose(sum(checked), 1.0)
    assert all(f >= 0 for f in checked)


def test_selection_takes_labelled_subjects_and_stable_ones_for_the_stable_scenario():
    labels = np.array([REAL, BOGUS, UNKNOWN, REAL, BOGUS])
    stable = np.array([True, False, False, False, True])
    snr = np.array([10.0, -10.0, 10.0, 2.0, np.nan])
    assert selection_mask(labels, stable, snr, stable_only=False, min_snr=None).tolist() == [
        True, True, False, True, True]
    assert selection_mask(labels, stable, snr, stable_only=True, min_snr=None).tolist() == [
        True, False, False, False, True]
    # |SNR| counts (a fading source's SNR is negative); unknown SNR is left out.
    assert selection_mask(labels, stable, snr, stable_only=False, min_snr=6.0).tolist() == [
        True, True, False, False, False]


@EXAMPLES
@given(pool=pool_st(), seed=st.integers(0, 2**32 - 1), fraction=st.floats(0.01, 0.6),
       balance=st.booleans(), overlap=st.booleans())
def test_injections_go_to_train_only_at_their_share_and_never_twice(pool, seed, fraction,
                                                                    balance, overlap):
    ids, labels, groups = pool
    # A large injection pool, alternately Real and Bogus; with `overlap` it shares ids with
    # the candidates (a fake volunteers also classified).
    injection_ids = np.arange(0 if overlap else 10_000, (0 if overlap else 10_000) + 400)
    injection_labels = np.array([REAL, BOGUS] * 200, dtype=np.int8)
    plan = plan_label_set(ids, labels, groups, balance=balance, fractions=(0.8, 0.1, 0.1),
                          seed=seed, injection_ids=injection_ids,
                          injection_labels=injection_labels, injection_fraction=fraction)
    drawn_ids = injection_ids[plan.injections]
    assert len(np.unique(drawn_ids)) == len(drawn_ids)
    assert not set(drawn_ids.tolist()) & set(ids[plan.selected].tolist())
    n_train = len(plan.split_of(TRAIN))
    target = injection_target(n_train, fraction)
    assert n_train == 0 or math.isclose(target / (n_train + target), fraction)
    drawn_labels = injection_labels[plan.injections]
    if balance:  # target / 2 rounded of each class
        assert (drawn_labels == REAL).sum() == (drawn_labels == BOGUS).sum()
        assert abs(len(drawn_ids) - target) <= 1 + 1e-9
    else:
        assert abs(len(drawn_ids) - target) <= 0.5 + 1e-9


def test_too_few_injections_of_a_class_is_an_error_naming_the_numbers():
    labels = np.array([REAL, BOGUS] * 50, dtype=np.int8)
    with pytest.raises(PlanError, match="1 usable bogus subjects; a balanced mix needs 10"):
        plan_label_set(np.arange(100), labels, np.zeros(100), balance=True,
                       fractions=(0.8, 0.1, 0.1), seed=0, injection_ids=np.arange(500, 511),
                       injection_labels=np.array([REAL] * 10 + [BOGUS], dtype=np.int8),
                       injection_fraction=0.2)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_injection_fraction_must_lie_strictly_between_zero_and_one(fraction):
    with pytest.raises(PlanError, match="injection fraction"):
        plan_label_set(np.arange(4), np.array([REAL, BOGUS] * 2), np.zeros(4), balance=True,
                       fractions=(0.8, 0.1, 0.1), seed=0, injection_ids=np.arange(10, 20),
                       injection_labels=np.array([REAL, BOGUS] * 5), injection_fraction=fraction)


def test_unlabelled_candidates_are_refused():
    with pytest.raises(PlanError, match="Real or Bogus"):
        plan_label_set(np.arange(2), np.array([REAL, UNKNOWN]), np.zeros(2), balance=False,
                       fractions=(0.8, 0.1, 0.1), seed=0)
