"""What a training run is asked to do and what each epoch reports: plain dataclasses, no torch,
so the web process validates a training request without importing PyTorch."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

# The network's input: template, science and difference stamps of 51 x 51 pixels.
STAMP_SHAPE = (3, 51, 51)


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides what a training run computes (the device aside)."""

    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 1e-4
    weight_decay: float = 3.6e-2
    patience: int = 5  # stop after `patience` epochs in a row without a lower val loss
    flips: bool = False  # random vertical/horizontal flips of the training split
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("seed", self.seed, minimum=0)
        for name, low, low_allowed in (("learning_rate", 0.0, False),
                                       ("weight_decay", 0.0, True)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < low or (value == low and not low_allowed):
                bound = ">= 0" if low_allowed else "> 0"
                raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
            # Frozen: set through object.__setattr__, so an int from JSON becomes a float.
            object.__setattr__(self, name, float(value))
        if not isinstance(self.flips, bool):
            raise ValueError(f"flips must be true or false, got {self.flips!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingConfig:
        """The config of a dict (missing keys take the defaults); ValueError on unknown keys
        or bad values."""
        if not isinstance(data, dict):
            raise ValueError(f"a training config must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(map(str, unknown))}")
        return cls(**data)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based
    train_loss: float  # mean BCE over the training split, in training mode (dropout on)
    val_loss: float  # mean BCE over the validation split, in eval mode
    seconds: float  # training and validation, wall clock

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
