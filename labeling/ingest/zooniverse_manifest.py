"""Zooniverse-style subject manifests: a CSV with one row per subject.

Stamps are named either by three columns `template`, `science`, `difference`, each a path
(relative to the CSV's folder) to a .npy or FITS file holding one 2-D stamp, or by one
`stamps` column naming an .npz with 2-D `template`, `science` and `difference` arrays. Other
columns are metadata, matched to record fields by `base.COLUMN_ALIASES` (external_id /
diaSourceId / subject_id, origin, snr, psfFlux, psfFluxErr, ra, dec, band, reliability); the
rest go to metadata. A row whose files are missing or unreadable is rejected on its own.

A stamp path must resolve, symbolic links followed, inside the CSV's folder or one of the
allowed roots (the INGEST_ALLOWED_ROOTS setting); a row naming any other file (``../``, an
absolute path, a link leading out) is rejected without the file being opened, so a manifest
cannot publish files its author could not otherwise serve.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from labeling.ingest.base import (
    InputError,
    Reader,
    ReadItem,
    RecordError,
    describe_error,
    fields_from_columns,
    guarded,
    image_from_fits,
    is_blank,
    is_fits_name,
    make_record,
    read_csv_rows,
    read_npy,
    read_npz,
    record_source,
)
from labeling.ingest.limits import IngestLimits
from labeling.records import STAMP_KINDS, SubjectRecord

BUNDLE_COLUMN = "stamps"


def _load_stamp_file(path: Path, label: str, limits: IngestLimits) -> np.ndarray:
    """One 2-D stamp from a .npy or FITS file."""
    if path.suffix.lower() == ".npy":
        try:
            with path.open("rb") as stream:
                return read_npy(stream, label, limits)
        except OSError as exc:
            raise RecordError(
                f"{label} is not a readable .npy file: {describe_error(exc)}"
            ) from exc
    if is_fits_name(path.name):
        return image_from_fits(path, label, limits)
    raise RecordError(f"{label} is neither a .npy nor a FITS file")


def _load_bundle(path: Path, label: str, limits: IngestLimits) -> dict[str, np.ndarray]:
    """The three stamps of an .npz bundle."""
    try:
        archive = read_npz(path, label, limits)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise RecordError(f"{label} is not a readable .npz archive: {describe_error(exc)}") from exc
    missing = [kind for kind in STAMP_KINDS if kind not in archive]
    if missing:
        raise RecordError(f"{label} has no {', '.join(missing)} array")
    return {kind: archive[kind] for kind in STAMP_KINDS}


def _row_record(
    row: dict[str, str],
    stamp_columns: dict[str, str],
    folder: Path,
    source: str,
    origin: str | None,
    limits: IngestLimits,
) -> SubjectRecord:
    stamps = {}
    for role, column in stamp_columns.items():
        location = row.get(column)
        if is_blank(location):
            raise RecordError(f"no {column} path")
        label = f"{column} file {location!r}"
        if "\x00" in location:
            raise RecordError(f"{label} contains a NUL character")
        stamp_path = limits.resolve_inside(folder, location.strip(), label)
        if not stamp_path.is_file():
            raise RecordError(f"{label} not found")
        if role == BUNDLE_COLUMN:
            stamps = _load_bundle(stamp_path, label, limits)
        else:
            stamps[role] = _load_stamp_file(stamp_path, label, limits)
    other_columns = {
        column: value for column, value in row.items() if column not in stamp_columns.values()
    }
    return make_record(source, stamps, fields_from_columns(other_columns), origin)


def _stamp_columns(header: list[str]) -> dict[str, str]:
    """The columns naming stamps, keyed by role (a stamp kind, or BUNDLE_COLUMN)."""
    by_lower_name = {column.strip().lower(): column for column in header}
    if all(kind in by_lower_name for kind in STAMP_KINDS):
        return {kind: by_lower_name[kind] for kind in STAMP_KINDS}
    if BUNDLE_COLUMN in by_lower_name:
        return {BUNDLE_COLUMN: by_lower_name[BUNDLE_COLUMN]}
    raise InputError(
        "manifest needs template, science and difference columns, or a stamps column; "
        f"found {', '.join(header)}"
    )


class ZooniverseManifestReader(Reader):
    format_name = "zooniverse-manifest"

    def _read(self, path: Path, origin: str | None, limits: IngestLimits) -> Iterator[ReadItem]:
        header, rows = read_csv_rows(path)
        stamp_columns = _stamp_columns(header)
        for index, row in enumerate(rows):
            source = record_source(path, index)
            yield guarded(source, _row_record, row, stamp_columns, path.parent, source, origin,
                          limits)
