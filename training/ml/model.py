"""The real/bogus CNN (DESIGN.md, "The CNN") and the normalisation it applies to raw stamps.

The network takes RAW stamps (N, 3, 51, 51): template, science, difference, in nJy, with NaN
where there is no data. It normalises them itself, inside `forward`, so that every consumer
(training, scoring, the exported ONNX graph) sees exactly the same preprocessing and nobody
has to remember to apply it.

Normalisation (`normalise_stamps`), per stamp and per channel:
- Mean and standard deviation over the finite pixels only. Stamps are background-subtracted
  but their flux scale varies by orders of magnitude between a faint transient and a
  saturated star, and between template (a deep coadd) and science; scaling each channel by
  its own statistics lets the network learn shapes rather than brightness. NaN and +-inf
  pixels carry no measurement, so they must not move the statistics.
- Clipping to [-STAMP_CLIP, STAMP_CLIP] standard deviations. Saturated cores, bleed trails
  and cosmic rays sit hundreds of sigma above the noise; unclipped they dominate the first
  layer's activations and the gradients. Ten sigma keeps every real source's core well
  distinguishable from noise while bounding the input.
- Non-finite pixels are set to 0, the channel mean, AFTER scaling. DMTN-337 reports that the
  v0.1 model's scores pile up in a peak for stamps with NaN rows or columns (masked chip
  edges, bad columns): the way missing data was filled in became a feature. Filling with
  the mean of the normalised channel makes a masked pixel look like the average pixel, the
  least informative value there is, so that the presence of missing data is not by itself
  evidence for either class. An all-NaN channel becomes all zeros.

Every step uses ONNX-exportable operations only (`torch.isfinite`, which exports as IsNaN and
IsInf, `torch.where`, sums, a max): no `nanmean`/`nanmedian`, which have no ONNX counterpart.
Before the statistics, each channel is divided by its largest finite absolute value, so
squares and sums stay far from float32 overflow even for pixels near 3.4e38; this changes
no output beyond the tiny `_STD_EPS`.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from training.ml.config import STAMP_SHAPE

__all__ = [
    "STAMP_CLIP",
    "STAMP_SHAPE",
    "RealBogusCNN",
    "normalise_stamps",
    "parameter_count",
]

STAMP_CLIP = 10.0
# Added to the standard deviation (in units of the channel's largest absolute value) so that
# a constant channel divides by a positive number; it then normalises to zeros.
_STD_EPS = 1e-6

CONV_FILTERS = (16, 32, 64)
CONV_KERNEL = 5
POOL = 2
DROPOUT = 0.4
HIDDEN_UNITS = 32
# 51 -> conv 47 -> pool 23 -> conv 19 -> pool 9 -> conv 5 -> pool 2: 64 maps of 2 x 2.
FLAT_FEATURES = 64 * 2 * 2


def normalise_stamps(images: torch.Tensor) -> torch.Tensor:
    """Raw stamps (N, 3, H, W) float32, NaN/+-inf allowed, to finite normalised stamps.

    Per stamp and channel: (x - mean) / (std + eps) over the finite pixels, clipped to
    [-STAMP_CLIP, STAMP_CLIP], with every non-finite pixel set to 0. See the module docstring
    for why.
    """
    # Exported to ONNX as Not(IsNaN) and Not(IsInf); one pass in eager mode.
    finite = torch.isfinite(images)
    values = torch.where(finite, images, torch.zeros_like(images))
    largest = values.abs().amax(dim=(2, 3), keepdim=True)
    scale = torch.where(largest > 0, largest, torch.ones_like(largest))
    scaled = values / scale
    count = finite.sum(dim=(2, 3), keepdim=True).to(images.dtype).clamp(min=1.0)
    mean = scaled.sum(dim=(2, 3), keepdim=True) / count
    centred = torch.where(finite, scaled - mean, torch.zeros_like(scaled))
    std = torch.sqrt((centred * centred).sum(dim=(2, 3), keepdim=True) / count)
    # Non-finite pixels are already 0 in `centred`, so they stay 0 after scaling.
    return (centred / (std + _STD_EPS)).clamp(-STAMP_CLIP, STAMP_CLIP)


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, CONV_KERNEL),
        nn.ReLU(),
        nn.MaxPool2d(POOL),
        nn.Dropout(DROPOUT),
    )


class RealBogusCNN(nn.Module):
    """Three 5x5 conv blocks (16/32/64 filters, ReLU, max-pool 2, dropout 0.4), then fully
    connected 32 (ReLU) and 1. Input: raw stamps (N, 3, 51, 51) float32; output: (N,)."""

    def __init__(self) -> None:
        super().__init__()
        channels = (STAMP_SHAPE[0], *CONV_FILTERS)
        self.features = nn.Sequential(
            *(_conv_block(c_in, c_out) for c_in, c_out in pairwise(channels))
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(FLAT_FEATURES, HIDDEN_UNITS),
            nn.ReLU(),
            nn.Linear(HIDDEN_UNITS, 1),
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores (N,): what training feeds to BCEWithLogitsLoss."""
        _check_stamps(x)
        # Channels-last convolutions run about 1.5x faster on the CPU (oneDNN's layout) for
        # the same numbers: the layout changes how memory is read, not what is computed.
        stamps = normalise_stamps(x).contiguous(memory_format=torch.channels_last)
        return self.classifier(self.features(stamps)).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities of Real (N,)."""
        return torch.sigmoid(self.logits(x))


def _check_stamps(x: object) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"stamps must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != STAMP_SHAPE:
        raise ValueError(
            f"stamps must have shape (N, {', '.join(map(str, STAMP_SHAPE))}), "
            f"got {tuple(x.shape)}"
        )
    if x.dtype != torch.float32:
        raise ValueError(f"stamps must be float32, got {x.dtype}")


def parameter_count(model: nn.Module) -> int:
    """The number of trainable and frozen parameters (weights and biases) of `model`."""
    return sum(parameter.numel() for parameter in model.parameters())
