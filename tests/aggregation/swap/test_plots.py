"""The result-page figures render to PNG, also with nothing to show."""

from __future__ import annotations

import numpy as np

from aggregation import plots
from aggregation.swap import (
    BOGUS,
    REAL,
    UNKNOWN,
    ClassificationTable,
    SwapParams,
    swap_batch,
    volunteer_reference_fractions,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _run():
    rng = np.random.default_rng(0)
    n = 400
    table = ClassificationTable(rng.integers(0, 60, n), rng.integers(0, 12, n),
                                rng.random(n) < 0.5, 60, 12)
    truth = np.full(60, UNKNOWN, np.int8)
    truth[:10] = [REAL, BOGUS] * 5
    return table, truth, swap_batch(table, truth, SwapParams())


def test_every_plot_renders():
    table, truth, result = _run()
    fractions = volunteer_reference_fractions(table, truth)
    images = [
        plots.plot_volunteer_fractions(fractions),
        plots.plot_posterior_histogram(result.p_real, SwapParams()),
        plots.plot_trajectories(result, range(10), true_label=truth),
        plots.plot_trajectories(result, [0, 20]),
        plots.plot_skills(result.skills),
        plots.plot_skill_arrays(result.skills.p_real, result.skills.p_bogus,
                                result.skills.contributes),
        plots.plot_trajectory_arrays(result.traj_offsets, result.traj_values, [1, 2],
                                     SwapParams()),
    ]
    for image in images:
        assert image.startswith(PNG)
        assert len(image) > 5000


def test_plots_with_nothing_to_show():
    empty = ClassificationTable(np.empty(0, np.int64), np.empty(0, np.int64),
                                np.empty(0, bool), 2, 0)
    truth = np.full(2, UNKNOWN, np.int8)
    result = swap_batch(empty, truth, SwapParams())
    for image in (plots.plot_volunteer_fractions(volunteer_reference_fractions(empty, truth)),
                  plots.plot_posterior_histogram(np.empty(0), SwapParams()),
                  plots.plot_trajectories(result, [0, 1]),
                  plots.plot_skills(result.skills)):
        assert image.startswith(PNG)
