"""A label set as a PyTorch Dataset, and the check of its checksums. Pure: numpy, torch and
the standard library, no Django, so the ML team can use it anywhere the artifact is copied.

The artifact is a folder with `train.npz`, `val.npz`, `test.npz`, `labels.csv` and
`manifest.json` (see DESIGN.md). Each npz holds `images` float32 (N, 3, 51, 51) (template,
science, difference), `labels` uint8 (1 = Real), `subject_ids`, `origins`, `snr`, `p_real`.

Memory: an npz is a zip, and numpy's `mmap_mode` is ignored for zips. A member that is stored
uncompressed (`np.savez`) is still one contiguous `.npy` inside the file, so the images are
memory-mapped at its offset and only the stamps a batch touches are read. A deflated member
(`np.savez_compressed`) has no bytes to map: it is read whole, once.

NaN pixels: stamps keep NaN where there is no data (chip edges, masked pixels), and this
Dataset returns them as they are. Replacing them (with 0, the stamp median, a mask channel) is
a modelling choice that belongs to the model, not to the data.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

# The artifact's writer (pure, no Django) is the one definition of its format and its check.
from aggregation.labelsets.artifact import SPLIT_FILES
from aggregation.labelsets.artifact import verify_artifact as verify

__all__ = ["LabelSetDataset", "npz_member", "verify"]

# The per-sample columns read whole (small next to the images).
COLUMNS = ("labels", "subject_ids", "origins", "snr", "p_real")
_ZIP_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
_ZIP_LOCAL_HEADER_SIZE = 30
# Stamps are (channel, row, column): a vertical flip reverses rows, a horizontal one columns.
_VERTICAL, _HORIZONTAL = 1, 2


class LabelSetDataset(Dataset):
    """(image float32 (3, 51, 51), label float32 0. or 1.) for each subject of one split.

    `folder_or_npz` is an artifact folder (the split's npz is read) or one npz file (read as
    it is; `split` is then ignored). With `flips`, each item is flipped vertically and/or
    horizontally at random, the same flip for its three stamps so they stay aligned.
    `seed` makes the flips reproducible in one process; with DataLoader workers leave it None:
    the flips then come from torch's global generator, which DataLoader seeds per worker.
    """

    def __init__(self, folder_or_npz: str | Path, split: str = "train", flips: bool = False,
                 seed: int | None = None) -> None:
        path = Path(folder_or_npz)
        if path.is_dir():
            if split not in SPLIT_FILES:
                raise ValueError(f"split must be one of {', '.join(SPLIT_FILES)}, not {split!r}")
            path = path / SPLIT_FILES[split]
        if not path.is_file():
            raise FileNotFoundError(f"no label-set file {path}")
        self.path = path
        self.flips = flips
        self._generator = None if seed is None else torch.Generator().manual_seed(seed)
        self.images = npz_member(path, "images")
        with np.load(path, allow_pickle=False) as arrays:
            columns = {name: arrays[name] for name in COLUMNS}
        self.labels = columns["labels"]
        self.subject_ids = columns["subject_ids"]
        self.origins = columns["origins"]
        self.snr = columns["snr"]
        self.p_real = columns["p_real"]
        if self.images.ndim != 4 or self.images.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"{path}: images {self.images.shape} do not match {self.labels.shape[0]} labels"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        # np.array copies the stamps out of the memory map: the tensor owns its memory.
        image = torch.from_numpy(np.array(self.images[index], dtype=np.float32))
        if self.flips:
            vertical, horizontal = torch.randint(0, 2, (2,), generator=self._generator).tolist()
            dims = [dim for dim, flip in ((_VERTICAL, vertical), (_HORIZONTAL, horizontal))
                    if flip]
            if dims:
                image = torch.flip(image, dims)
        label = torch.tensor(float(self.labels[index]), dtype=torch.float32)
        return image, label


def npz_member(path: str | Path, name: str) -> np.ndarray:
    """Array `name` of an npz file, memory-mapped (read-only) when the member is stored
    uncompressed, else read whole."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            with archive.open(info) as member:
                return np.lib.format.read_array(member, allow_pickle=False)
    with open(path, "rb") as raw:
        raw.seek(info.header_offset)
        local = raw.read(_ZIP_LOCAL_HEADER_SIZE)
        if local[:4] != _ZIP_LOCAL_HEADER_SIGNATURE:
            raise ValueError(f"{path}: {name}.npy has no zip local header where expected")
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        raw.seek(info.header_offset + _ZIP_LOCAL_HEADER_SIZE + name_length + extra_length)
        version = np.lib.format.read_magic(raw)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(raw)
        else:
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(raw)
        offset = raw.tell()
    if dtype.hasobject:
        raise ValueError(f"{path}: {name}.npy holds Python objects, which are never loaded")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran_order else "C")

