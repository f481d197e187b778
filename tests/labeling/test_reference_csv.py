"""The reference-label CSV format, pure: what an import reads and what an export writes."""

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeling.records import EXPLANATION_MAX_LENGTH, REFERENCE_LABELS
from labeling.reference_csv import (
    EXPORT_COLUMNS,
    EXTERNAL_ID,
    SUBJECT_ID,
    ReferenceCsvError,
    ReferenceRow,
    csv_lines,
    read_reference_csv,
)


def read(text: str):
    return read_reference_csv(io.StringIO(text))


def test_rows_by_external_id_with_labels_in_any_case():
    parsed = read("external_id,label,expert,explanation\n"
                  "a1,Real,alice,clear transient\n"
                  "a2, BOGUS ,,\n"
                  "a3,unsure,bob,\n")
    assert parsed.key == EXTERNAL_ID
    assert parsed.problems == []
    assert parsed.rows == [
        ReferenceRow(1, None, "a1", "real", "alice", "clear transient"),
        ReferenceRow(2, None, "a2", "bogus", "", ""),
        ReferenceRow(3, None, "a3", "unsure", "bob", ""),
    ]


def test_every_bad_row_is_reported_with_its_number_and_reason():
    parsed = read("subject_id,label\n"
                  "1,real\n"
                  "x,real\n"
                  "2,maybe\n"
                  "1,bogus\n"
                  "3,real,extra\n"
                  "4,bogus\n")
    assert [row.subject_id for row in parsed.rows] == [1, 4]
    reasons = {problem.row: problem.reason for problem in parsed.problems}
    assert set(reasons) == {2, 3, 4, 5}
    assert "'x' is not a number" in reasons[2]
    assert "invalid label 'maybe'" in reasons[3]
    assert "duplicate subject 1: already on row 1" in reasons[4]
    assert "more fields" in reasons[5]


def test_blank_external_id_and_overlong_explanation_are_bad_rows():
    parsed = read("external_id,label,explanation\n"
                  ",real,\n"
                  f"a,real,{'x' * (EXPLANATION_MAX_LENGTH + 1)}\n")
    assert parsed.rows == []
    assert [p.reason for p in parsed.problems] == [
        "blank external_id", f"explanation longer than {EXPLANATION_MAX_LENGTH} characters",
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("label\nreal\n", "no subject_id or external_id"),
    ("subject_id,expert\n1,a\n", "no label column"),
    ("subject_id,lable\n1,real\n", "unknown column.*'lable'"),
])
def test_files_that_cannot_be_used_at_all_raise(text, message):
    with pytest.raises(ReferenceCsvError, match=message):
        read(text)


def test_with_both_key_columns_the_subject_id_is_the_key():
    parsed = read("subject_id,external_id,label\n7,a7,real\n")
    assert parsed.key == SUBJECT_ID
    assert parsed.rows == [ReferenceRow(1, 7, "a7", "real", "", "")]


# Anything a label's text fields can hold, commas, quotes and newlines included.
text = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(",\"\n"),
               max_size=40).map(str.strip)


@given(st.lists(
    st.tuples(st.sampled_from(REFERENCE_LABELS), text, text.filter(bool), text),
    max_size=8,
))
def test_an_export_reads_back_as_the_same_labels(labels):
    rows = [(i + 1, f"ext-{i}", origin, label, "", explanation, "2026-01-01T00:00:00+00:00")
            for i, (label, explanation, origin, _) in enumerate(labels)]
    exported = "".join(csv_lines(rows))
    assert exported.splitlines()[0] == ",".join(EXPORT_COLUMNS)
    parsed = read_reference_csv(io.StringIO(exported, newline=""))
    assert parsed.problems == []
    assert [(r.subject_id, r.external_id, r.label, r.explanation) for r in parsed.rows] == [
        (row[0], row[1], row[3], row[5]) for row in rows
    ]
