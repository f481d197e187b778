import time

from django.core.management.base import BaseCommand, CommandError

from labeling.errors import LabelingError
from labeling.management.commands._progress import progress_bar
from training import selectors, services, storage
from training.ml.train import TrainingConfig
from training.models import JobStatus, TrainingJob

EXIT_BAD_REQUEST = 2
DEFAULTS = TrainingConfig()


class Command(BaseCommand):
    help = (
        "Train the real/bogus CNN on a label set: from scratch (a base model) or, with --from, "
        "fine-tuning a registered version. Registers the next model version (v0.N unless "
        "--name) with its weights, ONNX export and evaluation on the label set's test split. "
        "--resume JOB carries on an interrupted or failed job from its last checkpoint. "
        f"Exits {EXIT_BAD_REQUEST} on a request it cannot train."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--label-set", type=int, metavar="N", help="label set number")
        target.add_argument("--resume", type=int, metavar="JOB", help="training job id")
        parser.add_argument("--from", dest="parent", metavar="VERSION",
                            help="fine-tune from this version's weights")
        parser.add_argument("--name", help="version to register, e.g. v0.2 (default: next v0.N)")
        parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs,
                            help=f"at most this many (default {DEFAULTS.epochs})")
        parser.add_argument("--patience", type=int, default=DEFAULTS.patience,
                            help="stop after this many epochs without a lower validation "
                            f"loss (default {DEFAULTS.patience})")
        parser.add_argument("--flips", action="store_true",
                            help="augment training with random vertical/horizontal flips")
        parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
        parser.add_argument("--queue", action="store_true",
                            help="queue the job on the Celery 'training' queue")

    def handle(self, *args, **options):
        try:
            if options["resume"] is not None:
                job = selectors.training_job_get(options["resume"])
                if job.status == JobStatus.DONE:
                    raise CommandError(f"training job {job.pk} is done: it registered "
                                       f"{job.model_version.name}", returncode=EXIT_BAD_REQUEST)
            else:
                job = services.training_job_create(
                    options["label_set"], parent=options["parent"], name=options["name"],
                    options={"epochs": options["epochs"], "patience": options["patience"],
                             "flips": options["flips"], "seed": options["seed"]},
                    trigger=TrainingJob.Trigger.COMMAND, queue=options["queue"],
                )
        except LabelingError as exc:
            raise CommandError(exc.message, returncode=EXIT_BAD_REQUEST) from None
        if options["queue"]:
            job.refresh_from_db()  # with eager Celery (no broker) it has run by now
            self.stdout.write(f"queued training job {job.pk} for {job.name} ({job.status})")
            return
        self._run(job)

    def _run(self, job: TrainingJob) -> None:
        origin = f"from {job.parent.name}" if job.parent else "from scratch"
        self.stdout.write(f"training job {job.pk}: {job.name} {origin} on label set "
                          f"{job.label_set.number} ({job.options['epochs']} epochs at most)")
        started = time.perf_counter()
        bar = None

        def on_batch(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = progress_bar(total, "batch", f"epoch {job.epoch + 1}")
            bar.update(done - bar.n)

        def on_epoch(epoch) -> None:
            nonlocal bar
            if bar is not None:
                bar.close()
                bar = None
            job.epoch = epoch.epoch
            self.stdout.write(f"  epoch {epoch.epoch:3d}: train loss {epoch.train_loss:.4f}, "
                              f"validation loss {epoch.val_loss:.4f} ({epoch.seconds:.1f} s)")

        try:
            job = services.training_job_execute(job.pk, on_epoch=on_epoch, on_batch=on_batch)
        finally:
            if bar is not None:
                bar.close()
        if job.status != JobStatus.DONE:
            raise CommandError(f"training job {job.pk} failed: {job.error}",
                               returncode=EXIT_BAD_REQUEST)
        self._report(job, time.perf_counter() - started)

    def _report(self, job: TrainingJob, elapsed: float) -> None:
        version, out = job.model_version, self.stdout
        metrics = selectors.evaluation_find(version, version.label_set_id).metrics
        out.write(f"{version.name}: {version.notes} ({elapsed:.0f} s on {version.device})")
        out.write(f"  weights {storage.path_of(version.weights_path)} "
                  f"(sha256 {version.weights_sha256})")
        out.write(f"  onnx    {storage.path_of(version.onnx_path)} "
                  f"(max |ONNX - PyTorch| {version.onnx_max_difference:.1e})")
        out.write(f"  test split: {metrics['n']:,} subjects ({metrics['n_real']:,} Real, "
                  f"{metrics['n_bogus']:,} Bogus)")
        out.write(f"  {metrics['requirement']['message']}")
        if metrics["seen_in_training"]:
            out.write(f"  {metrics['seen_in_training']:,} of the test subjects were in what an "
                      "ancestor trained or validated on: these figures are flattered")
        equal = metrics["equal_point"]
        if equal is not None:
            out.write(f"  purity = completeness = {equal['value']:.1%} at threshold "
                      f"{equal['threshold']:.3f}")
        if metrics["roc_auc"] is not None:
            out.write(f"  ROC AUC {metrics['roc_auc']:.3f}; recall-at-rank area "
                      f"{metrics['recall_at_rank']['area']:.3f}")
