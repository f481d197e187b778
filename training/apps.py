from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "CNN training and model registry"

    def ready(self):
        # A label set exported with `fine_tune_from` queues its training job (see signals.py).
        from training import signals  # noqa: F401
