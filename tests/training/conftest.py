"""A small label-set artifact written by the exporter's own (Django-free) writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aggregation.labelsets.artifact import SplitTable, write_archive, write_artifact

STAMP_SIZE = 51
SPLIT_SIZES = {"train": 8, "val": 2, "test": 2}


def stamps_of(subject_ids: np.ndarray) -> np.ndarray:
    """Deterministic stamps per subject id, each with its (0, 0) pixel NaN (no data)."""
    cubes = np.stack([
        np.random.default_rng(int(s)).normal(0, 1, (3, STAMP_SIZE, STAMP_SIZE))
        for s in subject_ids
    ]).astype(np.float32)
    cubes[:, :, 0, 0] = np.nan
    return cubes


def write_label_set(folder: Path) -> dict:
    """Write an artifact (12 subjects, half Real) to `folder`; returns its manifest."""
    splits, next_id = {}, 1
    for name, n in SPLIT_SIZES.items():
        ids = np.arange(next_id, next_id + n, dtype=np.int64)
        next_id += n
        splits[name] = SplitTable(
            subject_ids=ids, external_ids=tuple(f"sim-{i}" for i in ids),
            labels=(ids % 2).astype(np.uint8), origins=np.array(["ss", "injection"] * (n // 2)),
            snr=np.full(n, 7.5, np.float32), p_real=np.where(ids % 2, 0.95, 0.05).astype(
                np.float32),
        )
    return write_artifact(folder, splits, stamps_of, stamp_size=STAMP_SIZE,
                          description={"label_set": 1})


@pytest.fixture
def artifact(tmp_path) -> Path:
    folder = tmp_path / "label-set-0001"
    write_label_set(folder)
    return folder


@pytest.fixture
def archive(artifact) -> Path:
    path = artifact.with_suffix(".tar")
    write_archive(artifact, path, artifact.name)
    return path


# --- the registry (Django): a label set over subjects with stamps, and trained versions ------

# Few epochs on few subjects: the jobs' bookkeeping is under test here, not the learning
# (tests/training/test_train.py checks that training learns).
QUICK = {"epochs": 2, "patience": 2, "seed": 0}


def export_label_set(workflow, *, n: int = 48, seed: int = 0, fine_tune_from: str = ""):
    """A label set of n new subjects with 51x51 stamps (labels as `labelled_run` chooses
    them); each seed makes other subjects."""
    from aggregation.labelsets.services import ExportOptions, label_set_export
    from tests.aggregation.labelsets.conftest import labelled_run

    run = labelled_run(workflow, n=n, seed=seed).run
    options = ExportOptions.from_dict({"scenario": "unstable", "balance": "none", "seed": 0})
    return label_set_export(run.pk, options, fine_tune_from=fine_tune_from)


def train_version(label_set, *, parent: str | None = None, name: str | None = None, **options):
    """Train and register a version now (no queue); returns the finished job."""
    from training import services

    job = services.training_job_create(label_set.number, parent=parent, name=name,
                                       options={**QUICK, **options}, queue=False)
    return services.training_job_execute(job.pk)


@pytest.fixture
def label_set(workflow, eager_celery):
    return export_label_set(workflow)


@pytest.fixture
def base_version(label_set):
    job = train_version(label_set)
    assert job.status == "done", job.error
    return job.model_version
