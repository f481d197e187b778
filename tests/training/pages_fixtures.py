"""Registry rows for the page tests, made directly instead of by training: a version's weights
are an untrained RealBogusCNN's, written under MODELS_ROOT as a registration would, and its
evaluation is `evaluate()` of made-up scores whose outcome the test chooses."""

from __future__ import annotations

import numpy as np

from training import storage
from training.ml.evaluation import evaluate
from training.ml.model import RealBogusCNN
from training.ml.train import TrainingConfig
from training.ml.weights import save_weights
from training.models import Evaluation, JobStatus, ModelVersion, TrainingJob

EPOCHS = 3
# Three epochs whose validation loss is lowest at epoch 2: the one a version keeps.
HISTORY = [
    {"epoch": 1, "train_loss": 0.69, "val_loss": 0.66, "seconds": 1.5},
    {"epoch": 2, "train_loss": 0.52, "val_loss": 0.48, "seconds": 1.4},
    {"epoch": 3, "train_loss": 0.41, "val_loss": 0.51, "seconds": 1.6},
]
BEST_EPOCH = 2
SUBJECTS = 40


def made_up_metrics(*, met: bool, seed: int = 0) -> dict:
    """`evaluate()` of SUBJECTS made-up scores, half Real, over origins "ss" and "gaia".

    met: Reals score in [0.6, 1] and Bogus in [0, 0.4], so every threshold in between gives
    purity and completeness 100%. Otherwise Reals score in [0.3, 1] and Bogus in [0, 0.7]:
    keeping completeness >= 90% needs a threshold near 0.37, where about half of the Bogus
    are still called Real (purity about 2/3), so no threshold meets the requirement.
    """
    rng = np.random.default_rng(seed)
    labels = np.tile([1, 0], SUBJECTS // 2)
    low, high = (0.6, 0.4) if met else (0.3, 0.7)
    scores = np.where(labels == 1, rng.uniform(low, 1.0, SUBJECTS),
                      rng.uniform(0.0, high, SUBJECTS))
    return evaluate(scores, labels, origins=np.tile(["ss", "ss", "gaia", "gaia"], SUBJECTS // 4),
                    snr=rng.uniform(-20.0, 60.0, SUBJECTS))


def make_version(name: str, label_set, *, parent: ModelVersion | None = None,
                 met: bool = True, evaluated: bool = True, seed: int = 0) -> ModelVersion:
    """A registered version with real weights on disk and, when `evaluated`, its evaluation
    on its own label set (requirement met or not as asked)."""
    folder = storage.root() / storage.version_folder_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    sha256 = save_weights(RealBogusCNN(), folder / storage.WEIGHTS_FILE)
    version = ModelVersion.objects.create(
        name=name, parent=parent, label_set=label_set,
        options=TrainingConfig(epochs=EPOCHS, seed=seed).to_dict(), history=HISTORY,
        best_epoch=BEST_EPOCH, weights_path=f"{folder.name}/{storage.WEIGHTS_FILE}",
        weights_sha256=sha256, onnx_path=f"{folder.name}/{storage.ONNX_FILE}",
        onnx_sha256="0" * 64, onnx_max_difference=2.5e-7, device="cpu",
        notes=f"made for a page test from seed {seed}",
    )
    if evaluated:
        Evaluation.objects.create(model_version=version, label_set=label_set,
                                  metrics=made_up_metrics(met=met, seed=seed))
    return version


def make_job(label_set, name: str, *, status: str = JobStatus.RUNNING, **fields) -> TrainingJob:
    """A training job row in the given state (nothing runs it)."""
    return TrainingJob.objects.create(
        name=name, label_set=label_set, options=TrainingConfig(epochs=EPOCHS).to_dict(),
        trigger=TrainingJob.Trigger.API, status=status, **fields,
    )
