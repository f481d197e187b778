"""The Zooniverse export parser: pure, no database."""

import json
from datetime import UTC, datetime

import pytest

from labeling.zooniverse import parse
from tests.fixtures import zooniverse as zoo

ANSWER_MAP = {"Real": "real", "Bogus": "bogus"}


def read(path, **options):
    options.setdefault("answer_map", ANSWER_MAP)
    return parse.read_export(path, **options)


def test_good_rows_are_read_in_time_order_with_their_volunteers_and_subjects(tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", [
        zoo.row(3, 11, "Bogus", minute=5, **zoo.anonymous("aa11")),
        zoo.row(1, 11, "Real", minute=1),
        zoo.row(2, 12, "Real", minute=3, seen_before=True, gold=True, expert=True,
                **zoo.logged_in("bob", 202)),
    ])
    parsed = read(path)
    assert parsed.rows_read == 3
    assert parsed.rejections == []
    assert parsed.workflow_id == zoo.WORKFLOW_ID
    assert [c.classification_id for c in parsed.classifications] == ["1", "2", "3"]
    first, second, third = parsed.classifications
    assert (first.volunteer_name, first.anonymous) == ("zooniverse:user:101", False)
    assert (third.volunteer_name, third.anonymous) == ("zooniverse:not-logged-in-aa11", True)
    assert (third.answer, third.label) == ("bogus", "Bogus")
    assert first.created_at == datetime(2025, 11, 11, 18, 1, tzinfo=UTC)
    assert first.finished_at == first.created_at
    assert first.user_agent.startswith("Mozilla")
    assert first.external_id == "zooniverse:1"
    assert (first.seen_before, first.gold_standard, first.expert) == (False, False, False)
    assert (second.seen_before, second.gold_standard, second.expert) == (True, True, True)
    assert (first.row, third.row) == (2, 1)

    subject = parsed.subjects["11"]
    assert subject.external_id == "zooniverse:11"
    assert subject.origin == zoo.subject_metadata(11)["#origin"]
    assert subject.snr == zoo.subject_metadata(11)["#snr"]
    assert subject.band == zoo.subject_metadata(11)["band"]
    assert subject.metadata == zoo.subject_metadata(11)  # "retired" is dropped, nothing added
    assert subject.ra is None


def test_subject_fields_are_taken_only_when_present_and_readable(tmp_path):
    meta = {"handle": "injection", "SNR": "not a number", "ra": "150.5", "!dec": -2.25,
            "psf_flux": 12.5}
    path = zoo.write_export(tmp_path / "c.csv", [zoo.row(1, 7, subject_meta=meta)])
    subject = read(path).subjects["7"]
    assert (subject.origin, subject.snr, subject.ra, subject.dec, subject.psf_flux) == (
        "injection", None, 150.5, -2.25, 12.5
    )
    assert subject.metadata == meta


@pytest.mark.parametrize(
    ("raw", "kind", "reason"),
    [
        ({"annotations": "[{'task': 'T0'"}, parse.BAD_ANNOTATIONS, "annotations is not valid JSON"),
        ({"metadata": "{not json"}, parse.BAD_METADATA, "metadata is not valid JSON"),
        ({"metadata": "[]"}, parse.BAD_METADATA, "metadata is JSON but not an object"),
        ({"subject_data": '{"11": '}, parse.BAD_SUBJECT_DATA, "subject_data is not valid JSON"),
        ({"subject_data": '{"99": {}}'}, parse.BAD_SUBJECT_DATA, "no entry for subject 11"),
        ({"annotations": "[]"}, parse.BAD_ANNOTATIONS, "empty annotations"),
        ({"annotations": '[{"task": "T0", "value": null}]'}, parse.BAD_ANNOTATIONS,
         "task T0 has no answer"),
        ({"annotations": '[{"task": "T0", "value": ["Real"]}]'}, parse.BAD_ANNOTATIONS,
         "not one label"),
        ({"annotations": json.dumps([{"task": "T0", "value": "Real"},
                                     {"task": "T1", "value": "Yes"}])},
         parse.BAD_ANNOTATIONS, "2 answers (T0, T1)"),
        ({"annotations": '[{"task": "T0", "value": "Maybe"}]'}, parse.UNKNOWN_ANSWER,
         "unknown answer 'Maybe'"),
        ({"annotations": '[{"task": "T0", "value": "real"}]'}, parse.UNKNOWN_ANSWER,
         "unknown answer 'real'"),
        ({"created_at": "11/11/2025 18:02"}, parse.BAD_TIME, "created_at '11/11/2025 18:02'"),
        ({"created_at": "2025-11-11 18:02:33"}, parse.BAD_TIME, "is not a time"),
        ({"created_at": "2025-13-11 18:02:33 UTC"}, parse.BAD_TIME, "is not a time"),
        ({"subject_ids": ""}, parse.BAD_SUBJECT, "no subject id"),
        ({"subject_ids": "11;12"}, parse.BAD_SUBJECT, "2 subject ids (11;12)"),
        ({"subject_ids": "abc"}, parse.BAD_SUBJECT, "'abc' is not a number"),
        ({"user_name": "", "user_id": ""}, parse.BAD_USER, "no user_name and no user_id"),
        ({"user_name": "carol", "user_id": ""}, parse.BAD_USER, "has no user_id"),
        ({"classification_id": ""}, parse.BAD_ID, "no classification_id"),
        ({"classification_id": "x1"}, parse.BAD_ID, "'x1' is not a number"),
    ],
)
def test_a_bad_row_is_rejected_with_its_number_id_and_reason(tmp_path, raw, kind, reason):
    path = zoo.write_export(tmp_path / "c.csv", [
        zoo.row(1, 11, minute=1),
        zoo.row(2, 11, minute=2, raw=raw, **zoo.logged_in("bob", 202)),
        zoo.row(3, 12, minute=3),
    ])
    parsed = read(path)
    assert parsed.rows_read == 3
    assert [c.classification_id for c in parsed.classifications] == ["1", "3"]
    [rejection] = parsed.rejections
    assert rejection.row == 2
    assert rejection.classification_id == raw.get("classification_id", "2")
    assert rejection.kind == kind
    assert reason in rejection.reason
    assert str(rejection).startswith("row 2")


def test_a_row_with_the_wrong_number_of_fields_is_rejected(tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", [zoo.row(1, 11), zoo.row(2, 12)])
    with path.open("a", encoding="utf-8") as stream:
        stream.write("3,alice,101\n")
    parsed = read(path)
    assert len(parsed.classifications) == 2
    [rejection] = parsed.rejections
    assert (rejection.row, rejection.classification_id, rejection.kind) == (3, "3",
                                                                            parse.BAD_ROW)
    assert "3 fields where the header has 14" in rejection.reason


def test_a_repeated_classification_id_is_rejected_once(tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", [zoo.row(1, 11), zoo.row(1, 11)])
    parsed = read(path)
    assert len(parsed.classifications) == 1
    assert [(r.row, r.kind) for r in parsed.rejections] == [(2, parse.DUPLICATE)]
    assert "repeats row 1" in parsed.rejections[0].reason


@pytest.mark.parametrize("missing", [["annotations"], ["subject_ids", "created_at"]])
def test_a_missing_column_is_fatal_and_named(tmp_path, missing):
    path = zoo.write_export(tmp_path / "c.csv", [zoo.row(1, 11)], drop=missing)
    with pytest.raises(parse.ExportError, match="missing column") as caught:
        read(path)
    for column in missing:
        assert column in str(caught.value)


def test_optional_columns_may_be_absent(tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", [zoo.row(1, 11)],
                            drop=["user_ip", "workflow_name", "workflow_version"])
    assert len(read(path).classifications) == 1


def test_no_file_and_no_header_are_fatal(tmp_path):
    with pytest.raises(parse.ExportError, match="no such file"):
        read(tmp_path / "absent.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(parse.ExportError, match="no header row"):
        read(tmp_path / "empty.csv")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00garbage\x00")
    with pytest.raises(parse.ExportError):
        read(tmp_path / "binary.csv")


def test_a_header_only_file_has_no_rows(tmp_path):
    parsed = read(zoo.write_export(tmp_path / "c.csv", []))
    assert (parsed.rows_read, parsed.classifications, parsed.rejections) == (0, [], [])


def test_rows_of_a_minority_workflow_are_rejected(tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", [
        zoo.row(1, 11), zoo.row(2, 12), zoo.row(3, 13, workflow_id="999"),
    ])
    parsed = read(path)
    assert parsed.workflow_id == zoo.WORKFLOW_ID
    assert parsed.workflow_rows == {zoo.WORKFLOW_ID: 2, "999": 1}
    [rejection] = parsed.rejections
    assert (rejection.row, rejection.kind) == (3, parse.OTHER_WORKFLOW)
    assert f"workflow_id 999, not the file's main workflow {zoo.WORKFLOW_ID}" == rejection.reason


def test_a_chosen_workflow_skips_the_others_without_reading_them(tmp_path):
    # The other workflow asks another question: its answers are not in our map, and that is
    # no error when the user chose the workflow.
    path = zoo.write_export(tmp_path / "c.csv", [
        zoo.row(1, 11), zoo.row(2, 12, "Spiral", workflow_id="999"),
        zoo.row(3, 13, "Elliptical", workflow_id="999"),
    ])
    parsed = read(path, workflow_id="999", answer_map={"Spiral": "real", "Elliptical": "bogus"})
    assert [c.classification_id for c in parsed.classifications] == ["2", "3"]
    assert parsed.rejections == []
    assert parsed.skipped_other_workflows == 1


def test_an_even_mix_or_an_absent_choice_is_fatal(tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", [zoo.row(1, 11), zoo.row(2, 12, workflow_id="9")])
    with pytest.raises(parse.ExportError, match="mixes Zooniverse workflows evenly"):
        read(path)
    with pytest.raises(parse.ExportError, match="no rows of Zooniverse workflow 77"):
        read(path, workflow_id="77")


def test_the_answer_map_decides_labels_exactly_and_maps_indices(tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", [zoo.row(1, 11, 0), zoo.row(2, 12, 1)])
    parsed = read(path, answer_map={"0": "real", "1": "bogus"})
    assert [c.answer for c in parsed.classifications] == ["real", "bogus"]


def test_the_task_option_picks_one_of_several_tasks(tmp_path):
    annotations = json.dumps([{"task": "T0", "value": "Bogus"}, {"task": "T1", "value": "Yes"}])
    path = zoo.write_export(tmp_path / "c.csv", [zoo.row(1, 11, raw={"annotations": annotations})])
    [classification] = read(path, task="T0").classifications
    assert classification.answer == "bogus"
    [rejection] = read(path, task="T5").rejections
    assert "no answer to task T5" in rejection.reason


def test_long_subject_data_is_read(tmp_path):
    meta = {"notes": "x" * 300_000}
    path = zoo.write_export(tmp_path / "c.csv", [zoo.row(1, 11, subject_meta=meta)])
    assert read(path).subjects["11"].metadata == meta


def test_the_earliest_rows_subject_data_describes_the_subject(tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", [
        zoo.row(1, 11, minute=9, subject_meta={"#snr": 9}),
        zoo.row(2, 11, minute=1, subject_meta={"#snr": 1}, **zoo.anonymous("b")),
    ])
    assert read(path).subjects["11"].snr == 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Real=real,Bogus=bogus", {"Real": "real", "Bogus": "bogus"}),
        (" Yes = real , No=bogus,", {"Yes": "real", "No": "bogus"}),
    ],
)
def test_answer_maps_parse(text, expected):
    assert parse.parse_answer_map(text, ("real", "bogus")) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("Real", "not LABEL=ANSWER"), ("Real=yes", "must be one of"), ("", "empty"),
     ("A=real,A=bogus", "twice"), ("=real", "not LABEL=ANSWER")],
)
def test_bad_answer_maps_say_why(text, message):
    with pytest.raises(ValueError, match=message):
        parse.parse_answer_map(text, ("real", "bogus"))


@pytest.mark.parametrize(
    "text",
    ["2025-11-11 18:02:33 UTC", "2025-11-11T18:02:33Z", "2025-11-11T19:02:33+01:00",
     "2025-11-11 18:02:33.000 UTC"],
)
def test_timestamps_parse_to_utc(text):
    assert parse.parse_timestamp(text) == datetime(2025, 11, 11, 18, 2, 33, tzinfo=UTC)
