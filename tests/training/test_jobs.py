"""Training jobs and the registry: register, fine-tune, resume, fail, trigger from an export."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command
from django.utils import timezone

from aggregation.labelsets import storage as label_set_storage
from aggregation.labelsets.services import ExportOptions, label_set_export
from labeling.errors import Conflict, InvalidInput, NotFound
from tests.training.conftest import QUICK, export_label_set, train_version
from training import presenters, services, storage
from training.ml import train
from training.ml.dataset import LabelSetDataset
from training.ml.model import RealBogusCNN
from training.ml.scoring import predict
from training.ml.weights import file_sha256, load_model, load_weights, onnx_predict
from training.models import Evaluation, JobStatus, ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db


def test_a_base_model_is_registered_with_its_files_and_its_evaluation(label_set):
    job = train_version(label_set)

    assert job.status == JobStatus.DONE, job.error
    version = job.model_version
    assert (version.name, version.parent, version.label_set) == ("v0.1", None, label_set)
    assert [row["epoch"] for row in version.history] == [1, 2]
    weights, onnx = storage.path_of(version.weights_path), storage.path_of(version.onnx_path)
    assert file_sha256(weights) == version.weights_sha256
    assert file_sha256(onnx) == version.onnx_sha256
    assert version.onnx_max_difference <= 1e-5
    # The evaluation is of the registered weights on the label set's own test split.
    test = LabelSetDataset(label_set_storage.folder_of(label_set.path), "test")
    metrics = Evaluation.objects.get(model_version=version, label_set=label_set).metrics
    assert (metrics["n"], metrics["n_real"]) == (len(test), int(test.labels.sum()))
    scores = predict(load_model(weights, version.weights_sha256), np.asarray(test.images))
    np.testing.assert_allclose(onnx_predict(onnx, np.asarray(test.images)), scores, atol=1e-5)
    # The checkpoint of a finished job is gone; the version's files stay.
    assert not storage.job_folder(job.pk).exists()


def test_fine_tuning_starts_from_the_parents_weights(label_set, base_version, monkeypatch):
    seen = {}
    real_fit = train.fit

    def spy(model, *args, **kwargs):
        seen.update({key: value.clone() for key, value in model.state_dict().items()})
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(train, "fit", spy)
    job = train_version(label_set, parent=base_version.name)

    assert job.status == JobStatus.DONE, job.error
    parent = load_weights(storage.path_of(base_version.weights_path))
    assert seen.keys() == parent.keys()
    for key, value in parent.items():
        assert torch.equal(seen[key], value), key
    # ... and not from a fresh initialisation, which the parent's trained weights are not.
    fresh = RealBogusCNN().state_dict()
    assert any(not torch.equal(fresh[key], value) for key, value in parent.items())
    assert (job.model_version.name, job.model_version.parent) == ("v0.2", base_version)


def test_a_crashed_job_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(
        label_set):
    uninterrupted = train_version(label_set, name="v1.0", epochs=3, patience=3)
    job = services.training_job_create(label_set.number, name="v1.1",
                                       options={**QUICK, "epochs": 3, "patience": 3},
                                       queue=False)

    def crash(epoch):
        if epoch.epoch == 2:
            raise RuntimeError("the worker died")

    with pytest.raises(RuntimeError, match="the worker died"):
        services.training_job_execute(job.pk, on_epoch=crash)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "the worker died" in job.error
    assert storage.checkpoint_of(job.pk).exists()

    epochs_run = []
    job = services.training_job_execute(job.pk, on_epoch=lambda e: epochs_run.append(e.epoch))

    assert job.status == JobStatus.DONE, job.error
    assert epochs_run == [3]  # epochs 1 and 2 came from the checkpoint
    resumed, reference = job.model_version, uninterrupted.model_version
    assert resumed.weights_sha256 == reference.weights_sha256
    assert [(r["epoch"], r["train_loss"], r["val_loss"]) for r in resumed.history] == [
        (r["epoch"], r["train_loss"], r["val_loss"]) for r in reference.history]


def test_a_job_another_worker_is_running_is_left_alone_until_its_heartbeat_is_stale(
        label_set):
    job = services.training_job_create(label_set.number, options=QUICK, queue=False)
    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING,
                                                 heartbeat_at=timezone.now())
    assert services.training_job_execute(job.pk).status == JobStatus.RUNNING
    assert not ModelVersion.objects.exists()

    TrainingJob.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - services.STALE_AFTER - timedelta(seconds=1))
    assert services.training_job_execute(job.pk).status == JobStatus.DONE


def test_running_a_done_job_again_changes_nothing(label_set):
    job = train_version(label_set)
    again = services.training_job_execute(job.pk)
    assert again.model_version == job.model_version
    assert ModelVersion.objects.count() == 1
    assert Evaluation.objects.count() == 1


def test_a_label_set_whose_files_changed_fails_the_job_and_registers_nothing(label_set):
    train_file = label_set_storage.folder_of(label_set.path) / "train.npz"
    data = bytearray(train_file.read_bytes())
    data[-100] ^= 0xFF
    train_file.write_bytes(bytes(data))

    job = train_version(label_set)

    assert job.status == JobStatus.FAILED
    assert "do not match its manifest" in job.error
    assert "train.npz" in job.error
    assert not ModelVersion.objects.exists()
    assert not any(storage.root().glob("model-*"))


@pytest.mark.parametrize(("request_", "error", "message"), [
    ({"label_set_number": 99}, NotFound, "no label set 99"),
    ({"parent": "v9.9"}, NotFound, "no model version 'v9.9'"),
    ({"name": "best"}, InvalidInput, "not a version name"),
    ({"options": {"epochs": 0}}, InvalidInput, "epochs"),
    ({"options": {"learning_rat": 1}}, InvalidInput, "learning_rat"),
])
def test_bad_training_requests_are_refused_and_register_nothing(label_set, request_, error,
                                                                message):
    arguments = {"label_set_number": label_set.number, **request_}
    with pytest.raises(error, match=message):
        services.training_job_create(arguments.pop("label_set_number"), queue=False,
                                     **arguments)
    assert not TrainingJob.objects.exists()


def test_a_version_name_is_registered_once(label_set, base_version):
    with pytest.raises(Conflict, match="already exists"):
        services.training_job_create(label_set.number, name=base_version.name, queue=False)
    services.training_job_create(label_set.number, name="v0.7", queue=False)
    with pytest.raises(Conflict, match="already registering"):
        services.training_job_create(label_set.number, name="v0.7", queue=False)
    # Automatic names skip the ones registered and the ones live jobs claim.
    assert services.training_job_create(label_set.number, queue=False).name == "v0.8"


def test_an_export_asking_for_fine_tuning_queues_the_job(
        workflow, label_set, base_version, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        second = export_label_set(workflow, n=40, seed=1, fine_tune_from=base_version.name)

    job = TrainingJob.objects.get(label_set=second)
    assert (job.trigger, job.parent, job.status) == (
        TrainingJob.Trigger.EXPORT, base_version, JobStatus.DONE), job.error
    assert job.model_version.parent == base_version
    assert job.model_version.label_set == second


def test_an_export_asking_for_an_unknown_parent_records_a_failed_request(
        workflow, label_set, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        second = export_label_set(workflow, n=40, seed=1, fine_tune_from="v4.2")

    job = TrainingJob.objects.get(label_set=second)
    assert job.status == JobStatus.FAILED
    assert "no model version 'v4.2'" in job.error
    assert not ModelVersion.objects.exists()


def test_the_train_command_reports_the_version_and_its_evaluation(label_set, capsys):
    call_command("train", "--label-set", str(label_set.number), "--epochs", "2", "--seed", "3")

    out = capsys.readouterr().out
    version = ModelVersion.objects.get()
    metrics = version.evaluations.get().metrics
    assert "epoch   1: train loss" in out
    assert "epoch   2: train loss" in out
    assert f"{version.name}: trained from scratch on label set {label_set.number}" in out
    assert metrics["requirement"]["message"] in out
    assert version.options["seed"] == 3


def test_the_train_command_resumes_a_failed_job(label_set, capsys):
    job = services.training_job_create(label_set.number, options=QUICK, queue=False)
    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, error="killed")

    call_command("train", "--resume", str(job.pk))

    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert job.model_version is not None
    with pytest.raises(CommandError, match="is done") as excinfo:
        call_command("train", "--resume", str(job.pk))
    assert excinfo.value.returncode == 2


@pytest.mark.parametrize(("arguments", "message"), [
    (["--label-set", "42"], "no label set 42"),
    (["--label-set", "1", "--from", "v0.9"], "no model version 'v0.9'"),
    (["--label-set", "1", "--epochs", "-1"], "epochs"),
    (["--resume", "77"], "no training job 77"),
])
def test_the_train_command_exits_2_on_a_bad_request(label_set, arguments, message):
    with pytest.raises(CommandError, match=message) as excinfo:
        call_command("train", *arguments)
    assert excinfo.value.returncode == 2
    assert not ModelVersion.objects.exists()


def test_model_figures_draws_two_versions_on_one_test_split(workflow, label_set, base_version,
                                                          tmp_path, capsys):
    second = export_label_set(workflow, n=40, seed=1)
    tuned = train_version(second, parent=base_version.name).model_version

    call_command("model_figures", "--model", tuned.name, "--compare", base_version.name,
                 "--out", str(tmp_path / "figures"))

    # Both are evaluated on the fine-tuned version's label set, the base one now.
    assert set(Evaluation.objects.filter(label_set=second).values_list(
        "model_version__name", flat=True)) == {tuned.name, base_version.name}
    pngs = sorted((tmp_path / "figures").glob("*.png"))
    assert [png.stem for png in pngs] == sorted(presenters.FIGURES)
    assert all(png.read_bytes().startswith(b"\x89PNG") for png in pngs)
    out = capsys.readouterr().out
    assert f"test split of label set {second.number}:" in out
    assert f"  {base_version.name}: " in out
    assert f"  {tuned.name}: " in out


def test_model_figures_exits_2_for_an_unknown_version(base_version, tmp_path):
    with pytest.raises(CommandError, match="no model version 'v8'") as excinfo:
        call_command("model_figures", "--model", "v8", "--out", str(tmp_path))
    assert excinfo.value.returncode == 2


def test_an_evaluation_counts_the_test_subjects_the_version_learnt_from(label_set,
                                                                        base_version):
    # Another split of the same run: part of its test split was in v0.1's train/val splits.
    options = ExportOptions.from_dict({"scenario": "unstable", "balance": "none", "seed": 5})
    resplit = label_set_export(label_set.run_id, options)
    folder, other = (label_set_storage.folder_of(ls.path) for ls in (label_set, resplit))
    learnt = np.concatenate([LabelSetDataset(folder, split).subject_ids
                             for split in ("train", "val")])
    expected = int(np.isin(LabelSetDataset(other, "test").subject_ids, learnt).sum())
    assert expected > 0

    evaluation = services.evaluation_get_or_create(base_version, resplit)

    assert evaluation.metrics["seen_in_training"] == expected
    assert services.evaluation_get_or_create(base_version, label_set).metrics[
        "seen_in_training"] == 0


def test_training_and_scoring_have_their_own_queues():
    from config.celery import app

    def queue_of(task: str) -> str:
        return app.amqp.router.route({}, task)["queue"].name

    assert queue_of("training.tasks.train_model") == "training"
    assert queue_of("training.tasks.score_subjects") == "scoring"
