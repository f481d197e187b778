"""Exporting label sets: options, the export itself, the queued job, the checksum check.

The plan (which subjects, which split) is `core`, the files are `artifact`; this module reads
the run's labels and the stamps from the database and storage, and registers the result.

An export writes everything into a staging folder under LABEL_SETS_ROOT, builds the archive for
the number that is next, then, holding the numbering lock, takes that number (rebuilding the
archive only if another export took it meanwhile), renames folder and archive into place and
creates the LabelSet row in one transaction that must be the outermost (durable),
so that its commit is the real one. Any failure before the commit returns removes what was
placed and the staging folder: a failed export leaves no row and no files.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from aggregation import selectors as aggregation_selectors
from aggregation.labelsets import artifact, core, storage
from aggregation.labelsets.artifact import SplitTable, verify_artifact
from aggregation.labelsets.signals import label_set_exported
from aggregation.models import AggregationRun, LabelSet, LabelSetExport, SubjectPosterior
from aggregation.swap.ties import TIE_RULE
from aggregation.swap.types import UNKNOWN
from labeling import selectors as labeling_selectors
from labeling import stamp_store_services
from labeling.errors import InvalidInput, LabelingError
from labeling.models import Subject, SubjectSet
from outbox import services as outbox
from simulation.triplets import TRUTH_METADATA_KEY

__all__ = [
    "ExportError",
    "ExportOptions",
    "export_job_execute",
    "label_set_export",
    "label_set_export_queue",
    "verify_artifact",
]

BALANCES = ("subsample", "none")
STRATIFY_BY = ("origin",)
INJECTION_ORIGIN = "injection"
_FINE_TUNE_MAX = LabelSet._meta.get_field("fine_tune_from").max_length
_CHUNK_ROWS = 20_000

logger = logging.getLogger(__name__)


class ExportError(InvalidInput):
    """An export that cannot be made as asked: bad options, a run not done, nothing to
    export. The message is for the person who asked."""


@dataclass(frozen=True)
class ExportOptions:
    """How to make a label set from a run. Checked on construction, so always valid."""

    scenario: str
    balance: str = "subsample"
    split: tuple[float, float, float] = core.DEFAULT_SPLIT
    seed: int = 0
    stratify: str | None = None
    mix_injections: tuple[str, float] | None = None  # (subject set name, share of train)
    min_snr: float | None = None

    def __post_init__(self) -> None:
        if self.scenario not in LabelSet.Scenario.values:
            raise ExportError(f"scenario must be one of {', '.join(LabelSet.Scenario.values)}, "
                              f"got {self.scenario!r}")
        if self.balance not in BALANCES:
            raise ExportError(f"balance must be one of {', '.join(BALANCES)}, "
                              f"got {self.balance!r}")
        try:
            core.check_fractions(_sequence(self.split, "split"))
        except core.PlanError as exc:
            raise ExportError(str(exc)) from None
        # As given, not renormalised: the manifest records what was asked for.
        object.__setattr__(self, "split", tuple(float(f) for f in self.split))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ExportError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.stratify is not None and self.stratify not in STRATIFY_BY:
            raise ExportError(f"stratify must be one of {', '.join(STRATIFY_BY)} or none, "
                              f"got {self.stratify!r}")
        if self.mix_injections is not None:
            object.__setattr__(self, "mix_injections", _mix(self.mix_injections))
        if self.min_snr is not None:
            object.__setattr__(self, "min_snr", _number(self.min_snr, "min_snr", minimum=0.0))

    @classmethod
    def from_dict(cls, data: dict) -> ExportOptions:
        """Options from JSON or a form. `split` may be "0.8,0.1,0.1" and `mix_injections`
        "SUBJECTSET:FRACTION"; unknown keys are refused."""
        if not isinstance(data, dict):
            raise ExportError("the export options must be an object")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ExportError(f"unknown export option(s): {', '.join(unknown)}")
        if "scenario" not in data:
            raise ExportError("scenario is required (stable or unstable)")
        values = dict(data)
        if isinstance(values.get("split"), str):
            values["split"] = [part.strip() for part in values["split"].split(",")]
        if "split" in values:
            values["split"] = tuple(
                _number(v, "each split fraction") for v in _sequence(values["split"], "split")
            )
        if isinstance(values.get("mix_injections"), str):
            name, _, fraction = values["mix_injections"].rpartition(":")
            values["mix_injections"] = (name, fraction)
        if values.get("stratify") in ("", "none"):
            values["stratify"] = None
        return cls(**values)

    def to_dict(self) -> dict:
        return {
            "scenario": self.scenario,
            "balance": self.balance,
            "split": list(self.split),
            "seed": self.seed,
            "stratify": self.stratify,
            "mix_injections": list(self.mix_injections) if self.mix_injections else None,
            "min_snr": self.min_snr,
        }


def _sequence(value, name: str) -> tuple:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ExportError(f"{name} must be a list, got {value!r}")
    return tuple(value)


def _number(value, name: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool):
        raise ExportError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ExportError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number) or (minimum is not None and number < minimum):
        bound = f" >= {minimum:g}" if minimum is not None else ""
        raise ExportError(f"{name} must be a finite number{bound}, got {value!r}")
    return number


def _mix(value) -> tuple[str, float]:
    parts = _sequence(value, "mix_injections")
    if len(parts) != 2 or not isinstance(parts[0], str) or not parts[0].strip():
        raise ExportError("mix_injections must be a subject set name and a fraction, "
                          f"e.g. injections:0.2; got {value!r}")
    fraction = _number(parts[1], "the injection fraction")
    if not 0.0 < fraction < 1.0:
        raise ExportError(f"the injection fraction must lie in (0, 1), got {fraction:g}")
    return parts[0].strip(), fraction


# --- the export ------------------------------------------------------------------------------


def label_set_export(run_id: int, options: ExportOptions, *, created_by=None,
                     fine_tune_from: str = "", on_progress: Callable[[int], None] | None = None
                     ) -> LabelSet:
    """Export a label set from a finished run, now; `on_progress(n)` after each n subjects'
    stamps are written. Raises NotFound for an unknown run and ExportError for anything the
    caller can fix. Must not run inside a transaction (its commit must be final)."""
    return _export(run_id, options, created_by=created_by, fine_tune_from=fine_tune_from,
                   on_progress=on_progress, job=None)


def label_set_export_queue(run_id: int, options: ExportOptions, *, created_by=None,
                           fine_tune_from: str = "") -> LabelSetExport:
    """Register an export job and queue it on the `aggregation` queue once this commits.

    The run is checked now, so a bad request fails at once rather than in the worker.
    """
    run = _finished_run(run_id)
    _check_fine_tune_from(fine_tune_from)
    with transaction.atomic():
        job = LabelSetExport.objects.create(
            run=run, options=options.to_dict(), fine_tune_from=fine_tune_from,
            created_by=created_by,
        )
        outbox.enqueue("aggregation.tasks.export_label_set", job.pk)
    return job


def export_job_execute(job_id: int) -> LabelSetExport:
    """Run an export job. A done job is left alone; a failed or interrupted one runs again.

    A request that cannot be exported (ExportError, an unknown run) fails the job with the
    reason and returns; anything else fails it and is raised for the worker to report.
    """
    job = LabelSetExport.objects.get(pk=job_id)
    if job.status == LabelSetExport.Status.DONE:
        return job
    job.status, job.started_at, job.error = LabelSetExport.Status.RUNNING, timezone.now(), ""
    job.save(update_fields=["status", "started_at", "error"])
    try:
        _export(job.run_id, ExportOptions.from_dict(job.options), created_by=job.created_by,
                fine_tune_from=job.fine_tune_from, on_progress=None, job=job)
    except LabelingError as exc:
        _job_failed(job, exc.message)
    except Exception as exc:
        _job_failed(job, f"{type(exc).__name__}: {exc}")
        raise
    job.refresh_from_db()
    return job


def _job_failed(job: LabelSetExport, message: str) -> None:
    job.status, job.error, job.finished_at = (
        LabelSetExport.Status.FAILED, message, timezone.now()
    )
    job.save(update_fields=["status", "error", "finished_at"])


def _finished_run(run_id: int) -> AggregationRun:
    run = aggregation_selectors.run_get(run_id)
    if run.status != AggregationRun.Status.DONE:
        raise ExportError(f"run {run.pk} is {run.status}: only a finished run can be exported")
    return run


def _check_fine_tune_from(version: str) -> None:
    if not isinstance(version, str):
        raise ExportError(f"fine_tune_from must be a model version name, got {version!r}")
    if len(version) > _FINE_TUNE_MAX:
        raise ExportError(f"fine_tune_from is at most {_FINE_TUNE_MAX} characters")


def _export(run_id, options: ExportOptions, *, created_by, fine_tune_from, on_progress,
            job: LabelSetExport | None) -> LabelSet:
    run = _finished_run(run_id)
    _check_fine_tune_from(fine_tune_from)
    candidates = _candidates(run)
    injections = (
        _injection_pool(run, options.mix_injections[0]) if options.mix_injections else None
    )
    plan, selected = _plan(candidates, injections, options)
    splits = _split_tables(candidates, injections, plan)
    if not sum(len(table) for table in splits.values()):
        raise ExportError(
            f"nothing to export: run {run.pk} has no subjects with stamps in the "
            f"{options.scenario} set that meet these options"
        )
    stamp_size = _stamp_size(candidates, injections, plan)
    description = _description(run, options, candidates, selected, plan, injections)
    root = Path(settings.LABEL_SETS_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=storage.STAGING_PREFIX, dir=root))
    try:
        reader = _cube_reader(candidates, injections, plan, stamp_size)
        manifest = artifact.write_artifact(
            staging / "files", splits, reader, stamp_size=stamp_size,
            description=description, on_progress=on_progress,
        )
        return _register(run, options, manifest, staging, created_by=created_by,
                         fine_tune_from=fine_tune_from, job=job)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass(frozen=True)
class _Subjects:
    """Subjects as columns, sorted by subject id; `labels` REAL/BOGUS/UNKNOWN."""

    ids: np.ndarray
    labels: np.ndarray
    stable: np.ndarray
    p_real: np.ndarray
    snr: np.ndarray
    origins: np.ndarray
    external_ids: list[str]
    stamp_names: list[str]
    stamp_sizes: np.ndarray
    subject_sets: np.ndarray
    no_stamps: int = 0


def _candidates(run: AggregationRun) -> _Subjects:
    """Every subject the run labelled, with what the plan and the files need."""
    labelled = SubjectPosterior.objects.filter(run=run).exclude(label="")
    rows = labelled.exclude(subject__stamps="").order_by("subject_id").values_list(
        "subject_id", "label", "stable", "p_real", "subject__snr", "subject__origin",
        "subject__external_id", "subject__stamps", "subject__stamp_size",
        "subject__subject_set_id",
    )
    (ids, labels, stable, p_real, snr, origins, external_ids, stamp_names, sizes,
     subject_sets) = _read_columns(rows.iterator(chunk_size=_CHUNK_ROWS), 10)
    return _subjects(ids, labels, stable, p_real, snr, origins, external_ids, stamp_names,
                     sizes, subject_sets, no_stamps=labelled.filter(subject__stamps="").count())


def _injection_pool(run: AggregationRun, set_name: str) -> _Subjects:
    """The fakes of a subject set of the run's project: every one must be an injection with
    known truth and stamps, or the export is refused naming what is wrong."""
    project = run.workflow.project
    try:
        subject_set = SubjectSet.objects.get(project=project, name=set_name)
    except SubjectSet.DoesNotExist:
        known = ", ".join(SubjectSet.objects.filter(project=project)
                          .order_by("name").values_list("name", flat=True))
        raise ExportError(f"unknown subject set {set_name!r} in project {project.name!r} "
                          f"(known: {known or 'none'})") from None
    rows = Subject.objects.filter(subject_set=subject_set).order_by("pk").values_list(
        "pk", f"metadata__{TRUTH_METADATA_KEY}", "snr", "origin", "external_id", "stamps",
        "stamp_size",
    )
    ids, truth, snr, origins, external_ids, stamp_names, sizes = _read_columns(
        rows.iterator(chunk_size=_CHUNK_ROWS), 7
    )
    # Known truth holds by definition (stable) and has no posterior (p_real NaN).
    pool = _subjects(ids, truth, [True] * len(ids), [np.nan] * len(ids), snr, origins,
                     external_ids, stamp_names, sizes, [subject_set.pk] * len(ids),
                     no_stamps=0)
    problems = []
    if not len(pool.ids):
        problems.append("it has no subjects")
    wrong_origin = int((pool.origins != INJECTION_ORIGIN).sum())
    if wrong_origin:
        problems.append(f"{wrong_origin} of its subjects have an origin other than "
                        f"{INJECTION_ORIGIN!r}")
    no_truth = int((pool.labels == UNKNOWN).sum())
    if no_truth:
        problems.append(
            f"{no_truth} have no known truth (metadata {TRUTH_METADATA_KEY} real or bogus)"
        )
    no_stamps = sum(1 for name in pool.stamp_names if not name)
    if no_stamps:
        problems.append(f"{no_stamps} have no stamps")
    if problems:
        raise ExportError(f"subject set {set_name!r} cannot be mixed in: {'; '.join(problems)}")
    return pool


def _read_columns(rows, n_columns: int) -> list[list]:
    columns: list[list] = [[] for _ in range(n_columns)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def _subjects(ids, labels, stable, p_real, snr, origins, external_ids, stamp_names, sizes,
              subject_sets, *, no_stamps: int) -> _Subjects:
    return _Subjects(
        ids=np.array(ids, dtype=np.int64),
        labels=np.array(
            [aggregation_selectors.LABEL_CODES.get(label, UNKNOWN) for label in labels],
            dtype=np.int8,
        ),
        stable=np.array(stable, dtype=bool),
        p_real=np.array(p_real, dtype=np.float64),
        snr=np.array([np.nan if s is None else s for s in snr], dtype=np.float64),
        origins=np.array(origins, dtype=str),
        external_ids=external_ids,
        stamp_names=stamp_names,
        stamp_sizes=np.array(sizes, dtype=np.int64),
        subject_sets=np.array(subject_sets, dtype=np.int64),
        no_stamps=no_stamps,
    )


def _plan(candidates: _Subjects, injections: _Subjects | None, options: ExportOptions
          ) -> tuple[core.LabelSetPlan, np.ndarray]:
    """The plan, its indices pointing into `candidates` and `injections`; and the indices of
    the candidates the scenario selected."""
    selected = np.flatnonzero(core.selection_mask(
        candidates.labels, candidates.stable, candidates.snr,
        stable_only=options.scenario == LabelSet.Scenario.STABLE, min_snr=options.min_snr,
    ))
    groups = (np.unique(candidates.origins[selected], return_inverse=True)[1]
              if options.stratify == "origin" else np.zeros(len(selected), dtype=np.int64))
    usable = np.empty(0, dtype=np.int64)
    mix = {}
    if injections is not None:
        usable = np.flatnonzero(core.selection_mask(
            injections.labels, injections.stable, injections.snr,
            stable_only=False, min_snr=options.min_snr,
        ))
        mix = {"injection_ids": injections.ids[usable],
               "injection_labels": injections.labels[usable],
               "injection_fraction": options.mix_injections[1]}
    try:
        plan = core.plan_label_set(
            candidates.ids[selected], candidates.labels[selected], groups,
            balance=options.balance == "subsample", fractions=options.split, seed=options.seed,
            **mix,
        )
    except core.PlanError as exc:
        raise ExportError(str(exc)) from None
    mapped = core.LabelSetPlan(
        selected=selected[plan.selected], split=plan.split, injections=usable[plan.injections],
    )
    return mapped, selected


def _split_tables(candidates: _Subjects, injections: _Subjects | None,
                  plan: core.LabelSetPlan) -> dict[str, SplitTable]:
    tables = {}
    for index, name in enumerate(core.SPLIT_NAMES):
        parts = [_table(candidates, plan.split_of(index), with_p_real=True)]
        if index == core.TRAIN and injections is not None:
            parts.append(_table(injections, plan.injections, with_p_real=False))
        tables[name] = _sorted_by_id(parts)
    return tables


def _table(subjects: _Subjects, index: np.ndarray, *, with_p_real: bool) -> SplitTable:
    return SplitTable(
        subject_ids=subjects.ids[index],
        external_ids=tuple(subjects.external_ids[i] for i in index),
        labels=subjects.labels[index].astype(np.uint8),
        origins=subjects.origins[index],
        snr=subjects.snr[index].astype(np.float32),
        p_real=(subjects.p_real[index] if with_p_real
                else np.full(len(index), np.nan)).astype(np.float32),
    )


def _sorted_by_id(parts: list[SplitTable]) -> SplitTable:
    ids = np.concatenate([p.subject_ids for p in parts])
    order = np.argsort(ids, kind="stable")
    external_ids = [e for p in parts for e in p.external_ids]
    return SplitTable(
        subject_ids=ids[order],
        external_ids=tuple(external_ids[i] for i in order),
        labels=np.concatenate([p.labels for p in parts])[order],
        origins=np.concatenate([p.origins for p in parts])[order],
        snr=np.concatenate([p.snr for p in parts])[order],
        p_real=np.concatenate([p.p_real for p in parts])[order],
    )


def _stamp_size(candidates: _Subjects, injections: _Subjects | None,
                plan: core.LabelSetPlan) -> int:
    sizes = set(candidates.stamp_sizes[plan.selected].tolist())
    if injections is not None:
        sizes |= set(injections.stamp_sizes[plan.injections].tolist())
    if len(sizes) != 1:
        raise ExportError(f"the subjects' stamps have different sizes ({sorted(sizes)}): "
                          "a label set needs one size")
    return sizes.pop()


def _cube_reader(candidates: _Subjects, injections: _Subjects | None,
                 plan: core.LabelSetPlan, stamp_size: int) -> artifact.CubeReader:
    """Stamps in bulk: the stores of the subject sets the plan draws from are refreshed
    first (a no-op when current), so they serve every cube; anything they cannot serve
    verified is read from its own file, the same bytes either way."""
    names = dict(zip(candidates.ids.tolist(), candidates.stamp_names, strict=True))
    subject_sets = set(candidates.subject_sets[plan.selected].tolist())
    if injections is not None:
        names.update(zip(injections.ids.tolist(), injections.stamp_names, strict=True))
        subject_sets |= set(injections.subject_sets[plan.injections].tolist())
    try:
        stamp_store_services.stamp_stores_refresh(sorted(subject_sets))
    except OSError as exc:
        # A store only makes reading faster: one that cannot be written (a full disk, a
        # read-only folder) leaves its stamps to be read from their own files.
        logger.warning("stamp stores not refreshed, reading stamp files one by one: %s", exc)
    read_names = labeling_selectors.subject_cube_reader(subject_sets, stamp_size)

    def read(subject_ids: np.ndarray) -> np.ndarray:
        return read_names([names[i] for i in subject_ids.tolist()])

    return read


def _description(run: AggregationRun, options: ExportOptions, candidates: _Subjects,
                 selected: np.ndarray, plan: core.LabelSetPlan,
                 injections: _Subjects | None) -> dict:
    """What the manifest says about where the labels came from and how they were chosen.
    Nothing here depends on when or by whom the export ran."""
    params = run.parameters
    source = {
        "run": run.pk,
        "mode": run.mode,
        "workflow": run.workflow.slug,
        "project": run.workflow.project.name,
        # In the union's order, which the `first` union policy follows.
        "reference_sets": [s.name for s in aggregation_selectors.run_reference_sets(run)],
        "reference_name": run.reference_name,
        "union_policy": aggregation_selectors.run_union_policy(run),
        "swap_parameters": params,
    }
    labels = {
        "rule": ("Pr(Real) >= real_threshold is Real, <= bogus_threshold is Bogus"
                 + (", for at least the last stability_window classifications"
                    if options.scenario == LabelSet.Scenario.STABLE else ", final value")),
        "real_threshold": params["real_threshold"],
        "bogus_threshold": params["bogus_threshold"],
        "tie_rule": TIE_RULE,
    }
    if options.scenario == LabelSet.Scenario.STABLE:
        labels["stability_window"] = params["stability_window"]
    description = {
        "source": source,
        "scenario": options.scenario,
        "labels": labels,
        "balance": options.balance,
        "split": {
            "fractions": dict(zip(core.SPLIT_NAMES, options.split, strict=True)),
            "seed": options.seed,
            "stratified_by": ["class", "origin"] if options.stratify else ["class"],
        },
        "min_snr": (None if options.min_snr is None else
                    {"value": options.min_snr,
                     "rule": "|snr| >= value; subjects of unknown SNR are left out"}),
        "options": options.to_dict(),
        "selection": {
            "labelled_by_run": len(candidates.ids) + candidates.no_stamps,
            "left_out_without_stamps": candidates.no_stamps,
            "in_scenario": len(selected),
            "kept_after_balance": len(plan.selected),
        },
        "injections": None,
    }
    if injections is not None:
        name, fraction = options.mix_injections
        description["injections"] = {
            "subject_set": name,
            "fraction_of_train": fraction,
            "n": len(plan.injections),
            "split": "train",
            "rule": "injections go to the training split only; validation and test hold "
                    "volunteer labels only",
            "truth": f"known: subject metadata {TRUTH_METADATA_KEY}",
        }
    return description


# --- registering -----------------------------------------------------------------------------


def _register(run, options: ExportOptions, manifest: dict, staging: Path, *, created_by,
              fine_tune_from: str, job: LabelSetExport | None) -> LabelSet:
    """Number the label set, place its files and create its row, all or nothing.

    The archive names its folder, so it depends on the number. It is written before the
    numbering lock is taken, for the number that is next now; under the lock the number is
    taken, and only if another export took that one meanwhile is the archive written again,
    for the new number. The lock is otherwise held for a few renames and one insert, not for
    writing hundreds of megabytes."""
    placed: list[Path] = []
    number = _next_number()
    archive_digest = _write_archive(staging, number)
    try:
        with transaction.atomic(durable=True):
            _lock_numbering()
            if job is not None:
                done = LabelSetExport.objects.select_for_update().get(pk=job.pk).label_set
                if done is not None:  # the same job, run twice at once, finished first
                    return done
            if _next_number() != number:  # another export committed this number first
                number = _next_number()
                archive_digest = _write_archive(staging, number)
            path = storage.folder_name(number)
            folder, archive = storage.folder_of(path), storage.archive_of(path)
            _remove_orphans(folder, archive)
            os.rename(staging / "files", folder)
            placed.append(folder)
            os.rename(staging / "archive.tar", archive)
            placed.append(archive)
            artifact.fsync_dir(folder.parent)
            label_set = LabelSet.objects.create(
                number=number, run=run, scenario=options.scenario, options=options.to_dict(),
                manifest=manifest, path=path, archive_sha256=archive_digest["sha256"],
                archive_size=archive_digest["bytes"],
                n_subjects=sum(manifest["counts"][name]["total"] for name in core.SPLIT_NAMES),
                fine_tune_from=fine_tune_from, created_by=created_by,
            )
            if job is not None:
                LabelSetExport.objects.filter(pk=job.pk).update(
                    label_set=label_set, status=LabelSetExport.Status.DONE,
                    finished_at=timezone.now(), error="",
                )
            transaction.on_commit(
                lambda: label_set_exported.send_robust(sender=LabelSet, label_set=label_set)
            )
    except BaseException:
        for path in placed:
            _remove(path)
        raise
    return label_set


def _next_number() -> int:
    return (LabelSet.objects.aggregate(m=Max("number"))["m"] or 0) + 1


def _write_archive(staging: Path, number: int) -> dict:
    """The staged files as the archive of label set `number` (staging/archive.tar)."""
    return artifact.write_archive(staging / "files", staging / "archive.tar",
                                  arcname=storage.folder_name(number))


def _lock_numbering() -> None:
    """Serialise the numbering of label sets until the transaction ends.

    PostgreSQL: a table lock that conflicts with itself (readers go on). SQLite: any write
    takes the database's one write lock, and this one changes nothing.
    """
    table = connection.ops.quote_name(LabelSet._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
        else:
            cursor.execute(f"UPDATE {table} SET number = number WHERE 1 = 0")


def _remove_orphans(*paths: Path) -> None:
    """Files at a number no LabelSet holds are left by an export killed between placing them
    and committing; with the numbering lock held, nothing else can be writing them."""
    for path in paths:
        if path.exists():
            _remove(path)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
