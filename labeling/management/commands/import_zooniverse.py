import re
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.errors import LabelingError
from labeling.management.commands._progress import progress_bar
from labeling.models import NotCounted, Workflow
from labeling.records import ANSWERS
from labeling.zooniverse import parse
from labeling.zooniverse.services import (
    BULK,
    DEFAULT_SUBJECT_SET,
    EXPORT,
    ROW_BY_ROW,
    RULE,
    zooniverse_import,
)

EXIT_SOME_REJECTED = 2
SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


class Command(BaseCommand):
    help = (
        "Import a Zooniverse classification export into a workflow: subjects by Zooniverse "
        "subject id (created without stamps when unknown), volunteers, and the classifications "
        "decided in time order by the retirement rule, then written in bulk (COPY on "
        "PostgreSQL), in one transaction. A re-import into the same workflow changes nothing. "
        f"Exits 0 when every row went in, {EXIT_SOME_REJECTED} when some were rejected (each "
        "listed with its row number and reason), 1 when the file cannot be used at all."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="the classification export (.csv)")
        parser.add_argument("--workflow", required=True, help="workflow slug to import into")
        parser.add_argument(
            "--answer-map", default=parse.DEFAULT_ANSWER_MAP,
            help="LABEL=ANSWER pairs, comma-separated; labels match the export exactly "
            f"(default {parse.DEFAULT_ANSWER_MAP})",
        )
        parser.add_argument(
            "--gold-as-reference", metavar="SETNAME", default=None,
            help="use the expert answers on gold-standard subjects as reference labels in "
            "this reference set (made, with a team of the same name, when it does not exist)",
        )
        parser.add_argument(
            "--subject-set", default=DEFAULT_SUBJECT_SET,
            help=f"subject set for new subjects (default {DEFAULT_SUBJECT_SET})",
        )
        parser.add_argument(
            "--zooniverse-workflow-id", default=None,
            help="import only this Zooniverse workflow's rows (for a file that mixes "
            "workflows); without it the file's most common workflow is imported and rows of "
            "others are rejected",
        )
        parser.add_argument(
            "--task", default=None,
            help="the annotation task holding the Real/Bogus answer, when a row has several",
        )
        parser.add_argument(
            "--retirement-from-export", action="store_true",
            help="retire each subject when Zooniverse retired it (its subject_data 'retired' "
            "block) instead of replaying this workflow's retirement rule; answers after that "
            "are stored as not counted",
        )
        parser.add_argument(
            "--row-by-row", action="store_true",
            help="send each row through the classification service instead of the bulk "
            "path (the same result, far slower: for checking)",
        )

    def handle(self, *args, **options):
        try:
            workflow = Workflow.objects.select_related("project").get(slug=options["workflow"])
        except Workflow.DoesNotExist:
            raise CommandError(f"no workflow {options['workflow']!r}") from None
        try:
            answer_map = parse.parse_answer_map(options["answer_map"], ANSWERS)
        except ValueError as exc:
            raise CommandError(f"--answer-map: {exc}") from None
        set_name = options["gold_as_reference"]
        if set_name is not None and not SLUG.match(set_name):
            raise CommandError(
                f"--gold-as-reference {set_name!r}: a reference set name is letters, digits, "
                "- and _"
            )
        if options["retirement_from_export"] and options["row_by_row"]:
            raise CommandError("--retirement-from-export works with the bulk import only, "
                               "not with --row-by-row")
        path = options["path"]
        try:
            with progress_bar(None, "row", "read") as bar:
                parsed = parse.read_export(
                    path, answer_map=answer_map, workflow_id=options["zooniverse_workflow_id"],
                    task=options["task"], on_progress=bar.update,
                )
        except parse.ExportError as exc:
            hint = "" if options["zooniverse_workflow_id"] else " with --zooniverse-workflow-id"
            message = str(exc) + (hint if str(exc).endswith("choose one") else "")
            raise CommandError(message) from None
        try:
            with progress_bar(len(parsed.classifications), "classification", "import") as bar:
                report = zooniverse_import(
                    parsed, workflow=workflow, subject_set_name=options["subject_set"],
                    gold_reference_set=set_name, source=f"zooniverse:{path.name}",
                    method=ROW_BY_ROW if options["row_by_row"] else BULK,
                    retirement=EXPORT if options["retirement_from_export"] else RULE,
                    on_progress=bar.update,
                )
        except LabelingError as exc:
            raise CommandError(str(exc)) from None
        self._summarise(report, workflow, path, set_name is not None)
        if not report.ok:
            sys.exit(EXIT_SOME_REJECTED)

    def _summarise(self, report, workflow, path, gold):
        out = self.stdout.write
        source = f"Zooniverse workflow {report.zooniverse_workflow_id or '(none)'}"
        out(f"read {report.rows_read} rows of {path.name} ({source})")
        if report.skipped_other_workflows:
            out(f"skipped {report.skipped_other_workflows} rows of other Zooniverse workflows")
        not_counted = sum(report.not_counted.values())
        out(f"imported {report.imported} classifications into {workflow.slug}: "
            f"{report.counted} counted, {report.not_counted[NotCounted.REPEAT]} repeats, "
            f"{not_counted} not counted in all")
        for reason, n in sorted(report.not_counted.items()):
            out(f"  not counted, {NotCounted(reason).label}: {n}")
        out(f"already present {report.already_present}")
        out(f"rejected {len(report.rejected)}")
        if report.rejected:
            by_kind = ", ".join(f"{kind} {n}" for kind, n in
                                sorted(report.rejected_by_kind.items()))
            out(f"  by reason: {by_kind}")
            if report.rejected_by_kind[parse.OTHER_WORKFLOW]:
                out("  (choose the workflow to import with --zooniverse-workflow-id)")
            for rejection in report.rejected:
                out(f"  {rejection}")
        out(f"subjects created {report.subjects_created} (no stamps: aggregated, never "
            f"served); subjects retired by this import {report.subjects_retired}")
        out(f"volunteers created {report.volunteers_created}, of them anonymous "
            f"{report.anonymous_volunteers_created} (in the file: {report.volunteers_in_file}, "
            f"anonymous {report.anonymous_volunteers_in_file})")
        if gold:
            out(f"reference labels added {report.reference_labels_added} to "
                f"{report.reference_set} ({report.gold_subjects} gold subjects)")
            for what, ids in (
                ("gold subjects without an expert answer", report.gold_without_expert),
                ("gold subjects whose expert answers disagree", report.gold_conflicting),
                ("expert answers differing from the set's existing label",
                 report.gold_differing_from_set),
            ):
                if ids:
                    out(f"  {what}: {len(ids)} ({', '.join(ids[:20])}"
                        f"{', ...' if len(ids) > 20 else ''})")
        if not workflow.active:
            out(f"note: workflow {workflow.slug} is not active, so no classification counted")
        if report.counted:
            out(f"to aggregate: python manage.py aggregate --workflow {workflow.slug} "
                f"--reference-sets {report.reference_set or 'NAME'}")
