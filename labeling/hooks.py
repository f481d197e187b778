"""The seam between `labeling` and the apps above it: labeling calls, they register.

`labeling` never imports `aggregation`; aggregation's AppConfig.ready() registers its handlers
here. Handlers of `answer_stored` run inside the answer's own transaction, so what they write
commits or rolls back with the answer: applied exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredAnswer:
    """An answer just stored that SWAP reads (`rules.swap_reads`)."""

    classification_id: int
    workflow_id: int
    subject_id: int
    volunteer_id: int
    says_real: bool


AnswerHandler = Callable[[StoredAnswer], None]
LabelsHandler = Callable[[list[int]], None]
_answer_handlers: list[AnswerHandler] = []
_labels_handlers: list[LabelsHandler] = []


def on_answer_stored(handler: AnswerHandler) -> None:
    if handler not in _answer_handlers:
        _answer_handlers.append(handler)


def on_reference_labels_changed(handler: LabelsHandler) -> None:
    if handler not in _labels_handlers:
        _labels_handlers.append(handler)


def answer_stored(answer: StoredAnswer) -> None:
    """Called by the classification service inside the answer's transaction."""
    for handler in _answer_handlers:
        handler(answer)


def reference_labels_changed(subject_ids: list[int]) -> None:
    """Called by the reference-label services inside the transaction that changed them."""
    for handler in _labels_handlers:
        handler(subject_ids)
