"""NPZ stamp archives: `template`, `science`, `difference` arrays of shape (N, H, W).

Per-stamp metadata comes from any other 1-D array of length N in the archive and from a CSV
with the archive's stem next to it (``stamps.npz`` + ``stamps.csv``, one row per stamp, in
order), a CSV column overriding an array of the same name. Columns are matched to record
fields by `base.COLUMN_ALIASES` (external_id / diaSourceId / subject_id, origin, snr, psfFlux,
psfFluxErr, ra, dec, band, reliability); the others go to metadata.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from labeling.ingest.base import (
    InputError,
    Reader,
    ReadItem,
    RecordError,
    fields_from_columns,
    guarded,
    make_record,
    read_csv_rows,
    read_npz,
    record_source,
)
from labeling.ingest.limits import IngestLimits, LimitExceeded
from labeling.records import STAMP_KINDS


def _stamp_stacks(archive: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    missing = [kind for kind in STAMP_KINDS if kind not in archive]
    if missing:
        raise InputError(f"archive has no {', '.join(missing)} array")
    stacks = {kind: archive[kind] for kind in STAMP_KINDS}
    for kind, stack in stacks.items():
        if stack.ndim != 3:
            raise InputError(f"{kind} array must have shape (N, H, W), got {stack.shape}")
    counts = {len(stack) for stack in stacks.values()}
    if len(counts) != 1:
        sizes = ", ".join(f"{kind} {len(stack)}" for kind, stack in stacks.items())
        raise InputError(f"stamp arrays hold different numbers of stamps ({sizes})")
    return stacks


def _metadata_columns(archive: Mapping[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    columns = {}
    for name, column in archive.items():
        if name in STAMP_KINDS:
            continue
        if column.shape != (count,):
            raise InputError(
                f"metadata array {name!r} has shape {column.shape}, expected ({count},)"
            )
        columns[name] = column
    return columns


def _sidecar_columns(sidecar: Path, count: int) -> dict[str, list[str]]:
    header, rows = read_csv_rows(sidecar)
    if len(rows) != count:
        raise InputError(f"{sidecar.name} has {len(rows)} rows for {count} stamps")
    return {column: [row[column] for row in rows] for column in header}


class NpzReader(Reader):
    format_name = "npz"

    def _read(self, path: Path, origin: str | None, limits: IngestLimits) -> Iterator[ReadItem]:
        try:
            archive = read_npz(path, path.name, limits)
        except (RecordError, LimitExceeded) as exc:
            raise InputError(str(exc)) from exc
        stacks = _stamp_stacks(archive)
        count = len(stacks["template"])
        columns = _metadata_columns(archive, count)
        sidecar = path.with_suffix(".csv")
        if sidecar.is_file():
            columns.update(_sidecar_columns(sidecar, count))
        for index in range(count):
            source = record_source(path, index)
            stamps = {kind: stack[index] for kind, stack in stacks.items()}
            row = {name: values[index] for name, values in columns.items()}
            yield guarded(source, make_record, source, stamps, fields_from_columns(row), origin)
