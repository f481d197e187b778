"""The export reads stamps in bulk from the subject sets' stamp stores, and its files are the
same bytes as when every stamp is read from its own file: with a current store, a stale one,
a corrupt one, or none."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core.files.storage import default_storage

from aggregation.labelsets import storage
from aggregation.labelsets.services import ExportOptions, label_set_export
from labeling import selectors as labeling_selectors
from labeling import stamp_store, stamp_store_services, stamps
from labeling.models import Subject
from tests.aggregation.labelsets.conftest import add_injections, labelled_run

pytestmark = pytest.mark.django_db

OPTIONS = ExportOptions(scenario="unstable")


def store_folder(subject_id: int) -> Path:
    subject = Subject.objects.get(pk=subject_id)
    return Path(default_storage.path(
        labeling_selectors.stamp_store_name(subject.project_id, subject.subject_set_id)))


@pytest.fixture
def per_file_reads(monkeypatch) -> list[int]:
    """How many stamps the export reads one file at a time."""
    counts: list[int] = []
    real = labeling_selectors.subject_cubes

    def counting(names, size):
        counts.append(len(names))
        return real(names, size)

    monkeypatch.setattr(labeling_selectors, "subject_cubes", counting)
    return counts


def no_refresh(monkeypatch) -> None:
    monkeypatch.setattr(stamp_store_services, "stamp_stores_refresh", lambda ids: {})


def per_file_manifest(run_id: int, monkeypatch, options: ExportOptions = OPTIONS) -> dict:
    """The manifest (with every file's sha256) of an export that reads no store at all."""
    with monkeypatch.context() as patch:
        patch.setattr(labeling_selectors, "subject_cube_reader",
                      lambda set_ids, size: lambda names: labeling_selectors.subject_cubes(
                          names, size))
        no_refresh(patch)
        return label_set_export(run_id, options).manifest


def _ids(label_set) -> list[int]:
    ids = []
    for split in ("train", "val", "test"):
        with np.load(storage.folder_of(label_set.path) / f"{split}.npz") as data:
            ids += data["subject_ids"].tolist()
    return ids


def flip_row(folder: Path, row: int, size: int) -> None:
    index = json.loads((folder / stamp_store.INDEX).read_text())
    path = folder / index["cubes"]
    row_bytes = 4 * 3 * size * size
    header = path.stat().st_size - row_bytes * len(index["names"])
    with open(path, "r+b") as handle:
        handle.seek(header + row * row_bytes + 100)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_the_export_reads_every_stamp_from_the_store_and_writes_the_same_bytes(
        labelled, monkeypatch, per_file_reads):
    baseline = per_file_manifest(labelled.run.pk, monkeypatch)
    per_file_reads.clear()
    bulk = label_set_export(labelled.run.pk, OPTIONS)
    assert bulk.manifest == baseline  # every file's sha256 and size, the counts, the rest
    assert per_file_reads == []  # the store, refreshed by the export, served every cube


def test_with_injections_mixed_in_both_subject_sets_are_read_in_bulk(
        workflow, monkeypatch, per_file_reads):
    run = labelled_run(workflow, 48)
    add_injections(workflow, 8)
    options = ExportOptions(scenario="unstable", mix_injections=("injections", 0.2))
    baseline = per_file_manifest(run.run.pk, monkeypatch, options)
    per_file_reads.clear()
    assert label_set_export(run.run.pk, options).manifest == baseline
    assert per_file_reads == []


@pytest.mark.parametrize("refresh", [True, False], ids=["refreshed", "not-refreshed"])
def test_a_rewritten_stamp_file_is_exported_as_it_is_now_not_as_the_store_had_it(
        labelled, monkeypatch, per_file_reads, refresh):
    stamp_store_services.stamp_stores_refresh(
        [Subject.objects.get(pk=labelled.subject_ids[0]).subject_set_id])
    exported = _ids(label_set_export(labelled.run.pk, OPTIONS))
    subject = Subject.objects.get(pk=exported[0])
    path = Path(subject.stamps.path)
    before = path.stat().st_mtime_ns
    changed = stamps.cube_from_bytes(path.read_bytes(), 51) + np.float32(1.0)
    path.write_bytes(stamps.cube_to_bytes(changed))
    os.utime(path, ns=(before + 10**9, before + 10**9))
    baseline = per_file_manifest(labelled.run.pk, monkeypatch)
    if not refresh:
        no_refresh(monkeypatch)
    per_file_reads.clear()
    assert label_set_export(labelled.run.pk, OPTIONS).manifest == baseline
    # Refreshed, the store holds the new pixels; not refreshed, that one stamp alone is read
    # from its file.
    assert sum(per_file_reads) == (0 if refresh else 1)


@pytest.mark.parametrize("damage", ["corrupt row", "missing store", "garbage index"])
def test_a_damaged_or_missing_store_falls_back_to_the_files(labelled, monkeypatch,
                                                            per_file_reads, damage):
    baseline = per_file_manifest(labelled.run.pk, monkeypatch)
    stamp_store_services.stamp_stores_refresh(
        [Subject.objects.get(pk=labelled.subject_ids[0]).subject_set_id])
    folder = store_folder(labelled.subject_ids[0])
    exported = _ids(label_set_export(labelled.run.pk, OPTIONS))
    if damage == "corrupt row":
        flip_row(folder, labelled.subject_ids.index(exported[0]), 51)
    elif damage == "missing store":
        shutil.rmtree(folder)
    else:
        (folder / stamp_store.INDEX).write_text("{not json")
    no_refresh(monkeypatch)
    per_file_reads.clear()
    assert label_set_export(labelled.run.pk, OPTIONS).manifest == baseline
    expected = 1 if damage == "corrupt row" else len(exported)
    assert sum(per_file_reads) == expected


def test_a_stamp_name_that_could_leave_the_media_folder_is_never_served_from_a_store():
    names = ["stamps/1/ab/x.npy", "../x.npy", "/etc/passwd", "stamps/../../x.npy"]
    sources = labeling_selectors.stamp_sources(names)
    assert [source is None for source in sources] == [False, True, True, True]
    assert sources[0].path == os.path.join(default_storage.path(""), "stamps/1/ab/x.npy")


def test_a_store_that_cannot_be_written_costs_the_export_nothing(labelled, monkeypatch,
                                                                  per_file_reads):
    baseline = per_file_manifest(labelled.run.pk, monkeypatch)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stamp_store, "refresh_store", disk_full)
    per_file_reads.clear()
    label_set = label_set_export(labelled.run.pk, OPTIONS)
    assert label_set.manifest == baseline
    assert sum(per_file_reads) == len(_ids(label_set))  # every stamp read from its file
