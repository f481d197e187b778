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
    SubjectPosterior,
    VolunteerSkill,
)
from aggregation.signals import run_finished
from aggregation.swap import (
    BOGUS,
    REAL,
    UNKNOWN,
    EmOptions,
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
from labeling import hooks
from labeling.errors import InvalidInput
from labeling.models import Classification, ReferenceLabel, ReferenceSet, Subject, Workflow
from labeling.records import DEFAULT_UNION_POLICY, UNION_POLICIES
from outbox import services as outbox

_LABEL_NAMES = {REAL: "real", BOGUS: "bogus", UNKNOWN: ""}
_WRITE_BATCH = 5_000
Mode = AggregationRun.Mode


def swap_params(**overrides) -> SwapParams:
    """SwapParams from the defaults and the given values, checked."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        params = SwapParams(**given)
        params.validate()
    except (TypeError, SwapInputError) as exc:
        raise InvalidInput(f"invalid SWAP parameters: {exc}") from exc
    return params


def em_options(**overrides) -> EmOptions:
    """EmOptions from the defaults and the given values, checked."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return EmOptions(**given)
    except (TypeError, SwapInputError) as exc:
        raise InvalidInput(f"invalid EM options: {exc}") from exc


def run_create(
    *,
    workflow: Workflow,
    reference_sets: list[ReferenceSet],
    mode: str = Mode.BATCH,
    params: SwapParams | None = None,
    em: EmOptions | None = None,
    union_policy: str = DEFAULT_UNION_POLICY,
    triggered_by: str = "command",
    created_by=None,
) -> AggregationRun:
    """Register a run (pending). An online run becomes the workflow's live run when it has
    been computed and caught up (`_go_live`); until then the old live run, if any, stays live.

    `reference_sets` in the union's order; `union_policy` (see `records.UNION_POLICIES`)
    settles the subjects they label differently, in the run and in its online updates, and is
    kept in the run's summary. `em` (EM runs only; defaults if not given) is kept with it."""
    if mode not in Mode.values:
        raise InvalidInput(f"mode must be one of {', '.join(Mode.values)}")
    if union_policy not in UNION_POLICIES:
        raise InvalidInput(f"union policy must be one of {', '.join(UNION_POLICIES)}")
    if not reference_sets:
        raise InvalidInput("a run needs at least one reference set")
    params = params or swap_params()
    if em is not None and mode != Mode.EM:
        raise InvalidInput("EM options are for EM runs (mode em)")
    if mode == Mode.EM:
        em = em or EmOptions()
    with transaction.atomic():
        run = AggregationRun.objects.create(
            workflow=workflow,
            reference_name="+".join(s.name for s in reference_sets),
            mode=mode,
            parameters=dataclasses.asdict(params),
            em_options=dataclasses.asdict(em) if em else {},
            triggered_by=triggered_by,
            created_by=created_by,
            summary={selectors.UNION_POLICY_KEY: union_policy},
        )
        run.reference_sets.set(reference_sets)
    return run


def run_queue(run: AggregationRun) -> None:
    """Queue the run's execution once the transaction that created it commits (through the
    outbox: the caller never waits on the broker)."""
    outbox.enqueue("aggregation.tasks.aggregate_workflow", run.pk)


def run_execute(run_id: int, on_progress: Callable[[int], None] | None = None) -> AggregationRun:
    """Compute a run and store its results. Safe to call twice, at once too (a redelivered
    task): a finished run is left alone (an online run a dead worker computed but never swapped
    in goes live now), and a run a dead worker left half-way is computed again from scratch
    (results are written in one transaction, so there is never half a result to clean). The
    run's row lock orders two deliveries computing at once: the second to write finds the run
    done and writes nothing, and a failure never undoes a finished run."""
    selectors.run_get(run_id)  # NotFound for an unknown run, before taking a lock
    with transaction.atomic():
        run = AggregationRun.objects.select_for_update(of=("self",)).select_related(
            "workflow").get(pk=run_id)
        finished = run.status == AggregationRun.Status.DONE
        if not finished:
            run.status, run.started_at, run.error = (
                AggregationRun.Status.RUNNING, timezone.now(), "")
            run.save(update_fields=["status", "started_at", "error"])
    if finished:
        if run.mode == Mode.ONLINE and not run.live:
            _go_live(run)  # a worker died between computing the run and swapping it in
        return run
    try:
        # Only the delivery that wrote the results swaps an online run in: another one's copy
        # of the run has a stale replay mark, and catching up from it would apply answers twice.
        if _compute(run, on_progress) and run.mode == Mode.ONLINE:
            _go_live(run)
    except Exception as exc:
        failed = AggregationRun.objects.filter(pk=run.pk).exclude(
            status=AggregationRun.Status.DONE
        ).update(status=AggregationRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}",
                 finished_at=timezone.now())
        if not failed:  # another delivery finished it meanwhile: its result stands
            return selectors.run_get(run_id)
        raise
    run_finished.send_robust(sender=AggregationRun, run=run)
    # As this delivery wrote it, or as another one did first.
    return selectors.run_get(run_id)


def _compute(run: AggregationRun, on_progress: Callable[[int], None] | None) -> bool:
    """Compute the run and write its results; False when another delivery wrote them first."""
    params = SwapParams(**run.parameters)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    online = run.mode == Mode.ONLINE
    through = (selectors.last_classification_id(run.workflow_id) or 0) if online else None
    data = selectors.classification_data(run.workflow_id, through_id=through)
    reference = selectors.run_reference_truth(run, data.subject_ids)
    timings["read_s"] = time.perf_counter() - started

    started = time.perf_counter()
    em = EmOptions(**run.em_options) if run.mode == Mode.EM else None
    result = _swap(run.mode, data, reference.truth, params, em)
    timings["swap_s"] = time.perf_counter() - started

    started = time.perf_counter()
    summary = _summary(run, data, reference, result)
    timings["summary_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with transaction.atomic():
        # Another delivery of this run may be writing too: one at a time, and only once.
        if AggregationRun.objects.select_for_update().get(pk=run.pk).status == (
                AggregationRun.Status.DONE):
            return False
        SubjectPosterior.objects.filter(run=run).delete()
        VolunteerSkill.objects.filter(run=run).delete()
        _write_posteriors(run, data.subject_ids, result, on_progress)
        timings["write_posteriors_s"] = time.perf_counter() - started
        skills_started = time.perf_counter()
        _write_skills(run, data, result)
        timings["write_skills_s"] = time.perf_counter() - skills_started
        timings["write_s"] = time.perf_counter() - started
        run.timings = timings
        run.summary = summary
        # An online run's catch-up starts after what its replay read.
        run.replayed_through = through
        run.n_classifications = len(data.table.subject)
        run.n_subjects = data.table.n_subjects
        run.n_volunteers = data.table.n_volunteers
        run.n_contributing_volunteers = int(result.skills.contributes.sum())
        run.n_reference_subjects = int((reference.truth != UNKNOWN).sum())
        if run.mode == Mode.EM:
            run.em_iterations, run.em_converged = result.iterations, result.converged
        run.status, run.finished_at = AggregationRun.Status.DONE, timezone.now()
        run.save()
        started = time.perf_counter()
    # What COMMIT costs (deferred constraint checks, flushing the WAL) is part of writing the
    # results; it is known only once the transaction is over.
    timings["commit_s"] = time.perf_counter() - started
    AggregationRun.objects.filter(pk=run.pk).update(timings=timings)
    return True


def _swap(mode: str, data: selectors.ClassificationData, truth: np.ndarray,
          params: SwapParams, em: EmOptions | None = None):
    if mode == Mode.EM:
        return swap_em(data.table, truth, params, em)
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
                         "prior_mode": EmOptions(**run.em_options).prior_mode,
                         "prior": result.params.prior}
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
#
# A workflow's live run is an online run whose state every answer SWAP reads updates inside the
# answer's own transaction (`live_apply`, registered on labeling.hooks). A rebuild computes a new
# online run with the batch core while the old one stays live, catches it up with the answers
# that arrived meanwhile, and swaps it in while inserts of classifications wait on a table lock:
# every answer is then in exactly one of the replay, the catch-up, or a live step on the new run.

# Catch-up rounds run without the lock until at most this many answers are left; the last
# round runs under it, so intake pauses only for that many online steps.
CATCH_UP_UNDER_LOCK = 500
# Under a sustained flood the unlocked rounds might never get below that; after this many the
# last round takes the lock anyway.
CATCH_UP_ROUNDS = 10


def live_apply(answer: hooks.StoredAnswer) -> None:
    """Apply one stored answer to its workflow's live run, if it has one, in the caller's
    transaction. The caller holds the subject's status lock; the posterior row and then the
    skill row are locked in that order, so concurrent answers cannot deadlock."""
    # With its workflow: a reference subject's truth asks for the workflow's tutorial.
    run = AggregationRun.objects.filter(workflow_id=answer.workflow_id, live=True).only(
        "pk", "workflow", "parameters", "reference_name", "summary"
    ).select_related("workflow").first()
    if run is None:
        return
    params = SwapParams(**run.parameters)
    truth = selectors.subject_truth_for(run, answer.subject_id)
    _apply(run, params, answer.subject_id, answer.volunteer_id, answer.says_real, truth)


def _apply(run, params: SwapParams, subject_id: int, volunteer_id: int, says_real: bool,
           truth: int) -> None:
    posterior, skill = _locked_state(run, subject_id, volunteer_id, params)
    subject_state = SubjectState(
        log_odds=posterior.log_odds, trajectory=tuple(posterior.trajectory),
        n_counted=posterior.n_counted,
    )
    volunteer_state = VolunteerState(
        skill.n_real_seen, skill.n_real_correct, skill.n_bogus_seen, skill.n_bogus_correct
    )
    subject_state, volunteer_state = online_step(
        subject_state, volunteer_state, says_real, truth, params
    )
    _set_posterior(posterior, subject_state, params)
    _set_skill(skill, volunteer_state, params)
    _save_state(posterior, skill)


def _go_live(run: AggregationRun) -> None:
    """Catch a freshly replayed online run up with the answers stored since its replay's mark,
    then make it the workflow's live run, unless a newer online run already is."""
    if _newer_live_run(run):
        return
    params = SwapParams(**run.parameters)
    for _ in range(CATCH_UP_ROUNDS):
        mark = selectors.last_classification_id(run.workflow_id)
        if _catch_up(run, params, through_id=mark) <= CATCH_UP_UNDER_LOCK:
            break
    with transaction.atomic():
        # Two rebuilds swapping at once take turns on the workflow row. NO KEY UPDATE: an
        # answer's insert takes KEY SHARE on it (its foreign key), which this must not block.
        Workflow.objects.select_for_update(no_key=True).filter(pk=run.workflow_id).first()
        selectors.lock_classifications()
        _catch_up(run, params, through_id=None)
        if _newer_live_run(run):
            return
        AggregationRun.objects.filter(workflow_id=run.workflow_id, live=True).update(live=False)
        run.live = True
        run.save(update_fields=["live", "replayed_through"])


def _newer_live_run(run: AggregationRun) -> bool:
    return AggregationRun.objects.filter(
        workflow_id=run.workflow_id, live=True, pk__gt=run.pk
    ).exists()


def _catch_up(run: AggregationRun, params: SwapParams, *, through_id: int | None) -> int:
    """Apply the answers after `run.replayed_through` (up to `through_id`, or every committed
    one) to the run, in time order; move the mark. Returns how many were applied."""
    rows = list(selectors.evidence_after(run.workflow_id, run.replayed_through, through_id))
    if not rows:
        return 0
    subject_ids = np.array(sorted({subject_id for _, subject_id, _, _ in rows}), dtype=np.int64)
    truth = dict(zip(subject_ids.tolist(),
                     selectors.run_reference_truth(run, subject_ids).truth.tolist(), strict=True))
    with transaction.atomic():
        for _, subject_id, volunteer_id, answer in rows:
            _apply(run, params, subject_id, volunteer_id, answer == "real", truth[subject_id])
        run.replayed_through = max(pk for pk, _, _, _ in rows)
        run.save(update_fields=["replayed_through"])
    return len(rows)


def live_rebuild(workflow: Workflow, *, triggered_by: str = "rebuild") -> AggregationRun | None:
    """Queue a new online run with the live run's reference sets, policy and parameters; it
    replaces the live run when it is built. A rebuild already queued and not yet started is
    reused. None when the workflow has no live run."""
    live = AggregationRun.objects.filter(workflow=workflow, live=True).first()
    if live is None:
        return None
    waiting = AggregationRun.objects.filter(
        workflow=workflow, mode=Mode.ONLINE, status=AggregationRun.Status.PENDING, pk__gt=live.pk
    ).first()
    if waiting is not None:
        return waiting  # not started yet: it will read everything changed until it starts
    run = run_create(
        workflow=workflow, reference_sets=selectors.run_reference_sets(live), mode=Mode.ONLINE,
        params=SwapParams(**live.parameters), union_policy=selectors.run_union_policy(live),
        triggered_by=triggered_by,
    )
    run_queue(run)
    return run


def live_rebuild_for_subjects(subject_ids: list[int]) -> None:
    """Reference labels of these subjects changed: every live run that serves them is
    rebuilt, since a changed truth changes every skill learnt from it."""
    workflows = Workflow.objects.filter(
        aggregation_runs__live=True, statuses__subject_id__in=subject_ids
    ).distinct()
    for workflow in workflows:
        live_rebuild(workflow, triggered_by="reference labels")


# The live step's row writes, one statement each on PostgreSQL (the posterior's and the skill's
# upserts as two data-modifying CTEs of one statement, then their updates likewise): they are
# most of an answer's round trips. SQLite has no data-modifying CTEs: a statement per row.
_POSTERIOR, _SKILL = SubjectPosterior._meta.db_table, VolunteerSkill._meta.db_table
_POSTERIOR_UPSERT = (
    f"INSERT INTO {_POSTERIOR} (run_id, subject_id, p_real, log_odds, trajectory, n_counted,"
    " label, stable) VALUES (%s, %s, %s, %s, '[]', 0, '', false)"
    " ON CONFLICT (run_id, subject_id) DO UPDATE SET run_id = EXCLUDED.run_id"
)
_SKILL_UPSERT = (
    f"INSERT INTO {_SKILL} (run_id, volunteer_id, p_real, p_bogus, n_real_seen,"
    " n_real_correct, n_bogus_seen, n_bogus_correct, n_classifications, contributes)"
    " VALUES (%s, %s, %s, %s, 0, 0, 0, 0, 0, false)"
    " ON CONFLICT (run_id, volunteer_id) DO UPDATE SET run_id = EXCLUDED.run_id"
)
_POSTERIOR_STATE = ("p_real", "log_odds", "trajectory", "n_counted", "label", "stable")
_SKILL_STATE = ("p_real", "p_bogus", "n_real_seen", "n_real_correct", "n_bogus_seen",
                "n_bogus_correct", "n_classifications", "contributes")


def _locked_state(
    run, subject_id: int, volunteer_id: int, params: SwapParams
) -> tuple[SubjectPosterior, VolunteerSkill]:
    """The run's posterior row for the subject (created at the prior if new) and skill row for
    the volunteer (created with no history if new), both locked: an upsert that touches a row
    locks it and returns it. The caller holds the subject's status lock, so no other answer
    waits on this posterior while holding the skill: no deadlock, whatever the order."""
    initial = SubjectState.initial(params)
    posterior_params = [run.pk, subject_id, initial.p_real, initial.log_odds]
    skill_params = [run.pk, volunteer_id, *VolunteerState().skills(params)]
    if connection.vendor != "postgresql":
        (posterior,) = SubjectPosterior.objects.raw(
            f"{_POSTERIOR_UPSERT} RETURNING *", posterior_params)
        (skill,) = VolunteerSkill.objects.raw(f"{_SKILL_UPSERT} RETURNING *",
                                              skill_params)
        return posterior, skill
    posterior_columns = [field.column for field in SubjectPosterior._meta.concrete_fields]
    skill_columns = [field.column for field in VolunteerSkill._meta.concrete_fields]
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH posterior AS ({_POSTERIOR_UPSERT} RETURNING {', '.join(posterior_columns)}),"
            f" skill AS ({_SKILL_UPSERT} RETURNING {', '.join(skill_columns)})"
            " SELECT posterior.*, skill.* FROM posterior, skill",
            posterior_params + skill_params,
        )
        row = cursor.fetchone()
    posterior = SubjectPosterior.from_db(
        connection.alias, posterior_columns,
        _from_db(SubjectPosterior, row[: len(posterior_columns)]))
    skill = VolunteerSkill.from_db(connection.alias, skill_columns,
                                   _from_db(VolunteerSkill, row[len(posterior_columns):]))
    return posterior, skill


def _from_db(model, values) -> list:
    """Raw column values as the model's fields read them (JSON text to lists, and so on)."""
    out = []
    for field, value in zip(model._meta.concrete_fields, values, strict=True):
        for converter in field.get_db_converters(connection):
            value = converter(value, field, connection)
        out.append(value)
    return out


def _save_state(posterior: SubjectPosterior, skill: VolunteerSkill) -> None:
    if connection.vendor != "postgresql":
        posterior.save(update_fields=_POSTERIOR_STATE)
        skill.save(update_fields=_SKILL_STATE)
        return
    posterior_values = _prepared(posterior, _POSTERIOR_STATE)
    skill_values = _prepared(skill, _SKILL_STATE)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH posterior AS (UPDATE {_POSTERIOR} SET"
            f" {', '.join(f'{name} = %s' for name in _POSTERIOR_STATE)} WHERE id = %s)"
            f" UPDATE {_SKILL} SET {', '.join(f'{name} = %s' for name in _SKILL_STATE)}"
            " WHERE id = %s",
            [*posterior_values, posterior.pk, *skill_values, skill.pk],
        )


def _prepared(instance, names: tuple[str, ...]) -> list:
    return [instance._meta.get_field(name).get_db_prep_save(getattr(instance, name), connection)
            for name in names]


def _set_posterior(posterior: SubjectPosterior, state: SubjectState, params: SwapParams) -> None:
    trajectory = np.array(state.trajectory, dtype=np.float64)
    p_real = np.array([state.p_real])
    unstable, stable = stability_labels(
        p_real, np.array([0, len(trajectory)], dtype=np.int64), trajectory, params
    )
    posterior.p_real, posterior.log_odds = state.p_real, state.log_odds
    posterior.trajectory, posterior.n_counted = list(state.trajectory), state.n_counted
    posterior.label = _LABEL_NAMES[int(unstable[0])]
    posterior.stable = bool(stable[0] != UNKNOWN)


def _set_skill(skill: VolunteerSkill, state: VolunteerState, params: SwapParams) -> None:
    skill.p_real, skill.p_bogus = state.skills(params)
    skill.n_real_seen, skill.n_real_correct = state.n_real_seen, state.n_real_correct
    skill.n_bogus_seen, skill.n_bogus_correct = state.n_bogus_seen, state.n_bogus_correct
    skill.n_classifications += 1
    skill.contributes = state.contributes(params)


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
        latest = selectors.swap_evidence(
            Classification.objects.filter(workflow=workflow)
        ).aggregate(
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
