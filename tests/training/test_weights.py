"""Weights files (safetensors, sha256-checked) and the ONNX export checked against PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import safetensors.torch
import torch

from training.ml import weights
from training.ml.model import STAMP_SHAPE, RealBogusCNN
from training.ml.scoring import predict
from training.ml.weights import (
    ONNX_INPUT,
    ONNX_OUTPUT,
    WeightsError,
    check_onnx,
    export_onnx,
    file_sha256,
    load_model,
    load_weights,
    onnx_predict,
    save_weights,
)


def seeded_model(seed: int) -> RealBogusCNN:
    torch.manual_seed(seed)
    return RealBogusCNN()


def stamps_with_missing_data(n: int, seed: int) -> np.ndarray:
    cubes = np.random.default_rng(seed).normal(0, 30, (n, *STAMP_SHAPE)).astype(np.float32)
    cubes[0, :, 12] = np.nan  # a masked row
    cubes[1, 2, :, 45:] = np.nan  # a chip edge in the difference
    cubes[2, 0] = np.nan  # no template at all
    cubes[3, 1, 20, 20] = np.inf
    return cubes


@pytest.fixture
def saved(tmp_path):
    model = seeded_model(1)
    path = tmp_path / "model.safetensors"
    return model, path, save_weights(model, path)


def test_weights_round_trip_exactly(saved):
    model, path, digest = saved
    assert digest == file_sha256(path)
    state = load_weights(path, expected_sha256=digest)
    original = model.state_dict()
    assert state.keys() == original.keys()
    for name, tensor in original.items():
        assert torch.equal(state[name], tensor), name
    loaded = load_model(path, digest)
    assert not loaded.training
    stamps = stamps_with_missing_data(4, 0)
    np.testing.assert_array_equal(predict(loaded, stamps), predict(model, stamps))


def test_the_same_weights_always_save_to_the_same_bytes(saved, tmp_path):
    model, _, digest = saved
    # The sha256 identifies the weights: every save of them, from the model or its state
    # dict, must give the same file.
    for attempt in range(5):
        assert save_weights(model, tmp_path / "again.safetensors") == digest, attempt
    assert save_weights(model.state_dict(), tmp_path / "again.safetensors") == digest
    # Atomic write: nothing but the files themselves is left in the folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.safetensors",
                                                           "model.safetensors"]


def test_a_changed_file_fails_its_sha256_naming_both(saved):
    _, path, digest = saved
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one weight's last byte
    path.write_bytes(bytes(data))
    actual = file_sha256(path)
    with pytest.raises(WeightsError, match=f"{actual}.*{digest}"):
        load_weights(path, expected_sha256=digest)


@pytest.mark.parametrize("content", [b"", b"not safetensors at all", b"\xff" * 64])
def test_a_corrupt_file_is_refused(tmp_path, content):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="not a safetensors file"):
        load_weights(path)


def test_a_truncated_file_is_refused(saved):
    _, path, _ = saved
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="not a safetensors file"):
        load_weights(path)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(tmp_path / "nowhere.safetensors")
    with pytest.raises(WeightsError, match="does not exist"):
        load_model(tmp_path / "nowhere.safetensors")


def test_weights_of_another_network_are_refused_naming_the_keys(tmp_path):
    state = seeded_model(0).state_dict()
    renamed = dict(state)
    renamed["head.weight"] = renamed.pop("classifier.3.weight")
    path = tmp_path / "other.safetensors"
    safetensors.torch.save_file(renamed, path)
    with pytest.raises(WeightsError, match=r"missing \['classifier.3.weight'\].*head.weight"):
        load_weights(path)

    reshaped = dict(state)
    reshaped["classifier.1.weight"] = torch.zeros(32, 128)
    safetensors.torch.save_file(reshaped, path)
    with pytest.raises(WeightsError, match=r"classifier.1.weight \(32, 128\)"):
        load_weights(path)

    halved = {name: tensor.half() for name, tensor in state.items()}
    safetensors.torch.save_file(halved, path)
    with pytest.raises(WeightsError, match="not float32"):
        load_weights(path)


def test_saving_something_else_is_refused(tmp_path):
    state = seeded_model(0).state_dict()
    del state["features.0.0.bias"]
    with pytest.raises(WeightsError, match=r"features.0.0.bias"):
        save_weights(state, tmp_path / "model.safetensors")
    assert not (tmp_path / "model.safetensors").exists()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export (the exporter takes seconds): a model, left in training mode to show that
    the export does not change it, and its ONNX file."""
    model = seeded_model(2).train()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    difference = export_onnx(model, path, stamps_with_missing_data(6, 1))
    return model, path, difference


def test_the_onnx_export_scores_like_pytorch_on_stamps_with_nan(exported):
    model, path, difference = exported
    assert difference <= 1e-5
    # Other stamps and another batch size than the check's: the batch axis is dynamic.
    for n in (1, 9):
        stamps = stamps_with_missing_data(max(n, 4), 10 + n)[:n]
        np.testing.assert_allclose(onnx_predict(path, stamps), predict(model, stamps),
                                   atol=1e-5)


def test_the_onnx_file_names_its_input_and_output(exported):
    _, path, _ = exported
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (stamps,) = session.get_inputs()
    (reliability,) = session.get_outputs()
    assert (stamps.name, reliability.name) == (ONNX_INPUT, ONNX_OUTPUT)
    assert stamps.shape[1:] == list(STAMP_SHAPE)
    assert isinstance(stamps.shape[0], str)  # symbolic: any batch size
    assert stamps.type == "tensor(float)"
    # One self-contained file: no external weights next to it.
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]


def test_another_model_s_onnx_is_detected(exported):
    _, path, _ = exported
    with pytest.raises(WeightsError, match="not this model"):
        check_onnx(path, seeded_model(3), stamps_with_missing_data(4, 2))


def test_a_tampered_onnx_file_is_detected(exported, tmp_path):
    model, path, _ = exported
    graph = onnx.load(path)
    # Nudge the output layer's bias: every logit moves by 0.5.
    (initializer,) = [i for i in graph.graph.initializer if i.name == "classifier.3.bias"]
    values = onnx.numpy_helper.to_array(initializer).copy()
    values += 0.5
    initializer.CopyFrom(onnx.numpy_helper.from_array(values, initializer.name))
    tampered = tmp_path / "tampered.onnx"
    onnx.save(graph, tampered)
    with pytest.raises(WeightsError, match="differ from PyTorch's"):
        check_onnx(tampered, model, stamps_with_missing_data(4, 3))


def test_a_failed_export_check_leaves_no_file(tmp_path, monkeypatch):
    def off_by_a_little(path, images):
        return predict(model, images) + 1e-3

    model = seeded_model(4)
    monkeypatch.setattr(weights, "onnx_predict", off_by_a_little)
    path = tmp_path / "model.onnx"
    with pytest.raises(WeightsError, match="differ"):
        export_onnx(model, path, stamps_with_missing_data(4, 4))
    assert list(tmp_path.iterdir()) == []


def test_export_leaves_the_model_as_it_was(exported):
    model, _, _ = exported
    assert model.training
    for name, tensor in seeded_model(2).state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not a protobuf")
    with pytest.raises(WeightsError, match="not a usable"):
        onnx_predict(path, stamps_with_missing_data(4, 6))
    with pytest.raises(WeightsError, match="does not exist"):
        onnx_predict(tmp_path / "nowhere.onnx", stamps_with_missing_data(4, 6))
