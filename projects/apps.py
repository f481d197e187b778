from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    """The project pages for volunteers: progress, answers per day, what their labels fed
    (label sets and models), and the About text staff write in the admin."""

    name = "projects"
    default_auto_field = "django.db.models.BigAutoField"
