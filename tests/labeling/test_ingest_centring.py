"""Edge-clipped ZTF cutouts are centred from the alert, not the array (issue 19.2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection

from labeling import services
from labeling.ingest import read_path
from labeling.models import Subject
from labeling.records import STAMP_KINDS
from labeling.stamps import normalise_triplet
from tests.fixtures import inputs
from tests.fixtures.inputs import TEST_LIMITS, centre_value
from tests.labeling.test_ingest_command import ingest

# Real clipping shapes: ZTF cuts 63x63 around the candidate and loses the rows or columns
# that fall off the CCD, on whichever side the edge is.
CLIPS = {
    "left-19": (slice(None), slice(19, None)),  # 63x44, detection at column 12
    "bottom-13": (slice(13, None), slice(None)),  # 50x63, detection at row 18
    "right-20": (slice(None), slice(None, 43)),  # 63x43, detection still at column 31
    "corner": (slice(25, None), slice(None, 40)),  # 38x40
}


@pytest.mark.parametrize("clip", CLIPS)
def test_a_clipped_cutout_puts_the_detection_on_the_centre_pixel(tmp_path: Path, clip: str):
    rows, cols = CLIPS[clip]
    path = inputs.write_ztf_alerts(tmp_path, [inputs.ztf_clipped_alert(0, rows, cols)], "a.avro")

    (record,) = read_path(path, limits=TEST_LIMITS)
    triplet = normalise_triplet(record, 51)

    expected_pixel = (31 - (rows.start or 0), 31 - (cols.start or 0))
    assert record.detection_pixel == expected_pixel
    for plane, kind in enumerate(STAMP_KINDS):
        assert triplet.cube[plane, 25, 25] == centre_value(0, kind), kind
    height, width = record.science.shape
    assert triplet.centre_offset == (expected_pixel[0] - height // 2,
                                     expected_pixel[1] - width // 2)


def test_a_full_cutout_keeps_the_array_centre(tmp_path: Path) -> None:
    full = inputs.ztf_clipped_alert(0, slice(None), slice(None))
    (record,) = read_path(inputs.write_ztf_alerts(tmp_path, [full], "a.avro"), limits=TEST_LIMITS)
    assert record.detection_pixel is None
    assert normalise_triplet(record, 51).centre_offset == (0, 0)


def test_a_clipped_cutout_without_a_wcs_falls_back_to_the_array_centre(tmp_path: Path) -> None:
    path = inputs.write_ztf_alert(tmp_path, 1, cutout_shapes=[(63, 44)] * 3)
    (record,) = read_path(path, limits=TEST_LIMITS)
    assert record.detection_pixel is None


def test_the_offset_is_stored_on_the_subject(workflow, tmp_path):
    alerts = [inputs.ztf_clipped_alert(0, *CLIPS["left-19"]), inputs.ztf_alert(1)]
    code, out = ingest(inputs.write_ztf_alerts(tmp_path, alerts, "two.avro"))
    assert code == 0, out
    offsets = dict(Subject.objects.values_list("external_id", "centre_offset"))
    assert offsets == {inputs.external_id(0): [0, 12 - 22], inputs.external_id(1): [0, 0]}
    clipped = Subject.objects.get(external_id=inputs.external_id(0))
    assert clipped.metadata["centred_by"] == "cutout WCS and candidate ra/dec"


def test_a_row_written_without_the_new_columns_gets_their_defaults(workflow):
    """The benchmarks' seeder copies subject rows straight into the table, naming only the
    older columns: the database itself must fill in the stamp geometry."""
    subject_set = services.subject_set_attach(workflow=workflow, name="main")
    table = Subject._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (project_id, subject_set_id, external_id, origin, band,"
            " metadata, stamps, stamp_size, original_shapes, source, created_at)"
            " VALUES (%s, %s, 'raw-1', '', '', '{}', '', 51, '[]', '', CURRENT_TIMESTAMP)",
            [workflow.project_id, subject_set.pk],
        )
    subject = Subject.objects.get(external_id="raw-1")
    assert subject.centre_offset == [0, 0]
    assert subject.stamp_fit == "pad"
