"""Talk's pages: a subject's thread with its forms, and staff's hide/show button. Anyone may
read and report a bad image; writing a comment needs an account."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from labeling import roles
from labeling.access import readers_only
from labeling.errors import LabelingError
from labeling.models import Subject
from talk import selectors, services
from talk.models import COMMENT_MAX_LENGTH, Comment

staff_only = readers_only(lambda user: user.is_staff, "Moderating Talk is for staff.")


def _thread_page(request, subject_id: int, *, error: str = "", status: int = 200,
                 draft: str = ""):
    if not Subject.objects.filter(pk=subject_id).exists():
        raise Http404(f"no subject {subject_id}")
    moderator = request.user.is_authenticated and request.user.is_staff
    return render(request, "talk/thread.html", {
        "subject_id": subject_id,
        "comments": selectors.thread(subject_id, with_hidden=moderator),
        "moderator": moderator,
        "open_reports": selectors.open_report_count(subject_id),
        "reported": request.GET.get("reported") == "1",
        "error": error,
        "draft": draft,
        "max_length": COMMENT_MAX_LENGTH,
        "can_review": roles.can_read_reference_labels(request.user),
    }, status=status)


@require_GET
def thread(request, subject_id: int):
    return _thread_page(request, subject_id)


@require_POST
@login_required
def comment_create(request, subject_id: int):
    body = request.POST.get("body", "")
    try:
        comment = services.comment_post(subject_id=subject_id, author=request.user, body=body)
    except LabelingError as exc:
        return _thread_page(request, subject_id, error=exc.message, status=exc.status_code,
                            draft=body)
    return redirect(f"{reverse('talk-thread', args=[subject_id])}#comment-{comment.pk}")


@require_POST
def report_create(request, subject_id: int):
    """Report a bad image. The classify and review pages post here from their script and get
    JSON back; without a script, the form posts and the thread page says it was received."""
    if not request.session.session_key:
        request.session.save()
    user = request.user if request.user.is_authenticated else None
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    try:
        outcome = services.report_raise(subject_id=subject_id, user=user,
                                        session_key="" if user else request.session.session_key,
                                        note=request.POST.get("note", ""))
    except LabelingError as exc:
        if wants_json:
            return JsonResponse({"detail": exc.message, "code": exc.code},
                                status=exc.status_code)
        return _thread_page(request, subject_id, error=exc.message, status=exc.status_code)
    if wants_json:
        return JsonResponse({"reported": True, "created": outcome.created},
                            status=201 if outcome.created else 200)
    return redirect(f"{reverse('talk-thread', args=[subject_id])}?reported=1")


@require_POST
@staff_only
def comment_moderate(request, comment_id: int):
    comment = Comment.objects.filter(pk=comment_id).only("subject_id").first()
    if comment is None:
        raise Http404(f"no comment {comment_id}")
    services.comments_moderate(comment_ids=[comment_id], staff_user=request.user,
                               hidden=request.POST.get("hidden") == "1")
    return redirect(f"{reverse('talk-thread', args=[comment.subject_id])}#comment-{comment.pk}")
