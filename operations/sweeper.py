"""The sweeper: jobs a lost worker or a lost broker message left behind, and files a killed
process left behind (celery beat runs it; `manage.py sweep` runs it by hand).

Jobs (label-set exports, aggregation runs, training jobs, scoring jobs):
- pending for longer than SWEEP_PENDING_AFTER_S: the message was lost (a broker that restarted
  without it, a send that failed after the commit), so the job is queued again. Every task is
  idempotent, so a message that was only slow costs nothing but a second look.
- a training job whose heartbeat is older than its STALE_AFTER: its worker is gone, so it is
  queued again and resumes from its last checkpoint.
- running with no heartbeat for longer than SWEEP_RUNNING_LIMIT_S: failed, with a message that
  says so (the broker already redelivers a message whose worker died, task_reject_on_worker_lost).
- pending or stale for longer than SWEEP_GIVE_UP_AFTER_S since it was created: failed, with a
  message, rather than queued forever.

Files, older than SWEEP_FILES_AFTER_S (younger ones may belong to a process still running):
staging folders of label-set exports and model registrations, and stamp files no subject holds
(an ingest killed between writing a stamp and committing its row).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from celery import Task
from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Model, Q
from django.utils import timezone

from aggregation.labelsets import storage as label_set_storage
from aggregation.models import AggregationRun, LabelSetExport
from aggregation.tasks import aggregate_workflow, export_label_set
from labeling.models import Subject
from training import services as training_services
from training import storage as training_storage
from training.models import JobStatus, ScoringJob, TrainingJob
from training.tasks import score_subjects, train_model

# Statuses shared by every job model (TextChoices of equal values).
PENDING, RUNNING, FAILED = JobStatus.PENDING, JobStatus.RUNNING, JobStatus.FAILED
# Where ingest writes stamp files in the default storage (labeling.models.stamp_upload_path).
STAMPS_FOLDER = "stamps"
# Stamp names looked up in the database at a time.
NAMES_PER_QUERY = 2000


@dataclass(frozen=True)
class JobKind:
    name: str
    model: type[Model]
    task: Task  # the job's Celery task, queued again with the job's id
    heartbeat: str | None = None  # the field a running job refreshes, if it has one
    stale_after: timedelta | None = None


JOB_KINDS = (
    JobKind("label-set export", LabelSetExport, export_label_set),
    JobKind("aggregation run", AggregationRun, aggregate_workflow),
    JobKind("training job", TrainingJob, train_model, heartbeat="heartbeat_at",
            stale_after=training_services.STALE_AFTER),
    JobKind("scoring job", ScoringJob, score_subjects),
)


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)  # "training job 7", ...
    failed: list[str] = field(default_factory=list)
    staging_removed: list[str] = field(default_factory=list)
    stamps_removed: int = 0

    def lines(self) -> list[str]:
        return [
            f"re-queued {len(self.requeued)} job(s){': ' if self.requeued else ''}"
            + ", ".join(self.requeued),
            f"failed {len(self.failed)} stuck job(s){': ' if self.failed else ''}"
            + ", ".join(self.failed),
            f"removed {len(self.staging_removed)} staging folder(s), "
            f"{self.stamps_removed} orphan stamp file(s)",
        ]


def sweep(*, now: datetime | None = None, dry_run: bool = False) -> SweepReport:
    report = SweepReport()
    now = now or timezone.now()
    sweep_jobs(report, now=now, dry_run=dry_run)
    sweep_files(report, now=now, dry_run=dry_run)
    return report


# --- jobs -----------------------------------------------------------------------------------


def sweep_jobs(report: SweepReport, *, now: datetime, dry_run: bool = False) -> None:
    pending_after = timedelta(seconds=settings.SWEEP_PENDING_AFTER_S)
    running_limit = timedelta(seconds=settings.SWEEP_RUNNING_LIMIT_S)
    give_up = timedelta(seconds=settings.SWEEP_GIVE_UP_AFTER_S)
    for kind in JOB_KINDS:
        jobs = kind.model.objects
        too_old = Q(created_at__lt=now - give_up)
        lost = Q(status=PENDING, created_at__lt=now - pending_after)
        if kind.heartbeat:
            silent = Q(status=RUNNING) & (Q(**{f"{kind.heartbeat}__lt": now - kind.stale_after})
                                          | Q(**{f"{kind.heartbeat}__isnull": True}))
            lost |= silent
            _fail(kind, jobs.filter(silent & too_old), report, now, dry_run,
                  f"its worker stopped sending heartbeats and it was still not done "
                  f"{_hours(give_up)} after it was requested")
        else:
            _fail(kind, jobs.filter(status=RUNNING, started_at__lt=now - running_limit), report,
                  now, dry_run, f"still running after {_hours(running_limit)} with no "
                  "result: its worker was probably lost. Request it again")
        _fail(kind, jobs.filter(Q(status=PENDING) & too_old), report, now, dry_run,
              f"no worker picked it up within {_hours(give_up)}: are the workers running?")
        for pk in jobs.filter(lost & ~too_old).values_list("pk", flat=True):
            report.requeued.append(f"{kind.name} {pk}")
            if not dry_run:
                kind.task.delay(pk)


def _fail(kind: JobKind, stuck, report: SweepReport, now: datetime, dry_run: bool,
          reason: str) -> None:
    pks = list(stuck.values_list("pk", flat=True))
    report.failed += [f"{kind.name} {pk}" for pk in pks]
    if pks and not dry_run:
        # Only still stuck: a job that finished meanwhile keeps its result.
        kind.model.objects.filter(pk__in=pks, status__in=(PENDING, RUNNING)).update(
            status=FAILED, error=f"failed by the sweeper: {reason}", finished_at=now)


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{span.total_seconds() / 60:g} min"


# --- files ----------------------------------------------------------------------------------


def sweep_files(report: SweepReport, *, now: datetime, dry_run: bool = False) -> None:
    cutoff = now.timestamp() - settings.SWEEP_FILES_AFTER_S
    for root, prefix in ((Path(settings.LABEL_SETS_ROOT), label_set_storage.STAGING_PREFIX),
                         (training_storage.root(), training_storage.STAGING_PREFIX)):
        for folder in _entries(root, prefix):
            if _mtime(folder) < cutoff:
                report.staging_removed.append(str(folder))
                if not dry_run:
                    shutil.rmtree(folder, ignore_errors=True)
    report.stamps_removed += _sweep_orphan_stamps(cutoff, dry_run=dry_run)


def _entries(root: Path, prefix: str) -> Iterator[Path]:
    try:
        with os.scandir(root) as entries:
            yield from (Path(e.path) for e in entries
                        if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()


def _sweep_orphan_stamps(cutoff: float, *, dry_run: bool) -> int:
    """Stamp files older than `cutoff` that no Subject names, removed; how many."""
    base = Path(default_storage.path(""))
    removed = 0
    batch: list[tuple[str, Path]] = []

    def flush() -> int:
        names = [name for name, _ in batch]
        held = set(Subject.objects.filter(stamps__in=names).values_list("stamps", flat=True))
        orphans = [path for name, path in batch if name not in held]
        if not dry_run:
            for path in orphans:
                path.unlink(missing_ok=True)
        batch.clear()
        return len(orphans)

    for directory, _, files in os.walk(base / STAMPS_FOLDER):
        for file_name in files:
            path = Path(directory) / file_name
            if _mtime(path) >= cutoff:
                continue
            batch.append((path.relative_to(base).as_posix(), path))
            if len(batch) >= NAMES_PER_QUERY:
                removed += flush()
    if batch:
        removed += flush()
    return removed
