"""Aggregation baselines that SWAP is compared with. Majority vote lives in core (it needs
nothing); Dawid-Skene comes from crowd-kit, installed only for the comparison."""

from __future__ import annotations

import warnings

import numpy as np

from aggregation.swap.types import BOGUS, REAL, UNKNOWN, ClassificationTable, SwapInputError

CROWDKIT_REQUIREMENT = "crowd-kit==1.4.2"


def _crowdkit():
    try:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene
    except ImportError as exc:
        raise ImportError(
            "crowd-kit is needed for the Dawid-Skene baseline and is not installed; it is used "
            "only for comparisons: pip install -r requirements-bench.txt "
            f"(or pip install {CROWDKIT_REQUIREMENT})"
        ) from exc
    return pd, DawidSkene


def crowdkit_dawid_skene(table: ClassificationTable, *, n_iter: int = 100) -> np.ndarray:
    """Labels per subject (int8 REAL / BOGUS) from crowd-kit's Dawid-Skene on every
    classification of the table, with no reference information (plain unsupervised DS);
    UNKNOWN for subjects without classifications."""
    if not isinstance(table, ClassificationTable):
        raise SwapInputError(f"table must be a ClassificationTable, got {type(table).__name__}")
    pd, DawidSkene = _crowdkit()
    labels = np.full(table.n_subjects, UNKNOWN, np.int8)
    if len(table) == 0:
        return labels
    frame = pd.DataFrame({
        "worker": table.volunteer,
        "task": table.subject,
        "label": np.where(table.says_real, REAL, BOGUS).astype(np.int64),
    })
    with warnings.catch_warnings():
        # crowd-kit 1.4.2 uses pandas keywords that pandas 3 deprecates; not ours to fix.
        warnings.filterwarnings("ignore", module=r"crowdkit\.")
        predicted = DawidSkene(n_iter=n_iter).fit_predict(frame)
    labels[predicted.index.to_numpy(np.int64)] = predicted.to_numpy(np.int64)
    return labels
