"""Small builders shared by the SWAP tests."""

from __future__ import annotations

import numpy as np

from aggregation.swap import ClassificationTable


def table(rows, n_subjects=None, n_volunteers=None) -> ClassificationTable:
    """rows: (subject, volunteer, says_real) in time order."""
    rows = list(rows)
    subject = np.array([r[0] for r in rows], np.int64)
    volunteer = np.array([r[1] for r in rows], np.int64)
    says = np.array([bool(r[2]) for r in rows], bool)
    return ClassificationTable.from_arrays(subject, volunteer, says, n_subjects, n_volunteers)


def odds_to_p(odds: float) -> float:
    return odds / (1.0 + odds)
