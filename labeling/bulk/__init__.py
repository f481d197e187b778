"""Many answers applied at once, with the rules `classification_create` applies to one.

`BulkAnswers` reads a workflow's retirement state for some subjects once, decides answers in
memory in the order given (`replay`), and writes what changed: the classifications with
`writes.rows_write` (COPY on PostgreSQL) and the statuses with `writes.statuses_update`. The
Zooniverse import and `simulate volunteers --bulk` use it; each has a property test that holds
it to the one-by-one path through the services.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from django.db import connection
from django.utils import timezone

from labeling import rules
from labeling.bulk import replay, writes
from labeling.models import Classification, SubjectWorkflowStatus, Volunteer, Workflow

T = TypeVar("T")
# Ids per `IN (...)` lookup where the database sets no lower limit (SQLite's is 999).
_CHUNK = 20_000


class BulkAnswers:
    """The retirement state of `subject_ids` in `workflow`, moved on by `decide`.

    `volunteer_ids`: every volunteer whose answers will be decided (their earlier answers on
    these subjects make repeats). `reference_subjects`: those of the subjects with a counted
    reference label. `export_retirements`: see `replay.ReplayContext`.
    """

    def __init__(
        self,
        workflow: Workflow,
        subject_ids: Iterable[int],
        volunteer_ids: Iterable[int],
        *,
        reference_subjects: Iterable[int],
        export_retirements: Mapping[int, datetime | None] | None = None,
    ) -> None:
        subjects, volunteers = sorted(set(subject_ids)), set(volunteer_ids)
        self.workflow_id = workflow.pk
        references = frozenset(reference_subjects)
        self.states = _status_states(workflow, subjects, references)
        self._retired_before = {pk for pk, state in self.states.items() if state.retired}
        self.context = replay.ReplayContext(
            rule=workflow.retirement_rule,
            active=workflow.active,
            answered=_answered_pairs(workflow, subjects, volunteers),
            expert_volunteers=_expert_volunteers(volunteers),
            reference_subjects=references,
            now=timezone.now(),
            export_retirements=export_retirements,
        )

    def decide(
        self, rows: Sequence[replay.Answer], volunteer_ids: Sequence[int],
        subject_ids: Sequence[int],
    ) -> list[str]:
        """Each answer's not-counted reason ("" when it counts), in order; see `replay`."""
        return replay.replay(rows, volunteer_ids, subject_ids, self.states, self.context)

    def retired(self, subject_id: int) -> bool:
        return self.states[subject_id].retired

    def newly_retired(self) -> int:
        """How many of the subjects `decide` has retired."""
        return sum(state.retired and pk not in self._retired_before
                   for pk, state in self.states.items())

    def statuses_write(self) -> None:
        """Store the statuses changed since the last call."""
        changed = {pk: state for pk, state in self.states.items() if state.changed}
        writes.statuses_update(self.workflow_id, changed)
        for state in changed.values():
            state.changed = False


def chunks(items: list[T]) -> Iterator[list[T]]:
    """`items` in slices small enough for one `IN (...)` lookup on this database."""
    limit = connection.features.max_query_params
    size = min(_CHUNK, limit - 10) if limit else _CHUNK  # room for the query's other values
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _status_states(
    workflow: Workflow, subject_pks: list[int], reference_pks: frozenset[int]
) -> dict[int, replay.SubjectState]:
    states = {}
    for chunk in chunks(subject_pks):
        for pk, n_counted, first, unanimous, retired, retired_at in (
            SubjectWorkflowStatus.objects.filter(workflow=workflow, subject_id__in=chunk)
            .values_list("subject_id", "n_counted", "first_answer", "unanimous", "retired",
                         "retired_at")
        ):
            states[pk] = replay.SubjectState(
                rules.RetirementState(n_counted, first, unanimous), retired,
                is_reference=pk in reference_pks, retired_at=retired_at,
            )
    return states


def _answered_pairs(
    workflow: Workflow, subject_pks: list[int], volunteer_pks: set[int]
) -> set[tuple[int, int]]:
    """The (volunteer, subject) pairs of these already classified in the workflow."""
    pairs = set()
    for chunk in chunks(subject_pks):
        pairs.update(
            pair for pair in Classification.objects.filter(workflow=workflow,
                                                           subject_id__in=chunk)
            .values_list("volunteer_id", "subject_id")
            if pair[0] in volunteer_pks
        )
    return pairs


def _expert_volunteers(volunteer_pks: set[int]) -> frozenset[int]:
    """Those of the volunteers whose user is an expert (`roles.is_expert`)."""
    found: set[int] = set()
    for chunk in chunks(sorted(volunteer_pks)):
        found.update(
            Volunteer.objects.filter(pk__in=chunk, user__isnull=False,
                                     user__groups__expert_team__isnull=False)
            .values_list("pk", flat=True)
        )
    return frozenset(found)
