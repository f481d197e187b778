"""The online path: immutable states and the replay's per-volunteer state."""

from __future__ import annotations

import dataclasses

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
)


def test_states_are_immutable_and_steps_do_not_touch_their_inputs():
    params = SwapParams()
    subject, volunteer = SubjectState.initial(params), VolunteerState(1, 1, 0, 0)
    new_subject, new_volunteer = online_step(subject, volunteer, True, REAL, params)
    assert subject == SubjectState.initial(params)
    assert volunteer == VolunteerState(1, 1, 0, 0)
    assert new_volunteer == VolunteerState(2, 2, 0, 0)
    assert len(new_subject.trajectory) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        subject.log_odds = 3.0


def test_each_volunteer_has_its_own_state():
    # zooniverse/swap once shared a mutable default between volunteers: teaching one taught
    # all. Here volunteer 1 learning must leave volunteer 2 a newcomer.
    truth = np.array([REAL, BOGUS, UNKNOWN], np.int8)
    online = OnlineSwap(SwapParams(), truth)
    online.update(0, 1, True)
    online.update(1, 1, False)
    assert online.volunteer_state(1) == VolunteerState(1, 1, 1, 1)
    assert online.volunteer_state(2) == VolunteerState()
    assert OnlineSwap(SwapParams(), truth).volunteer_state(1) == VolunteerState()
    # Volunteer 2 has no reference yet: the subject stays at the prior, and is counted.
    assert online.update(2, 2, True) == 0.5
    assert online.subject_state(2).n_counted == 1
    assert online.subject_state(2).trajectory == ()
    # Volunteer 1 (2/3, 2/3) moves it: odds x 2.
    assert online.update(2, 1, True) == pytest.approx(2 / 3)


def test_update_returns_what_result_reports():
    truth = np.array([REAL, UNKNOWN], np.int8)
    online = OnlineSwap(SwapParams(require_reference=False), truth)
    returned = [online.update(s, v, r) for s, v, r in [(0, 0, True), (1, 0, True),
                                                       (1, 1, False)]]
    result = online.result(2)
    assert returned[-1] == result.p_real[1]
    assert result.trajectory(1).tolist() == returned[1:]
    assert result.mode == "online"
    assert result.n_counted.tolist() == [1, 2]
    assert online.subject_state(1).p_real == pytest.approx(result.p_real[1], abs=1e-15)


def test_unknown_truth_teaches_nothing():
    params = SwapParams()
    _, volunteer = online_step(SubjectState.initial(params), VolunteerState(), True, UNKNOWN,
                               params)
    assert volunteer == VolunteerState()
    assert not volunteer.contributes(params)
    assert volunteer.contributes(SwapParams(require_reference=False))
