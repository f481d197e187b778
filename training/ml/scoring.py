"""Scoring stamps with a trained RealBogusCNN: numpy in, reliability scores (Pr(Real)) out.

`predict` scores one array (a memory-mapped label-set split is read batch by batch, never
whole); `score_batches` streams, one array of scores per array of stamps, for callers that
read subjects from a database or an alert stream in chunks. Both run the model in eval mode
(no dropout) under `torch.inference_mode` and restore the model's previous mode afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from training.ml.model import STAMP_SHAPE, RealBogusCNN

__all__ = ["DEFAULT_BATCH_SIZE", "as_stamp_array", "predict", "score_batches"]

# Stamps per forward pass when scoring: large enough to keep the cores busy, small enough
# (1024 x 31 kB = 32 MB of input) to bound memory.
DEFAULT_BATCH_SIZE = 1024


def as_stamp_array(images: object) -> np.ndarray:
    """`images` checked to be a floating-point array (N, 3, 51, 51); ValueError otherwise."""
    if not isinstance(images, np.ndarray):
        raise ValueError(f"stamps must be a numpy array, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1:] != STAMP_SHAPE:
        raise ValueError(
            f"stamps must have shape (N, {', '.join(map(str, STAMP_SHAPE))}), "
            f"got {images.shape}"
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"stamps must be floating point, got dtype {images.dtype}")
    return images


def _model_device(model: RealBogusCNN) -> torch.device:
    return next(model.parameters()).device


def _score(model: RealBogusCNN, images: np.ndarray, device: torch.device) -> np.ndarray:
    # A copy (float32, contiguous, writable): a read-only memory map cannot back a tensor.
    stamps = torch.from_numpy(np.array(images, dtype=np.float32)).to(device)
    return model(stamps).cpu().numpy()


def predict(model: RealBogusCNN, images: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE,
            device: torch.device | None = None) -> np.ndarray:
    """Pr(Real) float32 (N,) for stamps (N, 3, 51, 51), `batch_size` at a time.

    `device` (default: where the model's weights are) is where the model is moved and run.
    """
    images = as_stamp_array(images)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    starts = range(0, images.shape[0], batch_size)
    chunks = score_batches(model, (images[start:start + batch_size] for start in starts),
                           device=device)
    scores = np.empty(images.shape[0], dtype=np.float32)
    for start, chunk in zip(starts, chunks, strict=True):
        scores[start:start + chunk.shape[0]] = chunk
    return scores


def score_batches(model: RealBogusCNN, batches: Iterable[np.ndarray], *,
                  device: torch.device | None = None) -> Iterator[np.ndarray]:
    """Pr(Real) float32 (n,) for each array of stamps (n, 3, 51, 51) of `batches`, lazily:
    one batch is read, scored and handed back before the next is read."""
    device = _model_device(model) if device is None else device
    model.to(device)
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            images = as_stamp_array(batch)
            with torch.inference_mode():
                yield _score(model, images, device)
    finally:
        model.train(was_training)
