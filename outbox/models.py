"""Tasks waiting for the broker, recorded in PostgreSQL by the transaction that asks for them."""

from __future__ import annotations

from django.db import models


class OutboxMessage(models.Model):
    """One Celery task to send. Written in the caller's transaction (so it exists if and only
    if the work it queues committed), sent by the periodic `outbox.tasks.outbox_drain`."""

    task = models.CharField(max_length=200, help_text="the task's registered name")
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["id"], name="outbox_unsent",
                         condition=models.Q(sent_at__isnull=True)),
        ]

    def __str__(self):
        state = "sent" if self.sent_at else "waiting"
        return f"{self.task}{tuple(self.args)} ({state})"
