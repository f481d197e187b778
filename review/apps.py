from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"
    verbose_name = "Expert review"

    def ready(self):
        from review import signals  # noqa: F401  (connects the receivers)
