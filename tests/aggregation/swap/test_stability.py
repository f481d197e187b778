"""The stable and unstable sets at the edges of their rule (DMTN-337 section 3.2.2)."""

from __future__ import annotations

import numpy as np
import pytest

from aggregation.swap import BOGUS, REAL, UNKNOWN, SwapParams, stability_labels

PARAMS = SwapParams()  # Real >= 0.9, Bogus <= 0.1, window 3


def labels(*trajectories, params=PARAMS, prior=None):
    lengths = [len(t) for t in trajectories]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = np.concatenate([np.asarray(t, float) for t in trajectories]) if trajectories \
        else np.empty(0)
    final = np.array([t[-1] if len(t) else (prior or params.prior) for t in trajectories])
    unstable, stable = stability_labels(final, offsets, values, params)
    return unstable.tolist(), stable.tolist()


@pytest.mark.parametrize(("trajectory", "unstable", "stable"), [
    ([0.95, 0.97, 0.99], REAL, REAL),  # exactly the window
    ([0.05, 0.03, 0.01], BOGUS, BOGUS),
    ([0.97, 0.99], REAL, UNKNOWN),  # window - 1 points: never stable
    ([0.01, 0.02], BOGUS, UNKNOWN),
    ([0.5, 0.2, 0.95, 0.97, 0.99], REAL, REAL),  # only the last three matter
    ([0.9, 0.9, 0.9], REAL, REAL),  # exactly at the threshold counts
    ([0.1, 0.1, 0.1], BOGUS, BOGUS),
    ([0.9, 0.9, np.nextafter(0.9, 0)], UNKNOWN, UNKNOWN),  # just under it does not
    ([0.1, np.nextafter(0.1, 1), 0.1], BOGUS, UNKNOWN),  # nor just over, even in the middle
    ([0.95, 0.05, 0.05, 0.05], BOGUS, BOGUS),  # switched sides, then held three
    ([0.05, 0.05, 0.95, 0.95], REAL, UNKNOWN),  # switched sides, held two
    ([0.95, 0.95, 0.05, 0.95], REAL, UNKNOWN),  # one dip breaks the run
    ([0.95, 0.95, 0.95, 0.5], UNKNOWN, UNKNOWN),  # stable earlier is not stable now
    ([0.95, 0.05, 0.95], REAL, UNKNOWN),  # each point past a threshold, but not the same one
])
def test_edges(trajectory, unstable, stable):
    assert labels(trajectory) == ([unstable], [stable])


def test_window_is_a_parameter():
    assert labels([0.95], params=SwapParams(stability_window=1)) == ([REAL], [REAL])
    assert labels([0.95] * 4, params=SwapParams(stability_window=5)) == ([REAL], [UNKNOWN])
    assert labels([0.95] * 5, params=SwapParams(stability_window=5)) == ([REAL], [REAL])


def test_thresholds_are_parameters():
    params = SwapParams(real_threshold=0.8, bogus_threshold=0.3)
    assert labels([0.8, 0.85, 0.8], params=params) == ([REAL], [REAL])
    assert labels([0.3, 0.3, 0.2], params=params) == ([BOGUS], [BOGUS])


def test_a_subject_nobody_contributed_to_gets_no_label_whatever_the_prior():
    # A prior past a threshold must not label subjects that nobody looked at.
    params = SwapParams(prior=0.95)
    assert labels([], params=params, prior=0.95) == ([UNKNOWN], [UNKNOWN])


def test_many_subjects_at_once_keep_their_own_windows():
    # Segments next to each other must not lend points to each other.
    unstable, stable = labels([0.95], [0.95, 0.95], [0.95, 0.95, 0.95], [], [0.05] * 3)
    assert unstable == [REAL, REAL, REAL, UNKNOWN, BOGUS]
    assert stable == [UNKNOWN, UNKNOWN, REAL, UNKNOWN, BOGUS]
