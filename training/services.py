"""Writes of the model registry: request, run and resume training jobs; evaluate versions;
score subject sets.

The maths and the network live in `training.ml` (pure PyTorch); this module reads label sets
and subjects, writes files under MODELS_ROOT and rows in the database, all or nothing.

The web process requests jobs through this module and must never import PyTorch (the web image
has none): only the functions that run on a worker or a command line (executing, evaluating,
scoring) import torch and the network, when they are called.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from aggregation.labelsets import selectors as label_set_selectors
from aggregation.labelsets import storage as label_set_storage
from aggregation.models import LabelSet
from labeling import selectors as labeling_selectors
from labeling.errors import Conflict, InvalidInput, LabelingError
from labeling.stamps import StampError
from training import selectors, storage
from training.ml.config import STAMP_SHAPE, EpochRecord, TrainingConfig
from training.ml.evaluation import evaluate
from training.models import (
    Evaluation,
    JobStatus,
    ModelVersion,
    ScoringJob,
    SubjectScore,
    TrainingJob,
    version_name_validator,
)

if TYPE_CHECKING:
    from training.ml.dataset import LabelSetDataset
    from training.ml.model import RealBogusCNN

# A running job's worker writes a heartbeat at least this often ...
HEARTBEAT_EVERY_S = 30
# ... so a running job silent for this long has lost its worker and may be taken over.
STALE_AFTER = timedelta(minutes=5)
# Subjects scored per batch: the bound on a scoring job's memory (1024 x 3 x 51 x 51 float32
# is 32 MB) and the batch size the benchmark measures.
SCORING_BATCH = 1024
# Test stamps the ONNX export is checked on (with their NaN pixels).
ONNX_CHECK_SUBJECTS = 256
STAMP_SIZE = STAMP_SHAPE[-1]


# --- training jobs --------------------------------------------------------------------------


def training_config(options: dict | None) -> TrainingConfig:
    """The TrainingConfig of a request: DESIGN.md's settings, with `options` overriding them."""
    try:
        return TrainingConfig.from_dict(options or {})
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"bad training options: {exc}") from None


def training_job_create(label_set_number: int, *, parent: str | None = None,
                        name: str | None = None, options: dict | None = None,
                        trigger: str = TrainingJob.Trigger.COMMAND,
                        created_by=None, queue: bool = True) -> TrainingJob:
    """Register a training job and, with `queue`, queue it on the `training` queue once this
    commits (without, the caller runs it with `training_job_execute`).

    `parent` is the version to fine-tune from (None: a base model trained from scratch);
    `name` the version to register (default: the next v0.N). Everything is checked now, so a
    bad request fails here rather than in the worker.
    """
    from training.tasks import train_model

    label_set = label_set_selectors.label_set_get(label_set_number)
    parent_version = selectors.version_get(parent) if parent else None
    config = training_config(options)
    try:
        with transaction.atomic():
            job_name = name or selectors.next_version_name()
            _check_name_free(job_name)
            job = TrainingJob.objects.create(
                name=job_name, label_set=label_set, parent=parent_version,
                options=config.to_dict(), trigger=trigger, created_by=created_by,
            )
            if queue:
                transaction.on_commit(lambda: train_model.delay(job.pk))
    except IntegrityError:
        raise Conflict(f"another training job is registering {job_name!r}") from None
    return job


def fine_tune_request_failed(label_set: LabelSet, message: str) -> TrainingJob:
    """Record an export's fine-tuning request that could not become a job (e.g. an unknown
    parent version), so the ML team sees it on the models page next to the label set."""
    return TrainingJob.objects.create(
        name="", label_set=label_set, options={}, trigger=TrainingJob.Trigger.EXPORT,
        status=JobStatus.FAILED, error=message, created_by=label_set.created_by,
        finished_at=timezone.now(),
    )


def _check_name_free(name: str) -> None:
    try:
        version_name_validator(name)
    except ValidationError as exc:  # its message says how a name looks
        raise InvalidInput(f"{name!r} is not a version name: {'; '.join(exc.messages)}") from None
    if ModelVersion.objects.filter(name=name).exists():
        raise Conflict(f"model version {name!r} already exists")
    if TrainingJob.objects.filter(name=name).exclude(status=JobStatus.FAILED).exists():
        raise Conflict(f"a training job is already registering {name!r}")


def training_job_execute(job_id: int, *, on_epoch: Callable[[EpochRecord], None] | None = None,
                         on_batch: Callable[[int, int], None] | None = None) -> TrainingJob:
    """Run a training job, or resume it from its last checkpoint.

    A done job is left alone, and so is one another worker is running (its heartbeat is
    fresh). A request that cannot be trained (bad label set, missing parent weights) fails the
    job with the reason and returns; anything else fails it and is raised for the worker.
    The checkpoint survives a failure, so running the job again continues where it stopped.
    """
    from training.ml.weights import WeightsError

    job = _claim(job_id)
    if job is None:
        return selectors.training_job_get(job_id)
    try:
        _train(job, on_epoch=on_epoch, on_batch=on_batch)
    except (LabelingError, WeightsError, StampError) as exc:
        _job_failed(job, getattr(exc, "message", str(exc)))
    except Exception as exc:
        _job_failed(job, f"{type(exc).__name__}: {exc}")
        raise
    return selectors.training_job_get(job_id)


def _claim(job_id: int) -> TrainingJob | None:
    with transaction.atomic():
        # of=self: lock the job's row only (and PostgreSQL refuses FOR UPDATE on the nullable
        # side of the parent's outer join).
        job = TrainingJob.objects.select_for_update(of=("self",)).select_related(
            "label_set", "parent").get(pk=job_id)
        now = timezone.now()
        if job.status == JobStatus.DONE:
            return None
        if (job.status == JobStatus.RUNNING and job.heartbeat_at is not None
                and now - job.heartbeat_at < STALE_AFTER):
            return None
        job.status, job.error, job.heartbeat_at = JobStatus.RUNNING, "", now
        job.started_at = job.started_at or now
        job.save(update_fields=["status", "error", "heartbeat_at", "started_at"])
    return job


def _job_failed(job: TrainingJob, message: str) -> None:
    TrainingJob.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED, error=message, finished_at=timezone.now()
    )


def _train(job: TrainingJob, *, on_epoch, on_batch) -> ModelVersion:
    import torch

    from training.ml.model import RealBogusCNN
    from training.ml.train import fit, pick_device
    from training.ml.weights import load_weights

    label_set = job.label_set
    train, val, test = _splits(label_set)
    config = TrainingConfig.from_dict(job.options)
    # A base model's initial weights come from the job's seed, so one seed gives one model.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = RealBogusCNN()
    if job.parent is not None:
        # Fine-tuning starts from the parent's registered weights, checked against their sha256.
        model.load_state_dict(load_weights(storage.path_of(job.parent.weights_path),
                                           expected_sha256=job.parent.weights_sha256))
    device = pick_device()
    checkpoint = storage.checkpoint_of(job.pk)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    TrainingJob.objects.filter(pk=job.pk).update(
        batches_total=math.ceil(len(train) / config.batch_size), batches_done=0
    )
    result = fit(model, train, val, config, checkpoint=checkpoint, device=device,
                 on_epoch=_epoch_recorder(job, on_epoch),
                 on_batch=_heartbeat(job, on_batch))
    model.load_state_dict(result.best_state)
    model.to("cpu").eval()
    trained_on = [label_set] + ([] if job.parent is None
                                else [v.label_set for v in selectors.lineage(job.parent)])
    metrics = _evaluate(model, test, trained_on)
    version = _register(job, model, test, metrics, result, device=str(device))
    shutil.rmtree(storage.job_folder(job.pk), ignore_errors=True)
    return version


def _splits(label_set: LabelSet) -> tuple[LabelSetDataset, LabelSetDataset, LabelSetDataset]:
    from training.ml.dataset import LabelSetDataset, verify

    folder = label_set_storage.folder_of(label_set.path)
    problems = verify(folder)
    if problems:
        raise InvalidInput(f"label set {label_set.number}'s files do not match its manifest: "
                           + "; ".join(problems[:5]))
    splits = tuple(LabelSetDataset(folder, split) for split in ("train", "val", "test"))
    for name, split in zip(("train", "val", "test"), splits, strict=True):
        if len(split) == 0:
            raise InvalidInput(f"label set {label_set.number} has no {name} subjects")
        if tuple(split.images.shape[1:]) != STAMP_SHAPE:
            raise InvalidInput(
                f"label set {label_set.number} has stamps {tuple(split.images.shape[1:])}; "
                f"the CNN takes {STAMP_SHAPE}"
            )
    return splits


def _epoch_recorder(job: TrainingJob, also: Callable[[EpochRecord], None] | None):
    def record(epoch: EpochRecord) -> None:
        history = TrainingJob.objects.values_list("history", flat=True).get(pk=job.pk)
        # A resumed job may repeat an epoch whose row was written before the crash.
        history = [row for row in history if row["epoch"] < epoch.epoch] + [epoch.to_dict()]
        TrainingJob.objects.filter(pk=job.pk).update(
            epoch=epoch.epoch, history=history, batches_done=0, heartbeat_at=timezone.now()
        )
        if also is not None:
            also(epoch)

    return record


def _heartbeat(job: TrainingJob, also: Callable[[int, int], None] | None):
    last = time.monotonic()

    def beat(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= HEARTBEAT_EVERY_S or done == total:
            last = now
            TrainingJob.objects.filter(pk=job.pk).update(
                batches_done=done, batches_total=total, heartbeat_at=timezone.now()
            )
        if also is not None:
            also(done, total)

    return beat


def _evaluate(model: RealBogusCNN, test: LabelSetDataset, trained_on: list[LabelSet]) -> dict:
    """evaluate() on a test split, plus `seen_in_training`: how many of its subjects were in
    the training or validation split of a label set the version or an ancestor learnt from
    (two label sets of one run share subjects). Scores on those flatter the version."""
    from training.ml.dataset import LabelSetDataset
    from training.ml.scoring import predict

    scores = predict(model, test.images, batch_size=SCORING_BATCH)
    metrics = evaluate(scores, test.labels, origins=test.origins, snr=test.snr)
    seen = [LabelSetDataset(label_set_storage.folder_of(label_set.path), split).subject_ids
            for label_set in trained_on for split in ("train", "val")]
    metrics["seen_in_training"] = int(np.isin(test.subject_ids, np.concatenate(seen)).sum())
    return metrics


def _register(job: TrainingJob, model: RealBogusCNN, test: LabelSetDataset, metrics: dict,
              result, *, device: str) -> ModelVersion:
    """Write the version's files to a staging folder, then move them into place in the
    transaction that creates the ModelVersion and marks the job done: all or nothing."""
    from training.ml.weights import export_onnx, file_sha256, save_weights

    root = storage.root()
    folder_name = storage.version_folder_name(job.name)
    staging = root / f"{storage.STAGING_PREFIX}{folder_name}-job-{job.pk}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    placed = None
    try:
        weights_sha256 = save_weights(model, staging / storage.WEIGHTS_FILE)
        check = np.asarray(test.images[:ONNX_CHECK_SUBJECTS], dtype=np.float32)
        difference = export_onnx(model, staging / storage.ONNX_FILE, check)
        onnx_sha256 = file_sha256(staging / storage.ONNX_FILE)
        with transaction.atomic():
            locked = TrainingJob.objects.select_for_update().get(pk=job.pk)
            if locked.status == JobStatus.DONE:  # the same job, run twice at once, finished first
                return locked.model_version
            folder = root / folder_name
            shutil.rmtree(folder, ignore_errors=True)  # an orphan of a crashed registration
            os.rename(staging, folder)
            placed = folder
            version = ModelVersion.objects.create(
                name=job.name, parent=job.parent, label_set=job.label_set, options=job.options,
                history=[epoch.to_dict() for epoch in result.history],
                best_epoch=result.best_epoch,
                weights_path=f"{folder_name}/{storage.WEIGHTS_FILE}",
                weights_sha256=weights_sha256,
                onnx_path=f"{folder_name}/{storage.ONNX_FILE}", onnx_sha256=onnx_sha256,
                onnx_max_difference=difference, device=device, created_by=job.created_by,
                notes=_notes(job, result),
            )
            Evaluation.objects.create(model_version=version, label_set=job.label_set,
                                      metrics=metrics)
            TrainingJob.objects.filter(pk=job.pk).update(
                status=JobStatus.DONE, model_version=version, error="",
                history=version.history, finished_at=timezone.now(),
            )
    except BaseException:
        shutil.rmtree(placed or staging, ignore_errors=True)
        raise
    return version


def _notes(job: TrainingJob, result) -> str:
    start = f"fine-tuned from {job.parent.name}" if job.parent else "trained from scratch"
    stop = (f"stopped early after epoch {result.history[-1].epoch}" if result.stopped_early
            else f"ran all {result.history[-1].epoch} epochs")
    return (f"{start} on label set {job.label_set.number}; {stop}; kept epoch "
            f"{result.best_epoch} (validation loss {result.best_val_loss:.4f})")


# --- evaluation -----------------------------------------------------------------------------


def evaluation_get_or_create(version: ModelVersion, label_set: LabelSet) -> Evaluation:
    """The version's evaluation on `label_set`'s test split, scored now if not yet stored.
    Two versions evaluated on one label set are compared on the very same subjects."""
    found = selectors.evaluation_find(version, label_set.pk)
    if found is not None:
        return found
    _, _, test = _splits(label_set)
    model = _load(version)
    metrics = _evaluate(model, test, [v.label_set for v in selectors.lineage(version)])
    evaluation, _ = Evaluation.objects.get_or_create(
        model_version=version, label_set=label_set, defaults={"metrics": metrics}
    )
    return evaluation


class EvaluationPending(LabelingError):
    """A comparison waits for evaluations a worker is computing (the web never loads a model)."""

    status_code = 202
    code = "pending"


@dataclass(frozen=True)
class Comparison:
    a: ModelVersion
    b: ModelVersion
    label_set: LabelSet
    evaluation_a: Evaluation
    evaluation_b: Evaluation


def versions_compare(a: str, b: str, label_set_number: int | None = None) -> Comparison:
    """Versions a and b evaluated on one label set's test split (default: b's own label
    set). An evaluation not stored yet is queued for the `scoring` workers and
    EvaluationPending is raised: the web process never loads a model."""
    from training.tasks import evaluate_version

    if a == b:
        raise InvalidInput(f"pick two different versions: a and b are both {a}")
    version_a, version_b = selectors.version_get(a), selectors.version_get(b)
    label_set = (version_b.label_set if label_set_number is None
                 else label_set_selectors.label_set_get(label_set_number))
    evaluations = [selectors.evaluation_find(version, label_set.pk)
                   for version in (version_a, version_b)]
    missing = [version for version, evaluation in zip((version_a, version_b), evaluations,
                                                      strict=True) if evaluation is None]
    if missing:
        for version in missing:
            transaction.on_commit(
                lambda pk=version.pk: evaluate_version.delay(pk, label_set.pk))
        names = " and ".join(version.name for version in missing)
        raise EvaluationPending(
            f"{names} {'is' if len(missing) == 1 else 'are'} being evaluated on label set "
            f"{label_set.number}'s test split by a worker; reload this page in a minute"
        )
    return Comparison(version_a, version_b, label_set, *evaluations)


def _load(version: ModelVersion) -> RealBogusCNN:
    from training.ml.weights import WeightsError, load_model

    try:
        return load_model(storage.path_of(version.weights_path),
                          expected_sha256=version.weights_sha256)
    except WeightsError as exc:
        raise InvalidInput(f"model version {version.name}'s weights: {exc}") from None


# --- scoring --------------------------------------------------------------------------------


def scoring_job_create(model: str, subject_set: str, *, project: str | None = None,
                       created_by=None, queue: bool = True) -> ScoringJob:
    """Register a scoring job and, with `queue`, queue it on the `scoring` queue once this
    commits (without, the caller runs it with `scoring_job_execute`)."""
    from training.tasks import score_subjects

    version = selectors.version_get(model)
    subjects = selectors.subject_set_find(subject_set, project)
    with transaction.atomic():
        job = ScoringJob.objects.create(model_version=version, subject_set=subjects,
                                        created_by=created_by)
        if queue:
            transaction.on_commit(lambda: score_subjects.delay(job.pk))
    return job


def scoring_job_execute(job_id: int, *,
                        on_progress: Callable[[int, int], None] | None = None) -> ScoringJob:
    """Score the job's subjects that its version has not scored yet, SCORING_BATCH at a time
    (memory stays bounded whatever the set's size); each batch's scores commit together, so
    a job run again after a crash carries on. `on_progress(done, total)` after each batch."""
    with transaction.atomic():
        job = ScoringJob.objects.select_for_update(of=("self",)).select_related(
            "model_version", "subject_set").get(pk=job_id)
        if job.status == JobStatus.DONE:
            return job
        job.status, job.error = JobStatus.RUNNING, ""
        job.started_at = job.started_at or timezone.now()
        job.save(update_fields=["status", "error", "started_at"])
    try:
        _score(job, on_progress)
    except (LabelingError, StampError) as exc:
        _scoring_failed(job, getattr(exc, "message", str(exc)))
    except Exception as exc:
        _scoring_failed(job, f"{type(exc).__name__}: {exc}")
        raise
    return selectors.scoring_job_get(job_id)


def _score(job: ScoringJob, on_progress) -> None:
    from training.ml.scoring import predict

    version = job.model_version
    subjects = job.subject_set.subjects.exclude(stamps="")
    other_sizes = sorted(subjects.exclude(stamp_size=STAMP_SIZE).order_by()
                         .values_list("stamp_size", flat=True).distinct())
    if other_sizes:
        raise InvalidInput(f"subject set {job.subject_set.name!r} has stamps of size "
                           f"{other_sizes}; model {version.name} takes {STAMP_SIZE}x{STAMP_SIZE}")
    total = subjects.count()
    done = selectors.scores_count(version, job.subject_set)
    ScoringJob.objects.filter(pk=job.pk).update(n_total=total, n_done=done)
    model = _load(version)
    pending = subjects.exclude(scores__model_version=version).order_by("pk")
    after = 0
    while rows := list(pending.filter(pk__gt=after).values_list("pk", "stamps")[:SCORING_BATCH]):
        ids = [pk for pk, _ in rows]
        cubes = labeling_selectors.subject_cubes([name for _, name in rows], STAMP_SIZE)
        reliabilities = predict(model, cubes, batch_size=SCORING_BATCH)
        with transaction.atomic():
            SubjectScore.objects.bulk_create(
                [SubjectScore(subject_id=pk, model_version=version, reliability=float(score))
                 for pk, score in zip(ids, reliabilities.tolist(), strict=True)],
                update_conflicts=True, unique_fields=["model_version", "subject"],
                update_fields=["reliability"],
            )
            done += len(rows)
            ScoringJob.objects.filter(pk=job.pk).update(n_done=done)
        after = ids[-1]
        if on_progress is not None:
            on_progress(done, total)
    ScoringJob.objects.filter(pk=job.pk).update(status=JobStatus.DONE,
                                                finished_at=timezone.now())


def _scoring_failed(job: ScoringJob, message: str) -> None:
    ScoringJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, error=message,
                                                finished_at=timezone.now())
