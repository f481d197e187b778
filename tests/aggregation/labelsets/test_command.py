"""`manage.py export_labels` and `manage.py simulate injections`."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from aggregation.labelsets import storage
from aggregation.models import AggregationRun, LabelSet, LabelSetExport
from labeling.models import Subject, SubjectWorkflowStatus
from tests.aggregation.labelsets.conftest import add_injections

pytestmark = pytest.mark.django_db


def export(*args) -> str:
    out = io.StringIO()
    call_command("export_labels", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_export_labels_writes_a_label_set_and_prints_the_split_by_class_table(labelled):
    out = export("--run", str(labelled.run.pk), "--scenario", "unstable", "--split",
                 "0.5,0.25,0.25", "--seed", "3", "--fine-tune-from", "cnn-v1")
    label_set = LabelSet.objects.get()
    counts = label_set.manifest["counts"]
    assert f"label set 1: run {labelled.run.pk} [rubin], unstable" in out
    assert str(storage.archive_of(label_set.path)) in out
    assert label_set.archive_sha256 in out
    assert "  split      real    bogus    total" in out
    for split in ("train", "val", "test"):
        row = counts[split]
        assert (f"  {split:<6}{row['real']['total']:>9,}{row['bogus']['total']:>9,}"
                f"{row['total']:>9,}") in out
    assert "fine-tuning from 'cnn-v1' requested" in out
    assert label_set.options["split"] == [0.5, 0.25, 0.25]
    assert label_set.options["seed"] == 3


def test_export_labels_takes_every_option(labelled, workflow):
    add_injections(workflow, 20)
    out = export("--run", str(labelled.run.pk), "--scenario", "stable", "--balance", "none",
                 "--stratify", "origin", "--mix-injections", "injections:0.2",
                 "--min-snr", "2")
    options = LabelSet.objects.get().options
    assert options == {"scenario": "stable", "balance": "none", "split": [0.8, 0.1, 0.1],
                       "seed": 0, "stratify": "origin", "mix_injections": ["injections", 0.2],
                       "min_snr": 2.0}
    assert "injections from 'injections', in train only" in out


def test_export_labels_can_queue_the_export(labelled, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        out = export("--run", str(labelled.run.pk), "--scenario", "unstable", "--queue")
    job = LabelSetExport.objects.get()
    # Eager Celery (no broker configured) runs the job when its transaction commits.
    assert f"queued label-set export job {job.pk}" in out
    job.refresh_from_db()
    assert job.label_set.number == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--run", "999"], "no aggregation run 999"),
    (["--split", "0.8,0.3"], "needs 3 fractions"),
    (["--split", "0.9,0.2,0.1"], "must sum to 1"),
    (["--mix-injections", "fakes:0.2"], "unknown subject set 'fakes'"),
    (["--mix-injections", "fakes"], "a subject set name and a fraction"),
    (["--min-snr", "1e9"], "nothing to export"),
])
def test_export_labels_refuses_bad_requests_with_exit_status_2(labelled, settings, args,
                                                               message):
    given = ["--run", str(labelled.run.pk), "--scenario", "unstable"]
    with pytest.raises(CommandError, match=message) as caught:
        export(*given, *args)
    assert caught.value.returncode == 2
    assert not LabelSet.objects.exists()
    assert not settings.LABEL_SETS_ROOT.exists() or not any(settings.LABEL_SETS_ROOT.iterdir())


def test_export_labels_refuses_a_run_that_is_not_done(labelled):
    AggregationRun.objects.filter(pk=labelled.run.pk).update(status="pending")
    with pytest.raises(CommandError, match="is pending: only a finished run") as caught:
        export("--run", str(labelled.run.pk), "--scenario", "stable")
    assert caught.value.returncode == 2


def test_simulate_injections_makes_fakes_with_truth_that_volunteers_are_not_served(workflow):
    out = io.StringIO()
    call_command("simulate", "injections", "--workflow", workflow.slug, "--n", "12",
                 "--seed", "4", stdout=out, stderr=io.StringIO())
    fakes = Subject.objects.filter(subject_set__name="injections")
    assert fakes.count() == 12
    assert set(fakes.values_list("origin", flat=True)) == {"injection"}
    assert {s.metadata["sim_truth"] for s in fakes} <= {"real", "bogus"}
    assert set(fakes.values_list("external_id", flat=True)) == {
        f"injection-4-{i}" for i in range(12)}
    assert not SubjectWorkflowStatus.objects.filter(subject__in=fakes).exists()
    assert not workflow.subject_sets.filter(name="injections").exists()
    assert "subject set 'injections' (not served to volunteers) holds 12" in out.getvalue()


def test_simulated_injections_can_be_served_and_then_mixed_into_an_export(labelled, workflow):
    call_command("simulate", "injections", "--workflow", workflow.slug, "--n", "40",
                 "--subject-set", "fakes", "--serve", stdout=io.StringIO(),
                 stderr=io.StringIO())
    assert workflow.subject_sets.filter(name="fakes").exists()
    export("--run", str(labelled.run.pk), "--scenario", "unstable", "--balance", "none",
           "--mix-injections", "fakes:0.1")
    assert LabelSet.objects.get().manifest["injections"]["n"] > 0
