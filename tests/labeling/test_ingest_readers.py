"""Ingest readers (labeling.ingest): every format, good input and bad."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import fastavro
import numpy as np
import pytest
from astropy.io import fits
from lsst.alert.packet import SchemaRegistry

from labeling.ingest import FORMATS, FormatDetectionError, Reader, detect_format, read_path
from labeling.records import STAMP_KINDS, Rejection, SubjectRecord
from labeling.stamps import normalise_triplet
from tests.fixtures.inputs import (
    DEFAULT_SHAPE,
    RUBIN_CUTOUT_SHAPES,
    TEST_LIMITS,
    ZTF_ALERT_SCHEMA,
    ZTF_SHAPE,
    centre_value,
    expected_fields,
    external_id,
    fits_bytes,
    fixture_stamp,
    rubin_alert,
    rubin_schema,
    write_fits_stamp_files,
    write_fits_triplet_mef,
    write_npz,
    write_random_bytes,
    write_rubin_alert_container,
    write_rubin_alert_schemaless,
    write_truncated,
    write_zooniverse_manifest,
    write_ztf_alert,
    ztf_alert,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ALL_FIELDS = ("origin", "snr", "psf_flux", "psf_flux_err", "ra", "dec", "band", "reliability")
RUBIN_FIELDS = ("snr", "psf_flux", "psf_flux_err", "ra", "dec", "band", "reliability")


def _rubin_versions(*, with_science_cutout: bool) -> list[str]:
    """The alert schema versions lsst-alert-packet ships (6.0 and earlier lack cutoutScience)."""
    registry = SchemaRegistry.all_schemas_from_filesystem()
    versions = sorted(registry.known_versions, key=lambda v: tuple(map(int, v.split("."))))
    return [
        version
        for version in versions
        if with_science_cutout
        == any(
            f["name"] == "cutoutScience"
            for f in registry.get_by_version(version).definition["fields"]
        )
    ]


RUBIN_VERSIONS_WITH_SCIENCE = _rubin_versions(with_science_cutout=True)
RUBIN_VERSIONS_WITHOUT_SCIENCE = _rubin_versions(with_science_cutout=False)

# A truncated FITS file makes astropy warn about the header it could not parse.
ignore_astropy_warnings = pytest.mark.filterwarnings(
    "ignore::astropy.utils.exceptions.AstropyUserWarning"
)


def read_all(path: Path, fmt: str = "auto", origin: str | None = None) -> list:
    return list(read_path(path, fmt, origin, limits=TEST_LIMITS))


def split(items: Iterable) -> tuple[list[SubjectRecord], list[Rejection]]:
    items = list(items)
    records = [item for item in items if isinstance(item, SubjectRecord)]
    rejections = [item for item in items if isinstance(item, Rejection)]
    assert len(records) + len(rejections) == len(items)
    return records, rejections


def only_rejection(items: list) -> Rejection:
    assert len(items) == 1, items
    assert isinstance(items[0], Rejection), items[0]
    return items[0]


def assert_fixture_record(
    record: SubjectRecord,
    index: int,
    shapes: Iterable[tuple[int, int]] = (DEFAULT_SHAPE,) * 3,
    fields: Iterable[str] = ALL_FIELDS,
) -> None:
    """The record carries exactly what the fixture writers stored for record `index`."""
    expected = expected_fields(index)
    assert record.external_id == external_id(index)
    for name in fields:
        assert getattr(record, name) == expected[name], name
    for kind, stamp, shape in zip(STAMP_KINDS, record.stamps(), shapes, strict=True):
        np.testing.assert_array_equal(stamp, fixture_stamp(index, kind, shape), err_msg=kind)


# --- the package as a whole ----------------------------------------------------------------


@pytest.mark.parametrize("module", ["labeling.stamps", "labeling.ingest", "tests.fixtures.inputs"])
def test_pure_modules_import_neither_django_nor_celery(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('django', 'celery')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_registry_has_one_reader_per_format() -> None:
    assert set(FORMATS) == {"npz", "fits", "rubin-avro", "ztf-avro", "zooniverse-manifest"}
    for name, reader in FORMATS.items():
        assert isinstance(reader, Reader)
        assert reader.format_name == name


GOOD_INPUTS: dict[str, Callable[[Path], Path]] = {
    "npz": lambda d: write_npz(d, 3),
    "fits": lambda d: write_fits_triplet_mef(d, 0),
    "rubin-avro": lambda d: write_rubin_alert_container(d, 2),
    "ztf-avro": lambda d: write_ztf_alert(d, 2),
    "zooniverse-manifest": lambda d: write_zooniverse_manifest(d, 3),
}


@pytest.mark.parametrize("fmt", GOOD_INPUTS)
def test_origin_argument_overrides_every_record(tmp_path: Path, fmt: str) -> None:
    records, rejections = split(read_all(GOOD_INPUTS[fmt](tmp_path), origin="injection"))
    assert not rejections
    assert records
    assert {record.origin for record in records} == {"injection"}


@pytest.mark.parametrize("fmt", GOOD_INPUTS)
def test_every_record_read_normalises(tmp_path: Path, fmt: str) -> None:
    records, rejections = split(read_all(GOOD_INPUTS[fmt](tmp_path)))
    assert not rejections
    for index, record in enumerate(records):
        cube = normalise_triplet(record, 51).cube
        centres = [cube[plane, 25, 25] for plane in range(3)]
        assert centres == [centre_value(index, kind) for kind in STAMP_KINDS]


@pytest.mark.parametrize("fmt", GOOD_INPUTS)
@pytest.mark.parametrize("suffix", [".npz", ".fits", ".avro", ".csv", ".bin"])
def test_random_bytes_give_one_rejection_for_the_file(
    tmp_path: Path, fmt: str, suffix: str
) -> None:
    path = write_random_bytes(tmp_path, f"corrupt{suffix}")
    rejection = only_rejection(read_all(path, fmt))
    assert rejection.source == path.name
    assert rejection.reason


@ignore_astropy_warnings
@pytest.mark.parametrize("fmt", GOOD_INPUTS)
def test_truncated_file_ends_in_a_rejection_for_the_file(tmp_path: Path, fmt: str) -> None:
    path = write_truncated(GOOD_INPUTS[fmt](tmp_path), keep_fraction=0.4)
    items = read_all(path, fmt)
    assert isinstance(items[-1], Rejection)
    assert items[-1].source.startswith(path.name)


@pytest.mark.parametrize("fmt", GOOD_INPUTS)
def test_missing_path_is_a_rejection(tmp_path: Path, fmt: str) -> None:
    rejection = only_rejection(read_all(tmp_path / "nowhere.dat", fmt))
    assert "no such file" in rejection.reason


def test_unknown_format_name_is_a_rejection_listing_the_known_ones(tmp_path: Path) -> None:
    path = write_npz(tmp_path, 1)
    rejection = only_rejection(read_all(path, "hdf5"))
    assert "unknown format 'hdf5'" in rejection.reason
    assert "rubin-avro" in rejection.reason


def test_undetectable_file_is_a_rejection_from_read_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some text\n")
    rejection = only_rejection(read_all(path))
    assert rejection.source == "notes.txt"
    assert "unknown input format" in rejection.reason


# --- detect_format -------------------------------------------------------------------------


def _renamed(path: Path, name: str) -> Path:
    return path.rename(path.with_name(name))


DETECTABLE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "npz": (lambda d: write_npz(d, 1), "npz"),
    "npz-by-zip-magic": (lambda d: _renamed(write_npz(d, 1), "stamps.dat"), "npz"),
    "fits-mef": (lambda d: write_fits_triplet_mef(d, 0), "fits"),
    "fits-by-magic": (lambda d: _renamed(write_fits_triplet_mef(d, 0), "triplet.img"), "fits"),
    "fits-gz": (lambda d: write_fits_stamp_files(d, 0, gzipped=True)[0], "fits"),
    "fits-directory": (lambda d: write_fits_stamp_files(d, 0)[0].parent, "fits"),
    "rubin-container": (lambda d: write_rubin_alert_container(d, 1), "rubin-avro"),
    "rubin-wire-header": (
        lambda d: write_rubin_alert_schemaless(d, name="message.bin"),
        "rubin-avro",
    ),
    "rubin-raw-avro": (
        lambda d: write_rubin_alert_schemaless(d, wire_header=False, name="raw.avro"),
        "rubin-avro",
    ),
    "ztf-container": (lambda d: write_ztf_alert(d, 1), "ztf-avro"),
    "manifest": (lambda d: write_zooniverse_manifest(d, 1), "zooniverse-manifest"),
}


@pytest.mark.parametrize("case", DETECTABLE)
def test_detect_format(tmp_path: Path, case: str) -> None:
    write, expected = DETECTABLE[case]
    assert detect_format(write(tmp_path)) == expected


def _other_schema_container(directory: Path) -> Path:
    schema = {"type": "record", "name": "thing", "namespace": "other", "fields": []}
    path = directory / "other.avro"
    with path.open("wb") as stream:
        fastavro.writer(stream, fastavro.parse_schema(schema), [{}])
    return path


def _empty_directory(directory: Path) -> Path:
    empty = directory / "empty"
    empty.mkdir()
    return empty


UNDETECTABLE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "random-bytes": (lambda d: write_random_bytes(d, "blob.dat"), "unknown input format"),
    "text": (lambda d: write_random_bytes(d, "notes.txt", size=0), "unknown input format"),
    "missing": (lambda d: d / "absent.npz", "no such file"),
    "empty-directory": (_empty_directory, "no FITS files"),
    "other-avro-schema": (_other_schema_container, "neither a Rubin nor a ZTF"),
    "container-header-cut": (
        lambda d: write_truncated(write_ztf_alert(d, 1), keep_fraction=0.01),
        "unreadable header",
    ),
}


@pytest.mark.parametrize("case", UNDETECTABLE)
def test_detect_format_raises_a_clear_error(tmp_path: Path, case: str) -> None:
    write, message = UNDETECTABLE[case]
    with pytest.raises(FormatDetectionError, match=message):
        detect_format(write(tmp_path))


# --- NPZ -----------------------------------------------------------------------------------


def test_npz_with_metadata_arrays(tmp_path: Path) -> None:
    records, rejections = split(read_all(write_npz(tmp_path, 3), "npz"))
    assert not rejections
    assert [record.source for record in records] == [f"stamps.npz[{i}]" for i in range(3)]
    for index, record in enumerate(records):
        assert_fixture_record(record, index)
        assert record.metadata == {"visit": 7000 + index}


def test_npz_with_csv_sidecar(tmp_path: Path) -> None:
    records, rejections = split(read_all(write_npz(tmp_path, 2, metadata="csv"), "npz"))
    assert not rejections
    for index, record in enumerate(records):
        assert_fixture_record(record, index)
        assert record.metadata == {"notes": f"stamp {index}"}


def test_npz_records_without_external_id_are_rejected_not_invented(tmp_path: Path) -> None:
    path = write_npz(tmp_path, 2, with_external_id=False)
    records, rejections = split(read_all(path, "npz"))
    assert not records
    assert [rejection.source for rejection in rejections] == ["stamps.npz[0]", "stamps.npz[1]"]
    assert all("no external id" in rejection.reason for rejection in rejections)


def test_npz_without_any_metadata_rejects_every_record(tmp_path: Path) -> None:
    records, rejections = split(read_all(write_npz(tmp_path, 2, metadata="none"), "npz"))
    assert not records
    assert len(rejections) == 2


def test_npz_with_mismatched_counts_is_rejected_whole(tmp_path: Path) -> None:
    path = write_npz(tmp_path, 3, counts={"science": 2})
    rejection = only_rejection(read_all(path, "npz"))
    assert rejection.source == "stamps.npz"
    assert "template 3, science 2, difference 3" in rejection.reason


def test_npz_with_3d_stamps_is_rejected_whole(tmp_path: Path) -> None:
    rejection = only_rejection(read_all(write_npz(tmp_path, 2, stamp_ndim=3), "npz"))
    assert "(N, H, W)" in rejection.reason


def test_npz_all_nan_stamp_rejects_only_that_record(tmp_path: Path) -> None:
    all_nan = np.full(DEFAULT_SHAPE, np.nan, dtype=np.float32)
    items = read_all(write_npz(tmp_path, 3, stamps={(1, "science"): all_nan}), "npz")
    assert isinstance(items[0], SubjectRecord)
    assert isinstance(items[2], SubjectRecord)
    assert items[1] == Rejection("stamps.npz[1]", "science stamp is entirely NaN")


def test_npz_infinite_pixel_rejects_the_record(tmp_path: Path) -> None:
    stamp = fixture_stamp(0, "difference")
    stamp[3, 3] = np.inf
    rejection = only_rejection(read_all(write_npz(tmp_path, 1, stamps={(0, "difference"): stamp})))
    assert rejection.source == "stamps.npz[0]"
    assert "inf" in rejection.reason


def test_npz_without_a_stamp_array_is_rejected_whole(tmp_path: Path) -> None:
    path = tmp_path / "partial.npz"
    np.savez(path, template=np.zeros((1, 5, 5)), science=np.zeros((1, 5, 5)))
    rejection = only_rejection(read_all(path))
    assert "no difference array" in rejection.reason


def test_npz_metadata_array_of_wrong_length_is_rejected_whole(tmp_path: Path) -> None:
    path = tmp_path / "bad_metadata.npz"
    stack = np.ones((2, 5, 5))
    np.savez(path, template=stack, science=stack, difference=stack, snr=np.ones(3))
    rejection = only_rejection(read_all(path))
    assert "'snr' has shape (3,), expected (2,)" in rejection.reason


def test_npz_sidecar_with_wrong_row_count_is_rejected_whole(tmp_path: Path) -> None:
    path = write_npz(tmp_path, 2, metadata="csv")
    csv_path = path.with_suffix(".csv")
    csv_path.write_text("\n".join(csv_path.read_text().splitlines()[:2]) + "\n")
    rejection = only_rejection(read_all(path))
    assert "stamps.csv has 1 rows for 2 stamps" in rejection.reason


def test_single_npy_named_npz_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "lonely.npz"
    with path.open("wb") as stream:
        np.save(stream, np.zeros((1, 5, 5)))
    assert "not an .npz" in only_rejection(read_all(path)).reason


# --- FITS ----------------------------------------------------------------------------------


def test_fits_multi_extension_assigns_stamps_by_extension_name(tmp_path: Path) -> None:
    shapes = ((41, 41), (45, 37), (63, 63))
    path = write_fits_triplet_mef(tmp_path, 1, shapes=shapes)
    records, rejections = split(read_all(path, "fits"))
    assert not rejections
    assert_fixture_record(records[0], 1, shapes)
    assert records[0].source == path.name


def test_fits_origin_comes_from_rborigin_not_the_standard_origin_keyword(tmp_path: Path) -> None:
    (record,) = read_all(write_fits_triplet_mef(tmp_path, 1))
    assert record.origin == expected_fields(1)["origin"]


def test_fits_multi_extension_without_names_uses_the_first_three_images(tmp_path: Path) -> None:
    path = write_fits_triplet_mef(tmp_path, 2, named_extensions=False)
    (record,) = read_all(path)
    assert_fixture_record(record, 2)


def test_fits_multi_extension_missing_a_named_stamp_is_rejected(tmp_path: Path) -> None:
    path = write_fits_triplet_mef(tmp_path, 0, omit=["science"])
    assert only_rejection(read_all(path)).reason == "missing science stamp"


def test_fits_with_two_unnamed_images_is_rejected(tmp_path: Path) -> None:
    path = write_fits_triplet_mef(tmp_path, 0, named_extensions=False, omit=["difference"])
    assert "found 2 image HDU(s)" in only_rejection(read_all(path)).reason


def test_fits_3d_stamp_is_rejected(tmp_path: Path) -> None:
    cube = np.zeros((2, 51, 51), dtype=np.float32)
    path = write_fits_triplet_mef(tmp_path, 0, stamps={(0, "template"): cube})
    assert "template stamp must be 2-D" in only_rejection(read_all(path)).reason


def test_fits_all_nan_stamp_is_rejected(tmp_path: Path) -> None:
    all_nan = np.full(DEFAULT_SHAPE, np.nan, dtype=np.float32)
    path = write_fits_triplet_mef(tmp_path, 0, stamps={(0, "difference"): all_nan})
    assert only_rejection(read_all(path)).reason == "difference stamp is entirely NaN"


def test_fits_multi_extension_without_id_keyword_is_rejected(tmp_path: Path) -> None:
    path = write_fits_triplet_mef(tmp_path, 0, with_external_id=False)
    assert "no external id" in only_rejection(read_all(path)).reason


@pytest.mark.parametrize("gzipped", [False, True])
def test_fits_stamp_files_from_their_directory(tmp_path: Path, gzipped: bool) -> None:
    write_fits_stamp_files(tmp_path, 0, gzipped=gzipped)
    write_fits_stamp_files(tmp_path, 1, gzipped=gzipped)
    records, rejections = split(read_all(tmp_path))
    assert not rejections
    for index, record in enumerate(records):
        assert_fixture_record(record, index)
        assert record.source == f"{external_id(index)}_*.fits"


@pytest.mark.parametrize("kind", STAMP_KINDS)
def test_fits_stamp_file_path_reads_its_whole_triplet(tmp_path: Path, kind: str) -> None:
    paths = dict(zip(STAMP_KINDS, write_fits_stamp_files(tmp_path, 3), strict=True))
    write_fits_stamp_files(tmp_path, 4)
    (record,) = read_all(paths[kind])
    assert_fixture_record(record, 3)


def test_fits_stamp_files_missing_one_reject_that_triplet_only(tmp_path: Path) -> None:
    write_fits_stamp_files(tmp_path, 0)
    write_fits_stamp_files(tmp_path, 1, kinds=("template", "difference"))
    items = read_all(tmp_path)
    assert isinstance(items[0], SubjectRecord)
    assert items[1] == Rejection(f"{external_id(1)}_*.fits", "missing science stamp")


def test_fits_directory_reads_stamp_files_and_multi_extension_files(tmp_path: Path) -> None:
    write_fits_stamp_files(tmp_path, 0)
    write_fits_triplet_mef(tmp_path, 1)
    records, rejections = split(read_all(tmp_path))
    assert not rejections
    assert sorted(record.external_id for record in records) == [external_id(0), external_id(1)]


def test_fits_directory_rejects_a_corrupt_file_and_reads_the_rest(tmp_path: Path) -> None:
    write_fits_triplet_mef(tmp_path, 0)
    write_random_bytes(tmp_path, "broken.fits")
    records, rejections = split(read_all(tmp_path))
    assert [record.external_id for record in records] == [external_id(0)]
    assert [rejection.source for rejection in rejections] == ["broken.fits"]
    assert "not readable FITS" in rejections[0].reason


# --- Rubin alert packets -------------------------------------------------------------------


@pytest.mark.parametrize("version", RUBIN_VERSIONS_WITH_SCIENCE)
def test_rubin_container_of_each_schema_version(tmp_path: Path, version: str) -> None:
    path = write_rubin_alert_container(tmp_path, 2, schema_version=version)
    records, rejections = split(read_all(path))
    assert not rejections
    for index, record in enumerate(records):
        assert_fixture_record(record, index, RUBIN_CUTOUT_SHAPES, RUBIN_FIELDS)
        assert record.origin == ""
        assert record.source == f"{path.name}[{index}]"
        assert record.metadata["schema_version"] == version
        assert record.metadata["schema_version_from"] == "container"
        assert record.metadata["diaObjectId"] == 9_000_000 + index


def test_rubin_cutouts_differ_in_size_and_keep_their_shapes(tmp_path: Path) -> None:
    path = write_rubin_alert_container(tmp_path, 1, schema_version="9.0")
    (record,) = read_all(path)
    assert [stamp.shape for stamp in record.stamps()] == list(RUBIN_CUTOUT_SHAPES)
    triplet = normalise_triplet(record, 51)
    assert triplet.original_shapes == RUBIN_CUTOUT_SHAPES


def test_rubin_cutout_in_the_primary_hdu(tmp_path: Path) -> None:
    path = write_rubin_alert_container(tmp_path, 1, cutout_in_extension=False)
    (record,) = read_all(path)
    assert_fixture_record(record, 0, RUBIN_CUTOUT_SHAPES, RUBIN_FIELDS)


def test_rubin_missing_cutout_rejection_names_it(tmp_path: Path) -> None:
    path = write_rubin_alert_container(tmp_path, 3, missing_cutouts={1: ["difference"]})
    items = read_all(path)
    assert isinstance(items[0], SubjectRecord)
    assert isinstance(items[2], SubjectRecord)
    assert items[1] == Rejection(
        f"{path.name}[1]", "cutout missing (null or absent): cutoutDifference"
    )


@pytest.mark.parametrize("version", RUBIN_VERSIONS_WITHOUT_SCIENCE)
def test_rubin_versions_without_a_science_cutout_are_rejected_naming_it(
    tmp_path: Path, version: str
) -> None:
    path = write_rubin_alert_container(tmp_path, 1, schema_version=version)
    assert "cutoutScience" in only_rejection(read_all(path)).reason


def _write_rubin_alerts(path: Path, alerts: list[dict], version: str = "7.3") -> Path:
    with path.open("wb") as stream:
        rubin_schema(version).store_alerts(stream, alerts)
    return path


def test_rubin_cutout_that_is_not_fits_rejects_the_alert(tmp_path: Path) -> None:
    broken = rubin_alert(1)
    broken["cutoutTemplate"] = b"not a FITS file at all"
    path = _write_rubin_alerts(tmp_path / "alerts.avro", [rubin_alert(0), broken])
    records, rejections = split(read_all(path))
    assert [record.external_id for record in records] == [external_id(0)]
    assert rejections[0].source == "alerts.avro[1]"
    assert rejections[0].reason.startswith("cutoutTemplate is not readable FITS")


def test_rubin_cutout_without_a_2d_image_rejects_the_alert(tmp_path: Path) -> None:
    alert = rubin_alert(0)
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((2, 5, 5)))]).writeto(buffer)
    alert["cutoutScience"] = buffer.getvalue()
    path = _write_rubin_alerts(tmp_path / "alerts.avro", [alert])
    reason = only_rejection(read_all(path)).reason
    assert "cutoutScience has no 2-D image HDU" in reason
    assert "(2, 5, 5)" in reason


def test_rubin_all_nan_cutout_rejects_the_alert(tmp_path: Path) -> None:
    all_nan = np.full((41, 41), np.nan, dtype=np.float32)
    path = write_rubin_alert_container(tmp_path, 1, stamps={(0, "template"): all_nan})
    assert only_rejection(read_all(path)).reason == "template stamp is entirely NaN"


@pytest.mark.parametrize("version", ["7.3", "11.1"])
def test_rubin_schemaless_message_with_wire_header(tmp_path: Path, version: str) -> None:
    path = write_rubin_alert_schemaless(tmp_path, 2, schema_version=version, name="msg.bin")
    (record,) = read_all(path)
    assert_fixture_record(record, 2, RUBIN_CUTOUT_SHAPES, RUBIN_FIELDS)
    assert record.source == "msg.bin"
    assert record.metadata["schema_version"] == version
    assert record.metadata["schema_version_from"] == "wire-header"


@pytest.mark.parametrize("version", ["7.3", "8.0", "11.1"])
def test_rubin_raw_schemaless_message_finds_its_version_by_trial(
    tmp_path: Path, version: str
) -> None:
    path = write_rubin_alert_schemaless(tmp_path, 1, schema_version=version, wire_header=False)
    (record,) = read_all(path)
    assert_fixture_record(record, 1, RUBIN_CUTOUT_SHAPES, RUBIN_FIELDS)
    assert record.metadata["schema_version"] == version
    assert record.metadata["schema_version_from"] == "trial-parse"


@pytest.mark.parametrize(
    ("wire_header", "message"),
    [(True, "does not decode with schema 11.1"), (False, "any known schema version")],
    ids=["wire-header", "raw"],
)
def test_rubin_schemaless_message_with_trailing_bytes_is_rejected(
    tmp_path: Path, wire_header: bool, message: str
) -> None:
    path = write_rubin_alert_schemaless(tmp_path, schema_version="11.1", wire_header=wire_header)
    path.write_bytes(path.read_bytes() + b"\x02\x04")
    assert message in only_rejection(read_all(path, "rubin-avro")).reason


def test_rubin_wire_header_naming_the_wrong_version_is_rejected(tmp_path: Path) -> None:
    path = write_rubin_alert_schemaless(tmp_path, schema_version="11.1", schema_id=703)
    reason = only_rejection(read_all(path)).reason
    assert "schema 7.3 named by its header (schema id 703)" in reason


def test_rubin_random_avro_is_rejected_naming_the_versions_tried(tmp_path: Path) -> None:
    path = write_random_bytes(tmp_path, "alert.avro")
    reason = only_rejection(read_all(path, "rubin-avro")).reason
    assert "any known schema version" in reason
    assert "11.1" in reason


def test_rubin_reader_refuses_a_ztf_container(tmp_path: Path) -> None:
    reason = only_rejection(read_all(write_ztf_alert(tmp_path, 1), "rubin-avro")).reason
    assert "'ztf.alert' is not a lsst alert schema" in reason


def test_rubin_container_cut_short_yields_what_it_can_then_a_rejection(tmp_path: Path) -> None:
    path = write_truncated(write_rubin_alert_container(tmp_path, 3), keep_fraction=0.7)
    items = read_all(path)
    assert all(isinstance(item, SubjectRecord) for item in items[:-1])
    assert items[-1].source == path.name
    assert items[-1].reason.startswith("container truncated or corrupt after")


# --- ZTF alert packets ---------------------------------------------------------------------


ZTF_FIELDS = ("ra", "dec", "band", "reliability")


@pytest.mark.parametrize("gzipped", [True, False], ids=["gzipped", "plain-fits"])
def test_ztf_alerts(tmp_path: Path, gzipped: bool) -> None:
    path = write_ztf_alert(tmp_path, 3, gzipped=gzipped)
    records, rejections = split(read_all(path))
    assert not rejections
    for index, record in enumerate(records):
        assert_fixture_record(record, index, (ZTF_SHAPE,) * 3, ZTF_FIELDS)
        assert record.snr == pytest.approx(expected_fields(index)["snr"], rel=1e-6)
        assert record.psf_flux is None
        assert record.origin == ""
        assert record.metadata["objectId"] == f"ZTF24aaa{index:05d}"
        assert record.metadata["magpsf"] == 18.5 + index
        assert record.metadata["sigmapsf"] == pytest.approx(1.0857 / (6.0 + index), rel=1e-6)
        assert record.metadata["fid"] == index % 3 + 1


def test_ztf_edge_clipped_stamps_are_kept_and_padded_by_the_normaliser(tmp_path: Path) -> None:
    shapes = ((63, 40), (63, 40), (30, 63))
    (record,) = read_all(write_ztf_alert(tmp_path, 1, cutout_shapes=shapes))
    assert_fixture_record(record, 0, shapes, ZTF_FIELDS)
    triplet = normalise_triplet(record, 63)
    assert triplet.original_shapes == shapes
    assert np.isnan(triplet.cube[0, :, :11]).all()
    assert not np.isnan(triplet.cube[0, :, 11:51]).any()
    assert [triplet.cube[plane, 31, 31] for plane in range(3)] == [
        centre_value(0, kind) for kind in STAMP_KINDS
    ]


def test_ztf_missing_cutout_rejection_names_it(tmp_path: Path) -> None:
    path = write_ztf_alert(tmp_path, 2, missing_cutouts={0: ["template"]})
    items = read_all(path)
    assert items[0] == Rejection(
        f"{path.name}[0]", "cutout missing (null or absent): cutoutTemplate"
    )
    assert isinstance(items[1], SubjectRecord)


def test_ztf_corrupt_gzip_stamp_rejects_the_alert(tmp_path: Path) -> None:
    alert = ztf_alert(0)
    whole = gzip.compress(fits_bytes(fixture_stamp(0, "science")))
    alert["cutoutScience"]["stampData"] = whole[: len(whole) // 2]
    path = tmp_path / "ztf.avro"
    with path.open("wb") as stream:
        fastavro.writer(stream, fastavro.parse_schema(ZTF_ALERT_SCHEMA), [alert])
    assert "cutoutScience is not valid gzip" in only_rejection(read_all(path)).reason


def test_ztf_all_nan_stamp_rejects_the_alert(tmp_path: Path) -> None:
    all_nan = np.full(ZTF_SHAPE, np.nan, dtype=np.float32)
    path = write_ztf_alert(tmp_path, 1, stamps={(0, "difference"): all_nan})
    assert only_rejection(read_all(path)).reason == "difference stamp is entirely NaN"


def test_ztf_reader_refuses_a_rubin_container(tmp_path: Path) -> None:
    path = write_rubin_alert_container(tmp_path, 1)
    reason = only_rejection(read_all(path, "ztf-avro")).reason
    assert "'lsst.v7_3.alert' is not a ztf alert schema" in reason


def test_fits_bytes_helper_round_trips_through_the_gzip_path() -> None:
    image = fixture_stamp(0, "science", (7, 9))
    with fits.open(io.BytesIO(gzip.decompress(fits_bytes(image, gzipped=True)))) as hdus:
        np.testing.assert_array_equal(hdus["IMAGE"].data, image)


# --- Zooniverse-style manifests ------------------------------------------------------------


@pytest.mark.parametrize("stamp_format", ["npy", "fits", "npz"])
def test_manifest_of_each_stamp_file_type(tmp_path: Path, stamp_format: str) -> None:
    path = write_zooniverse_manifest(tmp_path, 3, stamp_format=stamp_format)
    records, rejections = split(read_all(path))
    assert not rejections
    for index, record in enumerate(records):
        assert_fixture_record(record, index)
        assert record.source == f"manifest.csv[{index}]"
        assert record.metadata == {"#comment": f"subject {index}"}


def test_manifest_missing_file_rejects_that_row(tmp_path: Path) -> None:
    path = write_zooniverse_manifest(tmp_path, 3, missing=[(1, "science")])
    items = read_all(path)
    assert isinstance(items[0], SubjectRecord)
    assert isinstance(items[2], SubjectRecord)
    expected = f"science file 'stamps/{external_id(1)}_science.npy' not found"
    assert items[1] == Rejection("manifest.csv[1]", expected)


def test_manifest_missing_npz_bundle_rejects_that_row(tmp_path: Path) -> None:
    path = write_zooniverse_manifest(tmp_path, 2, stamp_format="npz", missing=[(0, "template")])
    items = read_all(path)
    assert items[0] == Rejection(
        "manifest.csv[0]", f"stamps file 'stamps/{external_id(0)}.npz' not found"
    )
    assert isinstance(items[1], SubjectRecord)


def test_manifest_3d_stamp_rejects_that_row(tmp_path: Path) -> None:
    cube = np.zeros((3, 51, 51), dtype=np.float32)
    path = write_zooniverse_manifest(tmp_path, 2, stamps={(0, "difference"): cube})
    items = read_all(path)
    assert items[0].reason == "difference stamp must be 2-D, got shape (3, 51, 51)"
    assert isinstance(items[1], SubjectRecord)


def test_manifest_corrupt_stamp_files_reject_their_rows_only(tmp_path: Path) -> None:
    path = write_zooniverse_manifest(tmp_path, 3)
    write_random_bytes(tmp_path / "stamps", f"{external_id(0)}_template.npy")
    write_random_bytes(tmp_path / "stamps", f"{external_id(2)}_science.npy")
    records, rejections = split(read_all(path))
    assert [record.external_id for record in records] == [external_id(1)]
    assert [rejection.source for rejection in rejections] == ["manifest.csv[0]", "manifest.csv[2]"]
    assert all("not a readable .npy file" in rejection.reason for rejection in rejections)


def test_manifest_stamp_of_unsupported_type_rejects_the_row(tmp_path: Path) -> None:
    (tmp_path / "t.png").write_bytes(b"png")
    path = tmp_path / "manifest.csv"
    path.write_text("subject_id,template,science,difference\n1,t.png,t.png,t.png\n")
    assert "neither a .npy nor a FITS file" in only_rejection(read_all(path)).reason


def test_manifest_without_stamp_columns_is_rejected_whole(tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    path.write_text("subject_id,template,science\n1,a.npy,b.npy\n")
    assert "needs template, science and difference" in only_rejection(read_all(path)).reason


def test_manifest_row_with_surplus_values_is_rejected_whole(tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    path.write_text("subject_id,stamps\n1,a.npz,extra\n")
    assert "more values than header columns" in only_rejection(read_all(path)).reason
