"""Talk's writes: comments, bad-image reports and their moderation. Every post counts against
a per-person limit kept in Django's cache, so a flood is refused with 429 and a reason."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from labeling import roles
from labeling.errors import Forbidden, InvalidInput, LabelingError, NotFound
from labeling.models import Subject
from talk.models import COMMENT_MAX_LENGTH, REPORT_NOTE_MAX_LENGTH, BadImageReport, Comment


class TooManyPosts(LabelingError):
    status_code = 429
    code = "rate_limited"


def _throttle(who: str) -> None:
    """Count one post by `who` in the current window; refuse past the limit."""
    window_s = settings.TALK_WINDOW_S
    window = int(time.time() // window_s)
    key = f"talk:posts:{who}:{window}"
    cache.add(key, 0, timeout=window_s)
    try:
        n = cache.incr(key)
    except ValueError:  # the key expired between add and incr: this post starts the window
        cache.set(key, 1, timeout=window_s)
        n = 1
    if n > settings.TALK_POSTS_PER_WINDOW:
        wait_min = max(1, round((window_s - time.time() % window_s) / 60))
        raise TooManyPosts(
            f"you have posted {settings.TALK_POSTS_PER_WINDOW} times in the last few minutes: "
            f"please wait about {wait_min} minute(s) and try again"
        )


def _subject(subject_id: int) -> Subject:
    try:
        return Subject.objects.only("pk").get(pk=subject_id)
    except Subject.DoesNotExist:
        raise NotFound(f"no subject {subject_id}") from None


def comment_post(*, subject_id: int, author, body: str) -> Comment:
    """Add a signed-in person's comment to a subject's thread. The body is stored as typed and
    escaped wherever it is shown."""
    body = body.strip()
    if not body:
        raise InvalidInput("write something first: the comment is empty")
    if len(body) > COMMENT_MAX_LENGTH:
        raise InvalidInput(f"a comment is at most {COMMENT_MAX_LENGTH} characters, "
                           f"this one has {len(body)}")
    subject = _subject(subject_id)
    _throttle(f"user:{author.pk}")
    return Comment.objects.create(subject=subject, author=author, body=body,
                                  by_expert=roles.is_expert(author))


@dataclass(frozen=True)
class ReportOutcome:
    report: BadImageReport
    created: bool  # False: this person's open report on the subject already existed


def report_raise(*, subject_id: int, user=None, session_key: str = "",
                 note: str = "") -> ReportOutcome:
    """Report a subject's images as bad: it joins the experts' `reported` queue. One open
    report per person (or anonymous browser) and subject; reporting again changes nothing."""
    note = note.strip()
    if len(note) > REPORT_NOTE_MAX_LENGTH:
        raise InvalidInput(f"a report's note is at most {REPORT_NOTE_MAX_LENGTH} characters")
    if user is None and not session_key:
        raise InvalidInput("an anonymous report needs a browser session")
    subject = _subject(subject_id)
    identity = {"reporter": user} if user is not None else {"reporter": None,
                                                            "session_key": session_key}
    existing = BadImageReport.objects.filter(subject=subject, resolved=False, **identity).first()
    if existing is not None:
        return ReportOutcome(existing, created=False)
    _throttle(f"user:{user.pk}" if user is not None else f"session:{session_key}")
    try:
        with transaction.atomic():
            report = BadImageReport.objects.create(subject=subject, note=note, **identity)
    except IntegrityError:  # the same person's twin request stored it first
        return ReportOutcome(
            BadImageReport.objects.get(subject=subject, resolved=False, **identity), created=False
        )
    return ReportOutcome(report, created=True)


def comments_moderate(*, comment_ids, staff_user, hidden: bool) -> int:
    """Hide comments from their threads (or show them again); staff only. Returns how many."""
    if not staff_user.is_staff:
        raise Forbidden("only staff moderate Talk")
    return Comment.objects.filter(pk__in=comment_ids).update(
        hidden=hidden, hidden_by=staff_user if hidden else None
    )
