"""fit: it learns, it is reproducible bit for bit, it resumes exactly after a crash, it stops
early, it flips only when asked, and it refuses bad input clearly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from training.ml.dataset import LabelSetDataset
from training.ml.model import STAMP_SHAPE, RealBogusCNN
from training.ml.scoring import predict
from training.ml.train import EpochRecord, TrainingConfig, fit, pick_device

CPU = torch.device("cpu")


def separable_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stamps in noise of unit sigma. Real: a new point source in science and difference.
    Bogus: a star in template and science, leaving either nothing or a dipole in the
    difference. A third of both have a NaN row, so missing data tells nothing."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.float32)
    stamps = rng.normal(0, 1, (n, *STAMP_SHAPE))
    axis = np.arange(STAMP_SHAPE[1]) - STAMP_SHAPE[1] // 2
    amplitude = rng.uniform(4, 12, (n, 1, 1))
    sigma = rng.uniform(1.2, 2.0, (n, 1, 1))
    shift = rng.uniform(0.7, 1.5, (n, 1, 1)) * rng.choice([-1, 1], (n, 1, 1))

    def blob(dx):
        return amplitude * np.exp(-((axis[None, None, :] - dx) ** 2 + axis[None, :, None] ** 2)
                                  / (2 * sigma**2))

    real = labels.astype(bool)
    dipole = (~real & (rng.random(n) < 0.5))[:, None, None]
    stamps[real, 1] += blob(0)[real]
    stamps[real, 2] += blob(0)[real]
    stamps[~real, 0] += blob(0)[~real]
    stamps[~real, 1] += blob(0)[~real]
    stamps[:, 2] += np.where(dipole, blob(0) - blob(shift), 0)
    masked = np.flatnonzero(rng.random(n) < 1 / 3)
    stamps[masked, :, rng.integers(0, STAMP_SHAPE[1], masked.size)] = np.nan
    return stamps.astype(np.float32), labels


def tensor_set(stamps: np.ndarray, labels: np.ndarray) -> TensorDataset:
    return TensorDataset(torch.from_numpy(stamps), torch.from_numpy(labels))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Pr(a Real stamp scores above a Bogus one), ties counting half."""
    real, bogus = scores[labels == 1], scores[labels == 0]
    above = (real[:, None] > bogus[None, :]).mean()
    return float(above + 0.5 * (real[:, None] == bogus[None, :]).mean())


def untrained(seed: int = 0) -> RealBogusCNN:
    torch.manual_seed(seed)
    return RealBogusCNN()


@pytest.fixture(scope="module")
def tiny():
    """Small splits for the tests of the loop's mechanics."""
    stamps, labels = separable_set(96, seed=1)
    return tensor_set(stamps[:64], labels[:64]), tensor_set(stamps[64:], labels[64:])


def comparable(history: list[EpochRecord]) -> list[tuple]:
    """A history without its wall-clock times."""
    return [(r.epoch, r.train_loss, r.val_loss) for r in history]


def assert_same_weights(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_training_learns_to_separate_real_from_bogus():
    stamps, labels = separable_set(640 + 128, seed=0)
    train = tensor_set(stamps[:512], labels[:512])
    val = tensor_set(stamps[512:640], labels[512:640])
    test_stamps, test_labels = stamps[640:], labels[640:]
    model = untrained()
    # The design's settings (lr 1e-4, batch 128): 24 Adam steps do not take the loss far
    # below log 2, but they rank every Real above the Bogus ones; a model that learned
    # nothing (shuffled labels, a broken normalisation) ranks at random, AUC about 0.5.
    result = fit(model, train, val, TrainingConfig(epochs=6), device=CPU)
    losses = [record.train_loss for record in result.history]
    assert len(losses) == 6
    assert losses[-1] < losses[0]
    assert result.history[-1].val_loss < result.history[0].val_loss
    assert auc(predict(model, test_stamps), test_labels) >= 0.9


def test_shuffled_labels_teach_nothing():
    # The control for the test above: the same data and settings with labels that carry no
    # information do not pass its bar.
    stamps, labels = separable_set(640 + 128, seed=0)
    shuffled = np.random.default_rng(1).permutation(labels[:640])
    model = untrained()
    fit(model, tensor_set(stamps[:512], shuffled[:512]),
        tensor_set(stamps[512:640], shuffled[512:]), TrainingConfig(epochs=6), device=CPU)
    assert auc(predict(model, stamps[640:]), labels[640:]) < 0.9


def test_the_same_seed_gives_the_same_run_bit_for_bit(tiny):
    train, val = tiny
    config = TrainingConfig(epochs=3, batch_size=16, flips=True, seed=7)
    first_model, second_model = untrained(0), untrained(0)
    first = fit(first_model, train, val, config, device=CPU)
    second = fit(second_model, train, val, config, device=CPU)
    assert comparable(first.history) == comparable(second.history)
    assert_same_weights(first.best_state, second.best_state)
    assert_same_weights(first_model.state_dict(), second_model.state_dict())
    # The seed matters: another one shuffles, flips and drops out differently.
    other = fit(untrained(0), train, val, TrainingConfig(epochs=3, batch_size=16, flips=True,
                                                         seed=8), device=CPU)
    assert comparable(other.history) != comparable(first.history)


def test_a_resumed_run_ends_as_an_uninterrupted_one(tiny, tmp_path):
    train, val = tiny
    config = TrainingConfig(epochs=4, batch_size=16, flips=True, patience=10, seed=3)
    uninterrupted = fit(untrained(0), train, val, config, checkpoint=tmp_path / "a.pt",
                        device=CPU)

    class Crash(RuntimeError):
        pass

    def crash_after_epoch_two(record: EpochRecord) -> None:
        if record.epoch == 2:
            raise Crash

    checkpoint = tmp_path / "b.pt"
    with pytest.raises(Crash):
        fit(untrained(0), train, val, config, checkpoint=checkpoint, device=CPU,
            on_epoch=crash_after_epoch_two)
    resumed_epochs = []
    # Another initialisation on purpose: the checkpoint's weights must replace it.
    model = untrained(99)
    resumed = fit(model, train, val, config, checkpoint=checkpoint, device=CPU,
                  on_epoch=lambda record: resumed_epochs.append(record.epoch))
    assert resumed_epochs == [3, 4]
    assert comparable(resumed.history) == comparable(uninterrupted.history)
    assert resumed.best_epoch == uninterrupted.best_epoch
    assert_same_weights(resumed.best_state, uninterrupted.best_state)
    assert_same_weights(model.state_dict(), uninterrupted.best_state)


def test_a_finished_checkpoint_returns_its_result_without_training(tiny, tmp_path):
    train, val = tiny
    config = TrainingConfig(epochs=2, batch_size=32)
    checkpoint = tmp_path / "run.pt"
    first = fit(untrained(0), train, val, config, checkpoint=checkpoint, device=CPU)
    batches = []
    model = untrained(5)
    again = fit(model, train, val, config, checkpoint=checkpoint, device=CPU,
                on_batch=lambda done, total: batches.append(done))
    assert batches == []
    assert again.history == first.history  # the stored records, seconds included
    assert_same_weights(model.state_dict(), first.best_state)


def test_resuming_with_another_config_is_refused_naming_the_keys(tiny, tmp_path):
    train, val = tiny
    checkpoint = tmp_path / "run.pt"
    fit(untrained(0), train, val, TrainingConfig(epochs=1, batch_size=32), checkpoint=checkpoint,
        device=CPU)
    changed = TrainingConfig(epochs=1, batch_size=32, learning_rate=1e-3, flips=True)
    with pytest.raises(ValueError, match=r"flips False -> True, learning_rate 0.0001 -> 0.001"):
        fit(untrained(0), train, val, changed, checkpoint=checkpoint, device=CPU)
    with pytest.raises(ValueError, match="sizes"):
        fit(untrained(0), val, val, TrainingConfig(epochs=1, batch_size=32),
            checkpoint=checkpoint, device=CPU)


def test_an_unreadable_checkpoint_is_refused(tiny, tmp_path):
    train, val = tiny
    checkpoint = tmp_path / "run.pt"
    checkpoint.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot be read"):
        fit(untrained(0), train, val, TrainingConfig(epochs=1), checkpoint=checkpoint,
            device=CPU)


def test_training_stops_early_when_the_val_loss_rises_and_keeps_the_best_epoch():
    stamps, labels = separable_set(96, seed=2)
    train = tensor_set(stamps[:64], labels[:64])
    # The validation labels are the opposite of the truth: the better the model fits the
    # training split, the higher the validation loss. The larger learning rate makes it fit
    # (and so the val loss rise) from the first epochs on.
    val = tensor_set(stamps[64:], 1 - labels[64:])
    config = TrainingConfig(epochs=20, batch_size=16, learning_rate=1e-3, patience=2)
    snapshots = {}
    model = untrained(0)

    def snapshot(record: EpochRecord) -> None:
        snapshots[record.epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    result = fit(model, train, val, config, device=CPU, on_epoch=snapshot)
    val_losses = [record.val_loss for record in result.history]
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + config.patience < config.epochs
    assert result.best_val_loss == min(val_losses) == val_losses[result.best_epoch - 1]
    assert_same_weights(result.best_state, snapshots[result.best_epoch])
    assert_same_weights(model.state_dict(), snapshots[result.best_epoch])


class Recording(RealBogusCNN):
    """A RealBogusCNN that keeps every batch it is shown, with the mode it was in."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bool, torch.Tensor]] = []

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, x.clone()))
        return super().logits(x)


def flips_of(stamp: torch.Tensor) -> list[torch.Tensor]:
    """The four ways of flipping a (3, 51, 51) stamp, all channels together."""
    return [stamp, stamp.flip(1), stamp.flip(2), stamp.flip(1).flip(2)]


@pytest.mark.parametrize("flips", [False, True])
def test_training_stamps_are_flipped_only_when_asked_and_val_stamps_never(flips):
    stamps, labels = separable_set(2, seed=4)
    # No symmetry: every flip of it is a different array.
    stamp = torch.arange(np.prod(STAMP_SHAPE), dtype=torch.float32).reshape(STAMP_SHAPE)
    train = tensor_set(stamp[None].numpy(), labels[:1])
    val = tensor_set(stamps[1:], labels[1:])
    torch.manual_seed(0)
    model = Recording()
    fit(model, train, val, TrainingConfig(epochs=12, patience=12, flips=flips), device=CPU)
    shown = [x[0] for training, x in model.seen if training]
    assert len(shown) == 12
    variants = flips_of(stamp)
    which = [next(i for i, v in enumerate(variants) if torch.equal(v, seen)) for seen in shown]
    if flips:
        # Twelve draws of four equally likely flips (seeded, so this is no matter of luck).
        assert set(which) == {0, 1, 2, 3}
    else:
        assert set(which) == {0}
    assert all(torch.equal(x, torch.from_numpy(stamps[1:])) for training, x in model.seen
               if not training)


def test_a_label_set_trains_like_any_dataset_of_its_items(artifact):
    class Items(Dataset):
        """The label set seen only through __getitem__: the generic path."""

        def __init__(self, dataset: LabelSetDataset) -> None:
            self.dataset = dataset

        def __len__(self) -> int:
            return len(self.dataset)

        def __getitem__(self, index: int):
            return self.dataset[index]

    config = TrainingConfig(epochs=2, batch_size=4, flips=True)
    fast_model, generic_model = untrained(0), untrained(0)
    fast = fit(fast_model, LabelSetDataset(artifact, "train"), LabelSetDataset(artifact, "val"),
               config, device=CPU)
    generic = fit(generic_model, Items(LabelSetDataset(artifact, "train")),
                  Items(LabelSetDataset(artifact, "val")), config, device=CPU)
    assert comparable(fast.history) == comparable(generic.history)
    assert_same_weights(fast_model.state_dict(), generic_model.state_dict())


def test_a_label_set_with_its_own_flips_is_refused(artifact):
    with pytest.raises(ValueError, match="flips=True"):
        fit(untrained(0), LabelSetDataset(artifact, "train", flips=True),
            LabelSetDataset(artifact, "val"), TrainingConfig(epochs=1), device=CPU)


def test_progress_is_reported_per_batch_and_per_epoch(tiny):
    train, val = tiny
    batches, epochs = [], []
    fit(untrained(0), train, val, TrainingConfig(epochs=2, batch_size=24), device=CPU,
        on_batch=lambda done, total: batches.append((done, total)), on_epoch=epochs.append)
    assert batches == [(1, 3), (2, 3), (3, 3)] * 2
    assert [record.epoch for record in epochs] == [1, 2]
    assert all(record.seconds > 0 for record in epochs)


def test_empty_splits_are_refused(tiny):
    train, val = tiny
    empty = tensor_set(np.empty((0, *STAMP_SHAPE), np.float32), np.empty(0, np.float32))
    with pytest.raises(ValueError, match="train split is empty"):
        fit(untrained(0), empty, val, TrainingConfig(epochs=1), device=CPU)
    with pytest.raises(ValueError, match="val split is empty"):
        fit(untrained(0), train, empty, TrainingConfig(epochs=1), device=CPU)


def test_labels_outside_zero_one_are_refused(tiny):
    train, val = tiny
    stamps = train.tensors[0]
    bad = TensorDataset(stamps, torch.full((len(stamps),), 2.0))
    with pytest.raises(ValueError, match=r"labels outside \[0, 1\]"):
        fit(untrained(0), bad, val, TrainingConfig(epochs=1), device=CPU)


def test_a_nan_loss_stops_training_naming_the_epoch(tiny):
    train, val = tiny
    model = untrained(0)
    with torch.no_grad():
        model.classifier[-1].bias.fill_(math.nan)
    with pytest.raises(FloatingPointError, match="epoch 1"):
        fit(model, train, val, TrainingConfig(epochs=3), device=CPU)


def test_the_config_round_trips_and_refuses_bad_values():
    config = TrainingConfig(epochs=12, learning_rate=3e-4, flips=True, seed=4)
    assert TrainingConfig.from_dict(config.to_dict()) == config
    assert TrainingConfig.from_dict({}) == TrainingConfig()
    # JSON has no float type of its own: 1 is a fine learning rate.
    assert TrainingConfig.from_dict({"learning_rate": 1}).learning_rate == 1.0
    with pytest.raises(ValueError, match="unknown training option"):
        TrainingConfig.from_dict({"epoch": 3})
    for bad in ({"epochs": 0}, {"batch_size": 2.5}, {"learning_rate": 0},
                {"learning_rate": math.inf}, {"weight_decay": -1}, {"patience": True},
                {"flips": "yes"}, {"seed": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainingConfig.from_dict(bad)


def test_pick_device():
    assert pick_device("cpu") == CPU
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device().type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")
