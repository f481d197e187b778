import random
from dataclasses import replace

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from labeling import services
from labeling.management.commands._progress import progress_bar
from labeling.models import Subject, Workflow
from simulation.triplets import generate_subjects

SIM_TEAM = "sim-experts"
SIM_REFERENCE_SET = "sim-experts"
# Rubin's reference set was about 8% of its subjects (DMTN-337).
DEFAULT_REFERENCE_FRACTION = 0.08


class Command(BaseCommand):
    help = "Simulate data with known truth: `simulate subjects` makes synthetic DIA triplets."

    def add_arguments(self, parser):
        kinds = parser.add_subparsers(dest="kind", required=True)
        subjects = kinds.add_parser("subjects", help="synthetic triplets, ingested like real data")
        subjects.add_argument("--n", type=int, required=True)
        subjects.add_argument("--seed", type=int, default=0)
        subjects.add_argument("--workflow", required=True, help="workflow slug")
        subjects.add_argument("--subject-set", default="simulated")
        subjects.add_argument(
            "--reference-fraction", type=float, default=DEFAULT_REFERENCE_FRACTION,
            help=f"fraction put into the {SIM_REFERENCE_SET!r} reference set with true labels",
        )

    def handle(self, *args, **options):
        self._simulate_subjects(options)

    def _simulate_subjects(self, options):
        n, seed, fraction = options["n"], options["seed"], options["reference_fraction"]
        if n < 1:
            raise CommandError("--n must be at least 1")
        if not 0.0 <= fraction <= 1.0:
            raise CommandError("--reference-fraction must lie in [0, 1]")
        try:
            workflow = Workflow.objects.get(slug=options["workflow"])
        except Workflow.DoesNotExist:
            raise CommandError(f"no workflow {options['workflow']!r}") from None
        subject_set = services.subject_set_attach(workflow=workflow, name=options["subject_set"])

        truth: dict[str, str] = {}

        def records():
            for simulated in generate_subjects(n, seed, size=settings.STAMP_SIZE):
                truth[simulated.record.external_id] = simulated.truth
                # The truth rides in the metadata, which volunteers never see, so the
                # pipeline can be measured against it later.
                yield _with_truth(simulated)

        with progress_bar(n, "subject", "simulate") as bar:
            report = services.subjects_ingest(
                records(), subject_set=subject_set, on_progress=bar.update
            )
        ingested = dict(
            Subject.objects.filter(pk__in=report.subject_ids).values_list("external_id", "pk")
        )
        rng = random.Random(seed)
        chosen = [external_id for external_id in sorted(ingested) if rng.random() < fraction]
        with transaction.atomic():
            team = services.expert_team_get_or_create(SIM_TEAM)
            reference_set = services.reference_set_get_or_create(name=SIM_REFERENCE_SET, team=team)
            added = services.reference_labels_bulk_create(
                reference_set, ((ingested[e], truth[e]) for e in chosen)
            )
        n_real = sum(truth[e] == "real" for e in ingested)
        self.stdout.write(
            f"simulated {n} subjects (seed {seed}): ingested {report.ingested} "
            f"({n_real} real, {report.ingested - n_real} bogus), "
            f"{len(report.duplicates)} already present, {len(report.rejected)} rejected; "
            f"{added} added to reference set {SIM_REFERENCE_SET!r}"
        )
        for rejection in report.rejected:
            self.stdout.write(f"  {rejection.source}: {rejection.reason}")


def _with_truth(simulated):
    metadata = {
        **simulated.record.metadata, "sim_truth": simulated.truth, "sim_kind": simulated.kind
    }
    return replace(simulated.record, metadata=metadata)
