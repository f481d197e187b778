"""Reference labels as CSV: reading an import file and writing an export. Pure: stdlib only.

An import file names each subject by `subject_id` (this database's id) or `external_id` (the
detection's id, unique per project, so portable between deployments), and gives its `label`
(real, bogus or unsure, any case), optionally the `expert` (a user name, blank for none) and
an `explanation`. The export writes the same columns plus `origin` and `updated_at`, which
an import ignores, so an export is re-importable as it is. When a file has both key columns
(an export does), `subject_id` is the key and `external_id` is checked against it.

Text cells are written safe to open in a spreadsheet (OWASP's advice on CSV injection): a cell
that a spreadsheet would run as a formula gets a leading `'`, which the import removes again,
so an export still round-trips to the original text.

`read_reference_csv` returns every good row and every bad row's problem (row numbers count
data rows from 1; the header is not a row); it raises `ReferenceCsvError` only for what makes
the whole file unusable (no header, no key or label column, unknown columns). Whether the
subjects and experts exist is for the service to check.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from labeling.records import EXPLANATION_MAX_LENGTH, REFERENCE_LABELS

SUBJECT_ID = "subject_id"
EXTERNAL_ID = "external_id"
EXPORT_COLUMNS = (SUBJECT_ID, EXTERNAL_ID, "origin", "label", "expert", "explanation",
                  "updated_at")
# Written by the export for people to read; an import accepts and ignores them.
INFORMATIONAL_COLUMNS = ("origin", "updated_at")
OPTIONAL_COLUMNS = ("expert", "explanation")


# A spreadsheet runs a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Prefixed to such a cell so it is shown as text. A cell that already starts with it is
# prefixed too, so the reader can always remove exactly one.
FORMULA_ESCAPE = "'"


def spreadsheet_safe(text: str) -> str:
    """`text` as a CSV cell no spreadsheet runs as a formula; `spreadsheet_text` undoes it."""
    if text.startswith((*FORMULA_TRIGGERS, FORMULA_ESCAPE)):
        return FORMULA_ESCAPE + text
    return text


def spreadsheet_text(cell: str) -> str:
    """The text `spreadsheet_safe` was given for `cell` (a cell never escaped is kept)."""
    if cell.startswith(FORMULA_ESCAPE) and cell[1:].startswith(
        (*FORMULA_TRIGGERS, FORMULA_ESCAPE)
    ):
        return cell[1:]
    return cell


class ReferenceCsvError(Exception):
    """The file as a whole cannot be read as reference labels."""


@dataclass(frozen=True)
class ReferenceRow:
    row: int
    subject_id: int | None
    external_id: str
    label: str
    expert: str
    explanation: str


@dataclass(frozen=True)
class RowProblem:
    row: int
    reason: str


@dataclass
class ReferenceCsv:
    key: str  # SUBJECT_ID or EXTERNAL_ID: how the rows name their subjects
    rows: list[ReferenceRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


def read_reference_csv(lines: Iterable[str]) -> ReferenceCsv:
    reader = csv.DictReader(lines)
    columns = _check_header(reader.fieldnames)
    key = SUBJECT_ID if SUBJECT_ID in columns else EXTERNAL_ID
    parsed = ReferenceCsv(key=key)
    first_row_of: dict[int | str, int] = {}
    for number, values in enumerate(reader, 1):
        try:
            row = _row(number, values, columns)
        except ValueError as exc:
            parsed.problems.append(RowProblem(number, str(exc)))
            continue
        subject = row.subject_id if key == SUBJECT_ID else row.external_id
        if subject in first_row_of:
            parsed.problems.append(RowProblem(
                number, f"duplicate subject {subject}: already on row {first_row_of[subject]}"
            ))
            continue
        first_row_of[subject] = number
        parsed.rows.append(row)
    return parsed


def _check_header(fieldnames: Sequence[str] | None) -> set[str]:
    if not fieldnames:
        raise ReferenceCsvError("the file is empty: expected a header row")
    columns = [name.strip() for name in fieldnames]
    known = {SUBJECT_ID, EXTERNAL_ID, "label", *OPTIONAL_COLUMNS, *INFORMATIONAL_COLUMNS}
    unknown = [name for name in columns if name not in known]
    if unknown:
        raise ReferenceCsvError(
            f"unknown column(s) {', '.join(map(repr, unknown))}; the columns are "
            f"{SUBJECT_ID} or {EXTERNAL_ID}, label, and optionally "
            f"{', '.join(OPTIONAL_COLUMNS + INFORMATIONAL_COLUMNS)}"
        )
    if SUBJECT_ID not in columns and EXTERNAL_ID not in columns:
        raise ReferenceCsvError(f"no {SUBJECT_ID} or {EXTERNAL_ID} column: name the subjects")
    if "label" not in columns:
        raise ReferenceCsvError("no label column")
    return set(columns)


def _row(number: int, values: dict, columns: set[str]) -> ReferenceRow:
    if None in values:
        raise ValueError("more fields than the header has columns")
    values = {(name or "").strip(): spreadsheet_text((value or "").strip())
              for name, value in values.items()}
    subject_id = None
    if SUBJECT_ID in columns:
        try:
            subject_id = int(values[SUBJECT_ID])
        except ValueError:
            raise ValueError(f"subject_id {values[SUBJECT_ID]!r} is not a number") from None
    external_id = values.get(EXTERNAL_ID, "")
    if subject_id is None and not external_id:
        raise ValueError("blank external_id")
    label = values["label"].lower()
    if label not in REFERENCE_LABELS:
        raise ValueError(
            f"invalid label {values['label']!r}: expected one of {', '.join(REFERENCE_LABELS)}"
        )
    explanation = values.get("explanation", "")
    if len(explanation) > EXPLANATION_MAX_LENGTH:
        raise ValueError(f"explanation longer than {EXPLANATION_MAX_LENGTH} characters")
    return ReferenceRow(number, subject_id, external_id, label, values.get("expert", ""),
                        explanation)


def csv_lines(rows: Iterable[Sequence], header: Sequence[str] = EXPORT_COLUMNS
              ) -> Iterator[str]:
    """The header (by default the export's EXPORT_COLUMNS), then one CSV line per row, one
    string at a time (the APIs stream them). Text cells are made `spreadsheet_safe`; numbers
    are written as they are. Lines end in CRLF (RFC 4180): the writer quotes a cell holding a
    character of the line terminator, and a lone CR in a cell must be quoted too."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    yield _take(buffer)
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) if isinstance(cell, str) else cell
                         for cell in row])
        yield _take(buffer)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
