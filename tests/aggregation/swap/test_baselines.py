"""crowd-kit's Dawid-Skene as a baseline: used when installed, a clear error when not."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from aggregation.swap import REAL, UNKNOWN, ClassificationTable, crowdkit_dawid_skene


def _table():
    rng = np.random.default_rng(1)
    truth = (rng.random(50) < 0.5).astype(np.int8)
    subject = np.repeat(np.arange(50), 5)
    volunteer = np.tile(np.arange(5), 50)
    good = rng.random(subject.shape[0]) < 0.85
    says = np.where(good, truth[subject] == REAL, truth[subject] != REAL)
    # Subject 50 has no classifications.
    return ClassificationTable(subject, volunteer, says, 51, 5), truth


def test_missing_crowdkit_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "crowdkit", None)
    monkeypatch.setitem(sys.modules, "crowdkit.aggregation", None)
    with pytest.raises(ImportError, match=r"requirements-bench\.txt"):
        crowdkit_dawid_skene(_table()[0])


def test_dawid_skene_labels_subjects():
    pytest.importorskip("crowdkit", reason="crowd-kit is installed only for the comparisons")
    table, truth = _table()
    labels = crowdkit_dawid_skene(table)
    assert labels.dtype == np.int8
    assert labels.shape == (51,)
    assert labels[50] == UNKNOWN
    assert (labels[:50] == truth).mean() > 0.9
