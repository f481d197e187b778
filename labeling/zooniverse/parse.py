"""Reading a Zooniverse (Panoptes) classification export. Pure: stdlib only, no Django.

`read_export` returns the good rows as `ExportClassification`s, sorted in the order to replay
them, the subjects they name as `ExportSubject`s, and every bad row as a `RowRejection`
(row number, classification id, reason). It raises `ExportError` only for what makes the
whole file unusable: no such file, no header, a missing required column, undecodable text,
a workflow that the file does not hold. Row numbers count data rows from 1 (the header is
not a row), so "row 3" is the third classification in the file.

The columns used (all required): classification_id, user_name, user_id, workflow_id,
created_at, gold_standard, expert, metadata, annotations, subject_data, subject_ids. The
others of an export (user_ip, workflow_name, workflow_version) are allowed and ignored.

- ``annotations``: a JSON list of task answers ``{"task": "T0", "value": "Real", ...}``. With
  one task, its value is the answer; with several, `task` names the one to read. The value is
  looked up in the answer map exactly as written (a numeric value as its digits, so "0=real"
  maps an answer index). A list or null value, or a label not in the map, rejects the row.
- ``metadata``: a JSON object; ``seen_before: true`` marks a repeat; ``user_agent`` and
  ``finished_at`` (when the browser says the volunteer answered) are kept when present.
- ``subject_data``: a JSON object keyed by subject id; the entry for the row's one subject is
  its metadata. Zooniverse's ``retired`` block, which changes from row to row, is not
  metadata: a subject is retired on Zooniverse when any of its rows has a non-null block,
  at the earliest ``retired_at`` those blocks give (`ParsedExport.retirements`).
- ``gold_standard`` is true for "true", "t", "1" or "yes" (any case); ``expert`` is true for
  any non-blank value other than "false", "f", "0", "no" or "null" (Panoptes writes who the
  expert classifier was, or "true").
- ``created_at``: ``2025-11-11 18:02:33 UTC``; an ISO 8601 time with an offset is accepted too.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labeling.ingest.base import COLUMN_ALIASES

REQUIRED_COLUMNS = (
    "classification_id",
    "user_name",
    "user_id",
    "workflow_id",
    "created_at",
    "gold_standard",
    "expert",
    "metadata",
    "annotations",
    "subject_data",
    "subject_ids",
)
EXPORT_COLUMNS = (
    "classification_id", "user_name", "user_id", "user_ip", "workflow_id", "workflow_name",
    "workflow_version", "created_at", "gold_standard", "expert", "metadata", "annotations",
    "subject_data", "subject_ids",
)
ANONYMOUS_PREFIX = "not-logged-in-"
VOLUNTEER_PREFIX = "zooniverse:"
DEFAULT_ANSWER_MAP = "Real=real,Bogus=bogus"
# subject_data can hold long metadata; the csv module's default cap is 128 KiB a field.
FIELD_SIZE_LIMIT = 64 * 1024 * 1024

_TRUE = frozenset({"true", "t", "1", "yes"})
_FALSE = frozenset({"", "false", "f", "0", "no", "null", "none"})
# Subject metadata keys copied to Subject fields, matched with Zooniverse's hidden-field
# prefixes (#, !, //) stripped and case and underscores ignored.
_SUBJECT_FIELDS = {
    # The tabular readers' column names, plus Zooniverse's `handle` for the origin; the
    # subject id comes from subject_ids, never from its metadata.
    **{key: name for key, name in COLUMN_ALIASES.items() if name != "external_id"},
    "handle": "origin",
}
_FLOAT_FIELDS = ("snr", "psf_flux", "psf_flux_err", "ra", "dec", "reliability")


class ExportError(ValueError):
    """The whole file cannot be imported; the message says why."""


# Short codes for the kinds of rejection, for the summary's "rejected by reason".
BAD_ROW = "malformed row"
BAD_ID = "bad classification_id"
DUPLICATE = "duplicate classification_id"
BAD_USER = "no volunteer"
OTHER_WORKFLOW = "other workflow"
BAD_TIME = "bad created_at"
BAD_METADATA = "bad metadata JSON"
BAD_ANNOTATIONS = "bad annotations"
BAD_SUBJECT = "bad subject_ids"
BAD_SUBJECT_DATA = "bad subject_data"
UNKNOWN_ANSWER = "unknown answer"


@dataclass(frozen=True, slots=True)
class RowRejection:
    """A row that could not be imported: where it is, its id (if readable) and why."""

    row: int
    classification_id: str
    kind: str
    reason: str

    def __str__(self) -> str:
        ident = f" (classification {self.classification_id})" if self.classification_id else ""
        return f"row {self.row}{ident}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ExportSubject:
    """A subject as its rows describe it (the earliest row's subject_data)."""

    subject_id: str
    metadata: dict[str, Any]
    origin: str = ""
    band: str = ""
    snr: float | None = None
    psf_flux: float | None = None
    psf_flux_err: float | None = None
    ra: float | None = None
    dec: float | None = None
    reliability: float | None = None

    @property
    def external_id(self) -> str:
        return f"zooniverse:{self.subject_id}"


@dataclass(frozen=True, slots=True)
class ExportClassification:
    row: int
    classification_id: str
    volunteer_name: str
    anonymous: bool
    workflow_id: str
    created_at: datetime
    subject_id: str
    answer: str
    label: str
    seen_before: bool
    gold_standard: bool
    expert: bool
    user_agent: str = ""
    finished_at: datetime | None = None

    @property
    def external_id(self) -> str:
        return f"zooniverse:{self.classification_id}"

    def sort_key(self) -> tuple[datetime, int, str]:
        return (self.created_at, len(self.classification_id), self.classification_id)


@dataclass
class ParsedExport:
    rows_read: int = 0
    workflow_id: str = ""
    workflow_rows: dict[str, int] = field(default_factory=dict)
    classifications: list[ExportClassification] = field(default_factory=list)
    subjects: dict[str, ExportSubject] = field(default_factory=dict)
    rejections: list[RowRejection] = field(default_factory=list)
    # Rows of other workflows when one was chosen explicitly: left out, not errors.
    skipped_other_workflows: int = 0
    # Subjects retired on Zooniverse: {subject id: retired_at, or None when no block says}.
    retirements: dict[str, datetime | None] = field(default_factory=dict)


class _RowError(ValueError):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


# --- options -------------------------------------------------------------------------------


def parse_answer_map(text: str, allowed: Iterable[str]) -> dict[str, str]:
    """``"Real=real,Bogus=bogus"`` as {label: answer}; labels keep their case.

    ValueError when a pair is malformed, a label repeats, or an answer is not in `allowed`.
    """
    allowed = tuple(allowed)
    mapping: dict[str, str] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        label, sep, answer = pair.partition("=")
        label, answer = label.strip(), answer.strip()
        if not sep or not label:
            raise ValueError(f"answer map entry {pair.strip()!r} is not LABEL=ANSWER")
        if answer not in allowed:
            raise ValueError(
                f"answer map entry {pair.strip()!r}: answer must be one of {', '.join(allowed)}"
            )
        if label in mapping:
            raise ValueError(f"answer map names {label!r} twice")
        mapping[label] = answer
    if not mapping:
        raise ValueError("the answer map is empty")
    return mapping


def parse_timestamp(text: str) -> datetime:
    """``2025-11-11 18:02:33 UTC`` (or ISO 8601 with an offset) as an aware UTC datetime."""
    value = text.strip()
    if value.endswith(" UTC"):
        value = value[: -len(" UTC")] + "+00:00"
    elif value.endswith("Z"):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    return moment.astimezone(UTC)


def volunteer_name(user_name: str, user_id: str) -> tuple[str, bool]:
    """(Volunteer.external_name, anonymous) for a row's user columns; see the package doc."""
    user_name, user_id = user_name.strip(), user_id.strip()
    if user_id:
        return f"{VOLUNTEER_PREFIX}user:{user_id}", False
    if user_name.startswith(ANONYMOUS_PREFIX) and len(user_name) > len(ANONYMOUS_PREFIX):
        return f"{VOLUNTEER_PREFIX}{user_name}", True
    if user_name:
        raise _RowError(BAD_USER, f"user_name {user_name!r} is not anonymous but has no user_id")
    raise _RowError(BAD_USER, "no user_name and no user_id")


# --- the file ------------------------------------------------------------------------------


def read_export(
    path: Path | str,
    *,
    answer_map: Mapping[str, str],
    workflow_id: str | None = None,
    task: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ParsedExport:
    """Read the export at `path`; see the module doc. Raises ExportError for a fatal problem.

    `workflow_id` chooses the Zooniverse workflow to import; rows of others are skipped. When
    it is not given, the file's most common workflow is taken and rows of any other are
    rejected (a file split evenly between workflows is an ExportError asking for a choice).
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no such file: {path}")
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_SIZE_LIMIT))
    header = _header(path)
    chosen, counts = _choose_workflow(path, header, workflow_id)
    parsed = ParsedExport(workflow_id=chosen, workflow_rows=counts)
    first_row_of: dict[str, int] = {}
    # Each subject's metadata from its earliest row; made into an ExportSubject at the end.
    earliest: dict[str, tuple[datetime, dict[str, Any]]] = {}
    for number, values in _data_rows(path):
        parsed.rows_read += 1
        if on_progress:
            on_progress(1)
        row = dict(zip(header, values, strict=False))
        ident = row.get("classification_id", "").strip()
        if len(values) != len(header):
            parsed.rejections.append(RowRejection(
                number, ident, BAD_ROW,
                f"{len(values)} fields where the header has {len(header)}",
            ))
            continue
        row_workflow = row["workflow_id"].strip()
        if row_workflow != chosen:
            if workflow_id is not None:
                parsed.skipped_other_workflows += 1
            else:
                what = f"workflow_id {row_workflow}" if row_workflow else "no workflow_id"
                parsed.rejections.append(RowRejection(
                    number, ident, OTHER_WORKFLOW,
                    f"{what}, not the file's main workflow {chosen}",
                ))
            continue
        try:
            classification, metadata, retirement = _parse_row(number, row, answer_map, task)
            if ident in first_row_of:
                raise _RowError(DUPLICATE, f"classification_id {ident} repeats row "
                                           f"{first_row_of[ident]}")
        except _RowError as exc:
            parsed.rejections.append(RowRejection(number, ident, exc.kind, exc.reason))
            continue
        first_row_of[ident] = number
        parsed.classifications.append(classification)
        subject_id = classification.subject_id
        known = earliest.get(subject_id)
        if known is None or classification.created_at < known[0]:
            earliest[subject_id] = (classification.created_at, metadata)
        if retirement is not None:
            _note_retirement(parsed.retirements, subject_id, retirement)
    parsed.classifications.sort(key=ExportClassification.sort_key)
    parsed.subjects = {
        subject_id: ExportSubject(subject_id=subject_id, metadata=metadata,
                                  **_subject_fields(metadata))
        for subject_id, (_, metadata) in sorted(earliest.items())
    }
    return parsed


def _open(path: Path):
    return path.open(newline="", encoding="utf-8-sig")


def _header(path: Path) -> list[str]:
    try:
        with _open(path) as stream:
            header = next(csv.reader(stream), None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ExportError(f"{path.name} is not a readable CSV file: {exc}") from exc
    if not header or not any(column.strip() for column in header):
        raise ExportError(f"{path.name} has no header row")
    header = [column.strip() for column in header]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise ExportError(
            f"{path.name} is not a Zooniverse classification export: missing column"
            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        )
    return header


def _data_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(row number, values) of every non-empty data row."""
    try:
        with _open(path) as stream:
            reader = csv.reader(stream)
            next(reader, None)
            number = 0
            for values in reader:
                if not values:
                    continue
                number += 1
                yield number, values
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ExportError(f"{path.name} is not a readable CSV file: {exc}") from exc


def _choose_workflow(
    path: Path, header: list[str], wanted: str | None
) -> tuple[str, dict[str, int]]:
    position = header.index("workflow_id")
    counts = Counter(
        values[position].strip()
        for _, values in _data_rows(path)
        if len(values) == len(header)
    )
    described = ", ".join(f"{wid or '(blank)'} ({n} rows)" for wid, n in counts.most_common())
    if wanted is not None:
        wanted = wanted.strip()
        if wanted not in counts:
            raise ExportError(
                f"{path.name} holds no rows of Zooniverse workflow {wanted}"
                + (f"; it holds {described}" if counts else "")
            )
        return wanted, dict(counts)
    ranked = counts.most_common(2)
    if not ranked:
        return "", {}
    if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
        raise ExportError(
            f"{path.name} mixes Zooniverse workflows evenly ({described}); choose one"
        )
    return ranked[0][0], dict(counts)


# --- one row -------------------------------------------------------------------------------


def _parse_row(
    number: int, row: Mapping[str, str], answer_map: Mapping[str, str], task: str | None
) -> tuple[ExportClassification, dict[str, Any], datetime | None]:
    """The row's classification, its subject's metadata and retirement (see `_subject`)."""
    ident = row["classification_id"].strip()
    if not ident:
        raise _RowError(BAD_ID, "no classification_id")
    if not ident.isdigit():
        raise _RowError(BAD_ID, f"classification_id {ident!r} is not a number")
    name, anonymous = volunteer_name(row["user_name"], row["user_id"])
    try:
        created_at = parse_timestamp(row["created_at"])
    except ValueError:
        raise _RowError(BAD_TIME, f"created_at {row['created_at']!r} is not a time like "
                                  "'2025-11-11 18:02:33 UTC'") from None
    metadata = _json_object(row["metadata"], "metadata", BAD_METADATA)
    label = _answer_label(row["annotations"], task)
    answer = answer_map.get(label)
    if answer is None:
        raise _RowError(UNKNOWN_ANSWER, f"unknown answer {label!r} (the answer map knows "
                                        f"{', '.join(map(repr, answer_map))})")
    subject_id, subject_metadata, retirement = _subject(row["subject_ids"], row["subject_data"])
    classification = ExportClassification(
        row=number,
        classification_id=ident,
        volunteer_name=name,
        anonymous=anonymous,
        workflow_id=row["workflow_id"].strip(),
        created_at=created_at,
        subject_id=subject_id,
        answer=answer,
        label=label,
        seen_before=_is_true(metadata.get("seen_before")),
        gold_standard=_flag(row["gold_standard"], _TRUE),
        expert=row["expert"].strip().lower() not in _FALSE,
        user_agent=str(metadata.get("user_agent") or ""),
        finished_at=_optional_time(metadata.get("finished_at")),
    )
    return classification, subject_metadata, retirement


def _json(text: str, column: str, kind: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _RowError(kind, f"{column} is not valid JSON ({exc})") from None


def _json_object(text: str, column: str, kind: str) -> dict[str, Any]:
    value = _json(text, column, kind)
    if not isinstance(value, dict):
        raise _RowError(kind, f"{column} is JSON but not an object")
    return value


def _answer_label(text: str, task: str | None) -> str:
    annotations = _json(text, "annotations", BAD_ANNOTATIONS)
    if not isinstance(annotations, list):
        raise _RowError(BAD_ANNOTATIONS, "annotations is JSON but not a list of tasks")
    if not annotations:
        raise _RowError(BAD_ANNOTATIONS, "empty annotations: no answer")
    if not all(isinstance(item, dict) for item in annotations):
        raise _RowError(BAD_ANNOTATIONS, "annotations holds something other than task objects")
    if task is not None:
        chosen = [item for item in annotations if item.get("task") == task]
        if not chosen:
            raise _RowError(BAD_ANNOTATIONS, f"annotations hold no answer to task {task}")
    else:
        chosen = annotations
    if len(chosen) > 1:
        tasks = ", ".join(str(item.get("task")) for item in chosen)
        raise _RowError(BAD_ANNOTATIONS, f"annotations hold {len(chosen)} answers ({tasks}); "
                                         "expected one task")
    value = chosen[0].get("value")
    if isinstance(value, bool) or value is None:
        raise _RowError(BAD_ANNOTATIONS, f"task {chosen[0].get('task')} has no answer")
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise _RowError(BAD_ANNOTATIONS, f"task {chosen[0].get('task')} answer is a "
                                         f"{type(value).__name__}, not one label")
    return value


# A retired block without a readable retired_at: retired, at a time the export does not say.
_RETIRED_AT_UNKNOWN = datetime.max.replace(tzinfo=UTC)


def _note_retirement(
    retirements: dict[str, datetime | None], subject_id: str, retired_at: datetime
) -> None:
    known = retirements.get(subject_id) or _RETIRED_AT_UNKNOWN
    earliest = min(known, retired_at)
    retirements[subject_id] = None if earliest == _RETIRED_AT_UNKNOWN else earliest


def _subject(ids_text: str, data_text: str) -> tuple[str, dict[str, Any], datetime | None]:
    """The row's subject id, its metadata, and when its retired block says it retired (None:
    not retired; `_RETIRED_AT_UNKNOWN`: retired at an unknown time)."""
    ids = [part.strip() for part in ids_text.replace(",", ";").split(";") if part.strip()]
    if not ids:
        raise _RowError(BAD_SUBJECT, "no subject id")
    if len(ids) > 1:
        raise _RowError(BAD_SUBJECT, f"{len(ids)} subject ids ({ids_text.strip()}); "
                                     "expected one")
    subject_id = ids[0]
    if not subject_id.isdigit():
        raise _RowError(BAD_SUBJECT, f"subject id {subject_id!r} is not a number")
    data = _json_object(data_text, "subject_data", BAD_SUBJECT_DATA)
    entry = data.get(subject_id)
    if entry is None:
        raise _RowError(BAD_SUBJECT_DATA, f"subject_data holds no entry for subject {subject_id}")
    if not isinstance(entry, dict):
        raise _RowError(BAD_SUBJECT_DATA, f"subject_data for subject {subject_id} is not an "
                                          "object")
    metadata = {key: value for key, value in entry.items() if key != "retired"}
    block = entry.get("retired")
    if not block:
        return subject_id, metadata, None
    retired_at = block.get("retired_at") if isinstance(block, dict) else None
    return subject_id, metadata, _optional_time(retired_at) or _RETIRED_AT_UNKNOWN


def _subject_fields(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Subject field values found in the metadata; nothing is invented or rejected here."""
    fields: dict[str, Any] = {}
    for key, value in metadata.items():
        name = _SUBJECT_FIELDS.get(key.lstrip("#!/").lower().replace("_", ""))
        if name is None or name in fields or value is None:
            continue
        if name in _FLOAT_FIELDS:
            number = _optional_float(value)
            if number is not None:
                fields[name] = number
        elif isinstance(value, str | int) and str(value).strip():
            fields[name] = str(value).strip()
    return fields


def _optional_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _optional_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _flag(text: str, true_values: frozenset[str]) -> bool:
    return text.strip().lower() in true_values


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in _TRUE)
