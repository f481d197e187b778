import sys
import warnings
from pathlib import Path

from astropy.io.fits.verify import VerifyWarning
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from labeling import services
from labeling.ingest import FORMATS, IngestLimits, read_path
from labeling.ingest.base import printable
from labeling.management.commands._progress import progress_bar
from labeling.models import Workflow
from labeling.records import STAMP_FITS, Rejection

EXIT_SOME_REJECTED = 2


class Command(BaseCommand):
    help = (
        "Ingest stamp triplets into a workflow's subject set. Exits 0 when every input went "
        f"in, {EXIT_SOME_REJECTED} when some were rejected (each with its reason)."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--workflow", required=True, help="workflow slug")
        parser.add_argument("--subject-set", default="main", help="subject set name")
        parser.add_argument("--format", default="auto", choices=["auto", *FORMATS])
        parser.add_argument("--origin", default=None,
                            help="origin handle for every subject (e.g. tns, gaia, injection)")

    def handle(self, *args, **options):
        try:
            workflow = Workflow.objects.get(slug=options["workflow"])
        except Workflow.DoesNotExist:
            raise CommandError(f"no workflow {options['workflow']!r}") from None
        if settings.STAMP_FIT not in STAMP_FITS:
            raise CommandError(
                f"STAMP_FIT must be one of {', '.join(STAMP_FITS)}, got {settings.STAMP_FIT!r}"
            )
        subject_set = services.subject_set_attach(workflow=workflow, name=options["subject_set"])
        bar = progress_bar(None, "subject", "ingest")
        limits = IngestLimits(
            max_stamp_side=settings.INGEST_MAX_STAMP_SIDE,
            max_decompressed_bytes=settings.INGEST_MAX_DECOMPRESSED_BYTES,
            allowed_roots=tuple(Path(root) for root in settings.INGEST_ALLOWED_ROOTS),
        )

        def records():
            for path in options["paths"]:
                if not path.exists():
                    yield Rejection(printable(str(path)), "no such file or directory")
                    continue
                yield from read_path(path, options["format"], options["origin"], limits=limits)

        # astropy warns about harmless header defects (ZTF cutouts carry a BLANK keyword on
        # float data, twice per stamp): hundreds of lines that would bury the summary. They are
        # caught here and counted into it instead; any other warning is shown as usual.
        with bar, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", VerifyWarning)
            report = services.subjects_ingest(
                records(), subject_set=subject_set, on_progress=bar.update
            )
        verify_warnings = [w for w in caught if issubclass(w.category, VerifyWarning)]
        for other in caught:
            if not issubclass(other.category, VerifyWarning):
                warnings.showwarning(other.message, other.category, other.filename, other.lineno)
        self._summarise(report, workflow, subject_set.name)
        if verify_warnings:
            self.stdout.write(
                f"silenced {len(verify_warnings)} astropy FITS header warnings (VerifyWarning), "
                f"e.g. {printable(str(verify_warnings[0].message))[:160]}"
            )
        if not report.ok:
            sys.exit(EXIT_SOME_REJECTED)

    def _summarise(self, report, workflow, subject_set_name):
        out = self.stdout
        out.write(f"ingested {report.ingested} subjects into {workflow.slug}/{subject_set_name}")
        out.write(f"skipped {len(report.duplicates)} duplicate external ids"
                  + (f" (e.g. {', '.join(report.duplicates[:5])})" if report.duplicates else ""))
        out.write(f"rejected {len(report.rejected)}")
        for rejection in report.rejected:
            out.write(f"  {rejection.source}: {rejection.reason}")
