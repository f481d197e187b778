"""Writes for aggregation: create a run, execute it, keep the live run current.

The science is `aggregation.swap`; this module moves rows into arrays and results back into
rows, in bulk (PostgreSQL `COPY` for the posteriors at scale), and records what happened.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from aggregation import pgbinary, selectors
from aggregation.models import (
    AggregationRun,
    AppliedClassification,
    SubjectPosterior,
    VolunteerSkill,
)
from aggregation.signals import run_finished
from aggregation.swap import (
    BOGUS,
    REAL,
    UNKNOWN,
    LabelAccuracy,
    SubjectState,
    SwapInputError,
    SwapParams,
    SwapResult,
    VolunteerState,
    breakdown,
    label_accuracy,
    majority_vote,
    online_step,
    stability_labels,
    swap_batch,
    swap_em,
)
from labeling.errors import InvalidInput
from labeling.models import Classification, ReferenceLabel, ReferenceSet, Subject, Workflow
from labeling.records import DEFAULT_UNION_POLICY, UNION_POLICIES

_LABEL_NAMES = {REAL: "real", BOGUS: "bogus", UNKNOWN: ""}
_WRITE_BATCH = 5_000
Mode = AggregationRun.Mode


class RunNotReady(Exception):
    """The live run is still being built: the online update must wait for it."""


def swap_params(**overrides) -> SwapParams:
    """SwapParams from the defaults and the given values, checked."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        params = SwapParams(**given)
        params.validate()
    except (TypeError, SwapInputError) as exc:
        raise InvalidInput(f"invalid SWAP parameters: {exc}") from exc
    return params


def run_create(
    *,
    workflow: Workflow,
    reference_sets: list[ReferenceSet],
    mode: str = Mode.BATCH,
    params: SwapParams | None = None,
    union_policy: str = DEFAULT_UNION_POLICY,
    triggered_by: str = "command",
    created_by=None,
) -> AggregationRun:
    """Register a run (pending). An online run becomes the workflow's live run at once, so
    answers arriving while it is built wait for it rather than being lost.

    `reference_sets` in the union's order; `union_policy` (see `records.UNION_POLICIES`)
    settles the subjects they label differently, in the run and in its online updates, and is
    kept in the run's summary."""
    if mode not in Mode.values:
        raise InvalidInput(f"mode must be one of {', '.join(Mode.values)}")
    if union_policy not in UNION_POLICIES:
        raise InvalidInput(f"union policy must be one of {', '.join(UNION_POLICIES)}")
    if not reference_sets:
        raise InvalidInput("a run needs at least one reference set")
    params = params or swap_params()
    with transaction.atomic():
        if mode == Mode.ONLINE:
            AggregationRun.objects.filter(workflow=workflow, live=True).update(live=False)
        run = AggregationRun.objects.create(
            workflow=workflow,
            reference_name="+".join(s.name for s in reference_sets),
            mode=mode,
            parameters=dataclasses.asdict(params),
            live=mode == Mode.ONLINE,
            triggered_by=triggered_by,
            created_by=created_by,
            summary={selectors.UNION_POLICY_KEY: union_policy},
        )
        run.reference_sets.set(reference_sets)
    return run


def run_queue(run: AggregationRun) -> None:
    """Queue the run's execution once the transaction that created it commits."""
    from aggregation.tasks import aggregate_workflow

    transaction.on_commit(lambda: aggregate_workflow.delay(run.pk))


def run_execute(run_id: int, on_progress: Callable[[int], None] | None = None) -> AggregationRun:
    """Compute a run and store its results. Safe to call twice: a finished run is left alone,
    and a run a dead worker left half-way is computed again from scratch (results are written
    in one transaction, so there is never half a result to clean)."""
    run = selectors.run_get(run_id)
    if run.status == AggregationRun.Status.DONE:
        return run
    run.status, run.started_at, run.error = AggregationRun.Status.RUNNING, timezone.now(), ""
    run.save(update_fields=["status", "started_at", "error"])
    try:
        _compute(run, on_progress)
    except Exception as exc:
        run.status, run.error, run.finished_at = (
            AggregationRun.Status.FAILED, f"{type(exc).__name__}: {exc}", timezone.now()
        )
        run.save(update_fields=["status", "error", "finished_at"])
        raise
    run_finished.send_robust(sender=AggregationRun, run=run)
    return run


def _compute(run: AggregationRun, on_progress: Callable[[int], None] | None) -> None:
    params = SwapParams(**run.parameters)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    through = selectors.last_classification_id(run.workflow_id) if run.live else None
    data = selectors.classification_data(run.workflow_id, through_id=through)
    reference = selectors.reference_truth(
        data.subject_ids, selectors.run_reference_sets(run), selectors.run_union_policy(run)
    )
    timings["read_s"] = time.perf_counter() - started

    started = time.perf_counter()
    result = _swap(run.mode, data, reference.truth, params)
    timings["swap_s"] = time.perf_counter() - started

    started = time.perf_counter()
    summary = _summary(run, data, reference, result)
    timings["summary_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with transaction.atomic():
        SubjectPosterior.objects.filter(run=run).delete()
        VolunteerSkill.objects.filter(run=run).delete()
        AppliedClassification.objects.filter(run=run).delete()
        _write_posteriors(run, data.subject_ids, result, on_progress)
        timings["write_posteriors_s"] = time.perf_counter() - started
        skills_started = time.perf_counter()
        _write_skills(run, data, result)
        timings["write_skills_s"] = time.perf_counter() - skills_started
        timings["write_s"] = time.perf_counter() - started
        run.timings = timings
        run.summary = summary
        run.replayed_through = data.last_classification_id if run.live else None
        run.n_classifications = len(data.table.subject)
        run.n_subjects = data.table.n_subjects
        run.n_volunteers = data.table.n_volunteers
        run.n_contributing_volunteers = int(result.skills.contributes.sum())
        run.n_reference_subjects = int((reference.truth != UNKNOWN).sum())
        run.status, run.finished_at = AggregationRun.Status.DONE, timezone.now()
        run.save()
        started = time.perf_counter()
    # What COMMIT costs (deferred constraint checks, flushing the WAL) is part of writing the
    # results; it is known only once the transaction is over.
    timings["commit_s"] = time.perf_counter() - started
    AggregationRun.objects.filter(pk=run.pk).update(timings=timings)


def _swap(mode: str, data: selectors.ClassificationData, truth: np.ndarray, params: SwapParams):
    if mode == Mode.EM:
        # EM learns the class prior too, as Dawid-Skene learns its class marginals, starting
        # from the run's prior: a fixed prior far from the true Real fraction biases every
        # soft label and so every skill learned from them.
        return swap_em(data.table, truth, params, learn_prior=True)
    timing = "at_classification" if mode == Mode.ONLINE else "final"
    return swap_batch(data.table, truth, params, skill_timing=timing)


def _summary(run, data, reference, result: SwapResult) -> dict:
    summary = {
        "breakdown": [dataclasses.asdict(r) for r in breakdown(result, run.reference_name)],
        selectors.UNION_POLICY_KEY: selectors.run_union_policy(run),
        "reference_conflicts": reference.conflicts,
    }
    if run.mode == Mode.EM:
        summary["em"] = {"iterations": result.iterations, "converged": result.converged,
                         "learned_prior": result.params.prior}
    truth = selectors.simulated_truth(run.workflow, data.subject_ids)
    if truth is not None:
        summary["truth"] = truth_comparison(data, reference.truth, truth, result)
    return summary


def volunteer_truth(reference_truth: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Simulated truth on the subjects whose label volunteers produced: the reference subjects,
    whose labels the run was given, are left out of every accuracy figure."""
    return np.where(reference_truth == UNKNOWN, truth, UNKNOWN).astype(np.int8)


def truth_comparison(data, reference_truth, truth, result: SwapResult) -> dict:
    """Accuracy against simulated truth: stable and unstable sets, and majority vote."""
    volunteers_labelled = volunteer_truth(reference_truth, truth)
    rows = {
        "stable": label_accuracy(result.stable_label, volunteers_labelled),
        "unstable": label_accuracy(result.unstable_label, volunteers_labelled),
        "majority": label_accuracy(majority_vote(data.table), volunteers_labelled),
    }
    return {name: accuracy_dict(row) for name, row in rows.items()}


def accuracy_dict(row: LabelAccuracy) -> dict:
    """A LabelAccuracy as JSON: no label at all has no accuracy (None, not NaN)."""
    values = dataclasses.asdict(row)
    if not row.n_labelled:
        values["accuracy"] = None
    return values


def _write_posteriors(run, subject_ids, result: SwapResult, on_progress) -> None:
    if connection.vendor == "postgresql":
        _copy_posteriors(run, subject_ids, result, on_progress)
    else:
        _create_posteriors(run, subject_ids, result, on_progress)


def _create_posteriors(run, subject_ids, result: SwapResult, on_progress) -> None:
    """The posteriors through the ORM, in batches: any database."""
    offsets, values = result.traj_offsets, result.traj_values
    stable = result.stable_label != UNKNOWN
    batch = []
    # One subject's trajectory becomes Python floats at a time: all of them at once would
    # be 24 bytes per classification.
    for i, subject_id in enumerate(subject_ids.tolist()):
        batch.append(SubjectPosterior(
            run=run, subject_id=subject_id, p_real=float(result.p_real[i]),
            log_odds=float(result.log_odds[i]),
            trajectory=values[offsets[i]:offsets[i + 1]].tolist(),
            n_counted=int(result.n_counted[i]),
            label=_LABEL_NAMES[int(result.unstable_label[i])], stable=bool(stable[i]),
        ))
        if len(batch) == _WRITE_BATCH:
            SubjectPosterior.objects.bulk_create(batch)
            if on_progress:
                on_progress(len(batch))
            batch = []
    SubjectPosterior.objects.bulk_create(batch)
    if on_progress and batch:
        on_progress(len(batch))


def _copy_posteriors(run, subject_ids, result: SwapResult, on_progress) -> None:
    """The posteriors on PostgreSQL, with no Python object per subject or trajectory point.

    Binary COPY (encoded with numpy) into an UNLOGGED staging table, then one INSERT ...
    SELECT: PostgreSQL turns each float8[] trajectory into the JSON array the model stores
    (`to_jsonb`), so no JSON is built here. The subjects are joined in that statement, so a
    subject deleted since the read is caught in bulk (the run fails and can be run again)
    rather than by a foreign key checked row by row at COMMIT: the posterior's foreign keys
    are not database constraints (see SubjectPosterior).
    """
    table = SubjectPosterior._meta.db_table
    stage = f"{table}_stage_{run.pk}"
    columns = {
        "subject_id": ("int8", subject_ids),
        "p_real": ("float8", result.p_real),
        "log_odds": ("float8", result.log_odds),
        "n_counted": ("int4", result.n_counted),
        "label": ("int2", result.unstable_label),
        "stable": ("bool", result.stable_label != UNKNOWN),
    }
    label = " ".join(f"WHEN {code} THEN '{name}'" for code, name in _LABEL_NAMES.items())
    definition = ", ".join(f"{name} {pg_type}" for name, (pg_type, _) in columns.items())
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE UNLOGGED TABLE {stage} ({definition}, trajectory float8[])")
        # to_jsonb writes each float8 as its text form: with this, the shortest exact digits
        # (PostgreSQL 12 and later), so the stored JSON reads back as the very same floats.
        cursor.execute("SET LOCAL extra_float_digits = 1")
        blocks = pgbinary.encode_blocks(
            list(columns.values()), result.traj_offsets, result.traj_values
        )
        with cursor.cursor.copy(f"COPY {stage} FROM STDIN (FORMAT binary)") as copy:
            for block in blocks:
                copy.write(block)
        cursor.execute(
            f"INSERT INTO {table} (run_id, subject_id, p_real, log_odds, trajectory,"
            " n_counted, label, stable)"
            " SELECT %s, s.subject_id, s.p_real, s.log_odds, to_jsonb(s.trajectory),"
            f" s.n_counted, CASE s.label {label} END, s.stable FROM {stage} s"
            f" JOIN {Subject._meta.db_table} subject ON subject.id = s.subject_id",
            [run.pk],
        )
        inserted = cursor.rowcount
        cursor.execute(f"DROP TABLE {stage}")
        # Statistics for the rows just added: until autovacuum gets to it, the planner takes
        # a run's posteriors for a handful and scans all of them to find a page's fifty.
        cursor.execute(f"ANALYZE {table}")
    if inserted != len(subject_ids):
        raise RuntimeError(
            f"{len(subject_ids) - inserted} of the run's subjects were deleted while it was "
            "computed; run it again"
        )
    if on_progress:
        on_progress(inserted)


def _write_skills(run, data, result: SwapResult) -> None:
    skills = result.skills
    n_classifications = np.bincount(data.table.volunteer, minlength=data.table.n_volunteers)
    columns = {
        "volunteer_id": ("int8", data.volunteer_ids),
        "p_real": ("float8", skills.p_real), "p_bogus": ("float8", skills.p_bogus),
        "n_real_seen": ("int4", skills.n_real_seen),
        "n_real_correct": ("int4", skills.n_real_correct),
        "n_bogus_seen": ("int4", skills.n_bogus_seen),
        "n_bogus_correct": ("int4", skills.n_bogus_correct),
        "n_classifications": ("int4", n_classifications),
        "contributes": ("bool", skills.contributes),
    }
    if connection.vendor == "postgresql":
        # One binary COPY (a volunteer's row is fixed-width): no object per volunteer.
        columns = {"run_id": ("int8", np.full(len(data.volunteer_ids), run.pk)), **columns}
        with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY {VolunteerSkill._meta.db_table} ({', '.join(columns)})"
            " FROM STDIN (FORMAT binary)"
        ) as copy:
            for block in pgbinary.encode_blocks(list(columns.values())):
                copy.write(block)
        return
    values = {name: array.tolist() for name, (_, array) in columns.items()}
    VolunteerSkill.objects.bulk_create(
        (VolunteerSkill(run=run, **dict(zip(values, row, strict=True)))
         for row in zip(*values.values(), strict=True)),
        batch_size=_WRITE_BATCH,
    )


# --- the live run ----------------------------------------------------------------------------


def online_apply(classification_id: int) -> bool:
    """Apply one counted classification to its workflow's live run; True if it changed it.

    Idempotent: a classification already in the live run's replay, or already applied, is a
    no-op. The subject's posterior row is locked first, then the volunteer's skill row, always
    in that order, so concurrent updates cannot deadlock.
    """
    # Most workflows have no live run: one query settles that, before the answer is read.
    run = AggregationRun.objects.filter(
        live=True, workflow__classifications=classification_id
    ).first()
    if run is None:
        return False
    row = (
        Classification.objects.filter(pk=classification_id, counted=True)
        .values("subject_id", "volunteer_id", "answer")
        .first()
    )
    if row is None:
        return False
    if run.status != AggregationRun.Status.DONE:
        raise RunNotReady(f"live run {run.pk} is {run.status}")
    if classification_id <= (run.replayed_through or 0):
        return False
    params = SwapParams(**run.parameters)
    with transaction.atomic():
        posterior = _locked_posterior(run, row["subject_id"], params)
        if AppliedClassification.objects.filter(run=run, classification_id=classification_id
                                                ).exists():
            return False
        skill = _locked_skill(run, row["volunteer_id"], params)
        subject_state = SubjectState(
            log_odds=posterior.log_odds, trajectory=tuple(posterior.trajectory),
            n_counted=posterior.n_counted,
        )
        volunteer_state = VolunteerState(
            skill.n_real_seen, skill.n_real_correct, skill.n_bogus_seen, skill.n_bogus_correct
        )
        truth = selectors.subject_truth_for(run, row["subject_id"])
        subject_state, volunteer_state = online_step(
            subject_state, volunteer_state, row["answer"] == "real", truth, params
        )
        _save_posterior(posterior, subject_state, params)
        _save_skill(skill, volunteer_state, params)
        AppliedClassification.objects.create(run=run, classification_id=classification_id)
    return True


def _locked_posterior(run, subject_id: int, params: SwapParams) -> SubjectPosterior:
    initial = SubjectState.initial(params)
    SubjectPosterior.objects.bulk_create(
        [SubjectPosterior(run=run, subject_id=subject_id, p_real=initial.p_real,
                          log_odds=initial.log_odds)],
        ignore_conflicts=True,
    )
    return SubjectPosterior.objects.select_for_update().get(run=run, subject_id=subject_id)


def _locked_skill(run, volunteer_id: int, params: SwapParams) -> VolunteerSkill:
    p_real, p_bogus = VolunteerState().skills(params)
    VolunteerSkill.objects.bulk_create(
        [VolunteerSkill(run=run, volunteer_id=volunteer_id, p_real=p_real, p_bogus=p_bogus)],
        ignore_conflicts=True,
    )
    return VolunteerSkill.objects.select_for_update().get(run=run, volunteer_id=volunteer_id)


def _save_posterior(posterior: SubjectPosterior, state: SubjectState, params: SwapParams) -> None:
    trajectory = np.array(state.trajectory, dtype=np.float64)
    p_real = np.array([state.p_real])
    unstable, stable = stability_labels(
        p_real, np.array([0, len(trajectory)], dtype=np.int64), trajectory, params
    )
    posterior.p_real, posterior.log_odds = state.p_real, state.log_odds
    posterior.trajectory, posterior.n_counted = list(state.trajectory), state.n_counted
    posterior.label = _LABEL_NAMES[int(unstable[0])]
    posterior.stable = bool(stable[0] != UNKNOWN)
    posterior.save()


def _save_skill(skill: VolunteerSkill, state: VolunteerState, params: SwapParams) -> None:
    skill.p_real, skill.p_bogus = state.skills(params)
    skill.n_real_seen, skill.n_real_correct = state.n_real_seen, state.n_real_correct
    skill.n_bogus_seen, skill.n_bogus_correct = state.n_bogus_seen, state.n_bogus_correct
    skill.n_classifications += 1
    skill.contributes = state.contributes(params)
    skill.save()


# --- the periodic batch run --------------------------------------------------------------------


def periodic_runs_create() -> list[AggregationRun]:
    """One batch run for each active workflow with classifications newer than its last run.

    A workflow reuses the reference sets, union policy and parameters of its most recent run;
    one that has never been aggregated uses every reference set labelling its subjects (in
    name order), with defaults.
    """
    created = []
    for workflow in Workflow.objects.filter(active=True):
        runs = AggregationRun.objects.filter(workflow=workflow).order_by("-pk")
        last_run, last_batch = runs.first(), runs.filter(mode=Mode.BATCH).first()
        latest = Classification.objects.filter(workflow=workflow, counted=True).aggregate(
            t=Max("created_at")
        )["t"]
        if latest is None or (last_batch and last_batch.created_at >= latest):
            continue
        if last_run:
            reference_sets = selectors.run_reference_sets(last_run)
            params = SwapParams(**last_run.parameters)
            union_policy = selectors.run_union_policy(last_run)
        else:
            reference_sets = list(
                ReferenceSet.objects.filter(
                    pk__in=ReferenceLabel.objects.counted().filter(
                        subject__statuses__workflow=workflow
                    ).values("reference_set")
                ).order_by("name")
            )
            params = swap_params()
            union_policy = DEFAULT_UNION_POLICY
        if not reference_sets:
            continue
        with transaction.atomic():
            run = run_create(workflow=workflow, reference_sets=reference_sets, params=params,
                             union_policy=union_policy, triggered_by="schedule")
            run_queue(run)
        created.append(run)
    return created
