from django.core.management.base import BaseCommand, CommandError

from labeling import rules, services
from labeling.errors import LabelingError


class Command(BaseCommand):
    help = "Create a workflow (and its project, when new)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--project", default="Rubin Difference Detectives")
        parser.add_argument("--retire-agree", type=int, default=rules.DEFAULT_RETIRE_AGREE,
                            help="retire when the first N counted classifications agree")
        parser.add_argument("--retire-max", type=int, default=rules.DEFAULT_RETIRE_MAX,
                            help="otherwise retire after this many counted classifications")
        parser.add_argument("--question", default=None)

    def handle(self, *args, **options):
        try:
            workflow = services.workflow_create(
                slug=options["slug"],
                project_name=options["project"],
                retire_agree=options["retire_agree"],
                retire_max=options["retire_max"],
                question=options["question"],
            )
        except LabelingError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"created workflow {workflow.slug} (id {workflow.pk}) in project "
            f"{workflow.project.name!r}: retire when the first {workflow.retire_agree} agree, "
            f"else at {workflow.retire_max}"
        )
