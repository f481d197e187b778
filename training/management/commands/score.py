import time

from django.core.management.base import BaseCommand, CommandError

from labeling.errors import LabelingError
from labeling.management.commands._progress import progress_bar
from training import selectors, services
from training.models import JobStatus

EXIT_BAD_REQUEST = 2


class Command(BaseCommand):
    help = (
        "Score every subject of a subject set with a model version and store each subject's "
        f"reliability for that version, {services.SCORING_BATCH} subjects at a time. Running "
        "it again scores only what is not scored yet. "
        f"Exits {EXIT_BAD_REQUEST} on a request it cannot score."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, metavar="VERSION", help="e.g. v0.2")
        parser.add_argument("--subject-set", required=True, metavar="NAME")
        parser.add_argument("--project", help="the project, when several use the set's name")
        parser.add_argument("--queue", action="store_true",
                            help="queue the job on the Celery 'scoring' queue")

    def handle(self, *args, **options):
        try:
            job = services.scoring_job_create(options["model"], options["subject_set"],
                                              project=options["project"],
                                              queue=options["queue"])
        except LabelingError as exc:
            raise CommandError(exc.message, returncode=EXIT_BAD_REQUEST) from None
        if options["queue"]:
            job.refresh_from_db()  # with eager Celery (no broker) it has run by now
            self.stdout.write(f"queued scoring job {job.pk} ({job.status})")
            return
        # A set scored in part before: the rate counts only what this run scores.
        already = selectors.scores_count(job.model_version, job.subject_set)
        started = time.perf_counter()
        with progress_bar(None, "subject", f"{job.model_version.name}: score") as bar:
            def on_progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            job = services.scoring_job_execute(job.pk, on_progress=on_progress)
        elapsed = time.perf_counter() - started
        if job.status != JobStatus.DONE:
            raise CommandError(f"scoring job {job.pk} failed: {job.error}",
                               returncode=EXIT_BAD_REQUEST)
        scored = job.n_done - already
        self.stdout.write(
            f"scoring job {job.pk}: {job.model_version.name} has scored {job.n_done:,} of "
            f"{job.n_total:,} subjects of {job.subject_set.name!r}, {scored:,} of them now in "
            f"{elapsed:.1f} s ({scored / max(elapsed, 1e-9):,.0f} subjects/s)"
        )
