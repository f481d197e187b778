"""How good a Real/Bogus classifier is, from its scores on labelled subjects. Pure numpy.

The measures are those of DMTN-337 (the Rubin ML-reliability report) and of the ATLAS Virtual
Research Assistant (Stevance et al.):

- purity (precision) and completeness (recall) of "called Real" = score >= threshold, on a grid
  of thresholds, overall and per data origin;
- the thresholds where the survey requirement (purity >= 95% and completeness >= 90%, LSE-30
  OSS-REQ-0353) holds, and the threshold where purity = completeness;
- the distribution of scores per class, and the score against |SNR| per class;
- recall at rank K (the fraction of all Reals among the K highest scores) and its normalised
  area, and the ROC AUC.

`evaluate` gathers everything into a compact JSON-serialisable dict that the pages store and
draw from (`training.ml.plots`) without the per-subject arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "COMPLETENESS_MIN",
    "DISTRIBUTION_BINS",
    "PURITY_MIN",
    "RECALL_AT_RANK_POINTS",
    "SNR_BINS",
    "THRESHOLDS",
    "Curve",
    "equal_point",
    "evaluate",
    "purity_completeness",
    "recall_at_rank",
    "requirement_message",
    "requirement_ranges",
    "roc_auc",
]

# The survey requirement (DESIGN.md, "The CNN"; LSE-30 transPurityMin / transCompletenessMin).
PURITY_MIN = 0.95
COMPLETENESS_MIN = 0.90
# Step 0.005 from 0 to 1. Rounded to 3 decimals because linspace gives e.g. 0.015000000000000001,
# and a score of exactly 0.015 must count as "called Real" at the threshold reported as 0.015.
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 201), 3)
THRESHOLDS.flags.writeable = False  # the shared default grid must not be changed in place
# 50 equal bins of the score between 0 and 1 (51 edges).
DISTRIBUTION_BINS = np.linspace(0.0, 1.0, 51)
DISTRIBUTION_BINS.flags.writeable = False
SNR_BINS = 12  # log-spaced |SNR| bins over the finite values
SNR_PERCENTILES = (16.0, 50.0, 84.0)  # the median and a 1-sigma-like band
# At most this many (k, recall@k) points are stored: all of them when N is no larger.
RECALL_AT_RANK_POINTS = 200
RECALL_LEVELS = {"k_at_half": (1, 2), "k_at_90": (9, 10)}  # recall >= numerator / denominator
JSON_DECIMALS = 6  # stored fractions are rounded, which keeps the stored dict a few tens of KB


@dataclass(frozen=True)
class Curve:
    """Purity and completeness of "score >= threshold" on a grid of thresholds.

    purity = TP / (TP + FP), NaN where nothing is called Real; completeness = TP / (TP + FN),
    NaN everywhere when there are no Reals.
    """

    thresholds: np.ndarray
    purity: np.ndarray
    completeness: np.ndarray
    n_real: int
    n_bogus: int


# --- input checks -------------------------------------------------------------------------


def _scores_and_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """(scores float64, labels bool) checked: 1-D, same non-zero length, scores in [0, 1]
    without NaN, labels 0/1 (or booleans)."""
    try:
        scores = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"scores must be numbers: {error}") from None
    if scores.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, not of shape {scores.shape}")
    raw_labels = np.asarray(labels)
    if raw_labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, not of shape {raw_labels.shape}")
    if scores.shape[0] != raw_labels.shape[0]:
        raise ValueError(f"scores and labels differ in length ({scores.shape[0]} scores, "
                         f"{raw_labels.shape[0]} labels)")
    if scores.shape[0] == 0:
        raise ValueError("no scores: the evaluation needs at least one subject")
    n_nan = int(np.isnan(scores).sum())
    if n_nan:
        raise ValueError(f"scores contain NaN ({n_nan} of {scores.shape[0]})")
    if scores.min() < 0.0 or scores.max() > 1.0:
        raise ValueError(f"scores must lie in [0, 1]; they range from {scores.min():g} "
                         f"to {scores.max():g}")
    if raw_labels.dtype == bool:
        return scores, raw_labels
    if raw_labels.dtype.kind not in "iuf":
        raise ValueError(f"labels must be 0 (Bogus) or 1 (Real), not of type {raw_labels.dtype}")
    binary = (raw_labels == 0) | (raw_labels == 1)
    if not binary.all():
        odd = np.unique(raw_labels[~binary])[:5]
        raise ValueError(f"labels must be 0 (Bogus) or 1 (Real); found {odd.tolist()}")
    return scores, raw_labels == 1


def _thresholds(thresholds) -> np.ndarray:
    grid = np.asarray(thresholds, dtype=np.float64)
    if grid.ndim != 1 or grid.shape[0] == 0:
        raise ValueError("thresholds must be a non-empty one-dimensional grid")
    if not np.isfinite(grid).all():
        raise ValueError("thresholds must be finite")
    if (np.diff(grid) <= 0).any():
        raise ValueError("thresholds must be strictly increasing")
    return grid


def _fraction(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], not {value!r}")
    return float(value)


# --- purity, completeness and the requirement ----------------------------------------------


def purity_completeness(scores, labels, thresholds=THRESHOLDS) -> Curve:
    """Purity and completeness of calling Real every subject with score >= t, for each t."""
    scores, is_real = _scores_and_labels(scores, labels)
    grid = _thresholds(thresholds)
    real_scores, bogus_scores = np.sort(scores[is_real]), np.sort(scores[~is_real])
    # Subjects with score >= t: those after the first sorted score that is >= t.
    true_positives = real_scores.size - np.searchsorted(real_scores, grid, side="left")
    false_positives = bogus_scores.size - np.searchsorted(bogus_scores, grid, side="left")
    called_real = true_positives + false_positives
    with np.errstate(invalid="ignore", divide="ignore"):
        purity = np.where(called_real > 0, true_positives / called_real, np.nan)
        completeness = (true_positives / real_scores.size if real_scores.size
                        else np.full(grid.shape, np.nan))
    return Curve(thresholds=grid, purity=purity, completeness=completeness,
                 n_real=int(real_scores.size), n_bogus=int(bogus_scores.size))


def _meets(curve: Curve, purity_min: float, completeness_min: float) -> np.ndarray:
    """Whether both hold at each threshold (False where either is undefined)."""
    with np.errstate(invalid="ignore"):
        return (curve.purity >= purity_min) & (curve.completeness >= completeness_min)


def requirement_ranges(curve: Curve, purity_min: float = PURITY_MIN,
                       completeness_min: float = COMPLETENESS_MIN) -> list[tuple[float, float]]:
    """The maximal runs of consecutive grid thresholds where purity >= purity_min and
    completeness >= completeness_min both hold, as (first, last) threshold of each run;
    [] when no threshold meets both."""
    meets = _meets(curve, _fraction("purity_min", purity_min),
                   _fraction("completeness_min", completeness_min)).astype(np.int8)
    # +1 where a run starts, -1 just after it ends.
    steps = np.diff(np.concatenate([[0], meets, [0]]))
    starts, stops = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1) - 1
    return [(float(curve.thresholds[start]), float(curve.thresholds[stop]))
            for start, stop in zip(starts, stops, strict=True)]


def _best_purity(curve: Curve, completeness_min: float) -> tuple[float, float] | None:
    """(threshold, purity) with the highest purity among thresholds whose completeness is at
    least completeness_min (the lowest such threshold on ties); None when there is none."""
    with np.errstate(invalid="ignore"):
        eligible = (curve.completeness >= completeness_min) & np.isfinite(curve.purity)
    if not eligible.any():
        return None
    candidates = np.flatnonzero(eligible)
    best = candidates[int(np.argmax(curve.purity[candidates]))]
    return float(curve.thresholds[best]), float(curve.purity[best])


def _percent(fraction: float) -> str:
    return f"{round(100.0 * fraction, 1):g}%"


def _threshold_text(value: float) -> str:
    return f"{round(value, 4):g}"


def requirement_message(curve: Curve, purity_min: float = PURITY_MIN,
                        completeness_min: float = COMPLETENESS_MIN) -> str:
    """One plain sentence: where the requirement holds, or that it holds nowhere and what
    comes closest (the best purity while completeness still meets its minimum)."""
    requirement = f"purity >= {_percent(purity_min)} and completeness >= " \
                  f"{_percent(completeness_min)}"
    ranges = requirement_ranges(curve, purity_min, completeness_min)
    if ranges:
        spans = [_threshold_text(lo) if lo == hi
                 else f"{_threshold_text(lo)}-{_threshold_text(hi)}" for lo, hi in ranges]
        return f"{requirement} both hold for thresholds {' and '.join(spans)}"
    if curve.n_real == 0:
        return f"no threshold meets {requirement}: there are no Real subjects, so " \
               "completeness is undefined"
    best = _best_purity(curve, completeness_min)
    if best is None:
        return f"no threshold meets {requirement}: no threshold on the grid reaches " \
               f"completeness >= {_percent(completeness_min)}"
    threshold, purity = best
    return f"no threshold meets {requirement}: the best purity at completeness >= " \
           f"{_percent(completeness_min)} is {_percent(purity)} (threshold " \
           f"{_threshold_text(threshold)})"


def equal_point(curve: Curve) -> tuple[float, float] | None:
    """(threshold, value) where purity = completeness.

    Taken at the first grid threshold where purity - completeness is zero or changes sign
    (over the thresholds where both are defined): an exact zero returns that grid point, a
    sign change between two neighbours is interpolated linearly (both curves, hence their
    difference, linear between the two). None when they never meet on the grid.
    """
    defined = np.flatnonzero(np.isfinite(curve.purity) & np.isfinite(curve.completeness))
    if defined.size == 0:
        return None
    thresholds = curve.thresholds[defined]
    purity, completeness = curve.purity[defined], curve.completeness[defined]
    difference = purity - completeness
    zeros = np.flatnonzero(difference == 0)
    crossings = np.flatnonzero(difference[:-1] * difference[1:] < 0)
    first_zero = zeros[0] if zeros.size else difference.size
    first_crossing = crossings[0] if crossings.size else difference.size
    if first_zero == first_crossing == difference.size:
        return None
    if first_zero <= first_crossing:
        return float(thresholds[first_zero]), float(purity[first_zero])
    i = first_crossing
    weight = difference[i] / (difference[i] - difference[i + 1])
    threshold = thresholds[i] + weight * (thresholds[i + 1] - thresholds[i])
    return float(threshold), float(purity[i] + weight * (purity[i + 1] - purity[i]))


# --- ranking ---------------------------------------------------------------------------------


def recall_at_rank(scores, labels) -> tuple[np.ndarray, float]:
    """Recall at rank K (Stevance et al., eq. 1) for K = 1..N, and its normalised area.

    The subjects are ranked by decreasing score, ties in their input order (a stable sort).
    recall[K-1] = (Reals among the top K) / (all Reals).

    area = sum_K recall@K / sum_K perfect@K, where perfect@K = min(K, n_real) / n_real is the
    recall of a ranking that puts every Real first. The VRA's AuRaK is the unnormalised
    mean_K recall@K (the area under recall against the fraction of the list inspected), whose
    best value is 1 - (n_real - 1) / (2 N) and so depends on the class balance; dividing by
    that best value makes 1 mean a perfect ranking whatever the balance. The area lies in
    (0, 1]: a random ranking scores (N + 1) / (2 N - n_real + 1) on average, i.e. ~0.5 when
    Reals are rare and ~2/3 when the classes are balanced; the reversed (worst) ranking scores
    (n_real + 1) / (2 N - n_real + 1).

    Raises ValueError when there is no Real (recall is undefined).
    """
    scores, is_real = _scores_and_labels(scores, labels)
    n_real = int(is_real.sum())
    if n_real == 0:
        raise ValueError("recall at rank needs at least one Real subject")
    order = np.argsort(-scores, kind="stable")
    found = np.cumsum(is_real[order])
    recall = found / n_real
    ranks = np.arange(1, scores.size + 1)
    perfect = np.minimum(ranks, n_real)
    return recall, float(found.sum() / perfect.sum())


def roc_auc(scores, labels) -> float | None:
    """Area under the ROC curve: the probability that a random Real scores higher than a
    random Bogus, ties counting one half (the Mann-Whitney U statistic / (n_real n_bogus)).
    None when either class is missing."""
    scores, is_real = _scores_and_labels(scores, labels)
    n_real, n_bogus = int(is_real.sum()), int((~is_real).sum())
    if n_real == 0 or n_bogus == 0:
        return None
    _, tie_group, tie_counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Tied scores share the mean of the 1-based ranks they span.
    first_rank = np.cumsum(tie_counts) - tie_counts + 1
    mean_rank = first_rank + (tie_counts - 1) / 2.0
    real_rank_sum = float(mean_rank[tie_group][is_real].sum())
    return (real_rank_sum - n_real * (n_real + 1) / 2.0) / (n_real * n_bogus)


# --- the stored evaluation -------------------------------------------------------------------


def _json_list(values, decimals: int = JSON_DECIMALS) -> list[float | None]:
    """Rounded plain floats, None for NaN (JSON has no NaN)."""
    return [None if not np.isfinite(value) else round(float(value), decimals)
            for value in np.asarray(values, dtype=np.float64)]


def _json_float(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), JSON_DECIMALS)


def _curve_summary(scores: np.ndarray, is_real: np.ndarray, grid: np.ndarray) -> dict:
    curve = purity_completeness(scores, is_real, grid)
    ranges = requirement_ranges(curve)
    best = _best_purity(curve, COMPLETENESS_MIN)
    crossing = equal_point(curve)
    return {
        "n": int(scores.size),
        "n_real": curve.n_real,
        "n_bogus": curve.n_bogus,
        "curve": {"thresholds": _json_list(curve.thresholds),
                  "purity": _json_list(curve.purity),
                  "completeness": _json_list(curve.completeness)},
        "requirement": {
            "purity_min": PURITY_MIN,
            "completeness_min": COMPLETENESS_MIN,
            "ranges": [[_json_float(lo), _json_float(hi)] for lo, hi in ranges],
            "met": bool(ranges),
            "message": requirement_message(curve),
            "best": None if best is None else {"threshold": _json_float(best[0]),
                                               "purity": _json_float(best[1])},
        },
        "equal_point": None if crossing is None else {"threshold": _json_float(crossing[0]),
                                                      "value": _json_float(crossing[1])},
    }


def _distribution(scores: np.ndarray, is_real: np.ndarray) -> dict:
    return {
        "bins": _json_list(DISTRIBUTION_BINS),
        "real": np.histogram(scores[is_real], DISTRIBUTION_BINS)[0].tolist(),
        "bogus": np.histogram(scores[~is_real], DISTRIBUTION_BINS)[0].tolist(),
    }


def _snr_edges(magnitudes: np.ndarray) -> np.ndarray:
    """SNR_BINS log-spaced edges spanning the positive |SNR| values (a decade around a
    single value; 1 to 10 when every |SNR| is zero)."""
    positive = magnitudes[magnitudes > 0]
    low, high = (positive.min(), positive.max()) if positive.size else (1.0, 1.0)
    if high <= low:
        low, high = low / np.sqrt(10.0), high * np.sqrt(10.0)
    return np.geomspace(low, high, SNR_BINS + 1)


def _snr_summary(scores: np.ndarray, is_real: np.ndarray, snr) -> dict:
    """Scores per class in log-spaced |SNR| bins: n, 16th, 50th and 84th percentiles."""
    try:
        snr = np.asarray(snr, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"snr must be numbers (NaN where unknown): {error}") from None
    if snr.shape != scores.shape:
        raise ValueError(f"snr must have one value per score ({scores.size}), "
                         f"not shape {snr.shape}")
    known = np.isfinite(snr)
    summary: dict = {"n_unknown": int((~known).sum()), "edges": [], "centres": []}
    if not known.any():
        for name in ("real", "bogus"):
            summary[name] = {"n": [], "p16": [], "median": [], "p84": []}
        return summary
    magnitudes = np.abs(snr[known])
    edges = _snr_edges(magnitudes)
    # Zeros and values on the last edge fall into the first and last bins.
    bin_of = np.clip(np.searchsorted(edges, magnitudes, side="right") - 1, 0, SNR_BINS - 1)
    summary["edges"] = _json_list(edges)
    summary["centres"] = _json_list(np.sqrt(edges[:-1] * edges[1:]))
    known_scores, known_real = scores[known], is_real[known]
    for name, in_class in (("real", known_real), ("bogus", ~known_real)):
        counts, low, middle, high = [], [], [], []
        for index in range(SNR_BINS):
            values = known_scores[in_class & (bin_of == index)]
            counts.append(int(values.size))
            if values.size:
                p16, p50, p84 = np.percentile(values, SNR_PERCENTILES)
                low.append(_json_float(p16))
                middle.append(_json_float(p50))
                high.append(_json_float(p84))
            else:
                low.append(None)
                middle.append(None)
                high.append(None)
        summary[name] = {"n": counts, "p16": low, "median": middle, "p84": high}
    return summary


def _rank_points(n: int) -> np.ndarray:
    """The ranks K stored: all of 1..n when n <= RECALL_AT_RANK_POINTS, else a mix of
    log-spaced ranks (the top of the list) and evenly spaced ones (the rest), with 1 and n."""
    if n <= RECALL_AT_RANK_POINTS:
        return np.arange(1, n + 1)
    n_linear = RECALL_AT_RANK_POINTS // 4
    n_log = RECALL_AT_RANK_POINTS - n_linear
    ranks = np.concatenate([np.geomspace(1, n, n_log), np.linspace(1, n, n_linear)])
    return np.unique(np.rint(ranks).astype(np.int64))


def _recall_summary(scores: np.ndarray, is_real: np.ndarray) -> dict | None:
    if not is_real.any():
        return None
    recall, area = recall_at_rank(scores, is_real)
    n_real = int(is_real.sum())
    found = np.rint(recall * n_real).astype(np.int64)
    ranks = _rank_points(scores.size)
    summary: dict = {"k": ranks.tolist(), "recall": _json_list(recall[ranks - 1]),
                     "area": _json_float(area)}
    for key, (numerator, denominator) in RECALL_LEVELS.items():
        # Integer comparison: "found / n_real >= 0.9" without rounding error.
        reached = np.flatnonzero(found * denominator >= numerator * n_real)
        summary[key] = int(reached[0]) + 1
    return summary


def _origins(origins, n: int) -> np.ndarray:
    origins = np.asarray(origins)
    if origins.shape != (n,):
        raise ValueError(f"origins must have one value per score ({n}), "
                         f"not shape {origins.shape}")
    return origins.astype(str)


def evaluate(scores, labels, *, origins: Sequence[str] | np.ndarray | None = None,
             snr=None, thresholds=THRESHOLDS) -> dict:
    """Everything the evaluation pages show, as a JSON-serialisable dict (plain numbers,
    lists, strings; None where undefined), compact enough to store (tens of KB for 100,000
    subjects): "n", "n_real", "n_bogus", "curve", "requirement", "equal_point",
    "distribution", "recall_at_rank" (None without Reals), "roc_auc", and "per_origin" and
    "snr" when origins / snr are given. Fractions are rounded to JSON_DECIMALS decimals.

    snr: one value per subject, NaN (or inf) where unknown; those are counted in
    snr["n_unknown"] and left out of the bins.
    """
    scores, is_real = _scores_and_labels(scores, labels)
    grid = _thresholds(thresholds)
    evaluation = _curve_summary(scores, is_real, grid)
    evaluation["distribution"] = _distribution(scores, is_real)
    evaluation["recall_at_rank"] = _recall_summary(scores, is_real)
    evaluation["roc_auc"] = _json_float(roc_auc(scores, is_real))
    if origins is not None:
        origin_of = _origins(origins, scores.size)
        evaluation["per_origin"] = {
            str(origin): _curve_summary(scores[origin_of == origin],
                                        is_real[origin_of == origin], grid)
            for origin in np.unique(origin_of)
        }
    if snr is not None:
        evaluation["snr"] = _snr_summary(scores, is_real, snr)
    return evaluation
