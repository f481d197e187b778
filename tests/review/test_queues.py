"""The review queues' ordering, as a pure function: worked examples and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from review import queues
from review.queues import Candidates, priorities, queue_order

NAN = float("nan")


def candidates(rows, labelled=()) -> Candidates:
    """rows: (subject_id, n_real, n_bogus, p_real, reliability); distinct volunteers = votes."""
    ids, n_real, n_bogus, p_real, reliability = (np.array(column) for column in zip(*rows,
                                                                                     strict=True))
    return Candidates(
        subject_id=ids.astype(np.int64), n_real=n_real.astype(np.int64),
        n_bogus=n_bogus.astype(np.int64), n_volunteers=(n_real + n_bogus).astype(np.int64),
        p_real=p_real.astype(float), reliability=reliability.astype(float),
        labelled=np.isin(ids, list(labelled)),
    )


def ordered_ids(name, c, **kwargs) -> list[int]:
    return c.subject_id[queue_order(name, c, **kwargs)].tolist()


def test_disagreement_puts_even_splits_first_and_more_votes_first_among_them():
    c = candidates([
        (1, 1, 1, NAN, NAN),   # even, 2 votes
        (2, 3, 3, NAN, NAN),   # even, 6 votes
        (3, 4, 0, NAN, NAN),   # unanimous
        (4, 3, 1, NAN, NAN),   # 3:1
        (5, 0, 0, NAN, NAN),   # no votes: nothing to disagree about
        (6, 3, 2, NAN, NAN),   # 3:2, priority 0.2
    ])
    assert ordered_ids(queues.DISAGREEMENT, c) == [2, 1, 6, 4, 3]


def test_within_a_band_more_volunteers_come_first():
    # 0.50 and 0.52 are equally uncertain (one band); the subject more volunteers classified
    # calibrates more skills.
    c = candidates([(1, 1, 0, 0.50, NAN), (2, 4, 3, 0.52, NAN), (3, 1, 1, 0.70, NAN)])
    assert ordered_ids(queues.UNCERTAIN, c) == [2, 1, 3]


def test_uncertain_leaves_out_subjects_without_a_posterior():
    c = candidates([(1, 1, 0, NAN, NAN), (2, 1, 0, 0.9, NAN), (3, 1, 0, 0.4, NAN)])
    assert ordered_ids(queues.UNCERTAIN, c) == [3, 2]


def test_model_queue_ranks_by_disagreement_with_the_model_and_skips_unscored_subjects():
    c = candidates([
        (1, 1, 0, 0.95, 0.05),  # |0.9|
        (2, 1, 0, 0.95, 0.90),  # |0.05|
        (3, 1, 0, 0.10, 0.60),  # |0.5|
        (4, 1, 0, 0.50, NAN),   # no reliability
        (5, 1, 0, NAN, 0.40),   # no posterior
    ])
    assert ordered_ids(queues.MODEL, c) == [1, 3, 2]


def test_origin_queue_works_without_posteriors_most_classified_first():
    c = candidates([(1, 1, 0, NAN, NAN), (2, 2, 2, NAN, NAN), (3, 0, 0, NAN, NAN),
                    (4, 1, 0, 0.55, NAN)])
    assert ordered_ids(queues.ORIGIN, c) == [4, 2, 1, 3]


def test_labelled_subjects_are_skipped():
    c = candidates([(1, 1, 1, 0.5, NAN), (2, 2, 1, 0.6, NAN), (3, 2, 0, 0.9, NAN)],
                   labelled={1})
    assert ordered_ids(queues.DISAGREEMENT, c) == [2, 3]


def test_an_unknown_queue_is_refused():
    c = candidates([(1, 1, 1, 0.5, NAN)])
    with pytest.raises(ValueError, match="unknown queue 'best'"):
        queue_order("best", c)


# --- properties ------------------------------------------------------------------------------

probability = st.one_of(st.just(NAN), st.floats(0.0, 1.0))


@st.composite
def candidate_tables(draw):
    n = draw(st.integers(0, 40))
    ids = draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n, unique=True))
    rows = [
        (i, draw(st.integers(0, 7)), draw(st.integers(0, 7)), draw(probability),
         draw(probability))
        for i in ids
    ]
    labelled = draw(st.sets(st.sampled_from(ids))) if ids else set()
    return rows, labelled


def build(rows, labelled) -> Candidates:
    if not rows:
        empty = np.array([], dtype=np.int64)
        return Candidates(empty, empty, empty, empty, np.array([]), np.array([]),
                          np.array([], dtype=bool))
    return candidates(rows, labelled)


@given(candidate_tables(), st.sampled_from(sorted(queues.QUEUES)), st.integers(0, 2**32))
def test_a_queue_is_a_subset_in_which_no_subject_appears_twice(table, name, seed):
    c = build(*table)
    order = queue_order(name, c, seed=seed)
    assert len(set(order.tolist())) == len(order)
    assert not c.labelled[order].any()
    if name == queues.RANDOM:
        assert len(order) == int((~c.labelled).sum())  # the audit covers every subject


@given(candidate_tables(), st.sampled_from(sorted(queues.QUEUES)), st.integers(0, 2**32))
def test_labelling_subjects_never_reorders_the_others(table, name, seed):
    rows, labelled = table
    before = ordered_ids(name, build(rows, set()), seed=seed)
    after = ordered_ids(name, build(rows, labelled), seed=seed)
    assert after == [s for s in before if s not in labelled]


@given(candidate_tables(), st.sampled_from(sorted(set(queues.QUEUES) - {queues.RANDOM})))
def test_bands_rise_and_within_a_band_volunteers_fall(table, name):
    c = build(*table)
    order = queue_order(name, c)
    priority = priorities(name, c)[order]
    assert not np.isnan(priority).any()
    band = np.floor(priority * queues.PRIORITY_BANDS)
    assert (np.diff(band) >= 0).all()
    same_band = np.diff(band) == 0
    assert (np.diff(c.n_volunteers[order])[same_band] <= 0).all()


@given(candidate_tables(), st.integers(0, 2**32))
def test_the_same_seed_gives_the_same_audit_whatever_the_row_order(table, seed):
    rows, labelled = table
    shuffled = list(reversed(rows))
    assert (ordered_ids(queues.RANDOM, build(rows, labelled), seed=seed)
            == ordered_ids(queues.RANDOM, build(shuffled, labelled), seed=seed))


def test_different_seeds_give_different_audits():
    c = candidates([(i, 1, 0, NAN, NAN) for i in range(1, 31)])
    assert ordered_ids(queues.RANDOM, c, seed=1) != ordered_ids(queues.RANDOM, c, seed=2)
    assert sorted(ordered_ids(queues.RANDOM, c, seed=1)) == list(range(1, 31))


def test_a_new_subject_does_not_reshuffle_an_audit():
    rows = [(i, 1, 0, NAN, NAN) for i in range(1, 21)]
    before = ordered_ids(queues.RANDOM, candidates(rows), seed=7)
    after = ordered_ids(queues.RANDOM, candidates([*rows, (21, 0, 0, NAN, NAN)]), seed=7)
    assert [s for s in after if s != 21] == before
