"""Celery tasks: they take ids, are safe to run twice, and retry only on transient errors.

The services are imported inside each task, so that importing the tasks (as Celery's
autodiscovery does in every process) never pulls the services and their numpy stack in.
"""

from celery import shared_task
from django.db import OperationalError

TRANSIENT_RETRY_S = 2


@shared_task(acks_late=True)
def aggregate_workflow(run_id: int) -> int:
    """Compute one aggregation run (batch, online replay or EM) and store its results."""
    from aggregation import services

    return services.run_execute(run_id).pk


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
