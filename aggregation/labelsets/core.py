"""Which subjects a label set holds, and in which split: selection, balance, split, injections.

Pure numpy: no Django. The inputs are one entry per candidate subject, in a canonical order
(the service sorts by subject id), so the same inputs and seed always give the same plan.

The rules:
- Selection: a subject needs a label (the final Pr(Real) against the run's thresholds); the
  stable scenario also needs the label to have held for the stability window. With a minimum
  SNR, |SNR| must reach it (a fading source has a negative SNR and is as significant as its
  positive twin) and a subject of unknown SNR is left out.
- Balance (`subsample`): within each group (all subjects, or each origin when stratified),
  the larger class is subsampled at random to the size of the smaller, so the classes are
  exactly equal in every group.
- Split: within each stratum (class, or class x origin) the subjects are shuffled and cut by
  the largest-remainder rule, so every split holds its fraction of the stratum to within one
  subject, and every subject is in exactly one split.
- Injections (fakes with known truth) go to the training split only, never to validation or
  test, which stay volunteer labels: `fraction` is their share of the resulting training
  split, drawn equally from both classes when the set is balanced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aggregation.swap.types import BOGUS, REAL, UNKNOWN

SPLIT_NAMES = ("train", "val", "test")
TRAIN = SPLIT_NAMES.index("train")
DEFAULT_SPLIT = (0.8, 0.1, 0.1)
CLASS_NAMES = {REAL: "real", BOGUS: "bogus"}
# How far the split fractions may sum from 1 (they are typed as decimals, e.g. 0.7,0.2,0.1).
FRACTION_SUM_TOLERANCE = 1e-6


class PlanError(ValueError):
    """A label set that cannot be planned as asked; the message says why."""


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Train, validation and test fractions: three finite numbers >= 0 that sum to 1."""
    values = tuple(fractions)
    if len(values) != len(SPLIT_NAMES):
        raise PlanError(
            f"the split needs {len(SPLIT_NAMES)} fractions ({', '.join(SPLIT_NAMES)}), "
            f"got {len(values)}"
        )
    for name, value in zip(SPLIT_NAMES, values, strict=True):
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise PlanError(f"the {name} fraction must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise PlanError(f"the {name} fraction must be finite and >= 0, got {value}")
    total = math.fsum(values)
    if abs(total - 1.0) > FRACTION_SUM_TOLERANCE:
        raise PlanError(f"the split fractions must sum to 1, got {total:g}")
    return tuple(float(v) / total for v in values)


def selection_mask(
    labels: np.ndarray,
    stable: np.ndarray,
    snr: np.ndarray,
    *,
    stable_only: bool,
    min_snr: float | None,
) -> np.ndarray:
    """The candidates a scenario takes: labelled (and stable), and significant enough."""
    labels, stable, snr = np.asarray(labels), np.asarray(stable, bool), np.asarray(snr, float)
    mask = labels != UNKNOWN
    if stable_only:
        mask &= stable
    if min_snr is not None:
        with np.errstate(invalid="ignore"):
            mask &= np.abs(snr) >= min_snr  # NaN compares False: unknown SNR is left out
    return mask


def balanced_subsample(labels: np.ndarray, groups: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """A mask keeping, in each group, every subject of the smaller class and as many of the
    larger, drawn at random."""
    keep = np.zeros(len(labels), dtype=bool)
    for group in np.unique(groups):
        real = np.flatnonzero((groups == group) & (labels == REAL))
        bogus = np.flatnonzero((groups == group) & (labels == BOGUS))
        n = min(len(real), len(bogus))
        for members in (real, bogus):
            keep[members if len(members) == n else rng.permutation(members)[:n]] = True
    return keep


def split_sizes(n: int, fractions: Sequence[float]) -> np.ndarray:
    """n cut by the fractions with the largest-remainder rule: each size is within one of
    fraction x n, and a split of fraction 0 gets nothing."""
    exact = n * np.asarray(fractions, dtype=np.float64)
    sizes = np.floor(exact).astype(np.int64)
    left = n - int(sizes.sum())
    # Stable sort: equal remainders go to the earlier split (train before val before test).
    order = np.argsort(-(exact - sizes), kind="stable")
    sizes[order[:left]] += 1
    return sizes


def assign_splits(labels: np.ndarray, groups: np.ndarray, fractions: Sequence[float],
                  rng: np.random.Generator) -> np.ndarray:
    """The split index (0 train, 1 val, 2 test) of each subject, stratified by class and
    group."""
    split = np.empty(len(labels), dtype=np.int8)
    for group in np.unique(groups):
        for label in (REAL, BOGUS):
            members = rng.permutation(np.flatnonzero((groups == group) & (labels == label)))
            bounds = np.cumsum(split_sizes(len(members), fractions))
            for index, part in enumerate(np.split(members, bounds[:-1])):
                split[part] = index
    return split


def injection_target(n_train: int, fraction: float) -> float:
    """Injections that make up exactly `fraction` of a training split that also holds
    n_train labelled subjects (a float: the draw rounds it)."""
    return n_train * fraction / (1.0 - fraction)


def draw_injections(labels: np.ndarray, target: float, *, balanced: bool,
                    rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of injections drawn at random: `target` rounded, or, when balanced,
    `target / 2` rounded of each class."""
    if not balanced:
        n = _round_half_up(target)
        if n > len(labels):
            raise PlanError(f"the injection set has {len(labels)} usable subjects; "
                            f"{n} are needed: ask for a smaller fraction")
        return np.sort(rng.permutation(len(labels))[:n])
    per_class = _round_half_up(target / 2)
    drawn = []
    for label in (REAL, BOGUS):
        members = np.flatnonzero(labels == label)
        if per_class > len(members):
            raise PlanError(
                f"the injection set has {len(members)} usable {CLASS_NAMES[label]} subjects; "
                f"a balanced mix needs {per_class} of each class: ask for a smaller fraction "
                "or --balance none"
            )
        drawn.append(rng.permutation(members)[:per_class])
    return np.sort(np.concatenate(drawn))


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


@dataclass(frozen=True)
class LabelSetPlan:
    """`selected`: sorted indices of the candidates kept; `split[i]`: the split of
    `selected[i]`; `injections`: sorted indices into the injection pool, all in train."""

    selected: np.ndarray
    split: np.ndarray
    injections: np.ndarray

    def split_of(self, index: int) -> np.ndarray:
        """Indices (into the candidates) of the selected subjects in one split."""
        return self.selected[self.split == index]


def plan_label_set(
    candidate_ids: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    balance: bool,
    fractions: Sequence[float],
    seed: int,
    injection_ids: np.ndarray | None = None,
    injection_labels: np.ndarray | None = None,
    injection_fraction: float | None = None,
) -> LabelSetPlan:
    """Balance, split and mix in injections, drawing from one generator seeded by `seed`.

    `labels` are REAL/BOGUS of the candidates already selected (`selection_mask`); `groups`
    the stratum of each (an origin code, or all equal). Injections whose id is also a kept
    candidate are left out of the injection pool, so no subject is in two splits.
    """
    candidate_ids = np.asarray(candidate_ids, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int8)
    groups = np.asarray(groups)
    if not len(candidate_ids) == len(labels) == len(groups):
        raise PlanError("candidate ids, labels and groups must have one entry per subject")
    if not np.isin(labels, (REAL, BOGUS)).all():
        raise PlanError("every candidate needs a Real or Bogus label")
    fractions = check_fractions(fractions)
    rng = np.random.default_rng(seed)
    keep = balanced_subsample(labels, groups, rng) if balance else np.ones(len(labels), bool)
    selected = np.flatnonzero(keep)
    split = assign_splits(labels[selected], groups[selected], fractions, rng)
    injections = np.empty(0, dtype=np.int64)
    if injection_fraction is not None:
        if not 0.0 < injection_fraction < 1.0:
            raise PlanError(f"the injection fraction must lie in (0, 1), got {injection_fraction}")
        injection_ids = np.asarray(injection_ids, dtype=np.int64)
        injection_labels = np.asarray(injection_labels, dtype=np.int8)
        usable = np.flatnonzero(~np.isin(injection_ids, candidate_ids[selected]))
        target = injection_target(int((split == TRAIN).sum()), injection_fraction)
        drawn = draw_injections(injection_labels[usable], target, balanced=balance, rng=rng)
        injections = usable[drawn]
    return LabelSetPlan(selected=selected, split=split, injections=injections)
