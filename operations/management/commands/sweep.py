from django.core.management.base import BaseCommand

from operations import sweeper


class Command(BaseCommand):
    help = (
        "Re-queue jobs left pending or running by a lost worker or broker message, fail those "
        "stuck too long (with a message), and remove staging folders and orphan stamp files "
        "left by killed processes. Celery beat runs the same sweep periodically."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true",
                            help="report what would be done, change nothing")

    def handle(self, *args, **options):
        report = sweeper.sweep(dry_run=options["dry_run"])
        prefix = "would have " if options["dry_run"] else ""
        for line in report.lines():
            self.stdout.write(prefix + line)
