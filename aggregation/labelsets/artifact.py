"""The label-set artifact on disk: one .npz per split, labels.csv, manifest.json, and the tar.

No Django: the stamps arrive through a `read_cubes` callable, a chunk of subjects at a time,
so a split's images are streamed into its .npz and never held whole (20,000 subjects are
620 MB of pixels).

Every byte is a function of the inputs: zip entries carry a fixed date and mode, the tar
fixed times, owners and modes, members in a fixed order, and nothing records when or where
the files were written. The same label set written twice is the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aggregation.labelsets.core import CLASS_NAMES, SPLIT_NAMES
from labeling.records import STAMP_KINDS
from labeling.reference_csv import spreadsheet_safe

FORMAT_VERSION = 1
SPLIT_FILES = {name: f"{name}.npz" for name in SPLIT_NAMES}
LABELS_CSV = "labels.csv"
MANIFEST = "manifest.json"
DATA_FILES = (*SPLIT_FILES.values(), LABELS_CSV)
ARTIFACT_FILES = (*DATA_FILES, MANIFEST)
LABELS_CSV_COLUMNS = ("split", "subject_id", "external_id", "label", "origin", "snr", "p_real")
# Subjects whose stamps are read and written at a time: 512 x 31 kB = 16 MB at 51 pixels.
CHUNK_SUBJECTS = 512
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold
_UNIX = 3  # ZipInfo.create_system: otherwise it depends on the platform writing the file
_HASH_BLOCK = 1 << 20

# (subject ids) -> float32 (n, 3, size, size): template, science, difference.
CubeReader = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SplitTable:
    """The subjects of one split, in the order their images are written."""

    subject_ids: np.ndarray  # int64
    external_ids: tuple[str, ...]
    labels: np.ndarray  # uint8, 1 = Real
    origins: np.ndarray  # str
    snr: np.ndarray  # float32, NaN when unknown
    p_real: np.ndarray  # float32, NaN for injections (their label is known truth)

    def __post_init__(self) -> None:
        lengths = {len(self.subject_ids), len(self.external_ids), len(self.labels),
                   len(self.origins), len(self.snr), len(self.p_real)}
        if len(lengths) != 1:
            raise ValueError("every column of a split needs one entry per subject")

    def __len__(self) -> int:
        return len(self.subject_ids)


def write_artifact(
    folder: Path,
    splits: Mapping[str, SplitTable],
    read_cubes: CubeReader,
    *,
    stamp_size: int,
    description: Mapping,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Write the artifact into `folder` (created; must not exist) and return its manifest:
    `description` plus the format, the counts and every file's sha256 and size. Each file
    is flushed to disk before this returns."""
    folder.mkdir(parents=True)
    origin_width = max([1, *(len(o) for table in splits.values() for o in table.origins)])
    nan_images = {}
    for name in SPLIT_NAMES:
        nan_images[name] = _write_split(
            folder / SPLIT_FILES[name], splits[name], read_cubes, stamp_size, origin_width,
            on_progress,
        )
    _write_labels_csv(folder / LABELS_CSV, splits)
    manifest = {
        **description,
        "format_version": FORMAT_VERSION,
        "arrays": _arrays_description(stamp_size),
        "counts": counts(splits),
        "images_with_nan": nan_images,
        "files": {name: file_digest(folder / name) for name in DATA_FILES},
    }
    _write_synced(folder / MANIFEST, manifest_bytes(manifest))
    fsync_dir(folder)
    return manifest


def manifest_bytes(manifest: Mapping) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def _arrays_description(stamp_size: int) -> dict:
    return {
        "images": f"float32 (N, {len(STAMP_KINDS)}, {stamp_size}, {stamp_size}): "
                  f"{', '.join(STAMP_KINDS)}; NaN marks pixels with no data and is kept as NaN",
        "labels": "uint8: 1 = Real, 0 = Bogus",
        "subject_ids": "int64: the platform's subject ids",
        "origins": "unicode: the subject's origin (injection for fakes)",
        "snr": "float32: the detection's SNR, NaN when unknown",
        "p_real": "float32: the run's Pr(Real), NaN for injections (known truth)",
    }


def counts(splits: Mapping[str, SplitTable]) -> dict:
    """Subjects per split x class x origin, with totals per split x class."""
    result = {}
    for name in SPLIT_NAMES:
        table = splits[name]
        per_class = {}
        for code, class_name in CLASS_NAMES.items():
            origins, n = np.unique(table.origins[table.labels == code], return_counts=True)
            per_class[class_name] = {
                "total": int(n.sum()),
                "by_origin": {str(o): int(k) for o, k in zip(origins, n, strict=True)},
            }
        result[name] = {"total": len(table), **per_class}
    return result


def _write_split(path: Path, table: SplitTable, read_cubes: CubeReader, stamp_size: int,
                 origin_width: int, on_progress) -> int:
    """Write one split's .npz, streaming the images; returns how many images hold NaN."""
    shape = (len(table), len(STAMP_KINDS), stamp_size, stamp_size)
    columns = {
        "labels": table.labels.astype(np.uint8),
        "subject_ids": table.subject_ids.astype(np.int64),
        "origins": np.asarray(table.origins, dtype=f"<U{origin_width}"),
        "snr": table.snr.astype(np.float32),
        "p_real": table.p_real.astype(np.float32),
    }
    with_nan = 0
    with open(path, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
        header = _npy_header(np.dtype("<f4"), shape)
        entry = _zip_entry("images.npy", len(header) + 4 * int(np.prod(shape)))
        with archive.open(entry, "w") as member:
            member.write(header)
            for start in range(0, len(table), CHUNK_SUBJECTS):
                ids = table.subject_ids[start : start + CHUNK_SUBJECTS]
                cubes = np.ascontiguousarray(read_cubes(ids), dtype="<f4")
                if cubes.shape != (len(ids), *shape[1:]):
                    raise ValueError(f"stamps of shape {cubes.shape}, expected "
                                     f"{(len(ids), *shape[1:])}")
                with_nan += int(np.isnan(cubes).any(axis=(1, 2, 3)).sum())
                member.write(cubes.tobytes())
                if on_progress:
                    on_progress(len(ids))
        for name, array in columns.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, version=(1, 0), allow_pickle=False)
            archive.writestr(_zip_entry(f"{name}.npy", buffer.tell()), buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())
    return with_nan


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {
        "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape,
    })
    return buffer.getvalue()


def _zip_entry(name: str, size: int) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    entry.compress_type = zipfile.ZIP_STORED  # as np.savez: the reader can seek into it
    entry.create_system = _UNIX
    entry.external_attr = 0o644 << 16
    # Known in advance, so zipfile picks ZIP64 for members beyond 4 GB before writing.
    entry.file_size = size
    return entry


def _write_labels_csv(path: Path, splits: Mapping[str, SplitTable]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LABELS_CSV_COLUMNS)
    for name in SPLIT_NAMES:
        table = splits[name]
        for i in range(len(table)):
            writer.writerow((
                # Ids and origins come from ingested alerts: text a spreadsheet must not run.
                name, int(table.subject_ids[i]), spreadsheet_safe(table.external_ids[i]),
                CLASS_NAMES[int(table.labels[i])], spreadsheet_safe(table.origins[i]),
                _float_text(table.snr[i]), _float_text(table.p_real[i]),
            ))
    _write_synced(path, buffer.getvalue().encode())


def _float_text(value) -> str:
    """The shortest text that reads back as the same float32; empty for NaN."""
    value = np.float32(value)
    return "" if np.isnan(value) else np.format_float_positional(value, unique=True, trim="-")


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make the creations and renames inside `path` durable."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def file_digest(path: Path) -> dict:
    """{"sha256": hex, "bytes": size} of a file, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return {"sha256": digest.hexdigest(), "bytes": size}


def write_archive(folder: Path, archive: Path, arcname: str) -> dict:
    """An uncompressed tar of the artifact folder, members `<arcname>/<file>` in sorted
    order with fixed times, owners and modes; returns its sha256 and size."""
    with open(archive, "wb") as handle:
        with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_tar_entry(arcname, tarfile.DIRTYPE, 0o755))
            for name in sorted(ARTIFACT_FILES):
                path = folder / name
                entry = _tar_entry(f"{arcname}/{name}", tarfile.REGTYPE, 0o644)
                entry.size = path.stat().st_size
                with open(path, "rb") as source:
                    tar.addfile(entry, source)
        handle.flush()
        os.fsync(handle.fileno())
    return file_digest(archive)


def _tar_entry(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type, entry.mode, entry.mtime = kind, mode, 0
    entry.uid = entry.gid = 0
    entry.uname = entry.gname = ""
    return entry


def verify_artifact(folder: Path) -> list[str]:
    """What is wrong with an artifact folder: missing or unreadable manifest, files missing,
    of the wrong size or with the wrong sha256. Empty when everything checks out."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        listed = manifest["files"]
    except FileNotFoundError:
        return [f"{MANIFEST} is missing"]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{MANIFEST} is unreadable: {exc}"]
    problems = []
    if manifest.get("format_version") != FORMAT_VERSION:
        problems.append(f"format version {manifest.get('format_version')!r}, "
                        f"expected {FORMAT_VERSION}")
    for name in DATA_FILES:
        path = folder / name
        if name not in listed:
            problems.append(f"{name} is not in the manifest")
        elif not path.is_file():
            problems.append(f"{name} is missing")
        else:
            found, expected = file_digest(path), listed[name]
            if found["bytes"] != expected.get("bytes"):
                problems.append(f"{name} has {found['bytes']} bytes, "
                                f"the manifest says {expected.get('bytes')}")
            elif found["sha256"] != expected.get("sha256"):
                problems.append(f"{name} has sha256 {found['sha256']}, "
                                f"the manifest says {expected.get('sha256')}")
    return problems
