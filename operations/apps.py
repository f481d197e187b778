from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """Housekeeping across the apps: the sweeper of stuck jobs and left-over files. It sits
    above labeling, aggregation and training, and nothing imports it."""

    name = "operations"
    default_auto_field = "django.db.models.BigAutoField"
