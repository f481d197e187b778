"""What every ingest reader shares: the interface, record building and value parsing.

A reader turns one input path into a stream of `SubjectRecord`s and `Rejection`s and never
raises for bad input: an unreadable file becomes one Rejection naming the file, and a bad
record inside a readable file becomes one Rejection naming the record (``file[index]``)
while the reader goes on with the next one. Text the database could not store (a NUL, a
file name that is not UTF-8, a value longer than its column) is such a bad record, and every
size is checked against the `IngestLimits` before anything is allocated for it.
"""

from __future__ import annotations

import csv
import errno
import io
import math
import os
import warnings
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import fastavro
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from PIL import Image

from labeling.ingest.limits import IngestLimits, LimitExceeded
from labeling.records import (
    BAND_MAX_LENGTH,
    EXTERNAL_ID_MAX_LENGTH,
    ORIGIN_MAX_LENGTH,
    STAMP_KINDS,
    Rejection,
    SubjectRecord,
)
from labeling.stamps import check_stamp

ReadItem = SubjectRecord | Rejection
Shape = tuple[int, ...]

AVRO_CONTAINER_MAGIC = b"Obj\x01"
AVRO_SYNC_LENGTH = 16
GZIP_MAGIC = b"\x1f\x8b"
JPEG_MAGIC = b"\xff\xd8\xff"
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


def printable(text: str) -> str:
    """`text` with anything that cannot be written as UTF-8 (the lone surrogates Python
    decodes a non-UTF-8 file name into) spelled as a backslash escape, for reports."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unreadable_entry(path: Path) -> str | None:
    """Why `path` (a symbolic link) cannot be read, or None when it can."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if exc.errno == errno.ENOENT:
            return "a broken symbolic link"
        return f"unreadable ({exc.strerror})"
    return None


class Reader(ABC):
    """One input format. Subclasses implement `_read`; `read` guarantees the no-raise contract."""

    format_name: ClassVar[str]

    def read(
        self, path: Path, origin: str | None = None, *, limits: IngestLimits
    ) -> Iterator[ReadItem]:
        """Yield a record or a rejection for everything in `path`, at least one item.

        `origin`, when given, replaces whatever origin the input carries for every record.
        An input that yields nothing (an empty archive, a directory of broken links) is
        itself rejected, so that it never passes as a clean ingest of zero subjects.
        """
        path = Path(path)
        source = printable(path.name)
        if not is_utf8(path.name):
            yield Rejection(source=source, reason="file name is not valid UTF-8; rename it")
            return
        if not path.exists():
            reason = unreadable_entry(path) if path.is_symlink() else None
            yield Rejection(source=source, reason=f"no such file or directory: {reason or path}")
            return
        yielded = False
        try:
            for item in self._read(path, origin, limits):
                yielded = True
                yield _printable_rejection(item) if isinstance(item, Rejection) else item
        except InputError as exc:
            yielded = True
            yield Rejection(source=source, reason=printable(str(exc)))
        # Parsers of untrusted bytes (astropy, fastavro, numpy, zipfile, csv) report malformed
        # input with an open-ended set of exception types; a bad file must become a Rejection,
        # never the end of an ingest run.
        except Exception as exc:
            yielded = True
            yield Rejection(
                source=source,
                reason=printable(f"unreadable {self.format_name} input: {describe_error(exc)}"),
            )
        if not yielded:
            yield Rejection(source=source, reason=f"no {self.format_name} records found")

    @abstractmethod
    def _read(self, path: Path, origin: str | None, limits: IngestLimits) -> Iterator[ReadItem]:
        """Yield records and per-record rejections; may raise for a file-level problem."""


def _printable_rejection(rejection: Rejection) -> Rejection:
    return Rejection(source=printable(rejection.source), reason=printable(rejection.reason))


# --- records ---------------------------------------------------------------------------


def record_source(path: Path, index: int) -> str:
    return f"{printable(path.name)}[{index}]"


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
    detection_pixel: tuple[int, int] | None = None,
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
    origin = to_text(origin_override if origin_override is not None else fields.get("origin"))
    band = to_text(fields.get("band"))
    for name, value, max_length in (
        ("external id", external_id, EXTERNAL_ID_MAX_LENGTH),
        ("origin", origin, ORIGIN_MAX_LENGTH),
        ("band", band, BAND_MAX_LENGTH),
    ):
        check_text(value, name, max_length)
    metadata = dict(fields.get("metadata", {}))
    check_metadata_text(metadata)
    return SubjectRecord(
        external_id=external_id,
        source=source,
        origin=origin,
        band=band,
        metadata=metadata,
        detection_pixel=detection_pixel,
        **checked,
        **{name: to_optional_float(fields.get(name), name) for name in FLOAT_FIELDS},
    )


def check_text(value: str, name: str, max_length: int | None = None) -> None:
    """RecordError unless `value` can be stored as text: no NUL character (PostgreSQL text
    and jsonb refuse it), valid UTF-8, and at most `max_length` characters."""
    if "\x00" in value:
        raise RecordError(f"{name} contains a NUL character: {printable(value)[:80]!r}")
    if not is_utf8(value):
        raise RecordError(f"{name} is not valid UTF-8: {printable(value)[:80]!r}")
    if max_length is not None and len(value) > max_length:
        raise RecordError(
            f"{name} is {len(value)} characters long, longer than its {max_length}-character "
            f"column: {value[:40]!r}..."
        )


def check_metadata_text(value: Any, name: str = "metadata") -> None:
    """`check_text` on every key and string in a metadata value, nested or not."""
    if isinstance(value, str):
        check_text(value, name)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_text(str(key), f"{name} key")
            check_metadata_text(item, f"{name} {printable(str(key))!r}")
    elif isinstance(value, list | tuple):
        for item in value:
            check_metadata_text(item, name)


# --- arrays ----------------------------------------------------------------------------

_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def read_npy(stream: BinaryIO, label: str, limits: IngestLimits) -> np.ndarray:
    """One array in .npy format from `stream`, its header checked against `limits` before a
    byte of data is read. Raises RecordError for malformed or truncated data and
    LimitExceeded for an array over a cap.
    """
    try:
        version = np.lib.format.read_magic(stream)
        read_header = _NPY_HEADER_READERS.get(version)
        if read_header is None:
            raise RecordError(f"{label} is .npy version {version}, not 1.0 or 2.0")
        shape, fortran_order, dtype = read_header(stream)
    except ValueError as exc:
        raise RecordError(f"{label} is not a readable .npy file: {describe_error(exc)}") from exc
    if dtype.hasobject:
        raise RecordError(f"{label} holds Python objects, not numbers")
    limits.check_shape(shape, dtype.itemsize, label)
    size = math.prod(shape) * dtype.itemsize
    data = stream.read(size)
    if len(data) < size:
        raise RecordError(f"{label} is truncated ({len(data)} of {size} data bytes)")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def read_npz(path: Path, label: str, limits: IngestLimits) -> dict[str, np.ndarray]:
    """Every array of an .npz (zip) archive, keyed by name without ``.npy``.

    The members' declared sizes are checked against the cap before any is decompressed (a
    zip member never inflates beyond its declared size), and each array header before its
    data. Raises RecordError or LimitExceeded; zipfile's own errors for a corrupt archive.
    """
    if not zipfile.is_zipfile(path):
        raise RecordError(f"{label} is not an .npz (zip) archive")
    with zipfile.ZipFile(path) as archive:
        members = [info for info in archive.infolist() if info.filename.endswith(".npy")]
        limits.check_bytes(sum(info.file_size for info in members), label)
        arrays = {}
        for info in members:
            name = info.filename.removesuffix(".npy")
            with archive.open(info) as stream:
                arrays[name] = read_npy(stream, f"{label} array {name!r}", limits)
    return arrays


# --- FITS ------------------------------------------------------------------------------


def is_fits_name(name: str) -> bool:
    return name.lower().endswith(FITS_SUFFIXES)


@dataclass(frozen=True)
class FitsHdu:
    """One HDU read into memory; `data` is None for an empty HDU and for table HDUs."""

    name: str
    header: fits.Header
    data: np.ndarray | None


def read_fits(content: bytes | Path, label: str, limits: IngestLimits) -> list[FitsHdu]:
    """Every HDU of FITS bytes or a FITS file (plain or gzipped), read into memory.

    The file's size, its decompressed size and each image's declared shape are checked
    against `limits` before they are read. Raises `RecordError` naming `label` when the
    content is not readable FITS, LimitExceeded when it is over a cap.
    """
    if isinstance(content, Path):
        limits.check_bytes(content.stat().st_size, label)
        content = content.read_bytes()
    if content.startswith(GZIP_MAGIC):
        try:
            content = limits.gunzip(content, label)
        except (OSError, EOFError, zlib.error) as exc:
            raise RecordError(f"{label} is not valid gzip: {describe_error(exc)}") from exc
    try:
        with warnings.catch_warnings():
            # astropy only warns about a truncated file and pads what is missing: it is corrupt.
            warnings.filterwarnings("error", message="File may have been truncated")
            with fits.open(io.BytesIO(content), memmap=False) as hdus:
                return [_read_hdu(hdu, label, limits) for hdu in hdus]
    except LimitExceeded:
        raise
    # astropy signals corrupt or truncated FITS with OSError, TypeError, ValueError and more.
    except Exception as exc:
        raise RecordError(f"{label} is not readable FITS: {describe_error(exc)}") from exc


def _read_hdu(hdu: Any, label: str, limits: IngestLimits) -> FitsHdu:
    data = None
    if hdu.is_image and hdu.header.get("NAXIS", 0) > 0:
        # The header's shape, before astropy allocates for it.
        limits.check_shape(tuple(hdu.shape), abs(int(hdu.header["BITPIX"])) // 8, label)
        data = None if hdu.data is None else np.array(hdu.data)
    return FitsHdu(name=hdu.name, header=hdu.header.copy(), data=data)


def first_image(hdus: list[FitsHdu], label: str) -> np.ndarray:
    """The data of the first HDU (primary or extension) that holds a 2-D image."""
    for hdu in hdus:
        if hdu.data is not None and hdu.data.ndim == 2:
            return hdu.data
    shapes = [hdu.data.shape for hdu in hdus if hdu.data is not None]
    raise RecordError(f"{label} has no 2-D image HDU (image shapes found: {shapes or 'none'})")


def image_from_fits(content: bytes | Path, label: str, limits: IngestLimits) -> np.ndarray:
    """The first 2-D image in FITS bytes (plain or gzipped) or a FITS file."""
    return first_image(read_fits(content, label, limits), label)


# --- Avro alerts -----------------------------------------------------------------------


def open_avro_container(
    stream: BinaryIO, namespace: str, limits: IngestLimits
) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """(writer schema, records) of an Avro container whose schema is in `namespace` (lsst, ztf).

    Raises `InputError` for a container of some other schema, so that a reader forced onto
    the wrong kind of alert says so instead of rejecting every record, and for a compressed
    container with a block that would inflate past the cap.
    """
    container = fastavro.reader(stream)
    name = avro_schema_name(container.writer_schema)
    if not name.startswith(f"{namespace}."):
        raise InputError(f"Avro container schema {name!r} is not a {namespace} alert schema")
    codec = container.metadata.get("avro.codec", "null")
    if codec != "null":
        position = stream.tell()
        _check_compressed_blocks(stream, codec, limits)
        stream.seek(position)
    return container.writer_schema, container


def _read_avro_long(stream: BinaryIO) -> int | None:
    """One zig-zag varint, or None at the end of the stream."""
    shift = result = 0
    while byte := stream.read(1):
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7
    return None


def _check_compressed_blocks(stream: BinaryIO, codec: str, limits: IngestLimits) -> None:
    """Raise InputError unless every block of a compressed container inflates within the cap.

    fastavro inflates a whole block at once and unbounded, so the blocks are walked here
    first: the header (magic, metadata map, sync marker), then each block's record count,
    size, bytes and sync marker. A file cut short just ends the walk; reading it then reports
    the truncation as usual.
    """
    if codec != "deflate":
        raise InputError(f"Avro container codec {codec!r} is not supported (null or deflate)")
    stream.seek(len(AVRO_CONTAINER_MAGIC))
    while count := _read_avro_long(stream):
        if count < 0:  # a negative count is followed by the block's size in bytes
            _read_avro_long(stream)
        for _ in range(abs(count)):
            for _ in ("key", "value"):
                stream.seek(_read_avro_long(stream) or 0, io.SEEK_CUR)
    stream.seek(AVRO_SYNC_LENGTH, io.SEEK_CUR)
    index = 0
    while _read_avro_long(stream) is not None:
        size = _read_avro_long(stream)
        block = stream.read(size) if size and size > 0 else b""
        if size is None or len(block) < size:
            return
        try:
            limits.check_inflated_size(block, f"container block {index}")
        except LimitExceeded as exc:
            raise InputError(str(exc)) from exc
        except zlib.error:
            return  # corrupt: fastavro's own reading reports it
        stream.seek(AVRO_SYNC_LENGTH, io.SEEK_CUR)
        index += 1


def whole_alerts(alerts: Iterable[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, alert) for each alert of a container that decodes whole.

    The truncation rule, the same for Rubin and ZTF containers: every alert before the
    damage is complete (Avro decodes an alert entirely or not at all) and goes in; the
    damage itself is one InputError, reported as a rejection of the file that says how many
    alerts came before it, so a cut-short file never passes as a clean ingest.
    """
    iterator = iter(alerts)
    index = 0
    while True:
        try:
            alert = next(iterator)
        except StopIteration:
            return
        # fastavro reports a cut-short block with EOFError, ValueError (sync marker) and more.
        except Exception as exc:
            raise InputError(
                f"container truncated or corrupt after {index} whole alert(s), which were "
                f"read; the rest is lost: {describe_error(exc)}"
            ) from exc
        yield index, alert
        index += 1


def avro_schema_name(schema: Any) -> str:
    return schema.get("name", "") if isinstance(schema, dict) else ""


def container_schema_name(path: Path) -> str:
    """The writer schema name in an Avro container's header (ValueError if unreadable)."""
    with path.open("rb") as stream:
        return avro_schema_name(fastavro.reader(stream).writer_schema)


@dataclass(frozen=True)
class Cutout:
    """One alert cutout's image, and the FITS header it came with (None for a JPEG)."""

    image: np.ndarray
    header: fits.Header | None


def alert_cutouts(
    alert: Mapping[str, Any], fits_bytes: Callable[[Any], bytes | None], limits: IngestLimits
) -> dict[str, Cutout]:
    """An alert's three cutouts, keyed by stamp kind.

    `fits_bytes` extracts the FITS bytes from a cutout field's value (None when absent).
    Raises `RecordError` naming every cutout that is null or absent.
    """
    content = {kind: fits_bytes(alert.get(field)) for kind, field in ALERT_CUTOUT_FIELDS.items()}
    missing = [ALERT_CUTOUT_FIELDS[kind] for kind, data in content.items() if not data]
    if missing:
        raise RecordError(f"cutout missing (null or absent): {', '.join(missing)}")
    return {
        kind: read_cutout(data, ALERT_CUTOUT_FIELDS[kind], limits)
        for kind, data in content.items()
    }


def read_cutout(content: bytes, label: str, limits: IngestLimits) -> Cutout:
    """A cutout: FITS (plain or gzipped; the first 2-D image and its header) or, in ZTF's
    2017 prototype packets, JPEG."""
    if content.startswith(JPEG_MAGIC):
        return Cutout(image_from_jpeg(content, label, limits), None)
    hdus = read_fits(content, label, limits)
    image = first_image(hdus, label)
    header = next(hdu.header for hdu in hdus if hdu.data is image)
    return Cutout(image, header)


def wcs_pixel(header: fits.Header, ra: float, dec: float, shape: Shape) -> tuple[int, int] | None:
    """The (row, column) of sky position (ra, dec) in an image of `shape` with this header's
    celestial WCS, or None when the header has no usable WCS or the position falls outside."""
    try:
        with warnings.catch_warnings():
            # astropy notes the keywords it normalises (dates, units); nothing is wrong.
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
        if not wcs.has_celestial:
            return None
        x, y = wcs.world_to_pixel_values(ra, dec)
    # A malformed WCS header fails in astropy's own ways; it just means no WCS to go by.
    except Exception:
        return None
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    # world_to_pixel counts from 0 at the centre of the first pixel, as numpy does.
    row, col = round(float(y)), round(float(x))
    return (row, col) if 0 <= row < shape[0] and 0 <= col < shape[1] else None


def image_from_jpeg(content: bytes, label: str, limits: IngestLimits) -> np.ndarray:
    """The grey levels (0-255, as float32) of a JPEG cutout, in FITS row order.

    A picture's first row is its top edge, while FITS row 0 (and so this platform's) is the
    bottom, so the rows are reversed: the stamp then renders as the JPEG was drawn. The size
    in the JPEG header is checked against the caps before the pixels are decoded.
    """
    try:
        with Image.open(io.BytesIO(content), formats=["JPEG"]) as picture:
            width, height = picture.size
            limits.check_shape((height, width), np.dtype(np.float32).itemsize, label)
            grey = np.asarray(picture.convert("L"), dtype=np.float32)
    except LimitExceeded:
        raise
    # Pillow reports a corrupt or truncated JPEG with OSError, SyntaxError and others.
    except Exception as exc:
        raise RecordError(f"{label} is not a readable JPEG: {describe_error(exc)}") from exc
    return np.flipud(grey)


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
