"""The retirement rule over many answers at once, in memory.

It decides for every answer what `labeling.services.classification_create` decides for one
(with, first, the two cases an import knows from its file: see `labeling.zooniverse.services`),
in the same order, with the same rule (`labeling.rules.advance`), so that the rows and flags
stored in bulk are those of answers sent one by one. Property tests hold the two paths to that
(tests/labeling/test_zooniverse_bulk.py for imports, tests/simulation/test_volunteers.py for
the simulator).

Subjects and volunteers are database ids here; nothing is read or written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from labeling import rules
from labeling.models import NotCounted


class Answer(Protocol):
    """What the replay reads of an answer (an export row is one)."""

    answer: str
    created_at: datetime
    # The source says an expert gave it (an export's `expert` column).
    expert: bool
    # The source says the volunteer had seen the subject before (Zooniverse's seen_before).
    seen_before: bool


@dataclass(frozen=True, slots=True)
class NewAnswer:
    """An answer from nowhere but the caller (the simulator): no expert or repeat flag."""

    answer: str
    created_at: datetime
    expert: bool = False
    seen_before: bool = False


@dataclass
class SubjectState:
    """A subject's status in the target workflow, as the replay moves it on."""

    retirement: rules.RetirementState
    retired: bool
    is_reference: bool
    retired_at: datetime | None = None
    changed: bool = False


@dataclass(frozen=True)
class ReplayContext:
    """What the database says before the import, and how retirement is decided.

    `answered`: (volunteer id, subject id) pairs already classified in the workflow.
    `expert_volunteers`: volunteers whose user is an expert (imported ones have no user, so
    this is empty for them, as the service sees it). `export_retirements`: None to replay our
    rule; else the export's own retirements, {subject id: retired_at or None when unknown},
    and a subject absent from it is not retired by the export.
    """

    rule: rules.RetirementRule
    active: bool
    answered: set[tuple[int, int]]
    expert_volunteers: frozenset[int]
    reference_subjects: frozenset[int]
    now: datetime
    export_retirements: Mapping[int, datetime | None] | None = None


def replay(
    rows: Sequence[Answer],
    volunteer_ids: Sequence[int],
    subject_ids: Sequence[int],
    states: dict[int, SubjectState],
    context: ReplayContext,
) -> list[str]:
    """The not-counted reason of each row ("" when it counts), in `rows`' (time) order.

    `volunteer_ids[i]` and `subject_ids[i]` are row i's; `states` (one per subject) is
    moved on in place. Rows are answered by their volunteer as they go, so a second row of
    the same volunteer on a subject is a repeat.
    """
    reasons: list[str] = []
    answered = context.answered
    exported = context.export_retirements
    for row, volunteer, subject in zip(rows, volunteer_ids, subject_ids, strict=True):
        state = states[subject]
        pair = (volunteer, subject)
        if row.expert and subject in context.reference_subjects:
            reason = NotCounted.EXPERT_ON_REFERENCE
        elif row.seen_before:
            reason = NotCounted.REPEAT
        else:
            reason = _service_reason(row, volunteer, pair, state, context)
        answered.add(pair)
        if not reason:
            _count(state, row.answer, context)
        reasons.append(reason)
    if exported is not None:
        for subject, retired_at in exported.items():
            state = states.get(subject)
            if state is not None and not state.retired and not state.is_reference:
                state.retired, state.retired_at = True, retired_at or context.now
                state.changed = True
    return reasons


def _service_reason(
    row: Answer, volunteer: int, pair: tuple[int, int], state: SubjectState,
    context: ReplayContext,
) -> str:
    """`classification_create`'s reason: the same rule (labeling.rules.not_counted_reason)."""
    return rules.not_counted_reason(
        repeat=pair in context.answered,
        expert_on_reference=state.is_reference and volunteer in context.expert_volunteers,
        active=context.active,
        retired=state.retired or _after_export_retirement(row, pair[1], context),
    )


def _after_export_retirement(
    row: Answer, subject: int, context: ReplayContext
) -> bool:
    if context.export_retirements is None:
        return False
    retired_at = context.export_retirements.get(subject)
    return retired_at is not None and row.created_at > retired_at


def _count(state: SubjectState, answer: str, context: ReplayContext) -> None:
    state.retirement, retires = rules.advance(state.retirement, answer, context.rule)
    state.changed = True
    # With the export's retirements, our rule only keeps the counts; the export retires.
    if retires and context.export_retirements is None and not state.is_reference:
        state.retired, state.retired_at = True, context.now
