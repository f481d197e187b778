"""Bad input is refused with SwapInputError and a message that says what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

from aggregation.swap import (
    REAL,
    UNKNOWN,
    ClassificationTable,
    OnlineSwap,
    SubjectState,
    SwapInputError,
    SwapParams,
    VolunteerState,
    online_step,
    stability_labels,
    swap_batch,
    swap_em,
    volunteer_skills,
)

GOOD = {"subject": np.array([0, 1]), "volunteer": np.array([0, 0]),
            "says_real": np.array([True, False]), "n_subjects": 2, "n_volunteers": 1}


def make(**changes):
    return ClassificationTable(**{**GOOD, **changes})


@pytest.mark.parametrize(("changes", "message"), [
    ({"volunteer": np.array([0])}, "same length"),
    ({"says_real": np.array([True, False, True])}, "same length"),
    ({"subject": np.array([0, 2])}, "out of range"),
    ({"volunteer": np.array([0, 1])}, "out of range"),
    ({"subject": np.array([0, -1])}, "negative"),
    ({"subject": np.array([0.0, np.nan])}, "NaN"),
    ({"subject": np.array([0.0, 1.0])}, "integer"),
    ({"says_real": np.array([1.0, np.nan])}, "NaN"),
    ({"says_real": np.array([0, 2])}, "boolean"),
    ({"subject": np.array([[0, 1]])}, "1-D"),
    ({"n_subjects": -1}, "n_subjects"),
    ({"n_volunteers": 1.5}, "n_volunteers"),
])
def test_bad_tables(changes, message):
    with pytest.raises(SwapInputError, match=message):
        make(**changes)


def test_tables_accept_other_integer_widths_and_zero_one_answers():
    table = make(subject=np.array([0, 1], np.int32), says_real=np.array([1, 0], np.uint8))
    assert table.subject.dtype == np.int64
    assert table.says_real.dtype == np.bool_
    assert table.says_real.tolist() == [True, False]


@pytest.mark.parametrize(("truth", "message"), [
    (np.array([REAL]), "expected 2"),
    (np.array([1.0, np.nan]), "NaN"),
    (np.array([1, 2]), "REAL=1"),
])
def test_bad_truth(truth, message):
    for call in (lambda: swap_batch(make(), truth, SwapParams()),
                 lambda: swap_em(make(), truth, SwapParams()),
                 lambda: volunteer_skills(make(), truth, SwapParams())):
        with pytest.raises(SwapInputError, match=message):
            call()


@pytest.mark.parametrize("changes", [
    {"prior": 0.0}, {"prior": 1.0}, {"prior": float("nan")}, {"prior": -0.1},
    {"stability_window": 0}, {"stability_window": 2.5}, {"skill_floor": 0.0},
    {"skill_ceiling": 1.0}, {"skill_floor": 0.6, "skill_ceiling": 0.4},
    {"skill_strength": 0.0}, {"skill_prior": 1.5},
    {"real_threshold": 0.1, "bogus_threshold": 0.1}, {"real_threshold": 1.1},
    {"require_reference": "yes"}, {"prior": "0.5"},
])
def test_bad_params(changes):
    with pytest.raises(SwapInputError):
        SwapParams(**changes)


def test_params_errors_name_the_parameter():
    with pytest.raises(SwapInputError, match="prior must be in"):
        SwapParams(prior=1.0)
    with pytest.raises(SwapInputError, match="stability_window"):
        SwapParams(stability_window=0)


def test_bad_skill_timing():
    with pytest.raises(SwapInputError, match="skill_timing"):
        swap_batch(make(), np.array([UNKNOWN, REAL]), SwapParams(), skill_timing="later")


def test_stability_labels_check_their_arrays():
    params = SwapParams()
    with pytest.raises(SwapInputError, match="NaN"):
        stability_labels([0.5], [0, 1], [np.nan], params)
    with pytest.raises(SwapInputError, match="traj_offsets"):
        stability_labels([0.5], [0, 2], [0.5], params)
    with pytest.raises(SwapInputError, match="expected 1"):
        stability_labels([0.5, 0.5], [0, 1], [0.5], params)


def test_online_inputs():
    params = SwapParams()
    with pytest.raises(SwapInputError, match="truth"):
        online_step(SubjectState.initial(params), VolunteerState(), True, 2, params)
    with pytest.raises(SwapInputError, match="says_real"):
        online_step(SubjectState.initial(params), VolunteerState(), "real", REAL, params)
    online = OnlineSwap(params, np.array([UNKNOWN]))
    with pytest.raises(SwapInputError, match="out of range"):
        online.update(1, 0, True)
    online.update(0, 3, True)
    with pytest.raises(SwapInputError, match="n_volunteers"):
        online.result(1, n_volunteers=2)


def test_empty_table_is_fine():
    table = ClassificationTable(np.empty(0, np.int64), np.empty(0, np.int64),
                                np.empty(0, bool), 3, 0)
    result = swap_batch(table, np.full(3, UNKNOWN), SwapParams())
    assert result.p_real.tolist() == [0.5] * 3
    assert result.traj_offsets.tolist() == [0, 0, 0, 0]
    assert swap_em(table, np.full(3, UNKNOWN), SwapParams()).p_real.tolist() == [0.5] * 3
    online = swap_batch(table, np.full(3, UNKNOWN), SwapParams(),
                        skill_timing="at_classification")
    assert online.traj_values.size == 0


def test_index_arrays_must_be_integers():
    with pytest.raises(SwapInputError, match="integer"):
        make(subject=np.array([True, False]))
    empty = ClassificationTable.from_arrays([], [], [], n_subjects=1, n_volunteers=1)
    assert len(empty) == 0
    assert empty.subject.dtype == np.int64
