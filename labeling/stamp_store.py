"""The bulk stamp store: a subject set's stamp cubes in one memory-mapped .npy file.

Pure numpy and the standard library: nothing here imports Django.

Reading 20,000 per-subject .npy files one at a time costs an open, a read and a parse each;
the store keeps the same cubes as rows of one float32 (N, 3, S, S) file, read in bulk through
a memory map. The per-subject files stay the source of truth, and the store never serves
pixels they do not hold:
- each row records the name of the file it was copied from, that file's size and
  modification time (nanoseconds) when it was copied, and the CRC-32 of the row's bytes;
- a read serves a row only if the file of that name is the one asked for, the file's size
  and modification time are unchanged and the row's CRC-32 matches; every other subject is
  reported missing, and the caller reads its per-subject file;
- a per-subject file that cannot be read when the store is built keeps its row, marked
  unusable, so that a read reports it missing and the per-subject read gives its error
  (a corrupt file then fails only what asks for it, not every build);
- a store that cannot be opened (missing, truncated, an unreadable index, a cubes file of
  the wrong shape) is unusable as a whole, with the reason.
What the fingerprint cannot see is a file rewritten in place at the same size with its
modification time set back to the nanosecond (stamp files are written once, under a fresh
name, so only a deliberate restore of other pixels with old times would do that).

On disk, in the store's folder: `index.json` names the current cubes file
(`cubes-<token>.npy`) and lists the rows. A build writes a new cubes file, then replaces the
index in one rename, then deletes the cubes files the index no longer names, so a reader sees
the old store or the new one, never a mix (a reader that mapped the old file keeps reading
it). Builds of one folder take turns under an exclusive file lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeling import stamps
from labeling.records import STAMP_KINDS

INDEX = "index.json"
FORMAT_VERSION = 1
_LOCK = ".lock"
_CUBES_PREFIX = "cubes-"
# Rows copied into a new store at a time: 512 x 31 kB = 16 MB at 51 pixels.
_BUILD_CHUNK = 512


class StoreUnusable(Exception):
    """A store that cannot be read at all, with the reason; its subjects are read from their
    per-subject files."""


@dataclass(frozen=True)
class Source:
    """One per-subject stamp file: its storage name (the key) and where it lies on disk."""

    name: str
    path: str | Path


_ABSENT = (-1, -1)


def fingerprint(path: str | Path) -> tuple[int, int]:
    """(size in bytes, modification time in ns) of a file: what a rewrite would change;
    (-1, -1) for a file that cannot be found."""
    try:
        status = os.stat(path)
    except OSError:
        return _ABSENT
    return status.st_size, status.st_mtime_ns


def read_source(source: Source, size: int) -> np.ndarray:
    """The cube of one per-subject file, checked as `stamps.cube_from_bytes` checks it."""
    try:
        with open(source.path, "rb") as handle:
            return stamps.cube_from_bytes(handle.read(), size)
    except stamps.StampError as exc:
        raise stamps.StampError(f"{source.name}: {exc}") from None


def _crc(row: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(row).data)


class StampStore:
    """An opened store: look rows up by stamp name, read them verified."""

    def __init__(self, folder: Path, size: int) -> None:
        self.folder = Path(folder)
        try:
            index = json.loads((self.folder / INDEX).read_text())
            if index.get("format_version") != FORMAT_VERSION or index.get("size") != size:
                raise StoreUnusable(f"{self.folder}: written for another format or stamp size")
            names = index["names"]
            # Python ints: compared one subject at a time, where numpy scalars are slow.
            self._prints = [(int(n), int(t)) for n, t in zip(index["bytes"], index["mtime_ns"],
                                                             strict=True)]
            self._crc32 = np.asarray(index["crc32"], dtype=np.uint32)
            self._usable = np.asarray(index["usable"], dtype=bool)
            cubes_name = index["cubes"]
            if not (isinstance(cubes_name, str) and cubes_name.startswith(_CUBES_PREFIX)
                    and "/" not in cubes_name):
                raise StoreUnusable(f"{self.folder}: the index names no cubes file")
            self._cubes = np.load(self.folder / cubes_name, mmap_mode="r", allow_pickle=False)
            self._rows = {name: row for row, name in enumerate(names)}
        except StoreUnusable:
            raise
        except FileNotFoundError as exc:
            raise StoreUnusable(f"{self.folder}: {exc.strerror}: {exc.filename}") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreUnusable(f"{self.folder}: unreadable: {exc}") from None
        expected = (len(names), len(STAMP_KINDS), size, size)
        if self._cubes.dtype != np.float32 or self._cubes.shape != expected:
            raise StoreUnusable(f"{self.folder}: cubes are {self._cubes.dtype} "
                                f"{self._cubes.shape}, the index says float32 {expected}")
        if not len(self._prints) == len(self._crc32) == len(self._usable) == len(names):
            raise StoreUnusable(f"{self.folder}: the index's columns differ in length")
        if len(self._rows) != len(names):
            raise StoreUnusable(f"{self.folder}: the index lists a stamp file twice")
        self.names: tuple[str, ...] = tuple(names)

    def _fresh_rows(self, sources: Sequence[Source]) -> np.ndarray:
        """Each source's row, or -1 where the store lacks it or its file changed since.
        A row marked unusable is still the source's row (its file is unchanged)."""
        rows = np.full(len(sources), -1, dtype=np.int64)
        for i, source in enumerate(sources):
            row = self._rows.get(source.name)
            if row is None:
                continue
            if fingerprint(source.path) == self._prints[row]:
                rows[i] = row
        return rows

    def read_into(self, sources: Sequence[Source], out: np.ndarray) -> np.ndarray:
        """Copy the store's verified cube of each source into `out[i]`; return the mask of
        the sources it could not serve (not in the store, changed since, or a row whose
        CRC-32 does not match), whose `out` rows are left as they were."""
        rows = self._fresh_rows(sources)
        held = np.flatnonzero(rows >= 0)
        held = held[self._usable[rows[held]]]
        # Ascending rows read the memory map front to back.
        order = held[np.argsort(rows[held], kind="stable")]
        served = np.zeros(len(sources), dtype=bool)
        for i in order.tolist():
            row = rows[i]
            cube = self._cubes[row]
            if _crc(cube) == self._crc32[row]:
                out[i] = cube
                served[i] = True
        return ~served

    def is_current(self, sources: Sequence[Source]) -> bool:
        """Whether the store holds exactly these sources, in this order, all unchanged."""
        return (tuple(s.name for s in sources) == self.names
                and bool((self._fresh_rows(sources) >= 0).all()))


def open_store(folder: Path, size: int) -> StampStore:
    """The store in `folder`, for cubes of `size` pixels; StoreUnusable if it cannot be read."""
    return StampStore(folder, size)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / _LOCK, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@dataclass(frozen=True)
class BuildReport:
    """What a refresh did: `rows` in the store, `reused` from the previous store, `read`
    from per-subject files; `built` False when the store was already current."""

    rows: int
    reused: int
    read: int
    built: bool


def refresh_store(folder: Path, sources: Sequence[Source], size: int,
                  on_progress: Callable[[int], None] | None = None) -> BuildReport:
    """Make the store in `folder` hold exactly `sources`, in this order.

    A current store is left alone. Otherwise a new one is built: rows the previous store
    still serves verified are copied from it, the others are read from their per-subject
    files (a file that cannot be read is marked unusable, see the module docstring). Sources
    must be distinct; `on_progress(n)` after each n rows."""
    folder = Path(folder)
    if len({s.name for s in sources}) != len(sources):
        raise ValueError("a stamp store cannot hold a stamp file twice")
    if not sources:
        return BuildReport(rows=0, reused=0, read=0, built=False)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        try:
            previous = open_store(folder, size)
        except StoreUnusable:
            previous = None
        if previous is not None and previous.is_current(sources):
            return BuildReport(rows=len(sources), reused=len(sources), read=0, built=False)
        report = _build(folder, sources, size, previous, on_progress)
        _remove_unnamed_cubes(folder)
        return report


def _build(folder: Path, sources: Sequence[Source], size: int, previous: StampStore | None,
           on_progress) -> BuildReport:
    cubes_name = f"{_CUBES_PREFIX}{uuid.uuid4().hex}.npy"
    shape = (len(sources), len(STAMP_KINDS), size, size)
    columns: dict[str, list] = {"bytes": [], "mtime_ns": [], "crc32": [], "usable": []}
    reused = 0
    try:
        cubes = np.lib.format.open_memmap(folder / cubes_name, mode="w+", dtype=np.float32,
                                          shape=shape)
        for start in range(0, len(sources), _BUILD_CHUNK):
            chunk = sources[start : start + _BUILD_CHUNK]
            # The fingerprint is taken before the copy: a file rewritten meanwhile then no
            # longer matches its row, and the row is never served.
            prints = [fingerprint(source.path) for source in chunk]
            missing = np.ones(len(chunk), dtype=bool)
            block = cubes[start : start + len(chunk)]
            if previous is not None:
                missing = previous.read_into(chunk, block)
            reused += int((~missing).sum())
            usable = np.ones(len(chunk), dtype=bool)
            for i in np.flatnonzero(missing).tolist():
                try:
                    block[i] = read_source(chunk[i], size)
                except (stamps.StampError, OSError):
                    block[i] = np.nan
                    usable[i] = False  # its per-subject read reports why
            for i, (n_bytes, mtime_ns) in enumerate(prints):
                columns["bytes"].append(n_bytes)
                columns["mtime_ns"].append(mtime_ns)
                columns["crc32"].append(_crc(block[i]))
                columns["usable"].append(bool(usable[i]))
            if on_progress:
                on_progress(len(chunk))
        cubes.flush()
        del cubes
        _fsync(folder / cubes_name)
        index = {"format_version": FORMAT_VERSION, "size": size, "cubes": cubes_name,
                 "names": [s.name for s in sources], **columns}
        staged = folder / f"{INDEX}.{uuid.uuid4().hex}.tmp"
        staged.write_text(json.dumps(index))
        _fsync(staged)
        os.replace(staged, folder / INDEX)
        _fsync(folder)
    except BaseException:
        (folder / cubes_name).unlink(missing_ok=True)
        raise
    return BuildReport(rows=len(sources), reused=reused, read=len(sources) - reused,
                       built=True)


def _remove_unnamed_cubes(folder: Path) -> None:
    """Cubes files the index does not name: replaced stores, or a build that was killed.
    Called under the folder's lock, so no build is writing one."""
    current = json.loads((folder / INDEX).read_text())["cubes"]
    for path in folder.glob(f"{_CUBES_PREFIX}*.npy"):
        if path.name != current:
            path.unlink(missing_ok=True)
    for path in folder.glob(f"{INDEX}.*.tmp"):
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
