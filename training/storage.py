"""Where the registry's files live, under MODELS_ROOT: one folder per version (weights and ONNX,
never rewritten) and one per training job in progress (its checkpoint)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

WEIGHTS_FILE = "weights.safetensors"
ONNX_FILE = "model.onnx"
CHECKPOINT_FILE = "checkpoint.pt"
# A version's files are written under MODELS_ROOT/<STAGING_PREFIX>... and renamed into place
# (the sweeper removes those a killed registration left).
STAGING_PREFIX = ".staging-"


def root() -> Path:
    return Path(settings.MODELS_ROOT)


def version_folder_name(name: str) -> str:
    return f"model-{name}"


def path_of(relative: str) -> Path:
    """A registered file (ModelVersion.weights_path, .onnx_path), from its relative path."""
    return root() / relative


def job_folder(job_id: int) -> Path:
    return root() / "jobs" / f"job-{job_id:06d}"


def checkpoint_of(job_id: int) -> Path:
    return job_folder(job_id) / CHECKPOINT_FILE
