"""The training loop: Adam on binary cross-entropy, early stopping on the validation loss,
and a checkpoint after every epoch from which an interrupted run resumes exactly.

Settings (DESIGN.md, "The CNN"): Adam with lr 1e-4 and weight decay 3.6e-2, batch 128, loss
BCEWithLogitsLoss on `RealBogusCNN.logits` (the same binary cross-entropy as a sigmoid then
BCELoss, without its overflow for confident wrong answers).

Reproducibility. `fit` calls `torch.manual_seed(config.seed)` (dropout draws from torch's
global generator) and draws the shuffling and the flips from its own `torch.Generator`
seeded with `config.seed`. On the CPU, the same seed and data give the same history and the
same weights bit for bit. A checkpoint stores both generators' states with the weights and
Adam's moments, so a run resumed after a crash continues exactly where the crashed one was.

Flips. `config.flips` is the one switch: `fit` flips each training stamp itself (vertically
and/or horizontally, the same flip for its three channels, from the seeded generator), and
never the validation split. A LabelSetDataset built with `flips=True` is refused, since its
own random flips would come on top and escape the seed.

Batches. The stamps of a batch are read in index order: a LabelSetDataset's memory-mapped
images (and a TensorDataset's tensors) are then sliced once per batch rather than once per
stamp. Any other Dataset of (image, label) pairs is read item by item, in the same order, so
it trains to the same weights.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from training.ml.config import EpochRecord, TrainingConfig
from training.ml.dataset import LabelSetDataset
from training.ml.model import RealBogusCNN
from training.ml.scoring import DEFAULT_BATCH_SIZE
from training.ml.weights import write_atomically

__all__ = [
    "CHECKPOINT_FORMAT",
    "EpochRecord",
    "TrainingConfig",
    "TrainingResult",
    "fit",
    "pick_device",
]

# Bumped whenever the checkpoint's content changes meaning; older checkpoints are refused.
CHECKPOINT_FORMAT = 1
# Stamps are (channel, row, column): a vertical flip reverses rows, a horizontal one columns.
_ROWS, _COLUMNS = 2, 3


@dataclass
class TrainingResult:
    history: list[EpochRecord]
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    best_state: dict[str, torch.Tensor]  # the weights of the best epoch, on the CPU


def pick_device(prefer: str | None = None) -> torch.device:
    """`prefer` ("cpu", "cuda", "cuda:1") when given and usable, else CUDA when available,
    else the CPU."""
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} was asked for but CUDA is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class _BatchReader:
    """(images float32 (B, 3, 51, 51), labels float32 (B,)) for sorted dataset indices."""

    def __init__(self, dataset: Dataset, split: str) -> None:
        if isinstance(dataset, LabelSetDataset) and dataset.flips:
            raise ValueError(
                f"the {split} LabelSetDataset was built with flips=True; build it without "
                "and set TrainingConfig.flips: fit applies the flips itself, from its seed"
            )
        self.dataset = dataset
        self.split = split

    def __len__(self) -> int:
        return len(self.dataset)

    def __call__(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = self.dataset
        if isinstance(dataset, LabelSetDataset):
            images = torch.from_numpy(np.ascontiguousarray(dataset.images[indices]))
            labels = torch.from_numpy(dataset.labels[indices].astype(np.float32))
        elif isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
            images, labels = (tensor[torch.from_numpy(indices)] for tensor in dataset.tensors)
        else:
            items = [dataset[int(index)] for index in indices]
            images = torch.stack([torch.as_tensor(image) for image, _ in items])
            labels = torch.stack([torch.as_tensor(label) for _, label in items])
        labels = labels.to(torch.float32).reshape(-1)
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"the {self.split} split has labels that are not one per stamp")
        if not ((labels >= 0) & (labels <= 1)).all():
            raise ValueError(f"the {self.split} split has labels outside [0, 1]")
        return images, labels


def _flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each stamp flipped vertically and/or horizontally with probability 1/2 each; its
    three channels together."""
    draws = torch.randint(0, 2, (images.shape[0], 2), generator=generator).bool()
    vertical = draws[:, 0].view(-1, 1, 1, 1)
    horizontal = draws[:, 1].view(-1, 1, 1, 1)
    images = torch.where(vertical, images.flip(_ROWS), images)
    return torch.where(horizontal, images.flip(_COLUMNS), images)


@dataclass
class _Progress:
    """What a checkpoint holds besides weights, optimizer and generators."""

    epoch: int = 0  # the last completed epoch
    history: list[EpochRecord] = dataclasses.field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    best_val_loss: float = math.inf
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    stopped_early: bool = False

    def finished(self, config: TrainingConfig) -> bool:
        return self.stopped_early or self.epoch >= config.epochs

    def record(self, record: EpochRecord, model: RealBogusCNN, patience: int) -> None:
        self.epoch = record.epoch
        self.history.append(record)
        if record.val_loss < self.best_val_loss:
            self.best_val_loss = record.val_loss
            self.best_epoch = record.epoch
            self.best_state = _cpu_copy(model.state_dict())
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
            self.stopped_early = self.epochs_without_improvement >= patience


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in state.items()}


def _train_epoch(model: RealBogusCNN, reader: _BatchReader, config: TrainingConfig,
                 optimizer: torch.optim.Optimizer, generator: torch.Generator,
                 device: torch.device, on_batch: Callable[[int, int], None] | None) -> float:
    model.train()
    loss_function = torch.nn.BCEWithLogitsLoss()
    order = torch.randperm(len(reader), generator=generator).numpy()
    batches = [np.sort(order[start:start + config.batch_size])
               for start in range(0, len(order), config.batch_size)]
    # Summed on the device, read once: no synchronisation per batch.
    total = torch.zeros((), dtype=torch.float64, device=device)
    for done, indices in enumerate(batches, start=1):
        images, labels = reader(indices)
        if config.flips:
            images = _flip(images, generator)
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model.logits(images), labels)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(indices)
        if on_batch is not None:
            on_batch(done, len(batches))
    return total.item() / len(reader)


def _validation_loss(model: RealBogusCNN, reader: _BatchReader, device: torch.device) -> float:
    model.eval()
    loss_function = torch.nn.BCEWithLogitsLoss(reduction="sum")
    total = torch.zeros((), dtype=torch.float64, device=device)
    with torch.no_grad():
        for start in range(0, len(reader), DEFAULT_BATCH_SIZE):
            indices = np.arange(start, min(len(reader), start + DEFAULT_BATCH_SIZE))
            images, labels = reader(indices)
            total += loss_function(model.logits(images.to(device)), labels.to(device))
    return total.item() / len(reader)


def _save_checkpoint(path: Path, config: TrainingConfig, sizes: dict[str, int],
                     model: RealBogusCNN, optimizer: torch.optim.Optimizer,
                     generator: torch.Generator, device: torch.device,
                     progress: _Progress) -> None:
    # Tensors and plain Python values only, so that torch.load(weights_only=True) reads it.
    content = {
        "format": CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "sizes": sizes,
        "epoch": progress.epoch,
        "model": _cpu_copy(model.state_dict()),
        "optimizer": optimizer.state_dict(),
        "best_state": progress.best_state,
        "best_val_loss": progress.best_val_loss,
        "best_epoch": progress.best_epoch,
        "epochs_without_improvement": progress.epochs_without_improvement,
        "stopped_early": progress.stopped_early,
        "history": [record.to_dict() for record in progress.history],
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }
    buffer = io.BytesIO()
    torch.save(content, buffer)
    write_atomically(path, buffer.getvalue())


def _load_checkpoint(path: Path, config: TrainingConfig, sizes: dict[str, int]) -> dict:
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike
        raise ValueError(f"checkpoint {path} cannot be read: {exc}") from None
    if not isinstance(content, dict) or content.get("format") != CHECKPOINT_FORMAT:
        found = content.get("format") if isinstance(content, dict) else None
        raise ValueError(
            f"checkpoint {path} has format {found!r}, this code reads {CHECKPOINT_FORMAT}"
        )
    saved, current = content["config"], config.to_dict()
    differing = sorted(key for key in saved.keys() | current.keys()
                       if saved.get(key) != current.get(key))
    if differing:
        changes = ", ".join(f"{key} {saved.get(key)!r} -> {current.get(key)!r}"
                            for key in differing)
        raise ValueError(
            f"checkpoint {path} was written with another training config ({changes}); "
            "resume with the same config or start from a new checkpoint"
        )
    if content["sizes"] != sizes:
        raise ValueError(
            f"checkpoint {path} was written for splits of sizes {content['sizes']}, "
            f"these have {sizes}: it belongs to other data"
        )
    return content


def _restore(content: dict, model: RealBogusCNN, optimizer: torch.optim.Optimizer,
             generator: torch.Generator, device: torch.device) -> _Progress:
    model.load_state_dict(content["model"])
    optimizer.load_state_dict(content["optimizer"])
    generator.set_state(content["generator"])
    torch.set_rng_state(content["torch_rng"])
    if device.type == "cuda" and content["cuda_rng"] is not None:
        torch.cuda.set_rng_state(content["cuda_rng"], device)
    return _Progress(
        epoch=content["epoch"],
        history=[EpochRecord(**record) for record in content["history"]],
        best_state=content["best_state"],
        best_val_loss=content["best_val_loss"],
        best_epoch=content["best_epoch"],
        epochs_without_improvement=content["epochs_without_improvement"],
        stopped_early=content["stopped_early"],
    )


def fit(model: RealBogusCNN, train: Dataset, val: Dataset, config: TrainingConfig, *,
        checkpoint: Path | None = None, device: torch.device | None = None,
        on_epoch: Callable[[EpochRecord], None] | None = None,
        on_batch: Callable[[int, int], None] | None = None) -> TrainingResult:
    """Train `model` on `train`, stopping early on `val`'s loss; the model ends holding the
    best epoch's weights, which the result also carries (on the CPU).

    `checkpoint`: written after every epoch; when it exists on entry, training resumes from
    it (same config and split sizes required) or, if it had finished, returns its result.
    `on_epoch(record)` runs after each epoch's checkpoint is written; `on_batch(done, total)`
    after each training batch.
    """
    readers = {"train": _BatchReader(train, "train"), "val": _BatchReader(val, "val")}
    for split, reader in readers.items():
        if len(reader) == 0:
            raise ValueError(f"the {split} split is empty")
    sizes = {split: len(reader) for split, reader in readers.items()}
    device = pick_device() if device is None else device
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate,
                                 weight_decay=config.weight_decay)
    progress = _Progress()
    checkpoint = None if checkpoint is None else Path(checkpoint)
    if checkpoint is not None and checkpoint.exists():
        content = _load_checkpoint(checkpoint, config, sizes)
        progress = _restore(content, model, optimizer, generator, device)

    while not progress.finished(config):
        epoch = progress.epoch + 1
        started = time.perf_counter()
        train_loss = _train_epoch(model, readers["train"], config, optimizer, generator, device,
                                  on_batch)
        val_loss = _validation_loss(model, readers["val"], device)
        record = EpochRecord(epoch=epoch, train_loss=train_loss, val_loss=val_loss,
                             seconds=time.perf_counter() - started)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise FloatingPointError(
                f"epoch {epoch}: the loss is not finite (train {train_loss}, val {val_loss}); "
                "lower the learning rate"
            )
        progress.record(record, model, config.patience)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, config, sizes, model, optimizer, generator, device,
                             progress)
        if on_epoch is not None:
            on_epoch(record)

    model.load_state_dict(progress.best_state)
    return TrainingResult(
        history=list(progress.history),
        best_epoch=progress.best_epoch,
        best_val_loss=progress.best_val_loss,
        stopped_early=progress.stopped_early,
        best_state=progress.best_state,
    )
