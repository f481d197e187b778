"""The evaluation figures render to PNG from stored evaluations alone: one version, a
comparison, and evaluations missing parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training.ml import plots
from training.ml.evaluation import evaluate

# A matplotlib warning (an empty legend, a log axis with nothing positive) is a figure bug.
pytestmark = pytest.mark.filterwarnings("error")

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = (plots.plot_purity_completeness, plots.plot_per_origin, plots.plot_distribution,
           plots.plot_reliability_vs_snr, plots.plot_recall_at_rank)


def _stored(separation: float, seed: int, **parts) -> dict:
    """A small evaluation as the pages get it back from the database (through JSON)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 120)
    scores = 1 / (1 + np.exp(-(rng.normal(0, 1, 120) + separation * (2 * labels - 1))))
    extra = {}
    if parts.get("origins"):
        extra["origins"] = rng.choice(["ss", "gaia", "tns"], 120)
    if parts.get("snr"):
        snr = rng.lognormal(2, 1, 120)
        snr[:5] = np.nan
        extra["snr"] = snr
    return json.loads(json.dumps(evaluate(scores, labels, **extra), allow_nan=False))


@pytest.fixture(scope="module")
def good() -> dict:
    evaluation = _stored(4.0, 1, origins=True, snr=True)
    assert evaluation["requirement"]["met"]
    return evaluation


@pytest.fixture(scope="module")
def poor() -> dict:
    evaluation = _stored(0.5, 2, origins=True, snr=True)
    assert not evaluation["requirement"]["met"]
    assert evaluation["requirement"]["message"].startswith("no threshold meets")
    return evaluation


@pytest.mark.parametrize("figure", FIGURES)
def test_one_version_and_a_comparison_render(figure, good, poor):
    assert figure({"v0.1": good}).startswith(PNG)
    assert figure({"v0.1": poor}).startswith(PNG)
    assert figure({"v0.1": good, "v0.2": poor}).startswith(PNG)


@pytest.mark.parametrize("figure", FIGURES)
def test_missing_parts_give_a_figure_not_an_error(figure, good):
    without_extras = _stored(2.0, 3)  # no origins, no SNR
    assert "per_origin" not in without_extras
    assert "snr" not in without_extras
    only_bogus = json.loads(json.dumps(evaluate([0.1, 0.4, 0.7], [0, 0, 0], origins=["a"] * 3,
                                                snr=[float("nan")] * 3)))
    assert only_bogus["recall_at_rank"] is None
    for evaluations in ({"v0.1": without_extras}, {"v0.1": good, "v0.2": without_extras},
                        {"v0.1": only_bogus}, {"v0.1": only_bogus, "v0.2": good},
                        {"bare": {}}, {}):
        assert figure(evaluations).startswith(PNG)


def test_the_requirement_sentence_is_drawn(poor):
    # Nothing meets the requirement: the figure carries the sentence that says so, hence a
    # different sentence gives a different image.
    reworded = json.loads(json.dumps(poor))
    reworded["requirement"]["message"] = "a different sentence"
    assert (plots.plot_purity_completeness({"v0.1": poor})
            != plots.plot_purity_completeness({"v0.1": reworded}))


def test_an_origin_missing_from_one_version_is_still_drawn(good):
    other = json.loads(json.dumps(evaluate([0.2, 0.9, 0.8], [0, 1, 1],
                                           origins=["injection"] * 3)))
    assert plots.plot_per_origin({"v0.1": good, "v0.2": other}).startswith(PNG)


def test_evaluation_and_plots_are_pure():
    code = (
        "import sys, training.ml.evaluation, training.ml.plots\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('django', 'torch')\n"
        "          or m == 'matplotlib.pyplot']\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
