"""Merging two identities of one person: which answers keep counting (pure, no Django).

When a browser's anonymous identity joins an account that already has answers, the person
may have answered one subject twice, once as each identity. Both answers counted then, as two
people's; now they are one person's, and one person counts once on a subject. The rule:

- every answer is kept (nothing is lost: the history shows both);
- the **earliest counted** answer keeps counting; the person's later counted answers on that
  subject stop counting, with the reason `repeat`, exactly as a repeat answer is stored;
- the subject's retirement state is then recomputed from the answers that still count, in
  the order they were made, so the subject counts what it would have counted had the person
  been one identity all along (a subject retired only thanks to the duplicate goes back into
  the queue).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from labeling import rules


@dataclass(frozen=True)
class PersonAnswer:
    """One answer of the merged person on one subject of one workflow."""

    id: int
    counted: bool


def answers_to_uncount(answers_in_time_order: Sequence[PersonAnswer]) -> list[int]:
    """The ids of one person's answers on one subject that stop counting: all counted ones
    but the earliest."""
    return [answer.id for answer in answers_in_time_order if answer.counted][1:]


@dataclass(frozen=True)
class Recount:
    state: rules.RetirementState
    retired: bool


def recount(counted_answers_in_time_order: Iterable[str], rule: rules.RetirementRule) -> Recount:
    """A subject's retirement state rebuilt from its counted answers: what counting them one
    at a time would have left, and whether the rule retired it on the way."""
    state, retired = rules.RetirementState(), False
    for answer in counted_answers_in_time_order:
        state, retires = rules.advance(state, answer, rule)
        retired = retired or retires
    return Recount(state, retired)
