"""Celery tasks: they take ids, are safe to run twice, and retry only on transient errors.

The services are imported inside each task: `labeling.services` queues the online update
from here, and must not pull the whole aggregation stack in with it.
"""

from celery import shared_task
from django.db import OperationalError

# A live run being rebuilt takes seconds to minutes; answers wait for it, then apply.
LIVE_RUN_RETRY_S = 10
TRANSIENT_RETRY_S = 2


@shared_task(acks_late=True)
def aggregate_workflow(run_id: int) -> int:
    """Compute one aggregation run (batch, online replay or EM) and store its results."""
    from aggregation import services

    return services.run_execute(run_id).pk


@shared_task(bind=True, acks_late=True, max_retries=60)
def swap_online_update(self, classification_id: int) -> bool:
    """Apply one counted classification to its workflow's live run, if it has one."""
    from aggregation import services

    try:
        return services.online_apply(classification_id)
    except services.RunNotReady as exc:
        raise self.retry(exc=exc, countdown=LIVE_RUN_RETRY_S) from exc
    except OperationalError as exc:  # a dropped connection or a lock timeout
        raise self.retry(exc=exc, countdown=TRANSIENT_RETRY_S) from exc


@shared_task(acks_late=True)
def aggregate_active_workflows() -> list[int]:
    """The periodic batch run (celery beat): one per active workflow with new answers."""
    from aggregation import services

    return [run.pk for run in services.periodic_runs_create()]


@shared_task(bind=True, acks_late=True, max_retries=5)
def export_label_set(self, job_id: int) -> int | None:
    """Run one label-set export job; its LabelSet's number, or None when it failed."""
    from aggregation.labelsets import services

    try:
        job = services.export_job_execute(job_id)
    except OperationalError as exc:  # a dropped connection or a lock timeout: the job re-runs
        raise self.retry(exc=exc, countdown=TRANSIENT_RETRY_S) from exc
    return job.label_set.number if job.label_set else None


def queue_online_update(classification_id: int) -> None:
    """Queue the live-run update of one classification; in eager mode, run it here.

    Celery's eager `delay` costs about 100 ms per call here (a broker producer, then its task
    machinery), ten times the answer itself; calling the task runs its body in-process.
    """
    if swap_online_update.app.conf.task_always_eager:
        swap_online_update(classification_id)
    else:
        swap_online_update.delay(classification_id)
