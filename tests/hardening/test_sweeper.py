"""The sweeper: lost jobs are queued again, stuck ones failed with a message, finished and fresh
ones left alone; staging folders and orphan stamp files left by killed processes removed once
they are old enough; Celery redelivers the task of a worker that died."""

from __future__ import annotations

import io
import os
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from aggregation import services as aggregation_services
from aggregation.models import AggregationRun, LabelSet, LabelSetExport
from labeling import services
from labeling.models import Subject
from operations import sweeper
from training.models import JobStatus, ModelVersion, ScoringJob, TrainingJob

HOUR = timedelta(hours=1)


@pytest.fixture
def queued(monkeypatch):
    """(task name, job id) of every task the sweeper queues, instead of sending it."""
    sent = []
    for kind in sweeper.JOB_KINDS:
        monkeypatch.setattr(kind.task, "delay",
                            lambda pk, name=kind.task.name: sent.append((name, pk)))
    return sent


def _aged(obj, **ages):
    """Set the object's timestamps to now minus the given timedeltas."""
    now = timezone.now()
    type(obj).objects.filter(pk=obj.pk).update(**{field: now - age for field, age in ages.items()})
    obj.refresh_from_db()
    return obj


@pytest.fixture
def jobs(workflow):
    reference = services.reference_set_get_or_create(
        name="rubin", team=services.expert_team_get_or_create("rubin"))

    def run(status=AggregationRun.Status.PENDING):
        made = aggregation_services.run_create(workflow=workflow, reference_sets=[reference])
        AggregationRun.objects.filter(pk=made.pk).update(status=status)
        return made

    finished = run(AggregationRun.Status.DONE)
    label_set = LabelSet.objects.create(number=1, run=finished, scenario="stable", options={},
                                        manifest={}, path="label-set-0001", archive_sha256="0",
                                        archive_size=0, n_subjects=0)
    version = ModelVersion.objects.create(
        name="v0.1", label_set=label_set, options={}, history=[], best_epoch=1,
        weights_path="w", weights_sha256="0", onnx_path="o", onnx_sha256="0",
        onnx_max_difference=0.0, device="cpu")

    def training(name, status=JobStatus.RUNNING):
        return TrainingJob.objects.create(name=name, label_set=label_set, options={},
                                          status=status, heartbeat_at=timezone.now())

    def export(status=LabelSetExport.Status.PENDING):
        return LabelSetExport.objects.create(run=finished, options={}, status=status)

    subject_set = services.subject_set_attach(workflow=workflow, name="main")
    return {
        "export_lost": _aged(export(), created_at=HOUR),
        "export_fresh": export(),
        "export_abandoned": _aged(export(), created_at=30 * HOUR),
        "export_done_old": _aged(export(LabelSetExport.Status.DONE), created_at=30 * HOUR),
        "run_lost": _aged(run(), created_at=HOUR),
        "run_stuck": _aged(run(AggregationRun.Status.RUNNING), created_at=8 * HOUR,
                           started_at=7 * HOUR),
        "run_running": _aged(run(AggregationRun.Status.RUNNING), created_at=HOUR,
                             started_at=HOUR),
        "training_silent": _aged(training("v0.2"), created_at=2 * HOUR, heartbeat_at=HOUR),
        "training_alive": _aged(training("v0.3"), created_at=2 * HOUR,
                                heartbeat_at=timedelta(seconds=30)),
        "training_hopeless": _aged(training("v0.4"), created_at=30 * HOUR, heartbeat_at=HOUR),
        "scoring_lost": _aged(ScoringJob.objects.create(model_version=version,
                                                        subject_set=subject_set),
                              created_at=HOUR),
    }


def _status(job) -> tuple[str, str]:
    job.refresh_from_db()
    return job.status, job.error


@pytest.mark.django_db
def test_lost_jobs_are_queued_again_and_stuck_ones_failed_with_a_message(jobs, queued):
    report = sweeper.sweep()
    assert sorted(queued) == sorted([
        ("aggregation.tasks.export_label_set", jobs["export_lost"].pk),
        ("aggregation.tasks.aggregate_workflow", jobs["run_lost"].pk),
        ("training.tasks.train_model", jobs["training_silent"].pk),
        ("training.tasks.score_subjects", jobs["scoring_lost"].pk),
    ])
    assert len(report.requeued) == 4
    for name in ("export_abandoned", "run_stuck", "training_hopeless"):
        status, error = _status(jobs[name])
        assert status == "failed", name
        assert error.startswith("failed by the sweeper: "), error
    assert "no worker picked it up within 24 h" in _status(jobs["export_abandoned"])[1]
    assert "still running after 6 h with no result" in _status(jobs["run_stuck"])[1]
    assert sorted(report.failed) == sorted([
        f"label-set export {jobs['export_abandoned'].pk}",
        f"aggregation run {jobs['run_stuck'].pk}",
        f"training job {jobs['training_hopeless'].pk}",
    ])
    for name in ("export_fresh", "run_running", "training_alive", "export_lost",
                 "training_silent"):
        assert _status(jobs[name])[0] in ("pending", "running"), name
    assert _status(jobs["export_done_old"]) == ("done", "")


@pytest.mark.django_db
def test_a_dry_run_reports_and_changes_nothing(jobs, queued):
    out = io.StringIO()
    call_command("sweep", "--dry-run", stdout=out)
    assert queued == []
    assert _status(jobs["run_stuck"])[0] == "running"
    assert "would have re-queued 4 job(s)" in out.getvalue()
    assert "would have failed 3 stuck job(s)" in out.getvalue()


def _touch(path, *, age: timedelta, directory=False):
    if directory:
        path.mkdir(parents=True)
        (path / "part").write_bytes(b"x")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    stamp = (timezone.now() - age).timestamp()
    os.utime(path, (stamp, stamp))
    return path


@pytest.mark.django_db
def test_old_staging_folders_and_orphan_stamps_are_removed_young_ones_kept(settings, workflow,
                                                                          subject_ids):
    label_sets, models = settings.LABEL_SETS_ROOT, settings.MODELS_ROOT
    old_export = _touch(label_sets / ".export-abc", age=7 * HOUR, directory=True)
    young_export = _touch(label_sets / ".export-def", age=HOUR, directory=True)
    placed = _touch(label_sets / "label-set-0001", age=7 * HOUR, directory=True)
    old_model = _touch(models / ".staging-model-v0.1-job-1", age=7 * HOUR, directory=True)
    held = Subject.objects.get(pk=subject_ids[0]).stamps.path
    os.utime(held, ((timezone.now() - 7 * HOUR).timestamp(),) * 2)
    stamps = settings.MEDIA_ROOT / "stamps" / str(workflow.project_id) / "zz"
    old_orphan = _touch(stamps / "zz-orphan.npy", age=7 * HOUR)
    young_orphan = _touch(stamps / "zz-young.npy", age=HOUR)
    report = sweeper.SweepReport()
    sweeper.sweep_files(report, now=timezone.now())
    assert sorted(report.staging_removed) == sorted([str(old_export), str(old_model)])
    assert report.stamps_removed == 1
    assert not old_export.exists()
    assert not old_model.exists()
    assert not old_orphan.exists()
    for kept in (young_export, placed, young_orphan):
        assert kept.exists()
    for subject in Subject.objects.filter(pk__in=subject_ids):  # every held stamp stays
        assert subject.stamps.storage.exists(subject.stamps.name)


def test_the_sweeper_runs_periodically_and_lost_workers_redeliver():
    from config.celery import app

    app.loader.import_default_modules()
    schedule = app.conf.beat_schedule["sweep-stuck-jobs"]
    assert schedule["task"] == "operations.tasks.sweep_stuck_jobs"
    assert schedule["task"] in app.tasks
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.task_acks_late is True
