"""SWAP one classification at a time, for live use.

`online_step` is a pure function on two small immutable states, so the caller can keep them
in database rows: the subject's log-odds (with its trajectory and count) and the volunteer's
four reference counts. Order as in Space Warps: the subject is updated with the skill the
volunteer has *before* this classification, then the volunteer learns from it if the subject's
truth is known. Replaying a table through it equals swap_batch(skill_timing="at_classification").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aggregation.swap._segments import offsets_from_counts
from aggregation.swap.core import _result, logit
from aggregation.swap.types import (
    BOGUS,
    REAL,
    UNKNOWN,
    ClassificationTable,
    Skills,
    SwapInputError,
    SwapParams,
    SwapResult,
    as_label_array,
)


def _expit(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _skill(n_correct: int, n_seen: int, params: SwapParams) -> float:
    # The same arithmetic as core.skill_value, on Python floats.
    raw = (params.skill_prior * params.skill_strength + n_correct) / (
        params.skill_strength + n_seen
    )
    return min(max(raw, params.skill_floor), params.skill_ceiling)


@dataclass(frozen=True)
class VolunteerState:
    """A volunteer's reference counts: all SWAP needs to know about them."""

    n_real_seen: int = 0
    n_real_correct: int = 0
    n_bogus_seen: int = 0
    n_bogus_correct: int = 0

    def skills(self, params: SwapParams) -> tuple[float, float]:
        """(p_real, p_bogus), with pseudo-counts, clamped."""
        return (_skill(self.n_real_correct, self.n_real_seen, params),
                _skill(self.n_bogus_correct, self.n_bogus_seen, params))

    def contributes(self, params: SwapParams) -> bool:
        return not params.require_reference or (self.n_real_seen + self.n_bogus_seen) >= 1

    def learn(self, says_real: bool, truth: int) -> VolunteerState:
        """The state after classifying a subject whose truth is `truth` (UNKNOWN: no change)."""
        # The constructor, not dataclasses.replace: this is the live path, and replace costs
        # more than the arithmetic.
        if truth == REAL:
            return VolunteerState(self.n_real_seen + 1, self.n_real_correct + bool(says_real),
                                  self.n_bogus_seen, self.n_bogus_correct)
        if truth == BOGUS:
            return VolunteerState(self.n_real_seen, self.n_real_correct, self.n_bogus_seen + 1,
                                  self.n_bogus_correct + (not says_real))
        return self


@dataclass(frozen=True)
class SubjectState:
    """A subject's log-odds of Real, its trajectory (Pr(Real) after each contributing
    classification) and how many classifications it has had (contributing or not)."""

    log_odds: float
    trajectory: tuple[float, ...] = ()
    n_counted: int = 0

    @classmethod
    def initial(cls, params: SwapParams) -> SubjectState:
        return cls(log_odds=logit(params.prior))

    @property
    def p_real(self) -> float:
        return _expit(self.log_odds)


# Frozen, so one shared "nobody seen yet" state is safe (unlike a shared mutable default).
_NEW_VOLUNTEER = VolunteerState()
_TRUTHS = frozenset((REAL, BOGUS, UNKNOWN))


def _check_step(says_real, truth) -> None:
    if not isinstance(says_real, bool | np.bool_):
        raise SwapInputError(f"says_real must be a bool, got {says_real!r}")
    if truth not in _TRUTHS or isinstance(truth, float):
        raise SwapInputError(f"truth must be REAL=1, BOGUS=0 or UNKNOWN=-1, got {truth!r}")


def _advance(log_odds: float, volunteer: VolunteerState, says_real: bool,
             params: SwapParams) -> float | None:
    """The subject's new log-odds, or None when the volunteer does not contribute."""
    if not volunteer.contributes(params):
        return None
    p_real, p_bogus = volunteer.skills(params)
    # The same expressions as core.vote_log_factors.
    if says_real:
        return log_odds + (math.log(p_real) - math.log(1.0 - p_bogus))
    return log_odds + (math.log(1.0 - p_real) - math.log(p_bogus))


def online_step(subject: SubjectState, volunteer: VolunteerState, says_real: bool, truth: int,
                params: SwapParams) -> tuple[SubjectState, VolunteerState]:
    """One classification: (new subject state, new volunteer state).

    `truth` is the subject's reference label (REAL / BOGUS) or UNKNOWN. A volunteer who does
    not contribute leaves the posterior and trajectory alone but the classification is still
    counted (n_counted) and still teaches the volunteer.
    """
    _check_step(says_real, truth)
    new_log_odds = _advance(subject.log_odds, volunteer, bool(says_real), params)
    if new_log_odds is None:
        new_subject = SubjectState(subject.log_odds, subject.trajectory, subject.n_counted + 1)
    else:
        new_subject = SubjectState(new_log_odds, (*subject.trajectory, _expit(new_log_odds)),
                                   subject.n_counted + 1)
    return new_subject, volunteer.learn(bool(says_real), truth)


class OnlineSwap:
    """Replays classifications one at a time with per-volunteer and per-subject state
    (each volunteer has its own state: nothing is shared between them).

    Trajectories are kept in lists here rather than in SubjectState tuples, which would cost
    O(length) per classification; the arithmetic is `online_step`'s (the same helper).
    """

    def __init__(self, params: SwapParams, truth) -> None:
        if not isinstance(params, SwapParams):
            raise SwapInputError(f"params must be SwapParams, got {type(params).__name__}")
        self.params = params
        self.truth = as_label_array("truth", truth)
        self._volunteers: dict[int, VolunteerState] = {}
        self._log_odds: dict[int, float] = {}
        self._trajectories: dict[int, list[float]] = {}
        self._counted: dict[int, int] = {}
        self._initial = logit(params.prior)

    def update(self, subject: int, volunteer: int, says_real: bool) -> float:
        """Apply one classification; returns the subject's Pr(Real) after it."""
        if not 0 <= subject < self.truth.shape[0]:
            raise SwapInputError(f"subject {subject} out of range for {self.truth.shape[0]}")
        if volunteer < 0:
            raise SwapInputError(f"volunteer must be >= 0, got {volunteer}")
        truth = int(self.truth[subject])
        _check_step(says_real, truth)
        state = self._volunteers.get(volunteer, _NEW_VOLUNTEER)
        log_odds = self._log_odds.get(subject, self._initial)
        new_log_odds = _advance(log_odds, state, bool(says_real), self.params)
        self._counted[subject] = self._counted.get(subject, 0) + 1
        if new_log_odds is not None:
            self._log_odds[subject] = new_log_odds
            p = _expit(new_log_odds)
            self._trajectories.setdefault(subject, []).append(p)
        else:
            trajectory = self._trajectories.get(subject)
            p = trajectory[-1] if trajectory else self.params.prior
        self._volunteers[volunteer] = state.learn(bool(says_real), truth)
        return p

    def replay(self, table: ClassificationTable) -> OnlineSwap:
        """Apply every row of `table`, in order (a plain Python loop, as Space Warps ran)."""
        update = self.update
        for s, v, r in zip(table.subject.tolist(), table.volunteer.tolist(),
                           table.says_real.tolist(), strict=True):
            update(s, v, r)
        return self

    def subject_state(self, subject: int) -> SubjectState:
        return SubjectState(self._log_odds.get(subject, self._initial),
                            tuple(self._trajectories.get(subject, ())),
                            self._counted.get(subject, 0))

    def volunteer_state(self, volunteer: int) -> VolunteerState:
        return self._volunteers.get(volunteer, _NEW_VOLUNTEER)

    def result(self, n_subjects: int, n_volunteers: int | None = None) -> SwapResult:
        """Everything so far as a SwapResult (mode "online"); `skills` are the volunteers'
        current ones. `n_volunteers` defaults to the largest volunteer index seen + 1."""
        params = self.params
        if any(s >= n_subjects for s in self._counted):
            raise SwapInputError(f"n_subjects {n_subjects} is smaller than a subject seen")
        if n_volunteers is None:
            n_volunteers = max(self._volunteers, default=-1) + 1
        elif any(v >= n_volunteers for v in self._volunteers):
            raise SwapInputError(f"n_volunteers {n_volunteers} is smaller than a volunteer seen")

        lengths = np.zeros(n_subjects, np.int64)
        for s, trajectory in self._trajectories.items():
            lengths[s] = len(trajectory)
        offsets = offsets_from_counts(lengths)
        values = np.empty(int(offsets[-1]), np.float64)
        p_real = np.full(n_subjects, params.prior, np.float64)
        for s, trajectory in self._trajectories.items():
            values[offsets[s] : offsets[s + 1]] = trajectory
            if trajectory:
                p_real[s] = trajectory[-1]

        states = [self._volunteers.get(v, _NEW_VOLUNTEER) for v in range(n_volunteers)]
        counts = [np.array([getattr(st, name) for st in states], np.int64).reshape(-1)
                  for name in ("n_real_seen", "n_real_correct", "n_bogus_seen",
                               "n_bogus_correct")]
        pairs = [st.skills(params) for st in states]
        skills = Skills(
            *counts,
            p_real=np.array([p for p, _ in pairs], np.float64).reshape(-1),
            p_bogus=np.array([p for _, p in pairs], np.float64).reshape(-1),
            contributes=np.array([st.contributes(params) for st in states], bool).reshape(-1),
        )

        counted = np.zeros(n_subjects, np.int64)
        for s, c in self._counted.items():
            counted[s] = c
        log_odds = np.full(n_subjects, self._initial, np.float64)
        for s, value in self._log_odds.items():
            log_odds[s] = value
        return _result(counted, params, (p_real, offsets, values, log_odds), skills, "online")

