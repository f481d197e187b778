"""Hostile ingest input (issue 16.1-16.3): path traversal, text the database refuses,
cut-short containers, link loops and decompression bombs are each rejected with a reason,
and never cost the good records beside them."""

from __future__ import annotations

import csv
import io
import os
import tracemalloc
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

import fastavro
import numpy as np
import pytest
from astropy.io import fits

from labeling import services
from labeling.ingest import IngestLimits, read_path
from labeling.models import Subject
from labeling.records import Rejection, SubjectRecord
from tests.conftest import make_record
from tests.fixtures import inputs
from tests.fixtures.inputs import TEST_LIMITS, external_id
from tests.labeling.test_ingest_command import ingest

MiB = 2**20


def read_all(path: Path, limits: IngestLimits = TEST_LIMITS, fmt: str = "auto") -> list:
    return list(read_path(path, fmt, limits=limits))


def records_and_rejections(items) -> tuple[list[SubjectRecord], list[Rejection]]:
    return ([item for item in items if isinstance(item, SubjectRecord)],
            [item for item in items if isinstance(item, Rejection)])


def rewrite_manifest(path: Path, change) -> None:
    """Apply `change(index, row)` to every row of a manifest CSV."""
    with path.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    for index, row in enumerate(rows):
        change(index, row)
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# --- 16.1 manifest path traversal ------------------------------------------------------------


def _outside_stamp(tmp_path: Path) -> Path:
    secret = tmp_path / "elsewhere" / "secret.npy"
    secret.parent.mkdir()
    np.save(secret, np.ones((51, 51), dtype=np.float32))
    return secret


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_manifest_paths_outside_its_folder_are_rejected(tmp_path: Path, how: str) -> None:
    secret = _outside_stamp(tmp_path)
    manifest = inputs.write_zooniverse_manifest(_mkdir(tmp_path / "upload"), 3)
    if how == "symlink":
        link = manifest.parent / "stamps" / "link.npy"
        link.symlink_to(secret)
        location = "stamps/link.npy"
    else:
        location = "../elsewhere/secret.npy" if how == "dotdot" else str(secret)
    rewrite_manifest(manifest, lambda i, row: row.update(template=location) if i == 1 else None)

    records, rejections = records_and_rejections(read_all(manifest))

    assert [r.external_id for r in records] == [external_id(0), external_id(2)]
    assert [r.source for r in rejections] == ["manifest.csv[1]"]
    assert "outside the manifest's folder and INGEST_ALLOWED_ROOTS" in rejections[0].reason


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_manifest_paths_inside_an_allowed_root_are_read(tmp_path: Path) -> None:
    secret = _outside_stamp(tmp_path)
    manifest = inputs.write_zooniverse_manifest(_mkdir(tmp_path / "upload"), 2)
    rewrite_manifest(manifest, lambda i, row: row.update(template=str(secret)))
    limits = IngestLimits(max_stamp_side=512, max_decompressed_bytes=64 * MiB,
                          allowed_roots=(secret.parent,))

    records, rejections = records_and_rejections(read_all(manifest, limits))

    assert not rejections
    assert all(np.all(record.template == 1) for record in records)


def test_the_command_rejects_a_traversing_row_and_serves_nothing_from_outside(
    workflow, tmp_path, settings
):
    secret = _outside_stamp(tmp_path)
    manifest = inputs.write_zooniverse_manifest(_mkdir(tmp_path / "upload"), 2)
    rewrite_manifest(manifest, lambda i, row: row.update(science=f"../elsewhere/{secret.name}")
                     if i == 0 else None)
    settings.INGEST_ALLOWED_ROOTS = []

    code, out = ingest(manifest)

    assert code == 2
    assert "manifest.csv[0]: " in out
    assert "outside the manifest's folder" in out
    assert list(Subject.objects.values_list("external_id", flat=True)) == [external_id(1)]


# --- 16.2 reject, never crash ---------------------------------------------------------------


LONG = "x" * 101


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("subject_id", "17\x0042", "external id contains a NUL character"),
        ("origin", "tns\x00", "origin contains a NUL character"),
        ("#comment", "a\x00b", "metadata '#comment' contains a NUL character"),
        ("subject_id", LONG, "external id is 101 characters long, longer than its 100"),
        ("origin", "o" * 41, "origin is 41 characters long, longer than its 40"),
        ("band", "b" * 9, "band is 9 characters long, longer than its 8"),
    ],
    ids=["nul-id", "nul-origin", "nul-metadata", "long-id", "long-origin", "long-band"],
)
def test_text_the_database_refuses_rejects_only_that_record(
    workflow, tmp_path, column, value, reason
):
    """On PostgreSQL each of these used to abort the batch of 500 with a traceback."""
    manifest = inputs.write_zooniverse_manifest(tmp_path, 3)
    rewrite_manifest(manifest, lambda i, row: row.update({column: value}) if i == 1 else None)
    later = inputs.write_fits_triplet_mef(_mkdir(tmp_path / "later"), 7)  # the next input

    code, out = ingest(manifest, later)

    assert code == 2
    assert f"manifest.csv[1]: {reason}" in out
    assert set(Subject.objects.values_list("external_id", flat=True)) == {
        external_id(0), external_id(2), external_id(7)}


def test_a_non_utf8_file_name_is_rejected_and_later_inputs_still_go_in(workflow, tmp_path):
    good = inputs.write_npz(_mkdir(tmp_path / "good"), 2)
    bad_dir = _mkdir(tmp_path / "bad")
    bad = Path(os.fsdecode(bytes(bad_dir) + b"/caf\xe9.npz"))
    bad.write_bytes(good.read_bytes())
    fits_dir = _mkdir(tmp_path / "fits")
    inputs.write_fits_triplet_mef(fits_dir, 5)
    (fits_dir / os.fsdecode(b"\xff.fits")).write_bytes(b"irrelevant")

    code, out = ingest(bad, fits_dir, good)

    assert code == 2
    assert "caf\\udce9.npz: file name is not valid UTF-8; rename it" in out
    assert "\\udcff.fits: file name is not valid UTF-8; rename it" in out
    assert set(Subject.objects.values_list("external_id", flat=True)) == {
        external_id(0), external_id(1), external_id(5)}


def test_a_directory_holding_only_a_symlink_loop_says_so_and_exits_2(workflow, tmp_path):
    folder = _mkdir(tmp_path / "loop")
    (folder / "loop.fits").symlink_to(folder / "loop.fits")

    code, out = ingest(folder)

    assert code == 2
    assert "loop.fits: not read: a symbolic link loop" in out
    assert "ingested 0 subjects" in out


def test_a_directory_where_nothing_is_read_is_rejected_not_passed(workflow, tmp_path):
    folder = _mkdir(tmp_path / "broken")
    (folder / "gone.fits").symlink_to(tmp_path / "missing.fits")
    (folder / "readme.txt").write_text("no stamps here")

    code, out = ingest(folder, "--format", "fits")

    assert code == 2
    assert "gone.fits: not read: a broken symbolic link" in out


def test_an_empty_archive_is_rejected_not_passed(tmp_path: Path) -> None:
    path = tmp_path / "stamps.npz"
    np.savez(path, **{kind: np.zeros((0, 51, 51), np.float32)
                      for kind in ("template", "science", "difference")})
    assert read_all(path) == [Rejection("stamps.npz", "no npz records found")]


@pytest.mark.parametrize("write", [
    lambda d: inputs.write_ztf_alert(d, 6, gzipped=False),
    lambda d: inputs.write_rubin_alert_container(d, 6),
], ids=["ztf", "rubin"])
def test_a_truncated_container_keeps_its_whole_alerts_and_rejects_the_rest(tmp_path, write):
    """The documented rule: each alert goes in whole or not at all; the cut is one rejection."""
    full = write(tmp_path)
    path = inputs.write_truncated(full, keep_fraction=0.6)

    records, rejections = records_and_rejections(read_all(path))

    complete = {r.external_id: r for r in records_and_rejections(read_all(full))[0]}
    assert 0 < len(records) < 6
    for record in records:  # nothing half-read: each is identical to its complete self
        for mine, whole in zip(record.stamps(), complete[record.external_id].stamps(),
                               strict=True):
            np.testing.assert_array_equal(mine, whole)
    assert rejections[-1].source == path.name
    assert rejections[-1].reason.startswith(
        f"container truncated or corrupt after {len(records) + len(rejections) - 1} whole")


# --- 16.3 memory and size caps ----------------------------------------------------------------


def _npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        stream, {"descr": dtype, "fortran_order": False, "shape": shape})
    return stream.getvalue()


def _write_zip_bomb(path: Path, megabytes: int) -> Path:
    """An NPZ whose stamp arrays decompress to `megabytes` MiB of zeros each, written in
    chunks so the test itself never holds them."""
    count = megabytes * MiB // (51 * 51 * 4)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for kind in ("template", "science", "difference"):
            with archive.open(f"{kind}.npy", "w", force_zip64=True) as member:
                member.write(_npy_header((count, 51, 51)))
                chunk = bytes(MiB)
                for _ in range(count * 51 * 51 * 4 // MiB):
                    member.write(chunk)
                member.write(bytes(count * 51 * 51 * 4 % MiB))
        archive.writestr("diaSourceId.npy", _npy_header((count,), "<i8") + bytes(8 * count))
    return path


def test_a_small_npz_that_would_decompress_huge_is_rejected_before_decompressing(tmp_path):
    path = _write_zip_bomb(tmp_path / "bomb.npz", megabytes=40)
    assert path.stat().st_size < MiB  # 120 MiB of zeros in a few hundred kB
    limits = IngestLimits(max_stamp_side=512, max_decompressed_bytes=16 * MiB)

    tracemalloc.start()
    items = read_all(path, limits)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert len(items) == 1
    assert "over the 16,777,216-byte cap (INGEST_MAX_DECOMPRESSED_BYTES)" in items[0].reason
    assert peak < 4 * MiB


def test_an_array_header_claiming_gigabytes_is_rejected_before_allocating(tmp_path):
    """A 200-byte member whose .npy header claims 31 GB: the default cap stops it unread."""
    path = tmp_path / "forged.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for kind in ("template", "science", "difference"):
            archive.writestr(f"{kind}.npy", _npy_header((3_000_000, 51, 51)) + bytes(16))
    limits = IngestLimits(max_stamp_side=512, max_decompressed_bytes=512 * MiB)

    tracemalloc.start()
    items = read_all(path, limits)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert len(items) == 1
    assert "INGEST_MAX_DECOMPRESSED_BYTES" in items[0].reason
    assert peak < 4 * MiB


def test_a_stamp_over_the_side_cap_is_rejected_naming_the_cap(tmp_path):
    manifest = inputs.write_zooniverse_manifest(tmp_path, 2, stamp_format="fits")
    big = tmp_path / "stamps" / "big.fits"
    fits.PrimaryHDU(np.zeros((600, 40), dtype=np.float32)).writeto(big)
    rewrite_manifest(manifest, lambda i, row: row.update(science="stamps/big.fits")
                     if i == 0 else None)

    records, rejections = records_and_rejections(read_all(manifest))

    assert [r.external_id for r in records] == [external_id(1)]
    assert "600x40 pixels exceed the 512-pixel cap (INGEST_MAX_STAMP_SIDE)" in rejections[0].reason


def test_a_gzip_bomb_cutout_rejects_only_its_alert(tmp_path):
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(compressor.compress(bytes(MiB)) for _ in range(40)) + compressor.flush()
    alerts = [inputs.ztf_alert(0), inputs.ztf_alert(1)]
    alerts[1]["cutoutScience"]["stampData"] = bomb
    path = tmp_path / "alerts.avro"
    with path.open("wb") as stream:
        fastavro.writer(stream, fastavro.parse_schema(inputs.ZTF_ALERT_SCHEMA), alerts)
    limits = IngestLimits(max_stamp_side=512, max_decompressed_bytes=16 * MiB)

    records, rejections = records_and_rejections(read_all(path, limits))

    assert [r.external_id for r in records] == [external_id(0)]
    assert "cutoutScience decompresses to more than the 16,777,216-byte cap" in (
        rejections[0].reason)


def test_the_command_takes_its_caps_from_settings(workflow, tmp_path, settings):
    settings.INGEST_MAX_STAMP_SIDE = 40
    code, out = ingest(inputs.write_npz(tmp_path, 2))
    assert code == 2
    assert "51x51 pixels exceed the 40-pixel cap (INGEST_MAX_STAMP_SIDE)" in out


@pytest.mark.postgres
def test_a_record_the_database_refuses_costs_only_itself(workflow):
    """Records that bypass the readers (the simulator's, a script's) meet the database's own
    checks: the batch is retried one by one and only the refused record is rejected."""
    rng = np.random.default_rng(0)
    good = [make_record(f"good-{i}", rng) for i in range(3)]
    refused = replace(make_record("x", rng), external_id="y" * 101)
    subject_set = services.subject_set_attach(workflow=workflow, name="main")

    report = services.subjects_ingest([good[0], refused, *good[1:]], subject_set=subject_set)

    assert report.ingested == 3
    assert [rejection.source for rejection in report.rejected] == [refused.source]
    assert "refused by the database" in report.rejected[0].reason
    assert set(Subject.objects.values_list("external_id", flat=True)) == {
        "good-0", "good-1", "good-2"}


def _deflate_container(path: Path, alerts: list[dict]) -> Path:
    with path.open("wb") as stream:
        fastavro.writer(stream, fastavro.parse_schema(inputs.ZTF_ALERT_SCHEMA), alerts,
                        codec="deflate")
    return path


def test_a_deflate_container_reads_like_a_plain_one(tmp_path):
    alerts = [inputs.ztf_alert(i) for i in range(3)]
    records, rejections = records_and_rejections(
        read_all(_deflate_container(tmp_path / "z.avro", alerts)))
    assert not rejections
    assert [r.external_id for r in records] == [external_id(i) for i in range(3)]


def test_a_deflate_block_that_would_inflate_past_the_cap_is_refused_unread(tmp_path):
    alert = inputs.ztf_alert(0)
    alert["cutoutScience"]["stampData"] = bytes(40 * MiB)  # deflates to about 40 kB
    path = _deflate_container(tmp_path / "bomb.avro", [alert])
    assert path.stat().st_size < MiB
    limits = IngestLimits(max_stamp_side=512, max_decompressed_bytes=16 * MiB)

    tracemalloc.start()
    items = read_all(path, limits)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert len(items) == 1
    assert "container block 0 decompresses to more than the 16,777,216-byte cap" in (
        items[0].reason)
    assert peak < 4 * MiB
