from django.conf import settings
from django.db import models

from labeling.models import Subject

COMMENT_MAX_LENGTH = 2000
REPORT_NOTE_MAX_LENGTH = 500


class Comment(models.Model):
    """One message in a subject's thread. Staff hide a comment rather than delete it, so a
    thread's moderation can be reviewed; a deleted account leaves its comments authorless."""

    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                               on_delete=models.SET_NULL, related_name="talk_comments")
    # Whether the author was an expert when writing: how the thread marks the message.
    by_expert = models.BooleanField(default=False)
    body = models.TextField(max_length=COMMENT_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)
    hidden = models.BooleanField(default=False, help_text="hidden by staff: not shown")
    hidden_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.SET_NULL, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["subject", "created_at"], name="talk_thread")]

    def __str__(self):
        return f"comment {self.pk} on subject {self.subject_id}"


class BadImageReport(models.Model):
    """Someone says a subject's stamps are broken. Open reports put the subject in the
    experts' `reported` review queue (which, like every queue, drops it once it is labelled in
    the expert's reference set); staff close reports in the admin."""

    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="bad_image_reports")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                 on_delete=models.SET_NULL, related_name="+")
    # An anonymous volunteer's browser session: one open report per browser and subject.
    session_key = models.CharField(max_length=64, blank=True)
    note = models.CharField(max_length=REPORT_NOTE_MAX_LENGTH, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subject", "reporter"],
                                    condition=models.Q(reporter__isnull=False, resolved=False),
                                    name="one_open_report_per_user_and_subject"),
            models.UniqueConstraint(fields=["subject", "session_key"],
                                    condition=models.Q(reporter__isnull=True, resolved=False)
                                    & ~models.Q(session_key=""),
                                    name="one_open_report_per_browser_and_subject"),
        ]

    def __str__(self):
        return f"report {self.pk} on subject {self.subject_id}"
