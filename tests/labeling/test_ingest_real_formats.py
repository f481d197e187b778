"""Every real alert format (issue 19.4): ZTF's 2017 JPEG prototype packets, schemaless Rubin
messages recognised by content under --format auto, and astropy's header warnings counted into
the ingest summary instead of burying it."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import fastavro
import numpy as np
import pytest
from astropy.io import fits

from labeling.ingest import detect_format, read_path
from labeling.models import Subject
from labeling.records import Rejection, SubjectRecord
from tests.fixtures import inputs
from tests.fixtures.inputs import TEST_LIMITS
from tests.labeling.test_ingest_command import ingest

REAL_RUBIN = Path(__file__).resolve().parents[1] / "fixtures/realdata/rubin_or4_v7_1_2_alerts.avro"


def read_all(path: Path, fmt: str = "auto") -> list:
    return list(read_path(path, fmt, limits=TEST_LIMITS))


# --- ZTF 2017 prototype packets ---------------------------------------------------------------


def test_a_2017_jpeg_packet_is_read_with_its_negative_candid(tmp_path: Path) -> None:
    path = inputs.write_ztf_2017_alert(tmp_path, 2)
    assert detect_format(path) == "ztf-avro"

    items = read_all(path)

    assert all(isinstance(item, SubjectRecord) for item in items), items
    assert [item.external_id for item in items] == [
        str(inputs.ztf_2017_candid(0)), str(inputs.ztf_2017_candid(1))]
    record = items[0]
    assert record.metadata["cutout_encoding"] == "jpeg"
    assert "schemavsn" not in record.metadata
    for stamp in record.stamps():
        assert stamp.shape == inputs.ZTF_2017_SHAPE
        assert stamp.dtype == np.float32
        assert abs(stamp[25, 25] - inputs.JPEG_CENTRE) < 12


def test_a_jpeg_stamp_is_stored_in_fits_row_order(tmp_path: Path) -> None:
    """The picture's top rows become the last FITS rows, so the stamp renders as drawn."""
    record = read_all(inputs.write_ztf_2017_alert(tmp_path))[0]
    corner = inputs.JPEG_CORNER_SIZE
    top_left_of_picture = record.science[-corner + 1:, : corner - 1]
    bottom_left_of_picture = record.science[: corner - 1, : corner - 1]
    assert top_left_of_picture.min() > inputs.JPEG_CORNER - 15
    assert bottom_left_of_picture.max() < inputs.JPEG_SKY + 15


def test_a_corrupt_jpeg_cutout_rejects_its_alert_naming_jpeg(tmp_path: Path) -> None:
    path = inputs.write_ztf_2017_alert(tmp_path)
    content = path.read_bytes()
    jpeg = inputs.jpeg_stamp()
    path.write_bytes(content.replace(jpeg, jpeg[:40] + bytes(len(jpeg) - 40), 1))
    items = read_all(path)
    assert len(items) == 1
    assert isinstance(items[0], Rejection)
    assert "is not a readable JPEG" in items[0].reason


def test_the_command_ingests_2017_packets(workflow, tmp_path):
    code, out = ingest(inputs.write_ztf_2017_alert(tmp_path, 3))
    assert code == 0, out
    assert Subject.objects.filter(metadata__cutout_encoding="jpeg").count() == 3


# --- schemaless Rubin messages, by content ----------------------------------------------------


@pytest.mark.parametrize("name", ["message", "alert.bin", "alert.fits", "kafka-0001.npz"])
def test_auto_detects_a_raw_schemaless_rubin_message_whatever_its_name(tmp_path, name):
    path = inputs.write_rubin_alert_schemaless(tmp_path, 4, wire_header=False, name=name)
    assert detect_format(path) == "rubin-avro"
    (record,) = read_all(path)
    assert record.external_id == inputs.external_id(4)
    assert record.metadata["schema_version_from"] == "trial-parse"


def test_auto_reads_a_real_rubin_alert_saved_as_a_kafka_message_body(tmp_path: Path) -> None:
    with REAL_RUBIN.open("rb") as stream:
        container = fastavro.reader(stream)
        schema, alert = container.writer_schema, next(iter(container))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, alert)
    path = tmp_path / "alert-message"
    path.write_bytes(body.getvalue())

    (record,) = read_all(path)

    assert record.external_id == str(alert["diaSource"]["diaSourceId"])
    (from_container, *_) = read_all(REAL_RUBIN)
    for mine, theirs in zip(record.stamps(), from_container.stamps(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_random_bytes_named_avro_are_no_longer_taken_for_a_rubin_alert(tmp_path: Path) -> None:
    (rejection,) = read_all(inputs.write_random_bytes(tmp_path, "alert.avro"))
    assert "unknown input format" in rejection.reason
    assert "not a schemaless Rubin alert of any known version" in rejection.reason


def test_real_rubin_cutouts_keep_their_native_sizes() -> None:
    records = read_all(REAL_RUBIN)
    assert len(records) == 2
    for record in records:
        shapes = {stamp.shape for stamp in record.stamps()}
        assert all(30 <= side <= 46 for shape in shapes for side in shape), shapes


# --- astropy's header warnings --------------------------------------------------------------


def _fits_with_blank_keyword(image: np.ndarray) -> bytes:
    """FITS bytes like a real ZTF cutout: float data carrying an integer-only BLANK keyword."""
    hdu = fits.PrimaryHDU(image)
    hdu.header["BLANK"] = -32768
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdu.writeto(buffer)
    return buffer.getvalue()


def _astropy_warnings_reading(content: bytes) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_all_fits = fits.open(io.BytesIO(content), memmap=False)
        with read_all_fits as hdus:
            hdus[0].header.copy()
            np.array(hdus[0].data)
    return sum(issubclass(w.category, fits.verify.VerifyWarning) for w in caught)


def test_verify_warnings_are_silenced_and_counted_into_the_summary(workflow, tmp_path):
    alerts = [inputs.ztf_alert(i) for i in range(2)]
    for index, alert in enumerate(alerts):
        for kind, field in inputs.CUTOUT_FIELDS.items():
            image = inputs.fixture_stamp(index, kind, inputs.ZTF_SHAPE)
            alert[field]["stampData"] = _fits_with_blank_keyword(image)
    path = tmp_path / "ztf.avro"
    with path.open("wb") as stream:
        fastavro.writer(stream, fastavro.parse_schema(inputs.ZTF_ALERT_SCHEMA), alerts)
    per_stamp = _astropy_warnings_reading(_fits_with_blank_keyword(np.zeros((3, 3), "f4")))
    assert per_stamp > 0

    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        code, out = ingest(path)

    assert code == 0, out
    assert not [w for w in escaped if issubclass(w.category, fits.verify.VerifyWarning)]
    assert f"silenced {6 * per_stamp} astropy FITS header warnings (VerifyWarning)" in out
    assert "Invalid 'BLANK' keyword" in out
