"""Talk's reads: a subject's thread, and the open bad-image reports per subject."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from talk.models import BadImageReport, Comment

THREAD_LIMIT = 500


def thread(subject_id: int, *, with_hidden: bool = False) -> QuerySet[Comment]:
    """A subject's comments, oldest first; hidden ones only for moderators."""
    comments = Comment.objects.filter(subject_id=subject_id).select_related("author")
    if not with_hidden:
        comments = comments.filter(hidden=False)
    return comments.order_by("created_at", "pk")[:THREAD_LIMIT]


def open_report_count(subject_id: int) -> int:
    return BadImageReport.objects.filter(subject_id=subject_id, resolved=False).count()


def open_reports_in(workflow_id: int) -> list[tuple[int, int]]:
    """(subject id, open reports) for each subject of the workflow with an open report."""
    return list(
        BadImageReport.objects.filter(resolved=False, subject__statuses__workflow_id=workflow_id)
        .values("subject_id").annotate(n=Count("pk")).values_list("subject_id", "n")
    )
