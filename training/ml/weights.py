"""Model weights on disk: safetensors files checked by sha256, and the ONNX export.

Weights are stored as safetensors, never as pickles: loading a file cannot run code, so a
weights file downloaded from the registry is safe to open. Every load checks that the
tensors are exactly those of RealBogusCNN (names, shapes, float32), and, when the registry
gives one, the file's sha256: a model version's file that changed on disk is refused.

The ONNX export carries the whole model, normalisation of raw stamps included (it is part
of `RealBogusCNN.forward`), with a dynamic batch axis: input "stamps" float32
(N, 3, 51, 51), output "reliability" float32 (N,). An export is only kept once onnxruntime
has scored stamps (with NaN pixels) within `ONNX_SCORE_ATOL` of PyTorch.

Files are written atomically (a temporary file in the same folder, fsync, rename), so a
crash never leaves a half-written weights or ONNX file under the final name.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime
import safetensors
import safetensors.torch
import torch

from aggregation.labelsets.artifact import file_digest, fsync_dir
from training.ml.model import STAMP_SHAPE, RealBogusCNN
from training.ml.scoring import as_stamp_array, predict

__all__ = [
    "ONNX_INPUT",
    "ONNX_OUTPUT",
    "WEIGHTS_FORMAT",
    "WeightsError",
    "check_onnx",
    "export_onnx",
    "file_sha256",
    "load_model",
    "load_weights",
    "onnx_predict",
    "save_weights",
    "write_atomically",
]

WEIGHTS_FORMAT = "safetensors"
ONNX_INPUT = "stamps"
ONNX_OUTPUT = "reliability"
# How far the ONNX file's scores may be from PyTorch's. onnxruntime sums the float32
# convolutions in another order: on a trained model (make loop's v0.1 on simulator v2) that
# reached 1.05e-5, over the 1e-5 first chosen, while another model's or a tampered file's
# scores differ by 1e-3 and more (tests/training/test_weights.py).
ONNX_SCORE_ATOL = 1e-4
# Written into every weights file's header, so a file says what it holds. One key only:
# safetensors writes the metadata in hash-map order, so with two keys the same weights could
# give files (and sha256s) that differ from one save to the next.
_METADATA = {"architecture": "RealBogusCNN"}
# The exporter logs a warning for each torchvision operator it cannot register; torchvision
# is not a dependency and the CNN uses none of them.
_EXPORTER_REGISTRY_LOGGER = "torch.onnx._internal.exporter._registration"


class WeightsError(ValueError):
    """A weights or ONNX file that cannot be used: missing, changed, corrupt, not this model."""


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a file."""
    return file_digest(Path(path))["sha256"]


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in RealBogusCNN().state_dict().items()}


def _check_state(state: Mapping[str, torch.Tensor], source: str) -> None:
    """WeightsError unless `state` has exactly RealBogusCNN's tensor names and shapes."""
    expected = _expected_shapes()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"{source} does not hold RealBogusCNN weights: missing {missing or 'none'}, "
            f"unexpected {unexpected or 'none'}"
        )
    wrong = [
        f"{name} {tuple(state[name].shape)} (expected {shape})"
        for name, shape in expected.items() if tuple(state[name].shape) != shape
    ]
    if wrong:
        raise WeightsError(f"{source} has tensors of the wrong shape: {', '.join(wrong)}")
    not_float = [name for name in expected if state[name].dtype != torch.float32]
    if not_float:
        raise WeightsError(f"{source} has tensors that are not float32: {', '.join(not_float)}")


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that `path` holds either its old content or all of `data`,
    even across a crash: a temporary file in the same folder, fsync, rename, fsync the folder.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_dir(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def save_weights(state: Mapping[str, torch.Tensor] | RealBogusCNN, path: Path) -> str:
    """Write a model's (or a state dict's) weights to `path` as safetensors; returns the
    file's sha256 (hex)."""
    path = Path(path)
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    _check_state(state, "the state to save")
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in state.items()}
    data = safetensors.torch.save(tensors, metadata=_METADATA)
    write_atomically(path, data)
    return hashlib.sha256(data).hexdigest()


def load_weights(path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, after checking its sha256 (when given) and that they
    are RealBogusCNN's; WeightsError otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(f"weights file {path} does not exist") from None
    except IsADirectoryError:
        raise WeightsError(f"weights file {path} is a directory") from None
    # The digest is of the very bytes that are then parsed: no window for the file to change.
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise WeightsError(
            f"weights file {path} has sha256 {digest}, expected {expected_sha256}: "
            "it is not the file that was registered"
        )
    try:
        state = safetensors.torch.load(data)
    except safetensors.SafetensorError as exc:
        raise WeightsError(f"weights file {path} is not a {WEIGHTS_FORMAT} file: {exc}") from None
    _check_state(state, f"weights file {path}")
    return state


def load_model(path: Path, expected_sha256: str | None = None) -> RealBogusCNN:
    """A RealBogusCNN with the weights of `path`, in eval mode, on the CPU."""
    model = RealBogusCNN()
    model.load_state_dict(load_weights(path, expected_sha256))
    return model.eval()


@contextmanager
def _quiet_exporter():
    """Silence the ONNX exporter's noise about things this model does not use."""
    logger = logging.getLogger(_EXPORTER_REGISTRY_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # torch 2.13's own export code trips typing_extensions' deprecation of
            # LeafSpec; it is torch's to fix and says nothing about this model.
            warnings.filterwarnings(
                "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                category=FutureWarning,
            )
            yield
    finally:
        logger.setLevel(level)


def onnx_predict(path: Path, images: np.ndarray) -> np.ndarray:
    """Pr(Real) float32 (N,) for stamps (N, 3, 51, 51), scored by onnxruntime on the CPU."""
    images = np.ascontiguousarray(as_stamp_array(images), dtype=np.float32)
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"ONNX file {path} does not exist")
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (scores,) = session.run([ONNX_OUTPUT], {ONNX_INPUT: images})
    # onnxruntime's errors (bad protobuf, unknown input name, ...) share no base class but
    # Exception.
    except Exception as exc:
        raise WeightsError(f"{path} is not a usable RealBogusCNN ONNX model: {exc}") from None
    return np.asarray(scores, dtype=np.float32)


def check_onnx(path: Path, model: RealBogusCNN, images: np.ndarray,
               atol: float = ONNX_SCORE_ATOL) -> float:
    """The largest absolute difference between the scores of the ONNX file `path` and of
    `model` (eval mode) on `images`; WeightsError when it exceeds `atol`."""
    images = as_stamp_array(images)
    if images.shape[0] == 0:
        raise ValueError("the check needs at least one stamp")
    # PyTorch scores on the CPU, like onnxruntime here: a GPU's TF32 convolutions alone
    # would differ by more than atol. A copy, so the caller's model stays where it is.
    reference = predict(copy.deepcopy(model).cpu(), images)
    exported = onnx_predict(path, images)
    if exported.shape != reference.shape or not np.all(np.isfinite(exported)):
        raise WeightsError(
            f"{path} gives {exported.shape} scores (finite: {np.isfinite(exported).all()}), "
            f"expected {reference.shape} finite ones"
        )
    difference = float(np.max(np.abs(exported - reference)))
    if difference > atol:
        raise WeightsError(
            f"{path} scores differ from PyTorch's by up to {difference:.3g} (atol {atol:g}): "
            "the ONNX model is not this model"
        )
    return difference


def export_onnx(model: RealBogusCNN, path: Path, check_images: np.ndarray,
                atol: float = ONNX_SCORE_ATOL) -> float:
    """Export `model` to ONNX at `path` and check it against PyTorch on `check_images`
    (include stamps with NaN pixels); returns the largest absolute score difference.

    WeightsError when the difference exceeds `atol`; `path` is then not written.
    """
    path = Path(path)
    check_images = as_stamp_array(check_images)
    # A CPU copy in eval mode: the caller's model keeps its device and mode.
    exported = copy.deepcopy(model).cpu().eval()
    # A batch of 2, not 1: torch.export specialises size-1 dimensions to constants.
    example = torch.zeros((2, *STAMP_SHAPE), dtype=torch.float32)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with _quiet_exporter():
            torch.onnx.export(
                exported, (example,), temporary, dynamo=True, external_data=False,
                input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), verbose=False,
            )
        difference = check_onnx(temporary, exported, check_images, atol)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_dir(path.parent)
    finally:
        temporary.unlink(missing_ok=True)
    return difference
