"""SWAP over a whole classification table at once: volunteer skills from reference subjects,
per-subject posteriors and trajectories (batch), the same with the skill known at each
classification (vectorised online), Dawid-Skene-style EM, the stable/unstable labels, and
majority vote.

The model (Marshall et al. 2016, with the Rubin Difference Detectives changes of DMTN-337):
volunteer k has P_k(says Real | Real) and P_k(says Bogus | Bogus), counted on the reference
subjects they classified with pseudo-counts, and clamped to [floor, ceiling]. A subject starts
at the prior and each contributing classification multiplies its odds of Real by
p_real / (1 - p_bogus) for a "Real" answer, by (1 - p_real) / p_bogus for "Bogus"; the
trajectory is Pr(Real) after each one. Everything here is vectorised over rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import expit

from aggregation.swap._segments import grouped_running_sum, stable_order, trailing_all
from aggregation.swap.ties import threshold_labels
from aggregation.swap.types import (
    BOGUS,
    REAL,
    UNKNOWN,
    ClassificationTable,
    Skills,
    SwapInputError,
    SwapParams,
    SwapResult,
    as_float_array,
    check_offsets,
    check_truth,
)

SKILL_TIMINGS = ("final", "at_classification")
_PRIOR_BOUND = 1e-6  # a learned prior stays inside (0, 1) by this much


def logit(p: float) -> float:
    """The prior's log-odds; the one place both the batch and the online code get it from."""
    return math.log(p) - math.log1p(-p)


def skill_value(n_correct, n_seen, params: SwapParams):
    """(skill_prior * strength + n_correct) / (strength + n_seen), clamped; arrays or scalars."""
    raw = (params.skill_prior * params.skill_strength + n_correct) / (
        params.skill_strength + n_seen
    )
    return np.clip(raw, params.skill_floor, params.skill_ceiling)


def vote_log_factors(p_real, p_bogus) -> tuple[np.ndarray, np.ndarray]:
    """Log of the odds factor of a "Real" answer and of a "Bogus" answer."""
    p_real = np.asarray(p_real, np.float64)
    p_bogus = np.asarray(p_bogus, np.float64)
    says_real = np.log(p_real) - np.log(1.0 - p_bogus)
    says_bogus = np.log(1.0 - p_real) - np.log(p_bogus)
    return says_real, says_bogus


# ---------------------------------------------------------------------------- skills


def _reference_increments(table: ClassificationTable, truth: np.ndarray):
    """Per row: is it a reference Real / reference Bogus, and was the answer correct."""
    row_truth = truth[table.subject]
    is_real = row_truth == REAL
    is_bogus = row_truth == BOGUS
    return is_real, is_real & table.says_real, is_bogus, is_bogus & ~table.says_real


def _skills_from_counts(counts, params: SwapParams, p_real=None, p_bogus=None) -> Skills:
    real_seen, real_correct, bogus_seen, bogus_correct = counts
    if p_real is None:
        p_real = skill_value(real_correct, real_seen, params)
        p_bogus = skill_value(bogus_correct, bogus_seen, params)
    if params.require_reference:
        contributes = (real_seen + bogus_seen) >= 1
    else:
        contributes = np.ones(real_seen.shape[0], bool)
    return Skills(real_seen, real_correct, bogus_seen, bogus_correct,
                  np.asarray(p_real, np.float64), np.asarray(p_bogus, np.float64), contributes)


def _reference_counts(table: ClassificationTable, truth: np.ndarray):
    n_vol = table.n_volunteers
    return tuple(
        np.bincount(table.volunteer[flag], minlength=n_vol).astype(np.int64)
        for flag in _reference_increments(table, truth)
    )


def volunteer_skills(table: ClassificationTable, truth, params: SwapParams) -> Skills:
    """Each volunteer's skills from every classification of a subject with known truth
    (`truth[s]` REAL or BOGUS); the order of those classifications does not matter."""
    truth = check_truth(truth, table)
    return _skills_from_counts(_reference_counts(table, truth), params)


# ---------------------------------------------------------------------------- scoring


def stability_labels(p_real, traj_offsets, traj_values, params: SwapParams
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(unstable, stable) labels per subject, int8 REAL / BOGUS / UNKNOWN.

    Unstable: the final Pr(Real) (`p_real`) >= real_threshold is REAL, <= bogus_threshold is
    BOGUS. A subject without a single contributing classification gets UNKNOWN whatever its
    prior: nobody looked at it. Stable: the last `stability_window` trajectory points are all
    >= real_threshold (REAL) or all <= bogus_threshold (BOGUS); fewer points is UNKNOWN.
    Both thresholds are inclusive, and a point at Pr(Real) = 0.5 is no label whatever the
    thresholds (the tie rule, `aggregation.swap.ties`).
    """
    values = as_float_array("traj_values", traj_values)
    offsets = check_offsets(traj_offsets, values.shape[0])
    n = offsets.shape[0] - 1
    p_real = as_float_array("p_real", p_real, n)
    lengths = np.diff(offsets)

    real, bogus = params.real_threshold, params.bogus_threshold
    unstable = threshold_labels(p_real, real, bogus)
    unstable[lengths == 0] = UNKNOWN

    stable = np.full(n, UNKNOWN, np.int8)
    window = params.stability_window
    for label in (REAL, BOGUS):
        held = trailing_all(values, offsets, window,
                            lambda v, label=label: threshold_labels(v, real, bogus) == label)
        stable[held] = label
    return unstable, stable


def _score(table: ClassificationTable, steps: list, params: SwapParams):
    """Trajectories from per-row log-odds steps: (p_real, offsets, values, final log-odds).

    `steps` is [delta, row_contributes] (per row), handed over in a list that this function
    empties, so the arrays are freed as soon as they are used. Rows that do not contribute add
    nothing. The steps of each subject are summed in time order from the prior's log-odds
    exactly as the online update sums them.
    """
    delta, row_contributes = steps
    steps.clear()
    if row_contributes.all():
        subject = table.subject
    else:
        subject, delta = table.subject[row_contributes], delta[row_contributes]
    del row_contributes
    columns = [subject, delta]
    del subject, delta
    offsets, log_odds = grouped_running_sum(columns, table.n_subjects, logit(params.prior))
    has = offsets[1:] > offsets[:-1]
    final_log_odds = np.full(table.n_subjects, logit(params.prior), np.float64)
    final_log_odds[has] = log_odds[offsets[1:][has] - 1]
    values = expit(log_odds, out=log_odds)
    p_real = np.full(table.n_subjects, params.prior, np.float64)
    p_real[has] = values[offsets[1:][has] - 1]
    return p_real, offsets, values, final_log_odds


def _counted(table: ClassificationTable) -> np.ndarray:
    return np.bincount(table.subject, minlength=table.n_subjects).astype(np.int64)


def _result(n_counted, params, scored, skills, mode, **extra) -> SwapResult:
    p_real, offsets, values, log_odds = scored
    unstable, stable = stability_labels(p_real, offsets, values, params)
    return SwapResult(
        p_real=p_real,
        n_counted=n_counted,
        traj_offsets=offsets,
        traj_values=values,
        unstable_label=unstable,
        stable_label=stable,
        skills=skills,
        mode=mode,
        params=params,
        log_odds=log_odds,
        **extra,
    )


def _final_skill_steps(table: ClassificationTable, skills: Skills) -> np.ndarray:
    """Per row, the log-odds step of its answer under the volunteer's (fixed) skills."""
    says_real, says_bogus = vote_log_factors(skills.p_real, skills.p_bogus)
    factors = np.empty(2 * says_real.shape[0], np.float64)
    factors[0::2] = says_bogus
    factors[1::2] = says_real
    code = np.left_shift(table.volunteer, 1)
    code |= table.says_real
    return factors[code]


def _check_common(table, truth, params) -> np.ndarray:
    if not isinstance(table, ClassificationTable):
        raise SwapInputError(f"table must be a ClassificationTable, got {type(table).__name__}")
    if not isinstance(params, SwapParams):
        raise SwapInputError(f"params must be SwapParams, got {type(params).__name__}")
    return check_truth(truth, table)


def swap_batch(table: ClassificationTable, truth, params: SwapParams, *,
               skill_timing: str = "final") -> SwapResult:
    """SWAP over the whole table.

    skill_timing="final" (mode "batch"): learn every volunteer's skill from all their reference
    classifications first, then score every subject with those skills.

    skill_timing="at_classification" (mode "online"): each classification uses the volunteer's
    skill as known just before it, as Space Warps did live (the subject is updated, then the
    volunteer learns from that same classification). Volunteers contribute once they have
    classified at least one reference subject before (with require_reference). Equal to
    replaying the table through OnlineSwap. `skills` in the result are the final ones.
    """
    truth = _check_common(table, truth, params)
    if skill_timing not in SKILL_TIMINGS:
        raise SwapInputError(f"skill_timing must be one of {SKILL_TIMINGS}, got {skill_timing!r}")
    skills = _skills_from_counts(_reference_counts(table, truth), params)
    if skill_timing == "final":
        steps = [_final_skill_steps(table, skills), skills.contributes[table.volunteer]]
        mode = "batch"
    else:
        steps = list(_at_classification_steps(table, truth, params))
        mode = "online"
    return _result(_counted(table), params, _score(table, steps, params), skills, mode)


def _at_classification_steps(table: ClassificationTable, truth: np.ndarray,
                             params: SwapParams):
    """Per row, the step under the skill known just before the row, and whether it counts.

    Rows are grouped by volunteer (stable, so in time order); exclusive cumulative sums of the
    reference increments give each row the counts of its volunteer's earlier rows. Two counts
    travel packed in one int64 (seen in the low 32 bits, correct in the high ones): a
    cumulative sum of packed values is the packed cumulative sums, as no count nears 2**32.
    """
    n = len(table)
    order, sorted_volunteer = stable_order(table.volunteer, table.n_volunteers)
    says = table.says_real[order]
    row_truth = truth[table.subject[order]]
    group_start = np.ones(n, bool)
    group_start[1:] = sorted_volunteer[1:] != sorted_volunteer[:-1]
    first_row = np.flatnonzero(group_start)
    group_size = np.diff(first_row, append=n)

    del sorted_volunteer, group_start

    # Per class: the volunteer's counts before each row, then at once the skill they give.
    low = np.int64(0xFFFFFFFF)
    skill = {}
    has_reference = np.zeros(n, bool)
    for cls, correct in ((REAL, says), (BOGUS, ~says)):
        seen = row_truth == cls
        packed = seen.astype(np.int64)
        packed |= np.left_shift((seen & correct).astype(np.int64), 32)
        del seen
        before = np.cumsum(packed)
        before -= packed  # exclusive: this row's own answer is not known yet
        del packed
        before -= np.repeat(before[first_row], group_size)  # ... nor other volunteers' rows
        n_correct = before >> 32
        before &= low  # now the number seen
        has_reference |= before > 0
        skill[cls] = skill_value(n_correct, before, params)
        del before, n_correct
    del row_truth

    # The same operands as vote_log_factors, only for the answer given: log(p_real) -
    # log(1 - p_bogus) for "Real", log(1 - p_real) - log(p_bogus) for "Bogus", in place.
    numerator, denominator = skill[REAL], skill[BOGUS]
    del skill
    numerator[~says] = 1.0 - numerator[~says]
    denominator[says] = 1.0 - denominator[says]
    del says
    np.log(numerator, out=numerator)
    np.log(denominator, out=denominator)
    numerator -= denominator
    del denominator
    delta = np.empty(n, np.float64)
    delta[order] = numerator
    del numerator
    if not params.require_reference:
        return delta, np.ones(n, bool)
    row_contributes = np.empty(n, bool)
    row_contributes[order] = has_reference
    return delta, row_contributes


# ---------------------------------------------------------------------------- EM

PRIOR_MODES = ("learned", "fixed")


@dataclass(frozen=True)
class EmOptions:
    """How an EM run learns. Checked on construction, so an instance is always valid.

    Two weak Beta priors, counted in pseudo-observations, keep a small dataset from running
    away; with thousands of answers the data outweigh them. The learned prior has
    `prior_strength` pseudo-subjects at the run's prior: on a hundred subjects it damps the
    feedback loop of a learned prior (a higher prior makes more subjects look Real, which
    raises the prior ...). Each skill has, besides the run's own pseudo-counts, `skill_strength`
    pseudo-answers at `skill_mean`: volunteers are assumed right more often than not until
    their answers say otherwise. That breaks the symmetry of the two-coin model, whose mirror
    image (every label and every skill flipped) fits sparse answers as well as the truth: on
    crowds of 100 subjects and 40 volunteers with three answers a subject, EM without it was
    worse than batch SWAP by more than 5 points in 15% of 200 simulated crowds (by up to 24
    points), with it in none (by at most 2.5 points).
    """

    prior_mode: str = "learned"  # "learned": Dawid-Skene's class marginal; "fixed": the run's
    prior_strength: float = 20.0  # pseudo-subjects at the run's prior behind a learned prior
    skill_mean: float = 0.7  # EM's belief about both skills ...
    skill_strength: float = 4.0  # ... worth this many answers
    max_iter: int = 100  # the cap; a run that reaches it is reported as not converged
    tol: float = 1e-6  # converged when no skill and not the prior moves by more than this

    def __post_init__(self) -> None:
        if self.prior_mode not in PRIOR_MODES:
            raise SwapInputError(f"prior_mode must be one of {PRIOR_MODES}, "
                                 f"got {self.prior_mode!r}")
        if not (isinstance(self.skill_mean, int | float | np.number)
                and 0.0 < self.skill_mean < 1.0):
            raise SwapInputError(f"skill_mean must be in (0, 1), got {self.skill_mean!r}")
        for name in ("prior_strength", "skill_strength", "tol"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, int | float | np.number)
                    or not math.isfinite(value) or value < 0):
                raise SwapInputError(f"{name} must be a finite number >= 0, got {value!r}")
        if (isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int | np.integer)
                or self.max_iter < 0):
            raise SwapInputError(f"max_iter must be an integer >= 0, got {self.max_iter!r}")

    @property
    def learn_prior(self) -> bool:
        return self.prior_mode == "learned"


def swap_em(table: ClassificationTable, truth, params: SwapParams,
            options: EmOptions | None = None) -> SwapResult:
    """Two-coin Dawid-Skene EM (mode "em"), anchored by the reference subjects.

    The first M-step starts, as Dawid-Skene does, from the crowd's own soft labels: a
    reference subject's known label (1 or 0), else the fraction of its contributing answers
    that say Real, with one pseudo-answer at the prior. (Seeding instead with skills counted on
    a handful of reference subjects let EM lock onto the mirror-image solution of a small,
    skewed crowd: every label wrong; tests/aggregation/swap/test_em.py.) M-step: each
    volunteer's skills from all their classifications, weighted by the soft labels, with the
    reference skills' pseudo-counts plus EM's skill prior (see EmOptions), then the same
    clamp. E-step: Pr(Real) of every
    non-reference subject from the prior and all contributing classifications (order does not
    matter for the final value); reference subjects keep their known label. Which volunteers
    contribute follows the reference rule as in batch mode; every volunteer still gets EM
    skills. Finally the trajectories are scored in time order with the learned skills. With
    max_iter 0 nothing is learned: this is batch SWAP.

    prior_mode "learned" also learns the prior, as Dawid-Skene learns the class marginals:
    each M-step sets it to the mean posterior of the non-reference subjects with a
    contributing classification, shrunk towards the run's prior by `prior_strength`
    pseudo-subjects (a Beta prior's posterior mean). A fixed prior far from the true Real
    fraction biases every soft label and so the skills learned from them; a learned one
    follows the data, and the Beta prior stops it running away on little data. The result's
    `params.prior` is the prior used in the end; `iterations` and `converged` say whether no
    skill and not the prior moved by more than `tol` before `max_iter` iterations.

    The result's skill counts are the reference counts; p_real / p_bogus are the EM's.
    """
    truth = _check_common(table, truth, params)
    if options is None:
        options = EmOptions()
    if not isinstance(options, EmOptions):
        raise SwapInputError(f"options must be EmOptions, got {type(options).__name__}")
    counts = _reference_counts(table, truth)
    reference = _skills_from_counts(counts, params)
    p_real_skill, p_bogus_skill = reference.p_real, reference.p_bogus
    # The M-step's Beta prior on each skill: the run's pseudo-counts plus EM's own belief.
    skill_pseudo = (params.skill_prior * params.skill_strength
                    + options.skill_mean * options.skill_strength)
    skill_total = params.skill_strength + options.skill_strength

    row_contributes = reference.contributes[table.volunteer]
    subject_c = table.subject[row_contributes]
    code_c = 2 * table.volunteer[row_contributes] + table.says_real[row_contributes]
    known = truth != UNKNOWN
    known_q = (truth == REAL).astype(np.float64)
    says = table.says_real.astype(np.float64)
    n_vol = table.n_volunteers
    prior = params.prior
    l0 = logit(prior)
    # Subjects whose posterior estimates the Real fraction: unknown truth, something to go on.
    population = ~known & (np.bincount(subject_c, minlength=table.n_subjects) > 0)
    n_population = int(population.sum())
    says_real_c = np.bincount(subject_c, weights=table.says_real[row_contributes],
                              minlength=table.n_subjects)
    q = np.where(known, known_q, (says_real_c + prior) /
                 (np.bincount(subject_c, minlength=table.n_subjects) + 1.0))
    del says_real_c

    iterations, converged = 0, options.max_iter == 0
    for _ in range(options.max_iter):
        iterations += 1
        if iterations > 1:  # E-step (the first M-step uses the vote fractions)
            says_real, says_bogus = vote_log_factors(p_real_skill, p_bogus_skill)
            factors = np.empty(2 * n_vol, np.float64)
            factors[0::2], factors[1::2] = says_bogus, says_real
            log_odds = l0 + np.bincount(subject_c, weights=factors[code_c],
                                        minlength=table.n_subjects)
            q = np.where(known, known_q, expit(log_odds))
        q_row = q[table.subject]
        real_seen = np.bincount(table.volunteer, weights=q_row, minlength=n_vol)
        real_correct = np.bincount(table.volunteer, weights=q_row * says, minlength=n_vol)
        bogus_seen = np.bincount(table.volunteer, weights=1.0 - q_row, minlength=n_vol)
        bogus_correct = np.bincount(table.volunteer, weights=(1.0 - q_row) * (1.0 - says),
                                    minlength=n_vol)
        new_real = np.clip((skill_pseudo + real_correct) / (skill_total + real_seen),
                           params.skill_floor, params.skill_ceiling)
        new_bogus = np.clip(
            (skill_pseudo + bogus_correct) / (skill_total + bogus_seen),
            params.skill_floor, params.skill_ceiling,
        )
        change = max(np.abs(new_real - p_real_skill).max(initial=0.0),
                     np.abs(new_bogus - p_bogus_skill).max(initial=0.0))
        p_real_skill, p_bogus_skill = new_real, new_bogus
        if options.learn_prior and n_population:
            new_prior = (params.prior * options.prior_strength + q[population].sum()) / (
                options.prior_strength + n_population)
            new_prior = float(np.clip(new_prior, _PRIOR_BOUND, 1 - _PRIOR_BOUND))
            change = max(change, abs(new_prior - prior))
            prior, l0 = new_prior, logit(new_prior)
        if change <= options.tol:
            converged = True
            break

    if prior != params.prior:
        params = replace(params, prior=prior)
    skills = _skills_from_counts(counts, params, p_real_skill, p_bogus_skill)
    steps = [_final_skill_steps(table, skills), row_contributes]
    del row_contributes
    return _result(_counted(table), params, _score(table, steps, params), skills, "em",
                   iterations=iterations, converged=converged)


# ---------------------------------------------------------------------------- majority vote


def majority_vote(table: ClassificationTable) -> np.ndarray:
    """int8 label per subject by unweighted majority of all its classifications in the table:
    the fraction of "Real" answers through the tie rule (`aggregation.swap.ties`), so as many
    "Real" as "Bogus" answers is UNKNOWN; so is a subject without answers."""
    if not isinstance(table, ClassificationTable):
        raise SwapInputError(f"table must be a ClassificationTable, got {type(table).__name__}")
    n_real = np.bincount(table.subject[table.says_real], minlength=table.n_subjects)
    n_all = np.bincount(table.subject, minlength=table.n_subjects)
    # Equal counts give exactly 0.5; any majority is at least 1 / (2 n) away from it.
    labels = threshold_labels(n_real / np.maximum(n_all, 1))
    labels[n_all == 0] = UNKNOWN
    return labels
