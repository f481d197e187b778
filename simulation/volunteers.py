"""Simulated volunteers with known skill: who classifies how much, and how well.

A `Population` is drawn once from a seed; `answer` then turns a volunteer, a subject's truth
and its SNR into a Real/Bogus answer. `manage.py simulate volunteers` drives a population
through the real selection and classification services, so aggregation can be measured
against the truth the triplet simulator put in.

Activity. `activity` is the number of classifications a volunteer would give if the work
never ran out. Citizen-science effort is famously unequal (a few volunteers give most of
the classifications), so it is lognormal with median `ACTIVITY_MEDIAN` = 10 and
`ACTIVITY_SIGMA` = 2.5 (in natural log):
- 82% of volunteers would give fewer than 100 classifications, and about 3 in 1,000 more
  than 10,000 (P(z > ln(1000) / 2.5) = 0.29%);
- the mean is 10 * exp(2.5^2 / 2) = 228 and the Gini coefficient 2 Phi(2.5 / sqrt 2) - 1
  = 0.92: the top 1% of volunteers would give 57% of the classifications and the top 10%
  89% (1 - Phi(Phi^-1(1 - q) - 2.5) for the top fraction q).
A lognormal rather than a Pareto law: its tail is heavy enough for the "few over 10,000"
without a Pareto's infinite variance, which would make sums over a population of a
thousand depend on the one largest draw. When the work is finite, the simulator draws the
next volunteer with probability proportional to `activity` (volunteers arrive at rates
proportional to their enthusiasm), so every count scales down by the same factor: with
20,000 subjects and 1,000 volunteers the whole workflow takes about 40% of the population's
total activity.

Skill. Each volunteer has a sensitivity P(says Real | Real) and a specificity
P(says Bogus | Bogus), drawn from Beta distributions per type (`SKILL_MIXTURE`):
- `competent` (70%): Beta(18, 2) for both, mean 0.90 and standard deviation 0.065: good,
  not perfect, and not all equally good;
- `near_random` (10%): Beta(20, 20) for both, mean 0.50: they answer without looking;
- `optimistic` (10%): sensitivity Beta(30, 1) (mean 0.97), specificity Beta(2, 18)
  (mean 0.10): they nearly always say Real;
- `pessimistic` (10%): the mirror image: they nearly always say Bogus.
The proportions are a stress test rather than a measurement: 30% of unhelpful volunteers is
more than a real project has, so an aggregation that copes here copes there. Activity and
type are independent: a prolific volunteer is as likely to be optimistic as anyone.

The low-SNR bias. People judge by eye, and a true Real near the detection limit looks like
noise, so it tends to be called Bogus (DMTN-337). A Real of signal to noise `snr` *looks*
real with probability `visibility(snr) = 1 / (1 + (SNR_HALF / |snr|) ^ SNR_STEEPNESS)`
with `SNR_HALF` = 5 (the 5 sigma detection threshold: half of the Reals there look like
noise) and `SNR_STEEPNESS` = 3: 0.18 at SNR 3, 0.50 at 5, 0.89 at 10, 0.98 at 20. A Real
that looks real is answered Real with the volunteer's sensitivity; one that does not is
answered as the volunteer answers a Bogus, Real with probability 1 - specificity. So

    P(says Real | Real, snr) = sens * v(snr) + (1 - spec) * (1 - v(snr)),
    P(says Real | Bogus)     = 1 - spec,

which falls towards the false-positive rate as the SNR falls, and leaves an optimistic
volunteer optimistic. |snr| because a fading source's SNR is negative. An unknown SNR (NaN)
counts as plainly visible. Bogus subjects do not depend on SNR: a faint artefact looks like
noise, which is what a bright one is called anyway.

Determinism. Volunteer i of `seed` depends only on (seed, i): members are drawn in blocks
of `BLOCK` from `np.random.default_rng([seed, block])`, so `make_population(15, s)` is the
first 15 members of `make_population(1000, s)`, and a volunteer keeps its skill when a run
adds more volunteers. `answer` takes the caller's generator.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

ACTIVITY_MEDIAN = 10.0
ACTIVITY_SIGMA = 2.5

SNR_HALF = 5.0
SNR_STEEPNESS = 3.0

BLOCK = 1024


@dataclass(frozen=True)
class SkillPrior:
    """One volunteer type: its share of the population and its skills' Beta(a, b) laws."""

    proportion: float
    sensitivity: tuple[float, float]
    specificity: tuple[float, float]


SKILL_MIXTURE: Mapping[str, SkillPrior] = {
    "competent": SkillPrior(0.70, sensitivity=(18.0, 2.0), specificity=(18.0, 2.0)),
    "near_random": SkillPrior(0.10, sensitivity=(20.0, 20.0), specificity=(20.0, 20.0)),
    "optimistic": SkillPrior(0.10, sensitivity=(30.0, 1.0), specificity=(2.0, 18.0)),
    "pessimistic": SkillPrior(0.10, sensitivity=(2.0, 18.0), specificity=(30.0, 1.0)),
}
VOLUNTEER_TYPES = tuple(SKILL_MIXTURE)


@dataclass(frozen=True)
class Population:
    """n simulated volunteers; index i of every array is volunteer i.

    `activity` (float64) is the classifications volunteer i would give with unlimited work,
    and, normalised, the weight with which the simulator picks them; `sensitivity` and
    `specificity` (float64) are P(says Real | Real) at high SNR and P(says Bogus | Bogus);
    `types` (str) names each one's entry in `SKILL_MIXTURE`.
    """

    seed: int
    activity: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    types: np.ndarray

    def __len__(self) -> int:
        return len(self.activity)

    @property
    def weights(self) -> np.ndarray:
        """The probability that each volunteer is the next one to classify."""
        return self.activity / self.activity.sum()


def make_population(
    n: int,
    seed: int,
    *,
    mixture: Mapping[str, SkillPrior] = SKILL_MIXTURE,
    activity_median: float = ACTIVITY_MEDIAN,
    activity_sigma: float = ACTIVITY_SIGMA,
) -> Population:
    """Volunteers 0 .. n - 1 of `seed` (see the module docstring for the model)."""
    for value, name in ((n, "n"), (seed, "seed")):
        if not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not mixture or any(prior.proportion < 0 for prior in mixture.values()):
        raise ValueError("the skill mixture needs at least one type and no negative proportion")
    if activity_median <= 0 or activity_sigma < 0:
        raise ValueError("activity_median must be positive and activity_sigma non-negative")
    names = tuple(mixture)
    cumulative = np.cumsum([mixture[name].proportion for name in names])
    cumulative /= cumulative[-1]
    sens_a, sens_b, spec_a, spec_b = (
        np.array([getattr(mixture[name], skill)[k] for name in names])
        for skill, k in (("sensitivity", 0), ("sensitivity", 1), ("specificity", 0),
                         ("specificity", 1))
    )
    blocks = []
    for block in range(-(-n // BLOCK)):
        rng = np.random.default_rng([seed, block])
        # Fixed draws per block, in a fixed order: a block is the same whatever n is.
        kind = np.minimum(np.searchsorted(cumulative, rng.random(BLOCK), side="right"),
                          len(names) - 1)
        z = rng.standard_normal(BLOCK)
        sensitivity = rng.beta(sens_a[kind], sens_b[kind])
        specificity = rng.beta(spec_a[kind], spec_b[kind])
        blocks.append((kind, z, sensitivity, specificity))
    kind, z, sensitivity, specificity = (
        np.concatenate([b[k] for b in blocks])[:n] if blocks else np.empty(0)
        for k in range(4)
    )
    return Population(
        seed=int(seed),
        activity=activity_median * np.exp(activity_sigma * z.astype(np.float64)),
        sensitivity=sensitivity.astype(np.float64),
        specificity=specificity.astype(np.float64),
        types=np.array(names)[kind.astype(np.intp)],
    )


def visibility(snr) -> np.ndarray:
    """The probability that a true Real of this SNR looks real to a person (NaN: 1)."""
    snr = np.abs(np.asarray(snr, dtype=np.float64))
    with np.errstate(divide="ignore"):
        v = 1.0 / (1.0 + (SNR_HALF / snr) ** SNR_STEEPNESS)
    return np.where(np.isnan(snr), 1.0, v)


def p_says_real(population: Population, volunteer, truth_is_real, snr) -> np.ndarray:
    """P(volunteer answers Real) for subjects of the given truth and SNR; broadcasts."""
    volunteer = np.asarray(volunteer, dtype=np.intp)
    sensitivity = population.sensitivity[volunteer]
    false_positive = 1.0 - population.specificity[volunteer]
    v = visibility(snr)
    on_real = sensitivity * v + false_positive * (1.0 - v)
    return np.where(np.asarray(truth_is_real, dtype=bool), on_real, false_positive)


def answer(population: Population, volunteer, truth_is_real, snr,
           rng: np.random.Generator):
    """Whether the volunteer says Real: a bool for scalar arguments, else a bool array.

    The arguments broadcast, so one call answers a whole batch (one volunteer and many
    subjects, or many of each).
    """
    p = p_says_real(population, volunteer, truth_is_real, snr)
    says_real = rng.random(p.shape) < p
    return bool(says_real) if says_real.ndim == 0 else says_real


class Serving:
    """What `labeling.selectors.subject_queue` serves, kept in memory for a bulk simulation.

    The same rules: never a subject the volunteer has seen or a retired one; reference (gold)
    subjects mixed in at `gold_rate` of the volunteer's count (one draw per slot, as the
    selector draws); the rest random among the open science subjects; the queue shuffled;
    finished when no science subject is left for the volunteer. One simplification: the
    selector takes a run of subjects in random-key order from a random start, highest priority
    first, where this draws uniformly; simulated subjects all have one priority, and both are
    uniform over subjects. Volunteers are indices; subjects are ids.
    """

    # Random picks tried before the unseen subjects are listed outright.
    _TRIES = 64

    def __init__(self, science: Iterable[int], reference: Iterable[int],
                 rng: random.Random, *, gold_rate: Callable[[int], float]) -> None:
        self._open: list[int] = sorted(science)
        self._where = {subject: k for k, subject in enumerate(self._open)}
        self._reference = sorted(reference)
        self._rng = rng
        self._gold_rate = gold_rate
        self.seen: dict[int, set[int]] = {}
        self.n_classified: dict[int, int] = {}

    @property
    def n_open(self) -> int:
        return len(self._open)

    def answered(self, volunteer: int, subject: int) -> None:
        self.seen.setdefault(volunteer, set()).add(subject)
        self.n_classified[volunteer] = self.n_classified.get(volunteer, 0) + 1

    def retire(self, subject: int) -> None:
        """Take a science subject out of service (swap-remove: O(1))."""
        k = self._where.pop(subject, None)
        if k is None:
            return
        last = self._open.pop()
        if last != subject:
            self._open[k], self._where[last] = last, k

    def queue(self, volunteer: int, n: int) -> list[int] | None:
        """Up to n subjects for the volunteer, in the order to show them; None when no science
        subject is left for them."""
        seen = self.seen.get(volunteer, set())
        count = self.n_classified.get(volunteer, 0)
        n_gold = sum(self._rng.random() < self._gold_rate(count + i) for i in range(n))
        gold = self._draw(self._reference, seen, n_gold)
        regular = self._draw(self._open, seen, n - len(gold))
        if not regular and not self._draw(self._open, seen, 1):
            return None
        ids = regular + gold
        self._rng.shuffle(ids)
        return ids

    def _draw(self, pool: list[int], seen: set[int], k: int) -> list[int]:
        if k <= 0 or not pool:
            return []
        chosen: list[int] = []
        for _ in range(self._TRIES):
            subject = pool[self._rng.randrange(len(pool))]
            if subject not in seen and subject not in chosen:
                chosen.append(subject)
                if len(chosen) == k:
                    return chosen
        # Most of the pool is seen (or it is small): list what is left.
        left = [s for s in pool if s not in seen and s not in chosen]
        return chosen + self._rng.sample(left, min(k - len(chosen), len(left)))
