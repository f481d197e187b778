"""The tie rule at Pr(Real) = 0.5: the one place that decides what a value there means.

A subject whose evidence for Real and for Bogus is exactly balanced has log-odds 0. Summing
log-odds steps in floating point leaves such a subject at +-2e-16 or so instead, and comparing
that with a threshold of 0.5 would let the rounding pick its class. So a value whose log-odds
lie within TIE_EPSILON of 0 is a tie, and a tie is never a label: it is UNKNOWN, like a
subject nobody looked at. Majority vote follows the same rule (as many "Real" as "Bogus"
answers is a vote fraction of exactly 0.5), and so do the batch, online and EM SWAP labels and
the label-set exports, which all label through `threshold_labels`.

TIE_EPSILON = 1e-9 is far above rounding noise: summing n steps whose partial sums stay below S
in magnitude is off by about n * S * 1.1e-16, so 1e-12 for a subject of a hundred answers with
log-odds up to a hundred. And it is far below evidence a label could rest on: Pr(Real) within
2.5e-10 of 0.5.
"""

from __future__ import annotations

import numpy as np

from aggregation.swap.types import BOGUS, REAL, UNKNOWN

TIE_EPSILON = 1e-9  # |log-odds of Real| <= this is a tie
# The same band in Pr(Real): near 0.5, d Pr / d log-odds = Pr (1 - Pr) = 1/4.
TIE_HALF_WIDTH = TIE_EPSILON / 4

TIE_RULE = (
    f"Pr(Real) = 0.5 is a tie (log-odds of Real within +-{TIE_EPSILON:g} of 0, i.e. "
    f"|Pr(Real) - 0.5| <= {TIE_HALF_WIDTH:g}), and a tie is never a label: it is UNKNOWN. "
    "Majority vote: more 'Real' than 'Bogus' answers is REAL, more 'Bogus' is BOGUS, as many "
    "of each (or none) is UNKNOWN. SWAP batch, online and EM labels, and label-set exports, "
    "apply the same rule before their thresholds."
)


def is_tie(p_real) -> np.ndarray:
    """Per value: does this Pr(Real) sit at 0.5 within the tie band?"""
    return np.abs(np.asarray(p_real, np.float64) - 0.5) <= TIE_HALF_WIDTH


def threshold_labels(p_real, real_threshold: float = 0.5,
                     bogus_threshold: float = 0.5) -> np.ndarray:
    """int8 REAL / BOGUS / UNKNOWN per Pr(Real): REAL at or above `real_threshold`, BOGUS at or
    below `bogus_threshold` (both inclusive), UNKNOWN between them and on a tie. With the
    defaults this is the plain decision "which class is more likely", ties excepted."""
    p_real = np.asarray(p_real, np.float64)
    labels = np.full(p_real.shape, UNKNOWN, np.int8)
    decided = ~is_tie(p_real)
    labels[decided & (p_real >= real_threshold)] = REAL
    labels[decided & (p_real <= bogus_threshold)] = BOGUS
    return labels
