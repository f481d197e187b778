"""The artifact writer on its own: arrays, CSV, manifest, byte-for-byte determinism, the tar,
streaming in chunks, and the checksum check. No database."""

from __future__ import annotations

import csv
import io
import json
import tarfile
import zipfile

import numpy as np
import pytest

from aggregation.labelsets import artifact
from aggregation.labelsets.artifact import SplitTable, verify_artifact, write_archive

SIZE = 51


def cube_of(subject_id: int) -> np.ndarray:
    """A cube that names its subject: every pixel is the id plus the plane; subject 3 has a
    NaN pixel."""
    cube = np.stack([np.full((SIZE, SIZE), subject_id + plane, np.float32) for plane in range(3)])
    if subject_id == 3:
        cube[2, 0, 0] = np.nan
    return cube


class Reader:
    """Reads cubes and records how many it was asked for at a time."""

    def __init__(self):
        self.chunks: list[int] = []

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        self.chunks.append(len(ids))
        return np.stack([cube_of(i) for i in ids.tolist()]) if len(ids) else np.empty(
            (0, 3, SIZE, SIZE), np.float32)


def table(ids, labels, origins, snr=None, p_real=None) -> SplitTable:
    n = len(ids)
    return SplitTable(
        subject_ids=np.array(ids, np.int64),
        external_ids=tuple(f"ext-{i}" for i in ids),
        labels=np.array(labels, np.uint8),
        origins=np.array(origins),
        snr=np.array(snr if snr is not None else [12.5] * n, np.float32),
        p_real=np.array(p_real if p_real is not None else [0.95] * n, np.float32),
    )


SPLITS = {
    "train": table([1, 2, 3, 4], [1, 0, 1, 0], ["ss", "gaia", "injection", "ss"],
                   snr=[10.0, -7.25, np.nan, 3.0], p_real=[0.97, 0.02, np.nan, 0.04]),
    "val": table([5, 6], [1, 0], ["tns", "reliability_cuts"]),
    "test": table([], [], []),
}
DESCRIPTION = {"scenario": "stable", "source": {"run": 7}}


def write(folder, splits=SPLITS, reader=None):
    return artifact.write_artifact(folder, splits, reader or Reader(), stamp_size=SIZE,
                                   description=DESCRIPTION)


def test_each_split_holds_its_arrays_with_the_documented_types(tmp_path):
    write(tmp_path / "set")
    with np.load(tmp_path / "set" / "train.npz") as train:
        assert sorted(train.files) == ["images", "labels", "origins", "p_real", "snr",
                                       "subject_ids"]
        assert train["images"].dtype == np.float32
        assert train["images"].shape == (4, 3, SIZE, SIZE)
        for i, subject_id in enumerate([1, 2, 3, 4]):
            np.testing.assert_array_equal(train["images"][i], cube_of(subject_id))
        assert np.isnan(train["images"][2, 2, 0, 0])  # NaN stays NaN
        assert train["labels"].dtype == np.uint8
        assert train["labels"].tolist() == [1, 0, 1, 0]
        assert train["subject_ids"].dtype == np.int64
        assert train["origins"].dtype.kind == "U"
        assert train["origins"].tolist() == ["ss", "gaia", "injection", "ss"]
        assert train["snr"].dtype == np.float32
        assert np.isnan(train["snr"][2])
        assert np.isnan(train["p_real"][2])
    with np.load(tmp_path / "set" / "test.npz") as test:
        assert test["images"].shape == (0, 3, SIZE, SIZE)


def test_the_manifest_counts_split_class_and_origin_and_lists_every_file(tmp_path):
    manifest = write(tmp_path / "set")
    on_disk = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["scenario"] == "stable"
    assert manifest["source"] == {"run": 7}
    assert manifest["format_version"] == artifact.FORMAT_VERSION
    assert manifest["counts"]["train"] == {
        "total": 4,
        "real": {"total": 2, "by_origin": {"injection": 1, "ss": 1}},
        "bogus": {"total": 2, "by_origin": {"gaia": 1, "ss": 1}},
    }
    assert manifest["counts"]["test"]["total"] == 0
    assert manifest["images_with_nan"] == {"train": 1, "val": 0, "test": 0}
    assert set(manifest["files"]) == {"train.npz", "val.npz", "test.npz", "labels.csv"}
    assert manifest["files"]["labels.csv"] == artifact.file_digest(tmp_path / "set" /
                                                                  "labels.csv")


def test_labels_csv_has_one_row_per_subject_with_nan_as_empty(tmp_path):
    write(tmp_path / "set")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "set" / "labels.csv").read_text())))
    assert [r["subject_id"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows[1] == {"split": "train", "subject_id": "2", "external_id": "ext-2",
                       "label": "bogus", "origin": "gaia", "snr": "-7.25", "p_real": "0.02"}
    assert (rows[2]["snr"], rows[2]["p_real"]) == ("", "")
    assert rows[4]["split"] == "val"


def test_the_same_inputs_give_the_same_bytes(tmp_path):
    write(tmp_path / "a")
    write(tmp_path / "b")
    for name in artifact.ARTIFACT_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_zip_entries_carry_no_clock_time(tmp_path):
    write(tmp_path / "set")
    with zipfile.ZipFile(tmp_path / "set" / "train.npz") as archive:
        assert {entry.date_time for entry in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert {entry.compress_type for entry in archive.infolist()} == {zipfile.ZIP_STORED}


def test_images_are_read_and_written_a_chunk_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(artifact, "CHUNK_SUBJECTS", 3)
    splits = {**SPLITS, "train": table(list(range(1, 11)), [1, 0] * 5, ["ss"] * 10)}
    reader = Reader()
    progress = []
    artifact.write_artifact(tmp_path / "set", splits, reader, stamp_size=SIZE,
                            description=DESCRIPTION, on_progress=progress.append)
    assert reader.chunks == [3, 3, 3, 1, 2]  # train in threes, then val; test is empty
    assert progress == reader.chunks
    with np.load(tmp_path / "set" / "train.npz") as train:
        np.testing.assert_array_equal(train["images"][9], cube_of(10))


def test_a_reader_returning_the_wrong_shape_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="stamps of shape"):
        write(tmp_path / "set", reader=lambda ids: np.zeros((len(ids), 3, 10, 10), np.float32))


def test_the_archive_is_a_deterministic_tar_of_the_folder(tmp_path):
    write(tmp_path / "set")
    first = write_archive(tmp_path / "set", tmp_path / "one.tar", "label-set-0001")
    second = write_archive(tmp_path / "set", tmp_path / "two.tar", "label-set-0001")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    assert first == artifact.file_digest(tmp_path / "one.tar") == second
    with tarfile.open(tmp_path / "one.tar") as tar:  # plain tar: no compression
        members = tar.getmembers()
        assert [m.name for m in members] == ["label-set-0001"] + [
            f"label-set-0001/{name}" for name in sorted(artifact.ARTIFACT_FILES)]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
            (0, 0, 0, "", "")}
        for member in members[1:]:
            name = member.name.split("/")[1]
            assert tar.extractfile(member).read() == (tmp_path / "set" / name).read_bytes()


def test_verify_finds_nothing_wrong_with_a_fresh_artifact(tmp_path):
    write(tmp_path / "set")
    assert verify_artifact(tmp_path / "set") == []


def test_verify_catches_a_flipped_byte(tmp_path):
    write(tmp_path / "set")
    path = tmp_path / "set" / "val.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    problems = verify_artifact(tmp_path / "set")
    assert len(problems) == 1
    assert problems[0].startswith("val.npz has sha256")


def test_verify_catches_missing_truncated_and_unlisted_files(tmp_path):
    write(tmp_path / "set")
    size = (tmp_path / "set" / "labels.csv").stat().st_size
    (tmp_path / "set" / "test.npz").unlink()
    with open(tmp_path / "set" / "labels.csv", "ab") as handle:
        handle.write(b"extra\n")
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    del manifest["files"]["train.npz"]
    (tmp_path / "set" / "manifest.json").write_text(json.dumps(manifest))
    assert sorted(verify_artifact(tmp_path / "set")) == [
        f"labels.csv has {size + 6} bytes, the manifest says {size}",
        "test.npz is missing",
        "train.npz is not in the manifest",
    ]


def test_verify_reports_a_missing_or_broken_manifest(tmp_path):
    write(tmp_path / "set")
    (tmp_path / "set" / "manifest.json").write_text("{not json")
    assert verify_artifact(tmp_path / "set")[0].startswith("manifest.json is unreadable")
    (tmp_path / "set" / "manifest.json").unlink()
    assert verify_artifact(tmp_path / "set") == ["manifest.json is missing"]
