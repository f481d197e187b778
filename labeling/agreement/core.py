"""Agreement between reference labels: confusion matrices, Cohen's kappa, and each expert's
agreement with the consensus of the other labels. Pure numpy: no Django.

Labels are integer codes, indexes into `CATEGORIES` (real, bogus, unsure). Unsure is a
category like the others: it has its row and column in every confusion matrix and counts in
kappa, so two raters who are both unsure agree, and one unsure against a Real disagrees.
Because an Unsure label is not reference truth, kappa is also reported on Real/Bogus only:
the sub-matrix of the subjects both raters called Real or Bogus.

Degenerate cases, defined once here:
- no subjects in common: percent agreement and kappa are None;
- chance agreement p_e = 1 (both raters gave the same single category to every subject):
  kappa is 0/0 and None, not NaN, so it serialises as JSON null. Both raters constant on
  *different* categories is not degenerate: p_o = p_e = 0 and kappa = 0;
- perfect agreement with at least two categories used: kappa = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeling.records import COUNTED_REFERENCE_LABELS, REFERENCE_LABELS

CATEGORIES = REFERENCE_LABELS
CATEGORY_CODE = {name: code for code, name in enumerate(CATEGORIES)}
REAL_BOGUS_CODES = np.array([CATEGORY_CODE[label] for label in COUNTED_REFERENCE_LABELS])
# Consensus codes use this for "the other labels have no single most common category".
NO_CONSENSUS = -1

# Landis & Koch (1977): the lower edge of each band, highest first; below 0 is "poor". The
# bands are published on two decimals (0.61-0.80, 0.81-1.00), so kappa is rounded to two
# decimals, as the pages show it, before its band is looked up.
KAPPA_BANDS = (
    (0.81, "almost perfect"),
    (0.61, "substantial"),
    (0.41, "moderate"),
    (0.21, "fair"),
    (0.0, "slight"),
)


@dataclass(frozen=True)
class Agreement:
    """Two raters on the subjects both labelled: rows are the first rater, columns the second."""

    confusion: np.ndarray  # (K, K) int64, K = len(CATEGORIES)

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def percent_agreement(self) -> float | None:
        return percent_agreement(self.confusion)

    @property
    def kappa(self) -> float | None:
        return cohen_kappa(self.confusion)

    @property
    def rows(self) -> list[tuple[str, list[int]]]:
        """(first rater's category, its row of counts), for tables."""
        return list(zip(CATEGORIES, self.confusion.tolist(), strict=True))

    @property
    def kappa_band(self) -> str:
        return kappa_band(self.kappa)

    @property
    def real_bogus(self) -> np.ndarray:
        """The confusion matrix of the subjects both raters called Real or Bogus."""
        return self.confusion[np.ix_(REAL_BOGUS_CODES, REAL_BOGUS_CODES)]

    @property
    def n_real_bogus(self) -> int:
        return int(self.real_bogus.sum())

    @property
    def kappa_real_bogus(self) -> float | None:
        return cohen_kappa(self.real_bogus)


def confusion_matrix(first: np.ndarray, second: np.ndarray,
                     n_categories: int = len(CATEGORIES)) -> np.ndarray:
    """Counts of (first rater's code, second rater's code) over paired labels."""
    first, second = np.asarray(first, np.int64), np.asarray(second, np.int64)
    if first.shape != second.shape:
        raise ValueError(f"paired labels differ in shape: {first.shape} and {second.shape}")
    if first.size and (min(first.min(), second.min()) < 0
                       or max(first.max(), second.max()) >= n_categories):
        raise ValueError(f"label codes must lie in [0, {n_categories})")
    flat = np.bincount(first * n_categories + second, minlength=n_categories * n_categories)
    return flat.reshape(n_categories, n_categories)


def percent_agreement(confusion: np.ndarray) -> float | None:
    """100 x p_o, the share of subjects on the diagonal; None with no subjects."""
    n = int(confusion.sum())
    return None if n == 0 else 100.0 * int(np.trace(confusion)) / n


def cohen_kappa(confusion: np.ndarray) -> float | None:
    """Cohen's kappa = (p_o - p_e) / (1 - p_e), with p_e from the two raters' marginals.

    Computed on integer counts, (n * trace - sum_k r_k c_k) / (n^2 - sum_k r_k c_k), so that
    perfect agreement gives exactly 1. None with no subjects or when p_e = 1 (see the module).
    """
    confusion = np.asarray(confusion, np.int64)
    n = int(confusion.sum())
    chance = int(confusion.sum(axis=1) @ confusion.sum(axis=0))
    if n == 0 or chance == n * n:
        return None
    return (n * int(np.trace(confusion)) - chance) / (n * n - chance)


def kappa_band(kappa: float | None) -> str:
    """Landis & Koch's words for a kappa value."""
    if kappa is None:
        return "undefined"
    for lower, words in KAPPA_BANDS:
        if round(kappa, 2) >= lower:
            return words
    return "poor"


def pair_agreement(subjects_a: np.ndarray, codes_a: np.ndarray,
                   subjects_b: np.ndarray, codes_b: np.ndarray) -> Agreement:
    """Two label sets (each labels a subject at most once) on the subjects both label."""
    _, in_a, in_b = np.intersect1d(subjects_a, subjects_b, assume_unique=True,
                                   return_indices=True)
    return Agreement(confusion_matrix(np.asarray(codes_a)[in_a], np.asarray(codes_b)[in_b]))


def consensus_of_others(subjects: np.ndarray, raters: np.ndarray,
                        codes: np.ndarray) -> np.ndarray:
    """For each label, the most common category among the labels of the same subject by other
    raters, or NO_CONSENSUS when there are none or two categories tie for most common.

    A rater's other labels of the same subject (an expert in two teams) are excluded too, so
    nobody is compared with themself. With Real and Bogus only this is the strict majority.
    """
    subjects, raters = np.asarray(subjects, np.int64), np.asarray(raters, np.int64)
    codes = np.asarray(codes, np.int64)
    n_categories = len(CATEGORIES)
    if subjects.size == 0:
        return np.empty(0, np.int64)
    _, subject_row = np.unique(subjects, return_inverse=True)
    per_subject = np.zeros((subject_row.max() + 1, n_categories), np.int64)
    np.add.at(per_subject, (subject_row, codes), 1)
    rater_ids, rater_row = np.unique(raters, return_inverse=True)
    # One integer per (subject, rater): a 1-D unique is far faster than np.unique(axis=1).
    _, pair_row = np.unique(subject_row * len(rater_ids) + rater_row, return_inverse=True)
    per_rater_subject = np.zeros((pair_row.max() + 1, n_categories), np.int64)
    np.add.at(per_rater_subject, (pair_row, codes), 1)
    others = per_subject[subject_row] - per_rater_subject[pair_row]
    top = others.max(axis=1)
    unique_top = (others == top[:, None]).sum(axis=1) == 1
    return np.where((top > 0) & unique_top, others.argmax(axis=1), NO_CONSENSUS)


@dataclass(frozen=True)
class RaterAgreement:
    rater: int
    n_labelled: int
    with_consensus: Agreement  # rows the rater, columns the consensus

    @property
    def n_with_consensus(self) -> int:
        return self.with_consensus.n


def raters_against_consensus(subjects: np.ndarray, raters: np.ndarray, codes: np.ndarray,
                             reported: np.ndarray) -> list[RaterAgreement]:
    """Each rater in `reported` (ascending) against the consensus of the others' labels.

    Every label takes part in the consensus of others; only the raters in `reported` are
    scored (labels with no named expert are other raters' evidence, but nobody to report).
    """
    consensus = consensus_of_others(subjects, raters, codes)
    raters, codes = np.asarray(raters, np.int64), np.asarray(codes, np.int64)
    results = []
    for rater in np.asarray(reported, np.int64):
        own = raters == rater
        scored = own & (consensus != NO_CONSENSUS)
        results.append(RaterAgreement(
            rater=int(rater),
            n_labelled=int(own.sum()),
            with_consensus=Agreement(confusion_matrix(codes[scored], consensus[scored])),
        ))
    return results
