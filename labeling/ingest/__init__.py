"""Ingest readers: every input format behind one interface.

Each reader in `FORMATS` has
``read(path, origin=None, *, limits) -> Iterator[SubjectRecord | Rejection]`` and never raises
for bad input (see `labeling.ingest.base`); `limits` (`labeling.ingest.limits.IngestLimits`)
caps what it may allocate and where a manifest may point. `read_path` picks the reader,
detecting the format when asked to. Pure Python: nothing here imports Django or Celery.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from labeling.ingest.base import (
    AVRO_CONTAINER_MAGIC,
    GZIP_MAGIC,
    InputError,
    Reader,
    ReadItem,
    container_schema_name,
    describe_error,
    is_fits_name,
    printable,
)
from labeling.ingest.fits import FitsReader
from labeling.ingest.limits import IngestLimits, LimitExceeded
from labeling.ingest.npz import NpzReader
from labeling.ingest.rubin_avro import RubinAvroReader, decode_schemaless, wire_schema_id
from labeling.ingest.zooniverse_manifest import ZooniverseManifestReader
from labeling.ingest.ztf_avro import ZtfAvroReader
from labeling.records import Rejection

__all__ = [
    "FORMATS",
    "FormatDetectionError",
    "IngestLimits",
    "LimitExceeded",
    "ReadItem",
    "Reader",
    "detect_format",
    "read_path",
]

FORMATS: dict[str, Reader] = {
    "npz": NpzReader(),
    "fits": FitsReader(),
    "rubin-avro": RubinAvroReader(),
    "ztf-avro": ZtfAvroReader(),
    "zooniverse-manifest": ZooniverseManifestReader(),
}

FITS_MAGIC = b"SIMPLE  ="
ZIP_MAGIC = b"PK\x03\x04"
_MAGIC_LENGTH = 16
# A Rubin alert with its three cutouts is well under a megabyte; a file far larger is not one,
# and is not read whole just to find out.
SCHEMALESS_ALERT_MAX_BYTES = 16 * 2**20


class FormatDetectionError(ValueError):
    """The format of an input could not be told; the message says why."""


def _container_format(path: Path) -> str:
    try:
        schema_name = container_schema_name(path)
    # fastavro reports an unreadable header with ValueError, EOFError and others.
    except Exception as exc:
        raise FormatDetectionError(
            f"{path.name}: Avro container with an unreadable header ({describe_error(exc)})"
        ) from exc
    if schema_name.startswith("lsst."):
        return "rubin-avro"
    if schema_name.startswith("ztf."):
        return "ztf-avro"
    raise FormatDetectionError(
        f"{path.name}: Avro container of schema {schema_name!r}, neither a Rubin nor a ZTF alert"
    )


def _is_schemaless_rubin_alert(path: Path) -> bool:
    """Whether `path` holds exactly one raw (headerless) Rubin alert of a known version."""
    if path.stat().st_size > SCHEMALESS_ALERT_MAX_BYTES:
        return False
    try:
        decode_schemaless(path.read_bytes())
    except InputError:
        return False
    return True


def detect_format(path: Path | str) -> str:
    """The FORMATS key for `path`, or FormatDetectionError.

    Content decides, not the file name: a directory is read as FITS stamps; a file by its magic
    bytes (an Avro container, ``Obj\\x01``, is a Rubin or ZTF alert file by its schema's
    namespace; FITS and zip magic are FITS and NPZ; a Confluent wire-format header naming a
    known Rubin schema is a schemaless Rubin alert), then by whether it parses whole as a raw
    schemaless Rubin alert (a Kafka message body saved without its header, whatever its name).
    Only content with no magic at all falls back to the name: .csv is a manifest, and .npz and
    FITS names go to their readers, which then say what is wrong with the content.
    """
    path = Path(path)
    if path.is_dir():
        if any(is_fits_name(child.name) for child in path.iterdir()):
            return "fits"
        raise FormatDetectionError(f"{printable(path.name)}: directory holds no FITS files")
    if not path.is_file():
        raise FormatDetectionError(f"{printable(path.name)}: no such file")
    name = path.name.lower()
    with path.open("rb") as stream:
        head = stream.read(_MAGIC_LENGTH)
    if head.startswith(AVRO_CONTAINER_MAGIC):
        return _container_format(path)
    if head.startswith(FITS_MAGIC) or (head.startswith(GZIP_MAGIC) and is_fits_name(name)):
        return "fits"
    if head.startswith(ZIP_MAGIC):
        return "npz"
    if wire_schema_id(head) is not None or _is_schemaless_rubin_alert(path):
        return "rubin-avro"
    if name.endswith(".npz"):
        return "npz"
    if is_fits_name(name):
        return "fits"
    if name.endswith(".csv"):
        return "zooniverse-manifest"
    raise FormatDetectionError(
        f"{printable(path.name)}: unknown input format (expected .npz, FITS, .csv manifest, or "
        "a Rubin or ZTF Avro alert; it is not a schemaless Rubin alert of any known version)"
    )


def read_path(
    path: Path | str, fmt: str = "auto", origin: str | None = None, *, limits: IngestLimits
) -> Iterator[ReadItem]:
    """Records and rejections from `path` read as `fmt` (a FORMATS key, or "auto" to detect),
    within `limits`.

    An undetectable or unknown format yields one Rejection rather than raising.
    """
    path = Path(path)
    if fmt == "auto":
        try:
            fmt = detect_format(path)
        except FormatDetectionError as exc:
            yield Rejection(source=printable(path.name), reason=printable(str(exc)))
            return
    reader = FORMATS.get(fmt)
    if reader is None:
        yield Rejection(
            source=printable(path.name),
            reason=f"unknown format {fmt!r} (known: {', '.join(FORMATS)})",
        )
        return
    yield from reader.read(path, origin, limits=limits)
