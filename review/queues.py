"""The order in which an expert meets subjects: the review queues (pure: numpy, no Django).

A reference label buys label quality twice: it settles the subject itself, which is worth
most where the crowd is least sure, and it calibrates the skill of every volunteer who
classified the subject, which is worth more the more distinct volunteers did. Each queue
therefore orders by

    (band, -n_volunteers, priority, subject_id)

where `priority` in [0, 1] is the queue's own measure (0 first, see `priorities`), `band`
is `floor(priority * PRIORITY_BANDS)`, and `n_volunteers` the number of distinct volunteers
with a counted vote. Within a band of equally urgent subjects, the one that calibrates the
most volunteers comes first; the exact priority, then the id, break the remaining ties.

The `random` queue is the exception: a seeded uniform shuffle of every subject, with no
preference at all, so that an audit of it estimates the error rate without bias and the
same seed gives the same audit.

Subjects already labelled in the chosen reference set are dropped *after* ordering: labelling
one subject never moves the others (the random audit stays the same audit as it is worked).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DISAGREEMENT = "disagreement"
UNCERTAIN = "uncertain"
MODEL = "model"
ORIGIN = "origin"
RANDOM = "random"
REPORTED = "reported"
QUEUES = {
    DISAGREEMENT: "Volunteers disagree most",
    UNCERTAIN: "Posterior closest to 0.5",
    MODEL: "The model and the volunteers disagree most",
    ORIGIN: "One origin handle, most uncertain first",
    RANDOM: "Random sample, for an unbiased audit",
    REPORTED: "Reported as a bad image in Talk, most reports first",
}
# The queues that rank by the SWAP posterior, and so need a finished aggregation run.
NEEDS_POSTERIOR = frozenset({UNCERTAIN, MODEL})
# Ordered per request, never stored with a run (review.services): reports arrive at any time,
# and the reported subjects are few.
ORDERED_PER_REQUEST = frozenset({REPORTED})
# Priorities closer than 1/PRIORITY_BANDS count as equally urgent.
PRIORITY_BANDS = 20


@dataclass(frozen=True)
class Candidates:
    """Every subject of a workflow (of one origin, for the origin queue), as aligned arrays.

    `p_real` is NaN where the run has no posterior, `reliability` NaN where the model has not
    scored the subject; `labelled` marks subjects already in the chosen reference set.
    """

    subject_id: np.ndarray
    n_real: np.ndarray
    n_bogus: np.ndarray
    n_volunteers: np.ndarray
    p_real: np.ndarray
    reliability: np.ndarray
    labelled: np.ndarray
    # Open "bad image" reports from Talk; None where no one counted them (no subject reported).
    n_reports: np.ndarray | None = None


def priorities(name: str, candidates: Candidates) -> np.ndarray:
    """Each subject's priority in queue `name`: 0 is reviewed first, 1 last; NaN leaves the
    subject out of the queue.

    - disagreement: |n_real - n_bogus| / n (0 for an even split); no votes: left out.
    - uncertain: 2 |p_real - 0.5|; no posterior: left out.
    - model: 1 - |reliability - p_real|; no reliability or no posterior: left out.
    - origin: as uncertain, and a subject with no posterior comes last (priority 1), so the
      queue works before any aggregation run.
    - reported: 1 / (1 + open reports), so the most reported come first; none: left out.
    """
    c = candidates
    if name == DISAGREEMENT:
        n = c.n_real + c.n_bogus
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, np.abs(c.n_real - c.n_bogus) / n, np.nan)
    if name == UNCERTAIN:
        return 2 * np.abs(c.p_real - 0.5)
    if name == MODEL:
        return 1 - np.abs(c.reliability - c.p_real)
    if name == ORIGIN:
        return np.where(np.isnan(c.p_real), 1.0, 2 * np.abs(c.p_real - 0.5))
    if name == REPORTED:
        if c.n_reports is None:
            return np.full(len(c.subject_id), np.nan)
        return np.where(c.n_reports > 0, 1.0 / (1 + c.n_reports), np.nan)
    raise ValueError(f"unknown queue {name!r}; the queues are {', '.join(QUEUES)}")


def random_keys(subject_ids: np.ndarray, seed: int) -> np.ndarray:
    """The random queue's sort key of each subject (then its id breaks ties): one uniform
    draw per subject in id order, so a subject keeps its key as others are added."""
    by_id = np.argsort(subject_ids, kind="stable")
    keys = np.empty(len(by_id))
    keys[by_id] = np.random.default_rng(seed).random(len(by_id))
    return keys


def queue_order(name: str, candidates: Candidates, *, seed: int = 0) -> np.ndarray:
    """Indices into `candidates` in review order, without the labelled subjects and those
    the queue leaves out. `seed` drives the random queue only."""
    c = candidates
    if name == RANDOM:
        order = np.lexsort((c.subject_id, random_keys(c.subject_id, seed)))
    else:
        priority = priorities(name, c)
        band = np.floor(np.nan_to_num(priority, nan=np.inf) * PRIORITY_BANDS)
        order = np.lexsort((c.subject_id, priority, -c.n_volunteers, band))
        order = order[~np.isnan(priority[order])]
    return order[~c.labelled[order]]
