"""`manage.py ingest`: every format into the database, bad inputs rejected with nothing left."""

from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from labeling import services, stamps
from labeling.models import Subject, SubjectWorkflowStatus
from tests.fixtures import inputs

pytestmark = pytest.mark.django_db


def ingest(*paths, **options) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("ingest", *map(str, paths), workflow="wf", stdout=out, stderr=StringIO(),
                     **options)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def stored_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.parametrize(
    "write",
    [
        lambda d: inputs.write_npz(d, 3),
        lambda d: inputs.write_npz(d, 3, metadata="csv"),
        lambda d: inputs.write_fits_triplet_mef(d, 0),
        lambda d: inputs.write_rubin_alert_container(d, 3),
        lambda d: inputs.write_rubin_alert_container(d, 2, schema_version="9.0"),
        lambda d: inputs.write_rubin_alert_schemaless(d, 0),
        lambda d: inputs.write_ztf_alert(d, 2),
        lambda d: inputs.write_zooniverse_manifest(d, 3),
    ],
    ids=["npz", "npz+csv", "fits-mef", "rubin-7.3", "rubin-9.0", "rubin-schemaless", "ztf",
         "manifest"],
)
def test_every_format_ingests_into_the_workflow(workflow, tmp_path, write, settings):
    path = write(tmp_path)
    code, out = ingest(path)
    assert code == 0, out
    subjects = list(Subject.objects.order_by("pk"))
    assert subjects
    assert f"ingested {len(subjects)} subjects" in out
    for subject in subjects:
        cube = stamps.cube_from_bytes(subject.stamps.read(), settings.STAMP_SIZE)
        assert cube.shape == (3, settings.STAMP_SIZE, settings.STAMP_SIZE)
        assert len(subject.original_shapes) == 3
    assert SubjectWorkflowStatus.objects.filter(workflow=workflow).count() == len(subjects)


def test_stamps_are_normalised_and_stored_losslessly(workflow, tmp_path, settings):
    path = inputs.write_rubin_alert_container(tmp_path, 1, cutout_shapes=((40, 44), (60, 60),
                                                                            (51, 51)))
    assert ingest(path)[0] == 0
    subject = Subject.objects.get()
    cube = stamps.cube_from_bytes(subject.stamps.read(), settings.STAMP_SIZE)
    assert subject.original_shapes == [[40, 44], [60, 60], [51, 51]]
    # The 40x44 template was padded with NaN, the 60x60 science cropped: the centres stay put.
    assert np.isnan(cube[0, 0, 0])
    assert not np.isnan(cube[1]).any()
    assert cube[2, 25, 25] == pytest.approx(inputs.centre_value(0, "difference"))
    assert cube[1, 25, 25] == pytest.approx(inputs.centre_value(0, "science"))
    assert subject.external_id == inputs.external_id(0)


def test_metadata_lands_on_the_subject(workflow, tmp_path):
    assert ingest(inputs.write_npz(tmp_path, 2))[0] == 0
    subject = Subject.objects.get(external_id=inputs.external_id(1))
    expected = inputs.expected_fields(1)
    for field in ("origin", "snr", "psf_flux", "psf_flux_err", "ra", "dec", "band",
                  "reliability"):
        assert getattr(subject, field) == pytest.approx(expected[field]), field


def test_origin_option_overrides_every_subject(workflow, tmp_path):
    assert ingest(inputs.write_npz(tmp_path, 3), origin="injection")[0] == 0
    assert set(Subject.objects.values_list("origin", flat=True)) == {"injection"}


def test_duplicates_are_skipped_and_reported(workflow, tmp_path):
    path = inputs.write_npz(tmp_path, 3)
    assert ingest(path)[0] == 0
    code, out = ingest(path)
    assert code == 0
    assert "skipped 3 duplicate external ids" in out
    assert Subject.objects.count() == 3


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (lambda d: inputs.write_random_bytes(d, "junk.npz"), "junk.npz"),
        (lambda d: inputs.write_truncated(inputs.write_fits_triplet_mef(d, 0)), "truncated"),
        (lambda d: inputs.write_npz(d, 3, counts={"science": 2}), "stamps.npz"),
        (lambda d: inputs.write_npz(d, 2, stamp_ndim=3), "stamps.npz"),
        (lambda d: inputs.write_random_bytes(d, "mystery.bin"), "mystery.bin"),
        (lambda d: d / "does-not-exist.npz", "no such file"),
    ],
    ids=["corrupt", "truncated", "mismatched-n", "wrong-shape", "unknown-format", "missing"],
)
def test_bad_inputs_are_rejected_with_exit_2_and_leave_nothing(
    workflow, tmp_path, settings, write, reason
):
    code, out = ingest(write(tmp_path))
    assert code == 2
    assert "rejected 1" in out
    assert reason in out
    assert Subject.objects.count() == 0
    assert stored_files(settings) == []


def test_bad_records_are_rejected_while_good_ones_go_in(workflow, tmp_path):
    all_nan = np.full((51, 51), np.nan, dtype=np.float32)
    path = inputs.write_npz(tmp_path, 3, stamps={(1, "template"): all_nan})
    code, out = ingest(path)
    assert code == 2
    assert "rejected 1" in out
    assert "stamps.npz[1]: template stamp is entirely NaN" in out
    assert set(Subject.objects.values_list("external_id", flat=True)) == {
        inputs.external_id(0), inputs.external_id(2)}


def test_an_alert_without_a_cutout_is_rejected_naming_it(workflow, tmp_path):
    path = inputs.write_ztf_alert(tmp_path, 2, missing_cutouts={0: ["science"]})
    code, out = ingest(path)
    assert code == 2
    assert "ztf_170000000000.avro[0]: cutout missing (null or absent): cutoutScience" in out
    assert list(Subject.objects.values_list("external_id", flat=True)) == [inputs.external_id(1)]


def test_a_failed_write_leaves_no_rows_and_no_files(workflow, tmp_path, settings, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(SubjectWorkflowStatus.objects, "bulk_create", fail)
    with pytest.raises(RuntimeError, match="went away"):
        ingest(inputs.write_npz(tmp_path, 3))
    assert Subject.objects.count() == 0
    assert stored_files(settings) == []


def test_unknown_workflow_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="no workflow 'nope'"):
        call_command("ingest", str(inputs.write_npz(tmp_path, 1)), workflow="nope")


def test_create_workflow_command(db):
    out = StringIO()
    call_command("create_workflow", "rdd", project="RDD", retire_agree=3, retire_max=9,
                 stdout=out)
    assert "retire when the first 3 agree, else at 9" in out.getvalue()
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_workflow", "rdd")
    with pytest.raises(CommandError, match="retire-max"):
        call_command("create_workflow", "other", retire_agree=5, retire_max=2)


def test_a_duplicate_stored_by_a_concurrent_ingest_is_skipped_not_fatal(
    workflow, tmp_path, monkeypatch
):
    path = inputs.write_npz(tmp_path, 3)
    (tmp_path / "other").mkdir()
    assert ingest(inputs.write_npz(tmp_path / "other", 2))[0] == 0
    # Our duplicate check ran before the other ingest committed: it saw nothing.
    monkeypatch.setattr(services, "_existing_external_ids", lambda *args: set())
    code, out = ingest(path)
    assert code == 0
    assert "ingested 1 subjects" in out
    assert "skipped 2 duplicate external ids" in out
    assert Subject.objects.count() == 3
    assert Subject.objects.filter(external_id=inputs.external_id(2)).exists()
