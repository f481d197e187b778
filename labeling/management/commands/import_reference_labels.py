from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling import services
from labeling.errors import LabelingError
from labeling.management.commands._progress import progress_bar
from labeling.reference_csv import ReferenceCsvError, read_reference_csv

EXIT_BAD_ROWS = 2


class Command(BaseCommand):
    help = (
        "Import expert reference labels from a CSV file into a reference set: columns "
        "subject_id or external_id, label (real, bogus or unsure, any case), and optionally "
        "expert (a user name in the set's team; blank for none) and explanation. Every row is "
        "checked first; if any is bad, each is listed with its row number and reason, nothing "
        f"is changed, and the exit status is {EXIT_BAD_ROWS}. Every change is kept in the "
        "label history. An export (export_reference_labels) is re-importable as it is."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="the CSV file")
        parser.add_argument("--set", required=True, dest="set_name",
                            help="reference set name (e.g. rubin)")
        parser.add_argument("--team", default=None,
                            help="the expert team: required to create a set that does not "
                            "exist; checked against the set's team otherwise")
        parser.add_argument("--project", default=None,
                            help="the project whose external ids the file uses (needed when an "
                            "external id is in several projects)")
        parser.add_argument("--dry-run", action="store_true",
                            help="check everything and report the counts, change nothing")

    def handle(self, *args, **options):
        path = options["path"]
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                parsed = read_reference_csv(handle)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not UTF-8 text") from None
        except ReferenceCsvError as exc:
            raise CommandError(f"{path}: {exc}") from None
        try:
            with progress_bar(len(parsed.rows), "label", "import") as bar:
                report = services.reference_labels_import(
                    parsed, set_name=options["set_name"], team_name=options["team"],
                    project_name=options["project"], dry_run=options["dry_run"],
                    on_progress=bar.update,
                )
        except LabelingError as exc:
            raise CommandError(exc.message) from None
        if not report.ok:
            for problem in report.problems:
                self.stderr.write(f"row {problem.row}: {problem.reason}")
            raise CommandError(
                f"{len(report.problems)} bad row(s) in {path} (rows count from 1 after the "
                "header): nothing was imported",
                returncode=EXIT_BAD_ROWS,
            )
        counts = report.counts
        summary = (
            f"reference set {report.reference_set!r}"
            f"{' (new)' if report.set_created else ''}: "
            f"{counts[services.LABEL_CREATED]} created, {counts[services.LABEL_CHANGED]} changed, "
            f"{counts[services.LABEL_UNCHANGED]} unchanged"
        )
        if report.dry_run:
            summary = f"dry run, nothing written: {summary}"
        self.stdout.write(summary)
