"""Scoring a subject set with a version: every subject once, in bounded batches, resumable."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from labeling import selectors as labeling_selectors
from labeling.models import Subject
from tests.conftest import add_subjects
from training import services, storage
from training.ml.scoring import predict
from training.ml.weights import load_model
from training.models import JobStatus, ScoringJob, SubjectScore

pytestmark = pytest.mark.django_db


def stored_scores(version) -> dict[int, float]:
    return dict(SubjectScore.objects.filter(model_version=version)
                .values_list("subject_id", "reliability"))


def expected_scores(version, subject_ids) -> np.ndarray:
    subjects = Subject.objects.in_bulk(subject_ids)
    cubes = labeling_selectors.subject_cubes([subjects[i].stamps.name for i in subject_ids], 51)
    model = load_model(storage.path_of(version.weights_path))
    return predict(model, cubes)


def test_the_score_command_stores_every_subjects_reliability(workflow, base_version, capsys):
    ids = add_subjects(workflow, 30, seed=5, set_name="visit-1")

    call_command("score", "--model", base_version.name, "--subject-set", "visit-1")

    scores = stored_scores(base_version)
    assert sorted(scores) == sorted(ids)
    np.testing.assert_allclose([scores[i] for i in ids], expected_scores(base_version, ids),
                               atol=1e-6)
    assert "has scored 30 of 30 subjects of 'visit-1', 30 of them now" in capsys.readouterr().out

    call_command("score", "--model", base_version.name, "--subject-set", "visit-1")
    assert "has scored 30 of 30 subjects of 'visit-1', 0 of them now" in capsys.readouterr().out


def test_scoring_reads_at_most_one_batch_of_stamps_at_a_time(workflow, base_version,
                                                             monkeypatch):
    ids = add_subjects(workflow, 21, seed=6, set_name="visit-2")
    monkeypatch.setattr(services, "SCORING_BATCH", 8)
    batches = []
    real_cubes = labeling_selectors.subject_cubes

    def counting(names, size):
        batches.append(len(names))
        return real_cubes(names, size)

    monkeypatch.setattr(labeling_selectors, "subject_cubes", counting)
    job = services.scoring_job_create(base_version.name, "visit-2", queue=False)
    job = services.scoring_job_execute(job.pk)

    assert batches == [8, 8, 5]
    assert (job.status, job.n_done, job.n_total) == (JobStatus.DONE, 21, 21)
    assert sorted(stored_scores(base_version)) == sorted(ids)


def test_a_scoring_job_run_again_scores_only_what_is_missing(workflow, base_version,
                                                             monkeypatch):
    ids = add_subjects(workflow, 12, seed=7, set_name="visit-3")
    job = services.scoring_job_create(base_version.name, "visit-3", queue=False)
    services.scoring_job_execute(job.pk)
    # A crash after the first batches: some scores are missing and the job is not done.
    SubjectScore.objects.filter(subject_id__in=ids[5:]).delete()
    ScoringJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    scored = []
    real_cubes = labeling_selectors.subject_cubes

    def counting(names, size):
        scored.extend(names)
        return real_cubes(names, size)

    monkeypatch.setattr(labeling_selectors, "subject_cubes", counting)
    job = services.scoring_job_execute(job.pk)

    assert len(scored) == 7
    assert (job.status, job.n_done) == (JobStatus.DONE, 12)
    assert sorted(stored_scores(base_version)) == sorted(ids)


def test_a_corrupt_stamp_fails_the_job_with_its_reason(workflow, base_version):
    ids = add_subjects(workflow, 4, seed=8, set_name="visit-4")
    subject = Subject.objects.get(pk=ids[2])
    with subject.stamps.open("wb") as handle:
        handle.write(b"not a stamp cube")

    job = services.scoring_job_create(base_version.name, "visit-4", queue=False)
    job = services.scoring_job_execute(job.pk)

    assert job.status == JobStatus.FAILED
    assert "corrupt stamp cube" in job.error


@pytest.mark.parametrize(("arguments", "message"), [
    (["--model", "v3.3", "--subject-set", "main"], "no model version 'v3.3'"),
    (["--model", "v0.1", "--subject-set", "nowhere"], "no subject set 'nowhere'"),
])
def test_the_score_command_exits_2_on_a_bad_request(base_version, arguments, message):
    with pytest.raises(CommandError, match=message) as excinfo:
        call_command("score", *arguments)
    assert excinfo.value.returncode == 2
    assert not ScoringJob.objects.exists()
