"""What a volunteer's own page shows: their count, recent subjects and gold feedback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q

from labeling.models import Classification, ReferenceLabel, Volunteer

RECENT_SUBJECTS = 20
GOLD_FEEDBACK_ROWS = 20


@dataclass(frozen=True)
class RecentAnswer:
    subject_id: int
    workflow_slug: str
    answer: str
    counted: bool
    at: datetime


@dataclass(frozen=True)
class GoldFeedback:
    subject_id: int
    workflow_slug: str
    answer: str
    expert_label: str
    explanation: str

    @property
    def agrees(self) -> bool:
        return self.answer == self.expert_label


@dataclass(frozen=True)
class VolunteerRecord:
    n_answers: int
    n_counted: int
    recent: list[RecentAnswer]
    gold: list[GoldFeedback]


EMPTY_RECORD = VolunteerRecord(0, 0, [], [])


def volunteer_record(user) -> VolunteerRecord:
    volunteer = Volunteer.objects.filter(user=user).first()
    if volunteer is None:
        return EMPTY_RECORD
    answers = Classification.objects.filter(volunteer=volunteer)
    totals = answers.aggregate(n=Count("pk"), counted=Count("pk", filter=Q(counted=True)))
    recent = [
        RecentAnswer(row.subject_id, row.workflow.slug, row.answer, row.counted, row.created_at)
        for row in answers.select_related("workflow").order_by("-created_at", "-pk")[
            :RECENT_SUBJECTS]
    ]
    return VolunteerRecord(totals["n"], totals["counted"], recent, _gold_feedback(answers))


def _gold_feedback(answers) -> list[GoldFeedback]:
    """The volunteer's answers on reference subjects of workflows that show feedback, with
    what the experts say (of several labels, the oldest with an explanation, as after an
    answer on the classify page)."""
    on_gold = list(
        answers.filter(workflow__feedback_enabled=True,
                       subject__reference_labels__isnull=False)
        .select_related("workflow").distinct().order_by("-created_at", "-pk")[:GOLD_FEEDBACK_ROWS]
    )
    labels: dict[int, tuple[str, str]] = {}
    for subject_id, label, explanation in (
        ReferenceLabel.objects.counted().filter(subject_id__in={a.subject_id for a in on_gold})
        .order_by("pk").values_list("subject_id", "label", "explanation")
    ):
        if subject_id not in labels or (explanation and not labels[subject_id][1]):
            labels[subject_id] = (label, explanation)
    return [
        GoldFeedback(a.subject_id, a.workflow.slug, a.answer, *labels[a.subject_id])
        for a in on_gold if a.subject_id in labels
    ]
