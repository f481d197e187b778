"""What a project page shows. Volunteers see counts only: no truth, origin or score."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from aggregation.models import LabelSet
from labeling.models import Classification, Project, Workflow

# Days in the answers-per-day chart, and label sets listed.
CHART_DAYS = 30
LABEL_SETS_SHOWN = 50


def project_get(project_id: int) -> Project | None:
    return Project.objects.filter(pk=project_id).first()


def workflows_progress(project: Project):
    return (Workflow.objects.filter(project=project)
            .annotate(n_subjects=Count("statuses"),
                      n_retired=Count("statuses", filter=Q(statuses__retired=True)))
            .order_by("slug"))


def answers_per_day(project: Project, *, days: int = CHART_DAYS,
                    today: date | None = None) -> tuple[list[date], list[int]]:
    """The last `days` days (UTC, oldest first) and the answers given on each."""
    today = today or timezone.now().date()
    first = today - timedelta(days=days - 1)
    counts = dict(
        Classification.objects.filter(workflow__project=project, created_at__date__gte=first)
        .annotate(day=TruncDate("created_at")).values("day").annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    span = [first + timedelta(days=i) for i in range(days)]
    return span, [counts.get(day, 0) for day in span]


@dataclass(frozen=True)
class LabelSetFed:
    number: int
    created_at: object
    n_subjects: int
    workflow_slug: str
    models: list[str]


def label_sets_fed(project: Project) -> list[LabelSetFed]:
    """The label sets made from the project's answers, newest first, with the model versions
    trained on each."""
    sets = (LabelSet.objects.filter(run__workflow__project=project)
            .select_related("run__workflow").prefetch_related("model_versions")
            .order_by("-number")[:LABEL_SETS_SHOWN])
    return [
        LabelSetFed(s.number, s.created_at, s.n_subjects, s.run.workflow.slug,
                    sorted(version.name for version in s.model_versions.all()))
        for s in sets
    ]
