"""Exporting a label set from a run: numbering, files, determinism, all-or-nothing, options,
injections, the queued job, and concurrent exports on PostgreSQL."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest
from django.db import IntegrityError, connection

from aggregation import services as aggregation_services
from aggregation.labelsets import artifact, services, storage
from aggregation.labelsets.services import ExportError, ExportOptions, label_set_export
from aggregation.models import AggregationRun, LabelSet, LabelSetExport
from aggregation.tasks import export_label_set
from labeling.errors import NotFound
from labeling.models import Subject
from tests.aggregation.conftest import build_crowd
from tests.aggregation.labelsets.conftest import add_injections, labelled_run

pytestmark = pytest.mark.django_db

UNSTABLE = ExportOptions(scenario="unstable")


def arrays(label_set, split="train") -> dict[str, np.ndarray]:
    with np.load(storage.folder_of(label_set.path) / f"{split}.npz") as data:
        return {name: data[name] for name in data.files}


def all_ids(label_set) -> list[int]:
    return [i for split in ("train", "val", "test") for i in arrays(label_set, split)[
        "subject_ids"].tolist()]


def root_entries(settings) -> list[str]:
    return sorted(p.name for p in settings.LABEL_SETS_ROOT.iterdir())


def test_an_export_registers_a_numbered_label_set_with_its_folder_and_archive(labelled, settings):
    first = label_set_export(labelled.run.pk, UNSTABLE, fine_tune_from="cnn-v3")
    second = label_set_export(labelled.run.pk, ExportOptions(scenario="stable"))
    assert (first.number, second.number) == (1, 2)
    assert first.path == storage.folder_name(1)
    assert root_entries(settings) == ["label-set-0001", "label-set-0001.tar",
                                      "label-set-0002", "label-set-0002.tar"]
    folder = storage.folder_of(first.path)
    assert sorted(p.name for p in folder.iterdir()) == sorted(artifact.ARTIFACT_FILES)
    assert json.loads((folder / "manifest.json").read_text()) == first.manifest
    assert artifact.file_digest(storage.archive_of(first.path)) == {
        "sha256": first.archive_sha256, "bytes": first.archive_size}
    assert first.n_subjects == len(all_ids(first))
    assert first.options == UNSTABLE.to_dict()
    assert first.fine_tune_from == "cnn-v3"  # recorded until the training issue queues it
    assert services.verify_artifact(folder) == []


def test_labels_and_balance_follow_the_run(labelled):
    label_set = label_set_export(labelled.run.pk, UNSTABLE)
    ids = all_ids(label_set)
    assert len(ids) == len(set(ids))
    labelled_ids = [s for s, label in labelled.labels.items() if label]
    n_real = sum(labelled.labels[s] == "real" for s in labelled_ids)
    assert len(ids) == 2 * n_real  # Real is the minority: all kept, Bogus subsampled
    for split in ("train", "val", "test"):
        data = arrays(label_set, split)
        assert (data["labels"] == 1).sum() == (data["labels"] == 0).sum()
        for subject_id, label in zip(data["subject_ids"].tolist(), data["labels"].tolist(),
                                     strict=True):
            assert labelled.labels[subject_id] == ("real" if label else "bogus")
            assert data["origins"][data["subject_ids"] == subject_id][0] == labelled.origins[
                subject_id]
    assert label_set.manifest["source"]["reference_sets"] == ["rubin"]
    assert label_set.manifest["source"]["union_policy"] == "drop"
    assert label_set.manifest["labels"]["real_threshold"] == 0.9


def test_the_stable_scenario_takes_only_stable_labels_and_min_snr_cuts_on_abs_snr(labelled):
    label_set = label_set_export(labelled.run.pk, ExportOptions(
        scenario="stable", balance="none", min_snr=5.0))
    ids = all_ids(label_set)
    snr = dict(Subject.objects.filter(pk__in=labelled.subject_ids).values_list("pk", "snr"))
    expected = {s for s in labelled.subject_ids if labelled.stable[s] and abs(snr[s]) >= 5}
    assert set(ids) == expected
    assert label_set.manifest["labels"]["stability_window"] == 3


def test_stratified_by_origin_balances_each_origin(labelled):
    label_set = label_set_export(labelled.run.pk, ExportOptions(
        scenario="unstable", stratify="origin"))
    counts = label_set.manifest["counts"]
    for split in ("train", "val", "test"):
        assert counts[split]["real"]["by_origin"] == counts[split]["bogus"]["by_origin"]
    assert label_set.manifest["split"]["stratified_by"] == ["class", "origin"]


def test_the_same_run_options_and_seed_give_the_same_bytes(labelled):
    options = ExportOptions(scenario="unstable", seed=5, split=(0.6, 0.2, 0.2))
    first = label_set_export(labelled.run.pk, options)
    second = label_set_export(labelled.run.pk, options)
    for name in artifact.ARTIFACT_FILES:
        assert (storage.folder_of(first.path) / name).read_bytes() == (
            storage.folder_of(second.path) / name).read_bytes()
    assert first.manifest == second.manifest
    # The archives differ only in the folder name their members sit under: the first one's
    # files archived under the second's name are the second archive, byte for byte.
    rebuilt = artifact.write_archive(storage.folder_of(first.path),
                                     storage.archive_of(first.path).with_suffix(".again"),
                                     arcname=second.path)
    assert rebuilt == {"sha256": second.archive_sha256, "bytes": second.archive_size}
    assert first.archive_size == second.archive_size


def test_a_different_seed_draws_a_different_set(labelled):
    first = label_set_export(labelled.run.pk, ExportOptions(scenario="unstable", seed=1))
    second = label_set_export(labelled.run.pk, ExportOptions(scenario="unstable", seed=2))
    assert arrays(first)["subject_ids"].tolist() != arrays(second)["subject_ids"].tolist()


def test_a_real_swap_run_exports(workflow):
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save()
    crowd = build_crowd(workflow)
    run = aggregation_services.run_create(workflow=workflow, reference_sets=[crowd.reference])
    aggregation_services.run_execute(run.pk)
    label_set = label_set_export(run.pk, ExportOptions(scenario="unstable", balance="none"))
    assert label_set.n_subjects == run.posteriors.exclude(label="").count() > 0


# --- all or nothing --------------------------------------------------------------------------


def test_a_failure_mid_write_leaves_no_label_set_and_no_files(labelled, settings, monkeypatch):
    write_split = artifact._write_split
    written = []

    def fail_after_the_first_split(path, *args):
        if written:
            raise OSError("disk full")
        written.append(path)
        return write_split(path, *args)

    monkeypatch.setattr(artifact, "_write_split", fail_after_the_first_split)
    with pytest.raises(OSError, match="disk full"):
        label_set_export(labelled.run.pk, UNSTABLE)
    assert written  # it did fail half-way, after writing train.npz
    assert not LabelSet.objects.exists()
    assert root_entries(settings) == []


def test_a_database_failure_after_placing_the_files_removes_them(labelled, settings,
                                                                monkeypatch):
    def refuse(**fields):
        assert storage.folder_of(fields["path"]).is_dir()  # placed, not yet committed
        raise IntegrityError("simulated")

    monkeypatch.setattr(LabelSet.objects, "create", refuse)
    with pytest.raises(IntegrityError):
        label_set_export(labelled.run.pk, UNSTABLE)
    assert not LabelSet.objects.exists()
    assert root_entries(settings) == []


def test_files_left_at_a_free_number_by_a_killed_export_are_replaced(labelled, settings):
    orphan = storage.folder_of(storage.folder_name(1))
    orphan.mkdir(parents=True)
    (orphan / "train.npz").write_bytes(b"half")
    storage.archive_of(storage.folder_name(1)).write_bytes(b"half")
    label_set = label_set_export(labelled.run.pk, UNSTABLE)
    assert label_set.number == 1
    assert services.verify_artifact(orphan) == []
    assert storage.archive_of(label_set.path).stat().st_size == label_set.archive_size


# --- refusals --------------------------------------------------------------------------------


def test_unknown_and_unfinished_runs_are_refused(labelled):
    with pytest.raises(NotFound):
        label_set_export(10_000, UNSTABLE)
    AggregationRun.objects.filter(pk=labelled.run.pk).update(status="running")
    with pytest.raises(ExportError, match="is running: only a finished run"):
        label_set_export(labelled.run.pk, UNSTABLE)
    assert not LabelSet.objects.exists()


def test_nothing_to_export_is_refused(labelled, settings):
    with pytest.raises(ExportError, match="nothing to export"):
        label_set_export(labelled.run.pk, ExportOptions(scenario="unstable", min_snr=1e6))
    assert not LabelSet.objects.exists()
    assert not settings.LABEL_SETS_ROOT.exists() or root_entries(settings) == []


@pytest.mark.parametrize(("data", "message"), [
    ({}, "scenario is required"),
    ({"scenario": "sometimes"}, "scenario must be one of stable, unstable"),
    ({"scenario": "stable", "balance": "oversample"}, "balance must be one of"),
    ({"scenario": "stable", "split": "0.8,0.1"}, "needs 3 fractions"),
    ({"scenario": "stable", "split": [0.8, 0.3, 0.1]}, "must sum to 1"),
    ({"scenario": "stable", "split": [0.8, "x", 0.2]}, "must be a number"),
    ({"scenario": "stable", "seed": -1}, "seed must be an integer >= 0"),
    ({"scenario": "stable", "seed": 1.5}, "seed must be an integer >= 0"),
    ({"scenario": "stable", "stratify": "band"}, "stratify must be one of origin"),
    ({"scenario": "stable", "mix_injections": "fakes"}, "subject set name and a fraction"),
    ({"scenario": "stable", "mix_injections": "fakes:1.5"}, r"must lie in \(0, 1\)"),
    ({"scenario": "stable", "min_snr": -1}, "min_snr must be a finite number >= 0"),
    ({"scenario": "stable", "colour": "red"}, "unknown export option"),
])
def test_bad_options_are_refused_with_the_reason(data, message):
    with pytest.raises(ExportError, match=message):
        ExportOptions.from_dict(data)


def test_options_round_trip_through_their_dict_and_accept_command_line_forms():
    options = ExportOptions.from_dict({
        "scenario": "stable", "balance": "none", "split": "0.7,0.2,0.1", "seed": 4,
        "stratify": "origin", "mix_injections": "my:fakes:0.25", "min_snr": "6",
    })
    assert options == ExportOptions(scenario="stable", balance="none", split=(0.7, 0.2, 0.1),
                                    seed=4, stratify="origin", mix_injections=("my:fakes", 0.25),
                                    min_snr=6.0)
    assert ExportOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options


# --- injections ------------------------------------------------------------------------------


def test_injections_are_mixed_into_train_only_and_recorded(labelled, workflow):
    injection_ids = set(add_injections(workflow, 20))
    label_set = label_set_export(labelled.run.pk, ExportOptions(
        scenario="unstable", mix_injections=("injections", 0.25)))
    train = arrays(label_set)
    is_injection = np.isin(train["subject_ids"], list(injection_ids))
    n_volunteer = int((~is_injection).sum())
    # A quarter of train, balanced: a half of the target (rounded half up) of each class.
    assert is_injection.sum() == 2 * math.floor(0.25 * n_volunteer / 0.75 / 2 + 0.5)
    assert set(train["origins"][is_injection]) == {"injection"}
    assert np.isnan(train["p_real"][is_injection]).all()
    assert not np.isnan(train["p_real"][~is_injection]).any()
    assert (train["labels"][is_injection] == 1).sum() == (train["labels"][is_injection] == 0).sum()
    for split in ("val", "test"):
        assert not set(arrays(label_set, split)["subject_ids"].tolist()) & injection_ids
    recorded = label_set.manifest["injections"]
    assert recorded["n"] == is_injection.sum()
    assert recorded["split"] == "train"
    assert recorded["subject_set"] == "injections"


def test_an_unknown_or_unfit_injection_set_is_refused(labelled, workflow):
    with pytest.raises(ExportError, match=r"unknown subject set 'fakes'.*known: main"):
        label_set_export(labelled.run.pk, ExportOptions(
            scenario="unstable", mix_injections=("fakes", 0.2)))
    ids = add_injections(workflow, 6)
    Subject.objects.filter(pk=ids[0]).update(origin="ss")
    Subject.objects.filter(pk=ids[1]).update(metadata={})
    with pytest.raises(ExportError, match="1 of its subjects have an origin other than "
                                          "'injection'; 1 have no known truth"):
        label_set_export(labelled.run.pk, ExportOptions(
            scenario="unstable", mix_injections=("injections", 0.2)))
    assert not LabelSet.objects.exists()


# --- the queued job --------------------------------------------------------------------------


def test_a_queued_export_runs_on_commit_and_running_it_again_changes_nothing(
        labelled, django_capture_on_commit_callbacks, make_user):
    user = make_user("ml", ml=True)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.label_set_export_queue(labelled.run.pk, UNSTABLE, created_by=user,
                                              fine_tune_from="cnn-v2")
    job.refresh_from_db()
    assert job.status == LabelSetExport.Status.DONE
    assert job.label_set.number == 1
    assert job.label_set.created_by == user
    assert job.label_set.fine_tune_from == "cnn-v2"
    assert job.finished_at is not None
    assert export_label_set(job.pk) == 1  # a redelivered task: no second label set
    assert LabelSet.objects.count() == 1


def test_a_failed_job_records_why_and_can_be_run_again(labelled, workflow,
                                                       django_capture_on_commit_callbacks):
    options = ExportOptions(scenario="unstable", mix_injections=("injections", 0.2))
    with django_capture_on_commit_callbacks(execute=True):
        job = services.label_set_export_queue(labelled.run.pk, options)
    job.refresh_from_db()
    assert job.status == LabelSetExport.Status.FAILED
    assert "unknown subject set 'injections'" in job.error
    assert job.label_set is None
    add_injections(workflow, 20)
    assert export_label_set(job.pk) == 1
    job.refresh_from_db()
    assert (job.status, job.error) == (LabelSetExport.Status.DONE, "")


def test_queueing_checks_the_run_at_once(labelled):
    AggregationRun.objects.filter(pk=labelled.run.pk).update(status="failed")
    with pytest.raises(ExportError, match="is failed"):
        services.label_set_export_queue(labelled.run.pk, UNSTABLE)
    assert not LabelSetExport.objects.exists()


# --- concurrency -----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_exports_take_consecutive_numbers(workflow, settings):
    labelled = labelled_run(workflow)
    n = 4
    barrier = threading.Barrier(n)
    errors, numbers = [], []

    def export(seed):
        try:
            barrier.wait()
            numbers.append(label_set_export(
                labelled.run.pk, ExportOptions(scenario="unstable", seed=seed)).number)
        except BaseException as exc:  # collected and checked below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=export, args=(seed,)) for seed in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(numbers) == [1, 2, 3, 4]
    for label_set in LabelSet.objects.all():
        assert services.verify_artifact(storage.folder_of(label_set.path)) == []
        assert artifact.file_digest(storage.archive_of(label_set.path))["sha256"] == (
            label_set.archive_sha256)
    assert len(root_entries(settings)) == 2 * n  # no staging folder left behind
