from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Volunteer accounts: sign-up, e-mail and password reset (django-allauth), the merge of
    a browser's anonymous answers into the account, and the volunteer's own page."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
