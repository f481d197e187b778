from django.apps import AppConfig


class TalkConfig(AppConfig):
    """Talk: a comment thread per subject, and "report a bad image", which puts the subject in
    the experts' `reported` review queue."""

    name = "talk"
    default_auto_field = "django.db.models.BigAutoField"
