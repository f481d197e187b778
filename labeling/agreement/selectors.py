"""Agreement statistics read from the reference labels, in a fixed handful of queries.

The labels arrive as columns (values_list), become label codes, and `labeling.agreement.core`
does the counting; nothing here runs a query per subject, per pair or per expert.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from django.contrib.auth import get_user_model
from django.db.models import Count

from labeling.agreement import core
from labeling.errors import NotFound
from labeling.models import ReferenceLabel, ReferenceSet

# The rater code of a label with no named expert (an import or the simulator).
NO_EXPERT = -1


@dataclass(frozen=True)
class OriginBalance:
    origin: str
    counts: dict[str, int]  # category -> labels


@dataclass(frozen=True)
class SetSummary:
    reference_set: ReferenceSet
    counts: dict[str, int]  # category -> labels
    by_origin: list[OriginBalance]  # ordered by origin handle

    @property
    def n_labels(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class PairSummary:
    first: ReferenceSet
    second: ReferenceSet
    agreement: core.Agreement  # rows `first`, columns `second`, on the subjects both label


@dataclass(frozen=True)
class ExpertSummary:
    expert_id: int
    username: str
    against_consensus: core.RaterAgreement


@dataclass(frozen=True)
class AgreementReport:
    sets: list[SetSummary]
    pairs: list[PairSummary]
    experts: list[ExpertSummary]


def reference_sets_named(names: list[str] | None) -> list[ReferenceSet]:
    """The named reference sets (all of them when `names` is None), ordered by name."""
    sets = ReferenceSet.objects.select_related("team").order_by("name")
    if names is None:
        return list(sets)
    found = list(sets.filter(name__in=names))
    missing = sorted(set(names) - {reference_set.name for reference_set in found})
    if missing:
        raise NotFound(f"unknown reference set(s): {', '.join(missing)}")
    return found


def set_summaries(reference_sets: list[ReferenceSet]) -> list[SetSummary]:
    """Labels per category of each set, in total and per origin handle: one query."""
    rows = (
        ReferenceLabel.objects.filter(reference_set__in=reference_sets)
        .values_list("reference_set_id", "subject__origin", "label")
        .annotate(n=Count("pk"))
        .order_by()
    )
    per_origin: dict[int, dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: dict.fromkeys(core.CATEGORIES, 0))
    )
    for set_id, origin, label, n in rows:
        per_origin[set_id][origin][label] += n
    summaries = []
    for reference_set in reference_sets:
        origins = per_origin[reference_set.pk]
        totals = {category: sum(counts[category] for counts in origins.values())
                  for category in core.CATEGORIES}
        summaries.append(SetSummary(
            reference_set=reference_set,
            counts=totals,
            by_origin=[OriginBalance(origin, origins[origin]) for origin in sorted(origins)],
        ))
    return summaries


def reference_agreement(set_names: list[str] | None = None) -> AgreementReport:
    """Every pair of the sets on their shared subjects, every named expert against the
    consensus of the other labels of their subjects, and each set's class balance.

    With `set_names`, only those sets (and only their labels make the consensus);
    an unknown name raises NotFound.
    """
    reference_sets = reference_sets_named(set_names)
    rows = list(
        ReferenceLabel.objects.filter(reference_set__in=reference_sets)
        .values_list("reference_set_id", "subject_id", "label", "expert_id")
        .order_by()
    )
    set_ids = np.array([row[0] for row in rows], np.int64)
    subjects = np.array([row[1] for row in rows], np.int64)
    codes = np.array([core.CATEGORY_CODE[row[2]] for row in rows], np.int64)
    raters = np.array([NO_EXPERT if row[3] is None else row[3] for row in rows], np.int64)

    in_set = {reference_set.pk: set_ids == reference_set.pk for reference_set in reference_sets}
    pairs = [
        PairSummary(first, second, core.pair_agreement(
            subjects[in_set[first.pk]], codes[in_set[first.pk]],
            subjects[in_set[second.pk]], codes[in_set[second.pk]],
        ))
        for first, second in combinations(reference_sets, 2)
    ]

    expert_ids = np.unique(raters[raters != NO_EXPERT])
    usernames = dict(
        get_user_model().objects.filter(pk__in=expert_ids.tolist()).values_list("pk", "username")
    )
    experts = sorted(
        (ExpertSummary(result.rater, usernames[result.rater], result)
         for result in core.raters_against_consensus(subjects, raters, codes, expert_ids)),
        key=lambda expert: expert.username,
    )
    return AgreementReport(set_summaries(reference_sets), pairs, experts)
