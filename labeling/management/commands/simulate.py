import random
import time
import uuid
from dataclasses import dataclass, replace

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from labeling import rules, selectors, services
from labeling.bulk import BulkAnswers, writes
from labeling.bulk.replay import NewAnswer
from labeling.management.commands._progress import progress_bar
from labeling.models import (
    Classification,
    ReferenceLabel,
    ReferenceLabelChange,
    Subject,
    SubjectWorkflowStatus,
    Volunteer,
    Workflow,
)
from labeling.zooniverse.signals import classifications_imported
from simulation.triplets import KIND_EXPLANATION, KIND_TRUTH, TRUTH_METADATA_KEY, generate_subjects
from simulation.volunteers import (
    VOLUNTEER_TYPES,
    Population,
    Serving,
    answer,
    make_population,
)

SIM_TEAM = "sim-experts"
INJECTION_ORIGIN = "injection"
SIM_REFERENCE_SET = "sim-experts"
# Rubin's reference set was about 8% of its subjects (DMTN-337).
DEFAULT_REFERENCE_FRACTION = 0.08
# Subjects a simulated volunteer asks the queue for at a time.
DEFAULT_VOLUNTEER_BATCH = 10
# Classifications per transaction in `simulate volunteers`: an interrupted run keeps what
# was committed, every classification whole.
COMMIT_EVERY = 500
# Streams of the volunteers' seed: who classifies next, and what they answer.
_PICK_STREAM, _ANSWER_STREAM = 1, 2


class Command(BaseCommand):
    help = (
        "Simulate data with known truth: `simulate subjects` makes synthetic DIA triplets, "
        "`simulate volunteers` classifies them with simulated volunteers through the real "
        "selection and retirement."
    )

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
        injections = kinds.add_parser(
            "injections",
            help="synthetic fakes with known truth (origin injection) for mixing into label "
                 "sets; not served to volunteers unless --serve",
        )
        injections.add_argument("--n", type=int, required=True)
        injections.add_argument("--seed", type=int, default=0)
        injections.add_argument("--workflow", required=True,
                                help="workflow slug: the subject set goes in its project")
        injections.add_argument("--subject-set", default="injections")
        injections.add_argument("--serve", action="store_true",
                                help="attach the subject set to the workflow, so volunteers "
                                     "classify the fakes too")
        volunteers = kinds.add_parser(
            "volunteers",
            help="simulated volunteers classify a workflow's simulated subjects until it is done",
        )
        volunteers.add_argument("--workflow", required=True, help="workflow slug")
        volunteers.add_argument("--n", type=int, required=True, help="number of volunteers")
        volunteers.add_argument(
            "--seed", type=int, default=0,
            help="the population's seed; volunteers are named sim-SEED-I, so a re-run reuses them",
        )
        volunteers.add_argument(
            "--max-classifications", type=int, default=None,
            help="stop after this many classifications (default: when the workflow is done)",
        )
        volunteers.add_argument(
            "--batch", type=int, default=DEFAULT_VOLUNTEER_BATCH,
            help="subjects a volunteer asks the queue for at a time "
                 f"(1 to {selectors.MAX_QUEUE_SIZE})",
        )
        volunteers.add_argument(
            "--bulk", action="store_true",
            help="serve and decide in memory with the same rules, and write the answers in "
                 "bulk (COPY on PostgreSQL): the same classifications, flags and retirements "
                 "as answering one by one, far faster; the live aggregation run, if any, is "
                 "rebuilt afterwards",
        )

    def handle(self, *args, **options):
        if options["kind"] == "volunteers":
            self._simulate_volunteers(options)
        elif options["kind"] == "injections":
            self._simulate_injections(options)
        else:
            self._simulate_subjects(options)

    # --- subjects ----------------------------------------------------------------------

    def _simulate_subjects(self, options):
        n, seed, fraction = options["n"], options["seed"], options["reference_fraction"]
        if n < 1:
            raise CommandError("--n must be at least 1")
        if not 0.0 <= fraction <= 1.0:
            raise CommandError("--reference-fraction must lie in [0, 1]")
        workflow = _workflow(options["workflow"])
        subject_set = services.subject_set_attach(workflow=workflow, name=options["subject_set"])

        kinds: dict[str, str] = {}

        def records():
            for simulated in generate_subjects(n, seed, size=settings.STAMP_SIZE):
                kinds[simulated.record.external_id] = simulated.kind
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
                reference_set, ((ingested[e], KIND_TRUTH[kinds[e]]) for e in chosen),
                source=ReferenceLabelChange.Source.SIMULATOR,
            )
            _explain(reference_set, {ingested[e]: kinds[e] for e in chosen})
        n_real = sum(KIND_TRUTH[kinds[e]] == "real" for e in ingested)
        self.stdout.write(
            f"simulated {n} subjects (seed {seed}): ingested {report.ingested} "
            f"({n_real} real, {report.ingested - n_real} bogus), "
            f"{len(report.duplicates)} already present, {len(report.rejected)} rejected; "
            f"{added} added to reference set {SIM_REFERENCE_SET!r}"
        )
        for rejection in report.rejected:
            self.stdout.write(f"  {rejection.source}: {rejection.reason}")

    # --- injections --------------------------------------------------------------------

    def _simulate_injections(self, options):
        n, seed = options["n"], options["seed"]
        if n < 1:
            raise CommandError("--n must be at least 1")
        if seed < 0:
            raise CommandError("--seed must not be negative")
        workflow = _workflow(options["workflow"])
        if options["serve"]:
            subject_set = services.subject_set_attach(workflow=workflow,
                                                      name=options["subject_set"])
        else:
            subject_set = services.subject_set_get_or_create(project=workflow.project,
                                                             name=options["subject_set"])

        def records():
            for index, simulated in enumerate(generate_subjects(n, seed,
                                                                size=settings.STAMP_SIZE)):
                # Their own external ids: `simulate subjects` with the same seed makes the
                # same pixels under sim-SEED-I, and those must stay distinct subjects.
                yield replace(_with_truth(simulated), external_id=f"injection-{seed}-{index}",
                              origin=INJECTION_ORIGIN)

        with progress_bar(n, "subject", "simulate injections") as bar:
            report = services.subjects_ingest(
                records(), subject_set=subject_set, on_progress=bar.update
            )
        in_set = Subject.objects.filter(subject_set=subject_set)
        n_real = in_set.filter(metadata__sim_truth="real").count()
        served = "served to volunteers" if options["serve"] else "not served to volunteers"
        self.stdout.write(
            f"simulated {n} injections (seed {seed}): ingested {report.ingested}, "
            f"{len(report.duplicates)} already present, {len(report.rejected)} rejected; "
            f"subject set {subject_set.name!r} ({served}) holds {in_set.count()} "
            f"({n_real} real)"
        )

    # --- volunteers --------------------------------------------------------------------

    def _simulate_volunteers(self, options):
        n, seed, batch = options["n"], options["seed"], options["batch"]
        limit = options["max_classifications"]
        if n < 1:
            raise CommandError("--n must be at least 1")
        if seed < 0:
            raise CommandError("--seed must not be negative")
        if not 1 <= batch <= selectors.MAX_QUEUE_SIZE:
            raise CommandError(f"--batch must lie between 1 and {selectors.MAX_QUEUE_SIZE}")
        if limit is not None and limit < 1:
            raise CommandError("--max-classifications must be at least 1")
        workflow = _workflow(options["workflow"])
        if not workflow.active:
            raise CommandError(f"workflow {workflow.slug!r} is not active: nothing is served")
        truth = _load_truth(workflow)
        reference_ids = set(
            ReferenceLabel.objects.counted()
            .filter(subject_id__in=truth.keys())
            .values_list("subject_id", flat=True)
        )
        science_ids = truth.keys() - reference_ids
        if not science_ids:
            raise CommandError(
                f"workflow {workflow.slug!r} has only reference subjects: nothing to retire"
            )
        retired = set(
            SubjectWorkflowStatus.objects.filter(
                workflow=workflow, retired=True, subject_id__in=science_ids
            ).values_list("subject_id", flat=True)
        )

        population = make_population(n, seed)
        with transaction.atomic():
            volunteers = [services.volunteer_for_external_name(f"sim-{seed}-{i}")
                          for i in range(n)]
        drive = _Drive(
            workflow=workflow, population=population, volunteers=volunteers, truth=truth,
            science_ids=science_ids, reference_ids=reference_ids, retired=retired,
            limit=limit, batch=batch, user_agent=f"simulate volunteers (seed {seed})",
            pick_rng=np.random.default_rng([seed, _PICK_STREAM]),
            answer_rng=np.random.default_rng([seed, _ANSWER_STREAM]),
            queue_rng=random.Random(seed),
            # zeroed when a volunteer runs out of work
            weights=population.activity.copy(),
            counts=np.zeros(n, dtype=np.int64),
        )
        started = time.perf_counter()
        with progress_bar(limit, "classification", "simulate") as bar:
            bar.set_postfix(retired=f"{len(retired)}/{len(science_ids)}")
            (_drive_bulk if options["bulk"] else _drive_one_by_one)(drive, bar)
        elapsed = time.perf_counter() - started
        made, on_reference, counts = drive.made, drive.on_reference, drive.counts

        if len(retired) == len(science_ids):
            why = "the workflow is exhausted: every non-reference subject retired"
        elif drive.weights.sum() <= 0:
            why = "every volunteer has classified every subject left to them"
        else:
            why = f"stopped at --max-classifications {limit}"
        active = counts[counts > 0]
        self.stdout.write(
            f"simulated {n} volunteers (seed {seed}) on workflow {workflow.slug!r}: "
            f"{made} classifications ({on_reference} on reference subjects) by "
            f"{len(active)} volunteers in {elapsed:.1f} s ({made / max(elapsed, 1e-9):.0f}/s)\n"
            f"retired {len(retired)}/{len(science_ids)} subjects; {why}"
        )
        if len(active):
            self.stdout.write(
                f"classifications per volunteer who classified: median {np.median(active):g}, "
                f"max {active.max()}, above 100: {int((active > 100).sum())}, "
                f"above 10,000: {int((active > 10_000).sum())}"
            )
        self.stdout.write("by type: volunteers, who classified, classifications")
        for name in VOLUNTEER_TYPES:
            of_type = population.types == name
            self.stdout.write(
                f"  {name:<12} {int(of_type.sum()):>7} {int((counts[of_type] > 0).sum()):>7} "
                f"{int(counts[of_type].sum()):>9}"
            )


@dataclass
class _Drive:
    """A simulation run's fixed inputs and moving state, shared by the two ways to drive it."""

    workflow: Workflow
    population: Population
    volunteers: list[Volunteer]
    truth: dict[int, tuple[bool, float]]
    science_ids: set[int]
    reference_ids: set[int]
    retired: set[int]
    limit: int | None
    batch: int
    user_agent: str
    pick_rng: np.random.Generator
    answer_rng: np.random.Generator
    queue_rng: random.Random
    weights: np.ndarray
    counts: np.ndarray
    made: int = 0
    on_reference: int = 0

    def going(self) -> bool:
        return (len(self.retired) < len(self.science_ids) and self.weights.sum() > 0
                and (self.limit is None or self.made < self.limit))

    def pick(self, cumulative: np.ndarray) -> tuple[int, int]:
        """The next volunteer, with probability proportional to activity, and how many
        subjects they ask for."""
        i = int(np.searchsorted(cumulative, self.pick_rng.random() * cumulative[-1],
                                side="right"))
        return i, self.batch if self.limit is None else min(self.batch, self.limit - self.made)

    def answers(self, i: int, ids: list[int]) -> np.ndarray:
        try:
            is_real, snr = zip(*(self.truth[s] for s in ids), strict=True)
        except KeyError as exc:
            raise CommandError(
                f"subject {exc.args[0]} joined workflow {self.workflow.slug!r} "
                "while the simulation ran and has no loaded truth"
            ) from None
        return np.atleast_1d(answer(self.population, i, np.array(is_real), np.array(snr),
                                    self.answer_rng))

    def answered(self, i: int, ids: list[int], bar) -> None:
        self.on_reference += sum(s in self.reference_ids for s in ids)
        self.made += len(ids)
        self.counts[i] += len(ids)
        bar.update(len(ids))
        bar.set_postfix(retired=f"{len(self.retired)}/{len(self.science_ids)}", refresh=False)


def _drive_one_by_one(drive: _Drive, bar) -> None:
    """Each volunteer asks the real queue and answers through `classification_create`."""
    cumulative = np.cumsum(drive.weights)
    while drive.going():
        # A transaction per COMMIT_EVERY classifications, not per answer: on SQLite
        # each commit is a disk sync that costs more than the answer itself. Each
        # classification_create is still its own savepoint.
        with transaction.atomic():
            committed_at = drive.made
            while drive.going() and drive.made - committed_at < COMMIT_EVERY:
                i, size = drive.pick(cumulative)
                queue = selectors.subject_queue(
                    volunteer=drive.volunteers[i], workflow=drive.workflow, n=size,
                    rng=drive.queue_rng,
                )
                if queue.finished or not queue.subject_ids:
                    drive.weights[i] = 0.0  # out of work: they leave the pool
                    cumulative = np.cumsum(drive.weights)
                    continue
                ids = queue.subject_ids
                for subject_id, real in zip(ids, drive.answers(i, ids), strict=True):
                    outcome = services.classification_create(
                        volunteer=drive.volunteers[i], workflow_id=drive.workflow.pk,
                        subject_id=subject_id, answer="real" if real else "bogus",
                        client_id=uuid.uuid4(), user_agent=drive.user_agent,
                    )
                    if outcome.subject_retired and subject_id in drive.science_ids:
                        drive.retired.add(subject_id)
                drive.answered(i, ids, bar)


# What the bulk mode stores of each answer; the rest take the model's defaults.
_BULK_COLUMNS = ("client_id", "volunteer_id", "subject_id", "workflow_id", "answer",
                 "created_at", "user_agent", "counted", "not_counted_reason")


def _drive_bulk(drive: _Drive, bar) -> None:
    """The same volunteers, queue rules and retirement rule, all in memory (`Serving`,
    `BulkAnswers`); the answers are written COMMIT_EVERY at a time in bulk."""
    workflow = drive.workflow
    examples = {example.subject_id for example in selectors.tutorial_examples(workflow)}
    schedule = rules.validate_gold_schedule(workflow.gold_schedule)
    serving = Serving(drive.science_ids - drive.retired, drive.reference_ids - examples,
                      drive.queue_rng, gold_rate=lambda n: rules.gold_rate(n, schedule))
    index_of = {volunteer.pk: i for i, volunteer in enumerate(drive.volunteers)}
    for volunteer_id, subject_id in Classification.objects.filter(
        workflow=workflow, volunteer_id__in=list(index_of)
    ).values_list("volunteer_id", "subject_id").iterator(chunk_size=20_000):
        serving.answered(index_of[volunteer_id], subject_id)
    decided = BulkAnswers(workflow, drive.truth, list(index_of),
                          reference_subjects=drive.reference_ids)
    cumulative = np.cumsum(drive.weights)
    while drive.going():
        pending: list[tuple] = []
        while drive.going() and len(pending) < COMMIT_EVERY:
            i, size = drive.pick(cumulative)
            ids = serving.queue(i, size)
            if not ids:
                drive.weights[i] = 0.0  # out of work: they leave the pool
                cumulative = np.cumsum(drive.weights)
                continue
            volunteer_id, now = drive.volunteers[i].pk, timezone.now()
            rows = [NewAnswer("real" if real else "bogus", now) for real in drive.answers(i, ids)]
            reasons = decided.decide(rows, [volunteer_id] * len(ids), ids)
            for subject_id, row, reason in zip(ids, rows, reasons, strict=True):
                serving.answered(i, subject_id)
                pending.append((uuid.uuid4(), volunteer_id, subject_id, workflow.pk, row.answer,
                                now, drive.user_agent, not reason, str(reason)))
                if decided.retired(subject_id):
                    serving.retire(subject_id)
                    if subject_id in drive.science_ids:
                        drive.retired.add(subject_id)
            drive.answered(i, ids, bar)
        with transaction.atomic():
            writes.rows_write(Classification, _BULK_COLUMNS, pending)
            decided.statuses_write()
            services.volunteer_counts_add(workflow.pk, (row[1] for row in pending))
    if drive.made:
        # The answers went in without the live aggregation step: have it rebuilt, once.
        transaction.on_commit(lambda: classifications_imported.send(
            sender=BulkAnswers, workflow_id=workflow.pk
        ))


def _workflow(slug: str) -> Workflow:
    try:
        return Workflow.objects.get(slug=slug)
    except Workflow.DoesNotExist:
        raise CommandError(f"no workflow {slug!r}") from None


def _load_truth(workflow: Workflow) -> dict[int, tuple[bool, float]]:
    """(truth is Real, SNR) of every subject the workflow can serve, in one query."""
    rows = (
        SubjectWorkflowStatus.objects.filter(workflow=workflow)
        .exclude(subject__stamps="")  # never served, as in the selector
        .values_list("subject_id", "subject__external_id", "subject__metadata", "subject__snr")
    )
    truth = {}
    for subject_id, external_id, metadata, snr in rows.iterator(chunk_size=5000):
        label = (metadata or {}).get(TRUTH_METADATA_KEY)
        if label not in ("real", "bogus"):
            raise CommandError(
                f"subject {external_id!r} in workflow {workflow.slug!r} has no simulated truth "
                "(metadata sim_truth): simulated volunteers only classify subjects made by "
                "`simulate subjects`"
            )
        truth[subject_id] = (label == "real", np.nan if snr is None else snr)
    if not truth:
        raise CommandError(f"workflow {workflow.slug!r} has no subjects to classify")
    return truth


def _explain(reference_set, kind_of: dict[int, str]) -> None:
    """Give simulated reference labels their kind's explanation (volunteer feedback).

    Only labels still without one and still carrying the kind's truth: an expert's own
    label or explanation is kept.
    """
    by_kind: dict[str, list[int]] = {}
    for subject_id, kind in kind_of.items():
        by_kind.setdefault(kind, []).append(subject_id)
    for kind, subject_ids in by_kind.items():
        for start in range(0, len(subject_ids), 500):  # under SQLite's variable limit
            ReferenceLabel.objects.filter(
                reference_set=reference_set, subject_id__in=subject_ids[start : start + 500],
                label=KIND_TRUTH[kind],
                explanation="",
            ).update(explanation=KIND_EXPLANATION[kind])


def _with_truth(simulated):
    metadata = {
        **simulated.record.metadata, TRUTH_METADATA_KEY: simulated.truth, "sim_kind": simulated.kind
    }
    return replace(simulated.record, metadata=metadata)

