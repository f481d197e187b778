"""The bulk stamp store (labeling.stamp_store): the same bytes as the per-subject files, and
never a pixel they do not hold: stale, missing, corrupt and unreadable cases. No database."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeling import stamp_store, stamps
from labeling.stamp_store import Source, StoreUnusable, open_store, refresh_store

SIZE = 5


def cube(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.0, (3, SIZE, SIZE)).astype(np.float32)
    values[rng.random(values.shape) < 0.1] = np.nan  # NaN is "no data" and must survive
    return values


def write_sources(folder: Path, seeds: list[int]) -> list[Source]:
    sources = []
    for seed in seeds:
        path = folder / f"s{seed}.npy"
        path.write_bytes(stamps.cube_to_bytes(cube(seed)))
        sources.append(Source(f"stamps/s{seed}.npy", path))
    return sources


def per_file(sources: list[Source]) -> np.ndarray:
    cubes = np.empty((len(sources), 3, SIZE, SIZE), dtype=np.float32)
    for i, source in enumerate(sources):
        cubes[i] = stamp_store.read_source(source, SIZE)
    return cubes


def served(store, sources: list[Source]) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros((len(sources), 3, SIZE, SIZE), dtype=np.float32)
    missing = store.read_into(sources, out)
    return out, missing


def rewrite(source: Source, seed: int) -> None:
    """Replace a per-subject file's pixels, with a modification time that surely differs."""
    before = os.stat(source.path).st_mtime_ns
    source.path.write_bytes(stamps.cube_to_bytes(cube(seed)))
    os.utime(source.path, ns=(before + 10**9, before + 10**9))


@pytest.fixture
def files(tmp_path) -> list[Source]:
    (tmp_path / "files").mkdir()
    return write_sources(tmp_path / "files", list(range(6)))


@pytest.fixture
def store_dir(tmp_path, files) -> Path:
    refresh_store(tmp_path / "store", files, SIZE)
    return tmp_path / "store"


@settings(max_examples=30, deadline=None)
@given(seeds=st.lists(st.integers(0, 50), min_size=1, max_size=12, unique=True),
       picks=st.lists(st.integers(0, 11), max_size=20), data=st.data())
def test_a_store_serves_the_per_subject_bytes_for_any_subset_in_any_order(seeds, picks, data):
    with tempfile.TemporaryDirectory() as tmp:
        sources = write_sources(Path(tmp), seeds)
        refresh_store(Path(tmp) / "store", sources, SIZE)
        asked = [sources[i % len(sources)] for i in picks]
        corrupt = data.draw(st.sets(st.sampled_from(range(len(sources)))))
        cubes_path = next((Path(tmp) / "store").glob("cubes-*.npy"))
        header = len(cubes_path.read_bytes()) - 4 * len(sources) * 3 * SIZE * SIZE
        with open(cubes_path, "r+b") as handle:  # one flipped byte in each corrupt row
            for row in corrupt:
                handle.seek(header + row * 4 * 3 * SIZE * SIZE + 7)
                byte = handle.read(1)
                handle.seek(-1, os.SEEK_CUR)
                handle.write(bytes([byte[0] ^ 0x5A]))
        out, missing = served(open_store(Path(tmp) / "store", SIZE), asked)
        expected_missing = [sources.index(s) in corrupt for s in asked]
        assert missing.tolist() == expected_missing
        kept = ~missing
        assert out[kept].tobytes() == per_file([s for s, m in zip(asked, missing, strict=True)
                                                if not m]).tobytes()


def test_a_rewritten_file_is_never_served_from_the_store(store_dir, files):
    rewrite(files[2], seed=99)
    _, missing = served(open_store(store_dir, SIZE), files)
    assert missing.tolist() == [False, False, True, False, False, False]
    assert not open_store(store_dir, SIZE).is_current(files)


def test_a_subject_the_store_lacks_is_reported_missing(store_dir, tmp_path):
    (tmp_path / "more").mkdir()
    extra = write_sources(tmp_path / "more", [40])
    _, missing = served(open_store(store_dir, SIZE), extra)
    assert missing.tolist() == [True]


def test_a_deleted_file_is_not_served_even_if_the_store_holds_it(store_dir, files):
    files[0].path.unlink()
    _, missing = served(open_store(store_dir, SIZE), files)
    assert missing.tolist() == [True, False, False, False, False, False]


@pytest.mark.parametrize("damage", ["no index", "garbage index", "no cubes", "truncated cubes",
                                    "other size", "columns differ"])
def test_a_store_that_cannot_be_read_is_unusable_with_a_reason(store_dir, damage):
    index_path = store_dir / stamp_store.INDEX
    index = json.loads(index_path.read_text())
    cubes_path = store_dir / index["cubes"]
    if damage == "no index":
        index_path.unlink()
    elif damage == "garbage index":
        index_path.write_text("{not json")
    elif damage == "no cubes":
        cubes_path.unlink()
    elif damage == "truncated cubes":
        cubes_path.write_bytes(cubes_path.read_bytes()[:-100])
    elif damage == "other size":
        index["size"] = SIZE + 2
        index_path.write_text(json.dumps(index))
    else:
        index["crc32"] = index["crc32"][:-1]
        index_path.write_text(json.dumps(index))
    with pytest.raises(StoreUnusable, match=re.escape(str(store_dir))):
        open_store(store_dir, SIZE)


def test_a_refresh_leaves_a_current_store_alone_and_rereads_only_what_changed(
        store_dir, files, tmp_path):
    assert refresh_store(store_dir, files, SIZE).built is False
    (tmp_path / "more").mkdir()
    grown = files + write_sources(tmp_path / "more", [40, 41])
    rewrite(grown[1], seed=77)
    report = refresh_store(store_dir, grown, SIZE)
    assert (report.rows, report.reused, report.read, report.built) == (8, 5, 3, True)
    store = open_store(store_dir, SIZE)
    assert store.is_current(grown)
    out, missing = served(store, grown)
    assert not missing.any()
    assert out.tobytes() == per_file(grown).tobytes()
    # The replaced cubes file is gone; only the one the index names is left.
    assert [p.name for p in store_dir.glob("cubes-*.npy")] == [
        json.loads((store_dir / stamp_store.INDEX).read_text())["cubes"]]


def test_a_refresh_over_a_corrupt_store_rebuilds_it_from_the_files(store_dir, files):
    (store_dir / stamp_store.INDEX).write_text("{not json")
    report = refresh_store(store_dir, files, SIZE)
    assert (report.reused, report.read, report.built) == (0, 6, True)
    out, missing = served(open_store(store_dir, SIZE), files)
    assert not missing.any()
    assert out.tobytes() == per_file(files).tobytes()


def test_an_unreadable_file_is_kept_out_of_the_store_without_failing_the_others(
        tmp_path, files):
    files[3].path.write_bytes(b"not a cube")
    report = refresh_store(tmp_path / "store", files, SIZE)
    assert report.built
    store = open_store(tmp_path / "store", SIZE)
    _, missing = served(store, files)
    assert missing.tolist() == [False, False, False, True, False, False]
    assert store.is_current(files)  # unchanged files: no rebuild on every export
    with pytest.raises(stamps.StampError, match=r"stamps/s3\.npy"):
        stamp_store.read_source(files[3], SIZE)


def test_a_store_refuses_a_stamp_file_listed_twice(tmp_path, files):
    with pytest.raises(ValueError, match="twice"):
        refresh_store(tmp_path / "store", [files[0], files[0]], SIZE)


def test_refreshes_at_once_take_turns_and_leave_one_current_store(tmp_path, files):
    (tmp_path / "more").mkdir()
    grown = files + write_sources(tmp_path / "more", [40, 41])
    barrier = threading.Barrier(4)
    reports, errors = [], []

    def refresh(sources):
        barrier.wait()
        try:
            reports.append(refresh_store(tmp_path / "store", sources, SIZE))
        except Exception as exc:  # a thread cannot raise into the test: kept and checked
            errors.append(exc)

    threads = [threading.Thread(target=refresh, args=(grown if i % 2 else files,))
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(reports) == 4
    store = open_store(tmp_path / "store", SIZE)
    assert store.names in (tuple(s.name for s in files), tuple(s.name for s in grown))
    out, missing = served(store, grown)
    held = [s.name in store.names for s in grown]
    assert missing.tolist() == [not h for h in held]
    assert out[np.array(held)].tobytes() == per_file(
        [s for s, h in zip(grown, held, strict=True) if h]).tobytes()
    assert len(list((tmp_path / "store").glob("cubes-*.npy"))) == 1
