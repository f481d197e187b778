import time

from django.core.management.base import BaseCommand, CommandError

from aggregation.labelsets import services, storage
from aggregation.labelsets.core import CLASS_NAMES, SPLIT_NAMES
from aggregation.models import LabelSet
from labeling.errors import LabelingError
from labeling.management.commands._progress import progress_bar

EXIT_BAD_REQUEST = 2


class Command(BaseCommand):
    help = (
        "Export a versioned label set from a finished aggregation run: balanced, split "
        "train/val/test with a seed, written as train.npz, val.npz, test.npz, labels.csv and "
        "manifest.json (plus one .tar of them) under LABEL_SETS_ROOT, and registered as the "
        f"next numbered LabelSet. Exits {EXIT_BAD_REQUEST} on a request it cannot export."
    )

    def add_arguments(self, parser):
        parser.add_argument("--run", type=int, required=True, help="aggregation run id")
        parser.add_argument("--scenario", required=True, choices=LabelSet.Scenario.values)
        parser.add_argument("--balance", default="subsample", choices=services.BALANCES,
                            help="subsample the larger class to the smaller (default), or keep "
                            "every labelled subject")
        parser.add_argument("--split", default="0.8,0.1,0.1",
                            help="train,val,test fractions summing to 1 (default 0.8,0.1,0.1)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--stratify", choices=services.STRATIFY_BY,
                            help="balance and split within each origin too")
        parser.add_argument("--mix-injections", metavar="SUBJECTSET:FRACTION",
                            help="mix in fakes with known truth from this subject set as this "
                            "share of the training split (train only)")
        parser.add_argument("--min-snr", type=float, help="keep subjects with |SNR| >= this")
        parser.add_argument("--fine-tune-from", default="", metavar="VERSION",
                            help="record that a fine-tuning from this model version is wanted")
        parser.add_argument("--queue", action="store_true",
                            help="queue the export on the Celery 'aggregation' queue")

    def handle(self, *args, **options):
        given = {"scenario": options["scenario"], "balance": options["balance"],
                 "split": options["split"], "seed": options["seed"],
                 "stratify": options["stratify"]}
        if options["mix_injections"] is not None:
            given["mix_injections"] = options["mix_injections"]
        if options["min_snr"] is not None:
            given["min_snr"] = options["min_snr"]
        try:
            export_options = services.ExportOptions.from_dict(given)
            if options["queue"]:
                job = services.label_set_export_queue(
                    options["run"], export_options, fine_tune_from=options["fine_tune_from"])
            else:
                started = time.perf_counter()
                with progress_bar(None, "subject", f"run {options['run']}: export") as bar:
                    label_set = services.label_set_export(
                        options["run"], export_options,
                        fine_tune_from=options["fine_tune_from"], on_progress=bar.update,
                    )
                elapsed = time.perf_counter() - started
        except LabelingError as exc:
            raise CommandError(exc.message, returncode=EXIT_BAD_REQUEST) from None
        if options["queue"]:
            job.refresh_from_db()  # with eager Celery (no broker) it has run by now
            self.stdout.write(f"queued label-set export job {job.pk} ({job.status})")
            return
        self._report(label_set, elapsed)

    def _report(self, label_set: LabelSet, elapsed: float) -> None:
        out, manifest = self.stdout, label_set.manifest
        out.write(
            f"label set {label_set.number}: run {label_set.run_id} "
            f"[{manifest['source']['reference_name']}], {label_set.scenario}, "
            f"{label_set.n_subjects:,} subjects in {elapsed:.1f} s "
            f"({label_set.n_subjects / max(elapsed, 1e-9):,.0f} subjects/s)"
        )
        out.write(f"  folder  {storage.folder_of(label_set.path)}")
        out.write(f"  archive {storage.archive_of(label_set.path)} "
                  f"({label_set.archive_size / 1e6:,.1f} MB, sha256 {label_set.archive_sha256})")
        classes = list(CLASS_NAMES.values())
        out.write(f"  {'split':<6}" + "".join(f"{c:>9}" for c in classes) + f"{'total':>9}")
        for split in SPLIT_NAMES:
            counts = manifest["counts"][split]
            out.write(f"  {split:<6}" + "".join(f"{counts[c]['total']:>9,}" for c in classes)
                      + f"{counts['total']:>9,}")
        injections = manifest["injections"]
        if injections:
            out.write(f"  {injections['n']:,} injections from {injections['subject_set']!r}, "
                      "in train only")
        if label_set.fine_tune_from:
            # The training app queued the job when the export committed (with no broker, Celery
            # is eager and it has already run).
            out.write(f"  fine-tuning from {label_set.fine_tune_from!r} requested")
            for job in label_set.training_jobs.order_by("pk"):
                outcome = (f"registered {job.model_version.name}" if job.model_version_id
                           else job.status + (f": {job.error}" if job.error else ""))
                out.write(f"    training job {job.pk}: {outcome}")
