"""LabelSetDataset and verify: what the ML team loads, without Django."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from tests.training.conftest import SPLIT_SIZES, stamps_of
from training.ml.dataset import LabelSetDataset, npz_member, verify

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("split", list(SPLIT_SIZES))
def test_items_are_the_stamps_and_labels_of_the_split(artifact, split):
    dataset = LabelSetDataset(artifact, split)
    assert len(dataset) == SPLIT_SIZES[split]
    for index in range(len(dataset)):
        image, label = dataset[index]
        assert image.dtype == torch.float32
        assert image.shape == (3, 51, 51)
        assert label.dtype == torch.float32
        assert label.shape == ()
        subject_id = dataset.subject_ids[index]
        expected = stamps_of(np.array([subject_id]))[0]
        # NaN pixels (no data) reach the model as NaN: replacing them is the model's choice.
        np.testing.assert_array_equal(image.numpy(), expected)
        assert torch.isnan(image[:, 0, 0]).all()
        assert label.item() == float(subject_id % 2)


def test_an_npz_file_is_read_directly(artifact):
    from_file = LabelSetDataset(artifact / "val.npz")
    from_folder = LabelSetDataset(artifact, "val")
    np.testing.assert_array_equal(from_file.subject_ids, from_folder.subject_ids)


def test_the_exporter_s_images_are_memory_mapped_not_read(artifact):
    assert isinstance(LabelSetDataset(artifact).images, np.memmap)


def test_a_compressed_npz_is_read_whole(tmp_path):
    images = np.random.default_rng(0).normal(size=(4, 3, 51, 51)).astype(np.float32)
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, images=images)
    loaded = npz_member(path, "images")
    assert not isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, images)


def test_a_plain_savez_member_maps_to_the_same_values(tmp_path):
    images = np.asfortranarray(np.random.default_rng(1).normal(size=(5, 3, 7, 7)))
    path = tmp_path / "plain.npz"
    np.savez(path, images=images)
    loaded = npz_member(path, "images")
    assert isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, images)


def test_unknown_splits_and_missing_files_are_refused(artifact, tmp_path):
    with pytest.raises(ValueError, match="split must be one of train, val, test"):
        LabelSetDataset(artifact, "validation")
    with pytest.raises(FileNotFoundError):
        LabelSetDataset(tmp_path / "nothing.npz")


def _the_four_flips(image: torch.Tensor) -> list[torch.Tensor]:
    return [image, image.flip(1), image.flip(2), image.flip(1).flip(2)]


# The artifact is only read, so sharing it between examples is safe.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), index=st.integers(0, SPLIT_SIZES["train"] - 1))
def test_a_flip_is_one_of_four_and_the_same_for_the_three_stamps(artifact, seed, index):
    plain = LabelSetDataset(artifact)[index][0]
    flipped, label = LabelSetDataset(artifact, flips=True, seed=seed)[index]
    # Comparing whole (3, 51, 51) tensors: the three stamps moved together.
    assert any(torch.equal(flipped.nan_to_num(-99), option.nan_to_num(-99))
               for option in _the_four_flips(plain))
    assert label.item() == LabelSetDataset(artifact)[index][1].item()


def test_flips_draw_all_four_and_a_seed_repeats_them(artifact):
    def draws(seed):
        dataset = LabelSetDataset(artifact, flips=True, seed=seed)
        plain = LabelSetDataset(artifact)[0][0].nan_to_num(-99)
        options = _the_four_flips(plain)
        found = []
        for _ in range(64):
            image = dataset[0][0].nan_to_num(-99)
            found.append(next(k for k, option in enumerate(options) if torch.equal(image, option)))
        return found

    assert set(draws(seed=3)) == {0, 1, 2, 3}
    assert draws(seed=3) == draws(seed=3)


def test_a_dataloader_batches_it(artifact):
    images, labels = next(iter(DataLoader(LabelSetDataset(artifact), batch_size=4)))
    assert images.shape == (4, 3, 51, 51)
    assert labels.shape == (4,)


def test_verify_passes_a_whole_artifact_and_names_a_changed_file(artifact):
    assert verify(artifact) == []
    with open(artifact / "test.npz", "r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 0xFF]))
    problems = verify(artifact)
    assert len(problems) == 1
    assert "test.npz" in problems[0]
    assert "sha256" in problems[0]
    (artifact / "labels.csv").unlink()
    assert any("labels.csv is missing" in problem for problem in verify(artifact))


def test_the_ml_package_imports_without_django():
    code = (
        "import sys, training.ml.dataset, training.ml.download\n"
        "loaded = [m for m in sys.modules if m == 'django' or m.startswith('django.')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
