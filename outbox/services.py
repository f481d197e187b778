"""Queue work without waiting on the broker: `enqueue` records it in the caller's transaction;
`drain`, run periodically by a worker, sends what is recorded once the broker answers.

Delivery is at least once (a drain that dies after sending, before marking, sends again): the
tasks are idempotent, as every task here must be.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from config.celery import app as default_app
from outbox.models import OutboxMessage

logger = logging.getLogger(__name__)
DRAIN_BATCH = 200


def enqueue(task_name: str, *args) -> None:
    """Send `task_name(*args)` once the caller's transaction commits.

    With no broker (eager mode: development and most tests) the task runs in this process on
    commit, as `delay` would. Otherwise a row is written in the transaction and the web
    process never talks to the broker.
    """
    if default_app.conf.task_always_eager:
        # The apps' tasks modules are imported (registered) on first need, as a worker does.
        default_app.loader.import_default_modules()
        task = default_app.tasks[task_name]
        transaction.on_commit(lambda: task.delay(*args))
        return
    OutboxMessage.objects.create(task=task_name, args=list(args))


def drain(app=None, batch: int = DRAIN_BATCH) -> int:
    """Send every waiting message, oldest first; returns how many were sent. Stops at the
    first failure to send (the broker is down): the rest wait for the next drain."""
    app = app or default_app
    sent_total = 0
    while True:
        with transaction.atomic():
            waiting = list(
                OutboxMessage.objects.select_for_update(skip_locked=True)
                .filter(sent_at__isnull=True).order_by("pk")[:batch]
            )
            sent, failure = [], None
            for message in waiting:
                try:
                    # No retries here: a broker that does not answer is tried on the next drain.
                    app.send_task(message.task, args=message.args, retry=False)
                except Exception as exc:  # kombu raises several kinds for "broker down"
                    failure = (message, exc)
                    break
                sent.append(message.pk)
            OutboxMessage.objects.filter(pk__in=sent).update(sent_at=timezone.now())
            if failure:
                message, exc = failure
                OutboxMessage.objects.filter(pk=message.pk).update(
                    attempts=message.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"
                )
        sent_total += len(sent)
        if failure:
            logger.warning("outbox: broker unreachable, %d message(s) wait: %s",
                           OutboxMessage.objects.filter(sent_at__isnull=True).count(), failure[1])
            return sent_total
        if len(waiting) < batch:
            return sent_total
