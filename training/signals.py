"""A label set exported with `fine_tune_from` queues the fine-tuning it asks for."""

from django.dispatch import receiver

from aggregation.labelsets.signals import label_set_exported
from labeling.errors import LabelingError
from training.models import TrainingJob


@receiver(label_set_exported, dispatch_uid="training.fine_tune_on_export")
def fine_tune_on_export(sender, label_set, **kwargs):
    if not label_set.fine_tune_from:
        return
    # Imported here: apps.ready() loads this module in every process, before models are ready.
    from training import services

    try:
        services.training_job_create(
            label_set.number, parent=label_set.fine_tune_from,
            trigger=TrainingJob.Trigger.EXPORT, created_by=label_set.created_by,
        )
    except LabelingError as exc:
        services.fine_tune_request_failed(
            label_set, f"label set {label_set.number} asked to fine-tune from "
            f"{label_set.fine_tune_from!r}: {exc.message}"
        )
