"""Runs whose labels a test chooses; queued exports run in the test's process."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from aggregation import services as aggregation_services
from aggregation.models import AggregationRun, SubjectPosterior
from labeling import services
from labeling.models import Subject, Workflow
from tests.conftest import add_subjects

ORIGINS = ("ss", "gaia", "tns")


@pytest.fixture(autouse=True)
def _queued_exports_run_here(eager_celery):
    """A queued export runs in this process (see `eager_celery`)."""


@dataclass
class LabelledRun:
    run: AggregationRun
    subject_ids: list[int]
    labels: dict[int, str]  # "real", "bogus" or "" (no label)
    stable: dict[int, bool]
    origins: dict[int, str]


def labelled_run(workflow: Workflow, n: int = 48, *, seed: int = 0,
                 set_name: str = "main") -> LabelledRun:
    """A finished run over n subjects with chosen results: subject i is Real when i % 3 == 0
    (a minority), Bogus otherwise, unlabelled when i % 8 == 7, stable when i % 4 != 1; origins
    cycle through ORIGINS in runs of three (so every origin has both classes) and the SNR is
    i - 10 (negative for some: fading sources)."""
    subject_ids = add_subjects(workflow, n, seed=seed, set_name=set_name)
    reference = services.reference_set_get_or_create(
        name="rubin", team=services.expert_team_get_or_create("rubin")
    )
    run = aggregation_services.run_create(workflow=workflow, reference_sets=[reference])
    labels, stable, origins = {}, {}, {}
    posteriors = []
    for i, subject_id in enumerate(subject_ids):
        labels[subject_id] = "" if i % 8 == 7 else ("real" if i % 3 == 0 else "bogus")
        stable[subject_id] = bool(labels[subject_id]) and i % 4 != 1
        origins[subject_id] = ORIGINS[(i // 3) % len(ORIGINS)]
        Subject.objects.filter(pk=subject_id).update(origin=origins[subject_id], snr=i - 10.0)
        p_real = {"real": 0.95, "bogus": 0.05, "": 0.5}[labels[subject_id]]
        posteriors.append(SubjectPosterior(
            run=run, subject_id=subject_id, p_real=p_real, log_odds=0.0,
            trajectory=[p_real] * 3, n_counted=3, label=labels[subject_id],
            stable=stable[subject_id],
        ))
    SubjectPosterior.objects.bulk_create(posteriors)
    run.status = AggregationRun.Status.DONE
    run.save(update_fields=["status"])
    return LabelledRun(run, subject_ids, labels, stable, origins)


def add_injections(workflow: Workflow, n: int, *, set_name: str = "injections",
                   seed: int = 9) -> list[int]:
    """n fakes in a subject set of the workflow's project, alternately Real and Bogus."""
    ids = add_subjects(workflow, n, seed=seed, set_name=set_name)
    for i, subject_id in enumerate(ids):
        Subject.objects.filter(pk=subject_id).update(
            origin="injection", metadata={"sim_truth": "real" if i % 2 == 0 else "bogus"}
        )
    return ids


@pytest.fixture
def labelled(workflow) -> LabelledRun:
    return labelled_run(workflow)
