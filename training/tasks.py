"""Celery tasks of the registry: they take ids, are safe to run twice, and retry only on
transient errors. Training runs on the `training` queue, scoring on `scoring` (settings).

`acks_late`: a worker that dies mid-training leaves the message unacknowledged, so the broker
hands it to another worker, which resumes the job from its last checkpoint.
"""

from celery import shared_task
from django.db import OperationalError

TRANSIENT_RETRY_S = 5


@shared_task(bind=True, acks_late=True, max_retries=5)
def train_model(self, job_id: int) -> str | None:
    """Run (or resume) one training job; the name of the version it registered, or None."""
    from training import services

    try:
        job = services.training_job_execute(job_id)
    except OperationalError as exc:  # a dropped connection: the job resumes from its checkpoint
        raise self.retry(exc=exc, countdown=TRANSIENT_RETRY_S) from exc
    return job.model_version.name if job.model_version else None


@shared_task(bind=True, acks_late=True, max_retries=5)
def score_subjects(self, job_id: int) -> int:
    """Run (or carry on) one scoring job; the number of subjects scored so far."""
    from training import services

    try:
        job = services.scoring_job_execute(job_id)
    except OperationalError as exc:
        raise self.retry(exc=exc, countdown=TRANSIENT_RETRY_S) from exc
    return job.n_done


@shared_task(bind=True, acks_late=True, max_retries=5)
def evaluate_version(self, version_id: int, label_set_id: int) -> int:
    """Evaluate a version on a label set's test split (the comparison page asks for it: the
    web process never loads a model); the Evaluation's id. Stored once, so safe to run twice."""
    from aggregation.models import LabelSet
    from training import services
    from training.models import ModelVersion

    try:
        evaluation = services.evaluation_get_or_create(ModelVersion.objects.get(pk=version_id),
                                                       LabelSet.objects.get(pk=label_set_id))
    except OperationalError as exc:
        raise self.retry(exc=exc, countdown=TRANSIENT_RETRY_S) from exc
    return evaluation.pk
