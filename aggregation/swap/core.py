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
from dataclasses import replace

import numpy as np
from scipy.special import expit

from aggregation.swap._segments import grouped_running_sum, stable_order, trailing_all
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

TIE_RULE = (
    "majority vote: more 'Real' than 'Bogus' answers is REAL, more 'Bogus' is BOGUS; a tie, "
    "including a subject with no answers, is UNKNOWN (no label). Every comparison with "
    "majority vote in this project uses this rule."
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
    Both thresholds are inclusive.
    """
    values = as_float_array("traj_values", traj_values)
    offsets = check_offsets(traj_offsets, values.shape[0])
    n = offsets.shape[0] - 1
    p_real = as_float_array("p_real", p_real, n)
    lengths = np.diff(offsets)

    unstable = np.full(n, UNKNOWN, np.int8)
    seen = lengths > 0
    unstable[seen & (p_real >= params.real_threshold)] = REAL
    unstable[seen & (p_real <= params.bogus_threshold)] = BOGUS

    stable = np.full(n, UNKNOWN, np.int8)
    window = params.stability_window
    real, bogus = params.real_threshold, params.bogus_threshold
    stable[trailing_all(values, offsets, window, lambda v: v >= real)] = REAL
    stable[trailing_all(values, offsets, window, lambda v: v <= bogus)] = BOGUS
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


def swap_em(table: ClassificationTable, truth, params: SwapParams, *,
            max_iter: int = 100, tol: float = 1e-6, learn_prior: bool = False) -> SwapResult:
    """Two-coin Dawid-Skene EM seeded by the reference skills (mode "em").

    Start from the reference-only skills. E-step: Pr(Real) of every non-reference subject from
    the prior and all contributing classifications (order does not matter for the final
    value); reference subjects keep their known label (1 or 0). M-step: each volunteer's skills
    from all their classifications, weighted by those posteriors (hard for reference subjects,
    soft otherwise), with the same pseudo-counts and clamp as the reference skills. Stops when
    no skill moves by more than `tol`. The prior stays fixed (it is a run parameter). Which
    volunteers contribute follows the reference rule as in batch mode; every volunteer still
    gets EM skills. Finally the trajectories are scored in time order with the learned skills.

    learn_prior=True also learns the prior, as Dawid-Skene proper learns the class marginals:
    each M-step sets it to the mean posterior of the non-reference subjects that have a
    contributing classification. A prior far from the true Real fraction biases every soft
    label, and so the skills learned from them (on simulated data with 30% Real, EM with the
    prior fixed at 0.5 learned worse skills than the reference counts; with the prior learned,
    less than half their error). The result's `params.prior` is then the learned value.

    The result's skill counts are the reference counts; p_real / p_bogus are the EM's.
    """
    truth = _check_common(table, truth, params)
    if not isinstance(max_iter, int) or max_iter < 0:
        raise SwapInputError(f"max_iter must be an integer >= 0, got {max_iter!r}")
    if not (isinstance(tol, int | float) and tol >= 0 and math.isfinite(tol)):
        raise SwapInputError(f"tol must be a finite number >= 0, got {tol!r}")
    if not isinstance(learn_prior, bool):
        raise SwapInputError(f"learn_prior must be a bool, got {learn_prior!r}")
    counts = _reference_counts(table, truth)
    reference = _skills_from_counts(counts, params)
    p_real_skill, p_bogus_skill = reference.p_real, reference.p_bogus

    row_contributes = reference.contributes[table.volunteer]
    subject_c = table.subject[row_contributes]
    code_c = 2 * table.volunteer[row_contributes] + table.says_real[row_contributes]
    known = truth != UNKNOWN
    known_q = (truth == REAL).astype(np.float64)
    says = table.says_real.astype(np.float64)
    n_vol = table.n_volunteers
    prior = params.prior
    l0 = logit(prior)
    prior_strength = params.skill_prior * params.skill_strength
    # Subjects whose posterior estimates the Real fraction: unknown truth, something to go on.
    population = ~known & (np.bincount(subject_c, minlength=table.n_subjects) > 0)

    iterations, converged = 0, max_iter == 0
    for _ in range(max_iter):
        iterations += 1
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
        new_real = np.clip((prior_strength + real_correct) / (params.skill_strength + real_seen),
                           params.skill_floor, params.skill_ceiling)
        new_bogus = np.clip(
            (prior_strength + bogus_correct) / (params.skill_strength + bogus_seen),
            params.skill_floor, params.skill_ceiling,
        )
        change = max(np.abs(new_real - p_real_skill).max(initial=0.0),
                     np.abs(new_bogus - p_bogus_skill).max(initial=0.0))
        p_real_skill, p_bogus_skill = new_real, new_bogus
        if learn_prior and population.any():
            new_prior = float(np.clip(q[population].mean(), _PRIOR_BOUND, 1 - _PRIOR_BOUND))
            change = max(change, abs(new_prior - prior))
            prior, l0 = new_prior, logit(new_prior)
        if change < tol:
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
    """int8 label per subject by unweighted majority of all its classifications in the table;
    see TIE_RULE (ties and subjects without answers are UNKNOWN)."""
    if not isinstance(table, ClassificationTable):
        raise SwapInputError(f"table must be a ClassificationTable, got {type(table).__name__}")
    n_real = np.bincount(table.subject[table.says_real], minlength=table.n_subjects)
    n_all = np.bincount(table.subject, minlength=table.n_subjects)
    n_bogus = n_all - n_real
    labels = np.full(table.n_subjects, UNKNOWN, np.int8)
    labels[n_real > n_bogus] = REAL
    labels[n_bogus > n_real] = BOGUS
    return labels
