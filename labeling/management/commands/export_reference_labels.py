import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling import reference_csv, selectors
from labeling.management.commands._progress import progress_bar
from labeling.models import ReferenceSet


class Command(BaseCommand):
    help = (
        "Write a reference set's labels as CSV (subject_id, external_id, origin, label, expert, "
        "explanation, updated_at), to a file or standard output; import_reference_labels reads "
        "it back."
    )

    def add_arguments(self, parser):
        parser.add_argument("--set", required=True, dest="set_name", help="reference set name")
        parser.add_argument("-o", "--output", type=Path, default=None,
                            help="the CSV file to write (default: standard output)")

    def handle(self, *args, **options):
        reference_set = ReferenceSet.objects.filter(name=options["set_name"]).first()
        if reference_set is None:
            known = ", ".join(ReferenceSet.objects.order_by("name").values_list("name",
                                                                                 flat=True))
            raise CommandError(f"no reference set {options['set_name']!r} "
                               f"(known: {known or 'none'})")
        output = options["output"]
        if output is None:
            n = self._write(reference_set, sys.stdout)
            self.stderr.write(f"exported {n} labels of reference set {reference_set.name!r}")
            return
        # Written beside the target and renamed into place: never half a file under its name.
        partial = output.with_name(output.name + ".partial")
        try:
            with partial.open("w", newline="", encoding="utf-8") as handle:
                n = self._write(reference_set, handle)
            partial.replace(output)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise CommandError(f"cannot write {output}: {exc.strerror or exc}") from None
        self.stdout.write(f"exported {n} labels of reference set {reference_set.name!r} "
                          f"to {output}")

    def _write(self, reference_set: ReferenceSet, handle) -> int:
        lines = reference_csv.csv_lines(selectors.reference_labels_export_rows(reference_set))
        handle.write(next(lines))  # the header
        n = 0
        with progress_bar(reference_set.labels.count(), "label", "export") as bar:
            for line in lines:
                handle.write(line)
                n += 1
                bar.update(1)
        return n
