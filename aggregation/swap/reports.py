"""What a SWAP run is judged by, all pure and vectorised: the stable/unstable breakdown table
(DMTN-337 Table 4), accuracy against known truth, each volunteer's fractions of reference
Reals and Bogus answered correctly (DMTN-337 Fig. 3), label flips along trajectories, and the
early-stable classification metrics of Zhou et al. 2026 (section IV.4) for two classes.

For two classes a PMF is (1 - p, p) with p = Pr(Real); with unit cost between the classes
the Wasserstein-1 distance between successive PMFs is |p_t - p_{t+1}|, and the probability of
the true class p_{t,*} is p_t for a Real subject and 1 - p_t for a Bogus one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from aggregation.swap._segments import segment_ids
from aggregation.swap.types import (
    BOGUS,
    REAL,
    UNKNOWN,
    ClassificationTable,
    SwapInputError,
    SwapResult,
    as_float_array,
    as_label_array,
    check_offsets,
    check_truth,
)

# ---------------------------------------------------------------------------- breakdown


@dataclass(frozen=True)
class BreakdownRow:
    scenario: str  # "stable" or "unstable"
    reference: str  # the reference set(s) the run used, e.g. "rubin" or "rubin+oxford"
    total_real: int
    total_bogus: int


def breakdown(result: SwapResult, reference_name: str) -> list[BreakdownRow]:
    """Rows "stable" and "unstable": how many subjects each labels Real and Bogus."""
    rows = []
    for scenario, labels in (("stable", result.stable_label),
                             ("unstable", result.unstable_label)):
        rows.append(BreakdownRow(scenario, reference_name, int((labels == REAL).sum()),
                                 int((labels == BOGUS).sum())))
    return rows


def format_breakdown(rows: Sequence[BreakdownRow]) -> str:
    """An aligned text table like DMTN-337 Table 4 (numbers right-aligned, with separators)."""
    header = ("Scenario", "Total Real", "Total Bogus", "Reference Data")
    cells = [header] + [(r.scenario, f"{r.total_real:,}", f"{r.total_bogus:,}", r.reference)
                        for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        lines.append("  ".join((
            row[0].ljust(widths[0]),
            row[1].rjust(widths[1]),
            row[2].rjust(widths[2]),
            row[3].ljust(widths[3]),
        )).rstrip())
    return "\n".join(lines)


# ---------------------------------------------------------------------------- accuracy


@dataclass(frozen=True)
class LabelAccuracy:
    n_subjects: int  # subjects whose truth is known
    n_labelled: int  # ... of which the labels name a class (not UNKNOWN)
    n_correct: int  # ... and name the true one
    accuracy: float  # n_correct / n_labelled; NaN when nothing is labelled

    @property
    def coverage(self) -> float:
        return self.n_labelled / self.n_subjects if self.n_subjects else math.nan


def label_accuracy(labels, truth) -> LabelAccuracy:
    """Accuracy of `labels` over the subjects with known truth that the labels name."""
    labels = as_label_array("labels", labels)
    truth = as_label_array("truth", truth, labels.shape[0])
    known = truth != UNKNOWN
    labelled = known & (labels != UNKNOWN)
    n_labelled = int(labelled.sum())
    n_correct = int((labels[labelled] == truth[labelled]).sum())
    return LabelAccuracy(int(known.sum()), n_labelled, n_correct,
                         n_correct / n_labelled if n_labelled else math.nan)


# ---------------------------------------------------------------------------- volunteers


@dataclass(frozen=True)
class VolunteerReferenceFractions:
    """Per volunteer (DMTN-337 Fig. 3): classifications made, reference Reals classified and
    the fraction called Real, reference Bogus classified and the fraction called Bogus. Raw
    fractions, no pseudo-counts; NaN where the volunteer saw none of that class."""

    n_classifications: np.ndarray
    n_ref_real: np.ndarray
    frac_real_correct: np.ndarray
    n_ref_bogus: np.ndarray
    frac_bogus_correct: np.ndarray

    def optimistic(self, cut: float = 0.1) -> np.ndarray:
        """Volunteers who call nearly everything Real: >= 1 - cut of reference Reals right and
        <= cut of reference Bogus right (NaN compares false, so both classes must be seen)."""
        return (self.frac_real_correct >= 1 - cut) & (self.frac_bogus_correct <= cut)

    def pessimistic(self, cut: float = 0.1) -> np.ndarray:
        """Volunteers who call nearly everything Bogus."""
        return (self.frac_real_correct <= cut) & (self.frac_bogus_correct >= 1 - cut)


def volunteer_reference_fractions(table: ClassificationTable, truth
                                  ) -> VolunteerReferenceFractions:
    truth = check_truth(truth, table)
    n_vol = table.n_volunteers
    row_truth = truth[table.subject]
    is_real, is_bogus = row_truth == REAL, row_truth == BOGUS
    n_real = np.bincount(table.volunteer[is_real], minlength=n_vol)
    n_real_ok = np.bincount(table.volunteer[is_real & table.says_real], minlength=n_vol)
    n_bogus = np.bincount(table.volunteer[is_bogus], minlength=n_vol)
    n_bogus_ok = np.bincount(table.volunteer[is_bogus & ~table.says_real], minlength=n_vol)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac_real = np.where(n_real > 0, n_real_ok / np.maximum(n_real, 1), np.nan)
        frac_bogus = np.where(n_bogus > 0, n_bogus_ok / np.maximum(n_bogus, 1), np.nan)
    return VolunteerReferenceFractions(
        np.bincount(table.volunteer, minlength=n_vol).astype(np.int64),
        n_real.astype(np.int64), frac_real, n_bogus.astype(np.int64), frac_bogus,
    )


# ---------------------------------------------------------------------------- trajectories


def _trajectories(traj_offsets, traj_values):
    values = as_float_array("traj_values", traj_values)
    offsets = check_offsets(traj_offsets, values.shape[0])
    return offsets, values


def _segment_starts(offsets: np.ndarray, n_values: int) -> np.ndarray:
    starts = np.zeros(n_values, bool)
    starts[offsets[:-1][np.diff(offsets) > 0]] = True
    return starts


def label_flips(traj_offsets, traj_values, threshold: float = 0.5) -> np.ndarray:
    """Per subject, how often successive trajectory points lie on different sides of
    `threshold` (a point exactly at it counts as the Real side). The prior is not a point."""
    offsets, values = _trajectories(traj_offsets, traj_values)
    side = values >= threshold
    change = np.zeros(values.shape[0], bool)
    change[1:] = side[1:] != side[:-1]
    change &= ~_segment_starts(offsets, values.shape[0])
    seg = segment_ids(offsets)
    return np.bincount(seg[change], minlength=offsets.shape[0] - 1).astype(np.int64)


def _true_class_probability(offsets, values, true_label):
    n = offsets.shape[0] - 1
    true_label = as_label_array("true_label", true_label, n)
    seg = segment_ids(offsets)
    p_star = np.where(true_label[seg] == BOGUS, 1.0 - values, values)
    return true_label, seg, p_star


def esc_fraction(traj_offsets, traj_values, true_label, *, epsilon: float = 0.1,
                 rho: float = 0.5, k: int = 3) -> np.ndarray:
    """Early-Stable Classification fraction (Zhou et al. 2026, Definition 1), per subject.

    With T points, tau is the smallest t (1-based) such that the k points t-k+1 .. t all give
    the true class probability >= rho (accuracy) and the k-1 steps between them all have
    |p_j - p_{j+1}| <= epsilon (stability). The value is tau / T, or 1.0 when no window
    qualifies (including T < k). NaN where the truth is UNKNOWN or the trajectory is empty.
    """
    if not (isinstance(k, int | np.integer) and k >= 2):
        raise SwapInputError(f"k must be an integer >= 2 (Zhou et al. 2026), got {k!r}")
    if not (epsilon >= 0.0 and math.isfinite(epsilon)):
        raise SwapInputError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    if not 0.0 <= rho <= 1.0:
        raise SwapInputError(f"rho must be in [0, 1], got {rho!r}")
    offsets, values = _trajectories(traj_offsets, traj_values)
    true_label, seg, p_star = _true_class_probability(offsets, values, true_label)
    n = offsets.shape[0] - 1
    lengths = np.diff(offsets)
    m = values.shape[0]
    pos = np.arange(m, dtype=np.int64)

    accurate = p_star >= rho
    # A run of qualifying points is cut where a segment starts or a step is too large ...
    cut = _segment_starts(offsets, m)
    cut[1:] |= np.abs(values[1:] - values[:-1]) > epsilon
    last_cut = np.maximum.accumulate(np.where(cut, pos, 0)) if m else pos
    # ... and cannot include an inaccurate point.
    last_bad = np.maximum.accumulate(np.where(accurate, -1, pos)) if m else pos
    run_start = np.maximum(last_cut, last_bad + 1)
    run = np.where(accurate, pos - run_start + 1, 0)

    out = np.ones(n, np.float64)
    hits = np.flatnonzero(run >= k)
    hit_seg = seg[hits]
    first = np.ones(hits.shape[0], bool)
    first[1:] = hit_seg[1:] != hit_seg[:-1]
    segs = hit_seg[first]
    tau = hits[first] - offsets[segs] + 1
    out[segs] = tau / lengths[segs]
    out[(true_label == UNKNOWN) | (lengths == 0)] = np.nan
    return out


def exponential_weight(alpha: float = 2.0) -> Callable[[np.ndarray], np.ndarray]:
    """w(t) = (e^{alpha t} - 1) / (e^alpha - 1) on [0, 1] (Zhou et al. 2026, eq. 15)."""
    if not (alpha > 0 and math.isfinite(alpha)):
        raise SwapInputError(f"alpha must be a finite number > 0, got {alpha!r}")
    scale = math.expm1(alpha)

    def weight(t: np.ndarray) -> np.ndarray:
        return np.expm1(alpha * np.asarray(t, np.float64)) / scale

    weight.__name__ = f"exponential_weight_{alpha:g}"
    return weight


_DEFAULT_WEIGHT = exponential_weight(2.0)
_MIN_PROBABILITY = np.finfo(np.float64).tiny  # ln(p) of a posterior that rounded to 0


def esc_score(traj_offsets, traj_values, true_label, *,
              weight: Callable[[np.ndarray], np.ndarray] = _DEFAULT_WEIGHT
              ) -> np.ndarray:
    """Early-Stable Classification score (Zhou et al. 2026, Definition 2, eq. 14), per subject:

        ESC_s = -(1/Z) sum_{t=1}^{T-1} w(t/T) |p_t - p_{t+1}| ln p_{t,*},
        Z = sum_{t=1}^{T-1} w(t/T) |p_t - p_{t+1}|.

    Smaller is better. When Z == 0 (with a weight positive on (0, 1], exactly when the
    trajectory never moves) the score is -ln p_{T,*}: the weighted mean of -ln p_{t,*} is
    then the same whatever the weights, since every p_{t,*} equals p_{T,*}, and it is also
    the limit of the score as the movements shrink to zero; it still rewards a subject that
    sits confidently on the true class and penalises one that sits on the wrong one.
    NaN where the truth is UNKNOWN or T < 2. A probability that rounded to 0 is taken as the
    smallest positive double, so the score stays finite.
    """
    offsets, values = _trajectories(traj_offsets, traj_values)
    true_label, seg, p_star = _true_class_probability(offsets, values, true_label)
    n = offsets.shape[0] - 1
    lengths = np.diff(offsets)
    m = values.shape[0]
    neg_log = -np.log(np.maximum(p_star, _MIN_PROBABILITY))

    # Terms t = 1 .. T-1: every point but the last of its trajectory.
    has_next = np.ones(m, bool)
    has_next[offsets[1:][lengths > 0] - 1] = False
    idx = np.flatnonzero(has_next)
    t = idx - offsets[seg[idx]] + 1
    w = np.asarray(weight(t / lengths[seg[idx]]), np.float64)
    if w.shape != idx.shape or not np.isfinite(w).all() or (w < 0).any():
        raise SwapInputError("weight must map an array of t in [0, 1] to finite values >= 0")
    moved = w * np.abs(values[idx + 1] - values[idx])
    z = np.bincount(seg[idx], weights=moved, minlength=n)
    total = np.bincount(seg[idx], weights=moved * neg_log[idx], minlength=n)

    out = np.full(n, np.nan)
    scored = (lengths >= 2) & (true_label != UNKNOWN)
    moving = scored & (z > 0)
    out[moving] = total[moving] / z[moving]
    still = scored & (z == 0)
    out[still] = neg_log[offsets[1:][still] - 1]
    return out
