"""What every ingest reader shares: the interface, record building and value parsing.

A reader turns one input path into a stream of `SubjectRecord`s and `Rejection`s and never
raises for bad input: an unreadable file becomes one Rejection naming the file, and a bad
record inside a readable file becomes one Rejection naming the record (``file[index]``)
while the reader goes on with the next one.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import warnings
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import fastavro
import numpy as np
from astropy.io import fits

from labeling.records import STAMP_KINDS, Rejection, SubjectRecord
from labeling.stamps import check_stamp

ReadItem = SubjectRecord | Rejection

AVRO_CONTAINER_MAGIC = b"Obj\x01"
GZIP_MAGIC = b"\x1f\x8b"
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")

# The SubjectRecord fields a tabular input (NPZ arrays, CSV columns) may fill, keyed by
# column name with case and underscores ignored; every other column goes to metadata.
COLUMN_ALIASES = {
    "externalid": "external_id",
    "diasourceid": "external_id",
    "subjectid": "external_id",
    "origin": "origin",
    "snr": "snr",
    "psfflux": "psf_flux",
    "psffluxerr": "psf_flux_err",
    "ra": "ra",
    "dec": "dec",
    "band": "band",
    "reliability": "reliability",
}
FLOAT_FIELDS = ("snr", "psf_flux", "psf_flux_err", "ra", "dec", "reliability")
ALERT_CUTOUT_FIELDS = {
    "template": "cutoutTemplate",
    "science": "cutoutScience",
    "difference": "cutoutDifference",
}


class RecordError(ValueError):
    """One record that cannot become a subject; the message is the Rejection reason."""


class InputError(ValueError):
    """A whole input that cannot be used; the message is the Rejection reason."""


def describe_error(exc: BaseException) -> str:
    """The exception's type and message, followed by its cause's when it was chained."""
    description = f"{type(exc).__name__}: {exc}"
    if exc.__cause__ is not None:
        description += f" (caused by {describe_error(exc.__cause__)})"
    return description


class Reader(ABC):
    """One input format. Subclasses implement `_read`; `read` guarantees the no-raise contract."""

    format_name: ClassVar[str]

    def read(self, path: Path, origin: str | None = None) -> Iterator[ReadItem]:
        """Yield a record or a rejection for everything in `path`.

        `origin`, when given, replaces whatever origin the input carries for every record.
        """
        path = Path(path)
        if not path.exists():
            yield Rejection(source=path.name, reason=f"no such file or directory: {path}")
            return
        try:
            yield from self._read(path, origin)
        except InputError as exc:
            yield Rejection(source=path.name, reason=str(exc))
        # Parsers of untrusted bytes (astropy, fastavro, numpy, zipfile, csv) report malformed
        # input with an open-ended set of exception types; a bad file must become a Rejection,
        # never the end of an ingest run.
        except Exception as exc:
            yield Rejection(
                source=path.name,
                reason=f"unreadable {self.format_name} input: {describe_error(exc)}",
            )

    @abstractmethod
    def _read(self, path: Path, origin: str | None) -> Iterator[ReadItem]:
        """Yield records and per-record rejections; may raise for a file-level problem."""


# --- records ---------------------------------------------------------------------------


def record_source(path: Path, index: int) -> str:
    return f"{path.name}[{index}]"


def guarded(source: str, build: Callable[..., SubjectRecord], *args: Any) -> ReadItem:
    """`build(*args)`, or a Rejection of `source` if it raises ValueError.

    ValueError covers RecordError, StampError and unparseable numbers: everything that
    makes one record unusable without making its file unreadable.
    """
    try:
        return build(*args)
    except ValueError as exc:
        return Rejection(source=source, reason=str(exc))


def to_python(value: Any) -> Any:
    """Plain Python for a numpy scalar or bytes, so values are JSON-safe and comparable."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value


def is_blank(value: Any) -> bool:
    value = to_python(value)
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and math.isnan(value))
    )


def to_optional_float(value: Any, name: str) -> float | None:
    """A finite float, or None for a blank or non-finite value; RecordError if not a number."""
    if is_blank(value):
        return None
    value = to_python(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RecordError(f"{name} is not a number: {value!r}") from None
    return number if math.isfinite(number) else None


def to_text(value: Any) -> str:
    return "" if is_blank(value) else str(to_python(value)).strip()


def json_safe(value: Any) -> Any:
    """A metadata value that survives JSON (and PostgreSQL jsonb): non-finite floats become None."""
    value = to_python(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def pick_metadata(source: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The JSON-safe values of those `keys` that `source` holds and are not blank."""
    return {key: json_safe(source[key]) for key in keys if not is_blank(source.get(key))}


def fields_from_columns(row: Mapping[str, Any]) -> dict[str, Any]:
    """Split one tabular row into SubjectRecord field values and a metadata dict.

    Columns are matched to fields by `COLUMN_ALIASES`; blank values are left out.
    """
    fields: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for column, value in row.items():
        if is_blank(value):
            continue
        field_name = COLUMN_ALIASES.get(column.lower().replace("_", ""))
        if field_name is None:
            metadata[column] = json_safe(value)
        else:
            fields.setdefault(field_name, value)
    fields["metadata"] = metadata
    return fields


def make_record(
    source: str,
    stamps: Mapping[str, Any],
    fields: Mapping[str, Any],
    origin_override: str | None,
) -> SubjectRecord:
    """Build a checked SubjectRecord or raise `RecordError` / `StampError`.

    `stamps` maps each of STAMP_KINDS to its 2-D array. `fields` holds raw values for any of
    external_id, origin, snr, psf_flux, psf_flux_err, ra, dec, band, reliability and metadata.
    No external id is ever invented: a record without one is rejected.
    """
    external_id = to_text(fields.get("external_id"))
    if not external_id:
        raise RecordError("no external id (external_id / diaSourceId / subject_id)")
    missing = [kind for kind in STAMP_KINDS if stamps.get(kind) is None]
    if missing:
        raise RecordError(f"missing {' and '.join(missing)} stamp")
    checked = {kind: check_stamp(stamps[kind], f"{kind} stamp") for kind in STAMP_KINDS}
    origin = origin_override.strip() if origin_override is not None else fields.get("origin")
    return SubjectRecord(
        external_id=external_id,
        source=source,
        origin=to_text(origin),
        band=to_text(fields.get("band")),
        metadata=dict(fields.get("metadata", {})),
        **checked,
        **{name: to_optional_float(fields.get(name), name) for name in FLOAT_FIELDS},
    )


# --- FITS ------------------------------------------------------------------------------


def is_fits_name(name: str) -> bool:
    return name.lower().endswith(FITS_SUFFIXES)


@dataclass(frozen=True)
class FitsHdu:
    """One HDU read into memory; `data` is None for an empty HDU and for table HDUs."""

    name: str
    header: fits.Header
    data: np.ndarray | None


def read_fits(content: bytes | Path, label: str) -> list[FitsHdu]:
    """Every HDU of FITS bytes (plain or gzipped) or a FITS file, read into memory.

    Raises `RecordError` naming `label` when the content is not readable FITS.
    """
    if isinstance(content, bytes) and content.startswith(GZIP_MAGIC):
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError, zlib.error) as exc:
            raise RecordError(f"{label} is not valid gzip: {describe_error(exc)}") from exc
    source = io.BytesIO(content) if isinstance(content, bytes) else content
    try:
        with warnings.catch_warnings():
            # astropy only warns about a truncated file and pads what is missing: it is corrupt.
            warnings.filterwarnings("error", message="File may have been truncated")
            with fits.open(source, memmap=False) as hdus:
                return [
                    FitsHdu(
                        name=hdu.name,
                        header=hdu.header.copy(),
                        data=np.array(hdu.data)
                        if hdu.is_image and hdu.data is not None
                        else None,
                    )
                    for hdu in hdus
                ]
    # astropy signals corrupt or truncated FITS with OSError, TypeError, ValueError and more.
    except Exception as exc:
        raise RecordError(f"{label} is not readable FITS: {describe_error(exc)}") from exc


def first_image(hdus: list[FitsHdu], label: str) -> np.ndarray:
    """The data of the first HDU (primary or extension) that holds a 2-D image."""
    for hdu in hdus:
        if hdu.data is not None and hdu.data.ndim == 2:
            return hdu.data
    shapes = [hdu.data.shape for hdu in hdus if hdu.data is not None]
    raise RecordError(f"{label} has no 2-D image HDU (image shapes found: {shapes or 'none'})")


def image_from_fits(content: bytes | Path, label: str) -> np.ndarray:
    """The first 2-D image in FITS bytes (plain or gzipped) or a FITS file."""
    return first_image(read_fits(content, label), label)


# --- Avro alerts -----------------------------------------------------------------------


def open_avro_container(
    stream: BinaryIO, namespace: str
) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """(writer schema, records) of an Avro container whose schema is in `namespace` (lsst, ztf).

    Raises `InputError` for a container of some other schema, so that a reader forced onto
    the wrong kind of alert says so instead of rejecting every record.
    """
    container = fastavro.reader(stream)
    name = avro_schema_name(container.writer_schema)
    if not name.startswith(f"{namespace}."):
        raise InputError(f"Avro container schema {name!r} is not a {namespace} alert schema")
    return container.writer_schema, container


def avro_schema_name(schema: Any) -> str:
    return schema.get("name", "") if isinstance(schema, dict) else ""


def container_schema_name(path: Path) -> str:
    """The writer schema name in an Avro container's header (ValueError if unreadable)."""
    with path.open("rb") as stream:
        return avro_schema_name(fastavro.reader(stream).writer_schema)


def alert_cutouts(
    alert: Mapping[str, Any], fits_bytes: Callable[[Any], bytes | None]
) -> dict[str, np.ndarray]:
    """The images of an alert's three cutout fields, keyed by stamp kind.

    `fits_bytes` extracts the FITS bytes from a cutout field's value (None when absent).
    Raises `RecordError` naming every cutout that is null or absent.
    """
    content = {kind: fits_bytes(alert.get(field)) for kind, field in ALERT_CUTOUT_FIELDS.items()}
    missing = [ALERT_CUTOUT_FIELDS[kind] for kind, data in content.items() if not data]
    if missing:
        raise RecordError(f"cutout missing (null or absent): {', '.join(missing)}")
    return {
        kind: image_from_fits(data, ALERT_CUTOUT_FIELDS[kind]) for kind, data in content.items()
    }


# --- CSV -------------------------------------------------------------------------------


def read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV file with a header row (a UTF-8 byte-order mark is allowed)."""
    with path.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        if not reader.fieldnames:
            raise InputError(f"{path.name} has no header row")
        rows = list(reader)
    header = list(reader.fieldnames)
    for index, row in enumerate(rows):
        # DictReader files surplus values under the key None and fills missing ones with None;
        # either way the row is malformed (a truncated file ends in a short row).
        if None in row:
            raise InputError(f"{path.name} row {index} has more values than header columns")
        if None in row.values():
            raise InputError(f"{path.name} row {index} has fewer values than header columns")
    return header, rows
