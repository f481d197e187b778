"""predict and score_batches: the model's eval-mode scores, whatever the batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.ml.model import STAMP_SHAPE, RealBogusCNN
from training.ml.scoring import predict, score_batches


@pytest.fixture(scope="module")
def model() -> RealBogusCNN:
    torch.manual_seed(5)
    return RealBogusCNN()


@pytest.fixture(scope="module")
def stamps() -> np.ndarray:
    cubes = np.random.default_rng(8).normal(0, 20, (10, *STAMP_SHAPE)).astype(np.float32)
    cubes[3, :, 7] = np.nan
    return cubes


def test_predict_is_the_model_in_eval_mode(model, stamps):
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(stamps)).numpy()
    scores = predict(model, stamps)
    assert scores.dtype == np.float32
    assert scores.shape == (len(stamps),)
    np.testing.assert_array_equal(scores, expected)


def test_predict_leaves_a_training_model_in_training_mode_and_ignores_dropout(model, stamps):
    model.train()
    first = predict(model, stamps)
    second = predict(model, stamps)
    assert model.training
    # Dropout on would make two passes differ.
    np.testing.assert_array_equal(first, second)
    model.eval()


@pytest.mark.parametrize("batch_size", [1, 3, 4, 1024])
def test_batching_does_not_change_the_scores(model, stamps, batch_size):
    whole = predict(model, stamps, batch_size=len(stamps))
    # Different batch sizes may take different convolution kernels: equal to rounding.
    np.testing.assert_allclose(predict(model, stamps, batch_size=batch_size), whole,
                               atol=1e-6)


def test_predict_accepts_float64_and_memory_maps(model, stamps, tmp_path):
    path = tmp_path / "stamps.npy"
    np.save(path, stamps)
    mapped = np.load(path, mmap_mode="r")
    expected = predict(model, stamps)
    np.testing.assert_array_equal(predict(model, mapped, batch_size=4), predict(
        model, np.asarray(mapped), batch_size=4))
    np.testing.assert_allclose(predict(model, stamps.astype(np.float64)), expected, atol=1e-6)


def test_no_stamps_give_no_scores(model):
    scores = predict(model, np.empty((0, *STAMP_SHAPE), np.float32))
    assert scores.shape == (0,)
    assert scores.dtype == np.float32


def test_score_batches_streams_one_batch_at_a_time(model, stamps):
    pulled = []

    def batches():
        for start in range(0, len(stamps), 4):
            pulled.append(start)
            yield stamps[start:start + 4]

    scores = score_batches(model, batches())
    first = next(scores)
    assert pulled == [0]
    rest = list(scores)
    assert [len(chunk) for chunk in (first, *rest)] == [4, 4, 2]
    np.testing.assert_allclose(np.concatenate([first, *rest]), predict(model, stamps),
                               atol=1e-6)


@pytest.mark.parametrize("bad", [
    np.zeros((2, 3, 50, 50), np.float32),
    np.zeros((3, 51, 51), np.float32),
    np.zeros((2, 51, 51, 3), np.float32),
])
def test_wrong_shapes_are_refused_naming_the_expected_one(model, bad):
    with pytest.raises(ValueError, match=r"\(N, 3, 51, 51\)"):
        predict(model, bad)
    with pytest.raises(ValueError, match=r"\(N, 3, 51, 51\)"):
        list(score_batches(model, [bad]))


def test_other_bad_input_is_refused(model, stamps):
    with pytest.raises(ValueError, match="floating point"):
        predict(model, np.zeros(stamps.shape, np.int32))
    with pytest.raises(ValueError, match="numpy array"):
        predict(model, torch.from_numpy(stamps))
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, stamps, batch_size=0)
