"""Rubin (LSST) alert packets: Avro container files and single schemaless messages.

Container files (``Obj\\x01`` magic) carry their writer schema, so any schema version reads.
A schemaless message is either in the Confluent wire format (byte 0, then the 4-byte
big-endian schema id, which for Rubin encodes the version: 703 is 7.3, 1101 is 11.1) or raw
Avro with no header. Raw messages are parsed with every schema version that
lsst-alert-packet ships, newest first, and the first that decodes the whole message without
error and without leftover bytes wins. Some versions share one binary layout (7.0 and 7.1, for
instance), so the version of a raw message is the newest compatible one, and the metadata
says it was inferred (``schema_version_from``: container, wire-header or trial-parse).

Cutouts are FITS bytes in nJy of any size (not always 51x51, not always the same size as each
other); the image is the first HDU with 2-D data, primary or extension. The external id is
``diaSource.diaSourceId``. Versions before 6.1 carry no science cutout, so their alerts are
rejected for it.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
from lsst.alert.packet import Schema, SchemaRegistry

from labeling.ingest.base import (
    AVRO_CONTAINER_MAGIC,
    InputError,
    Reader,
    ReadItem,
    RecordError,
    alert_cutouts,
    avro_schema_name,
    guarded,
    make_record,
    open_avro_container,
    pick_metadata,
    printable,
    record_source,
    whole_alerts,
)
from labeling.ingest.limits import IngestLimits
from labeling.records import SubjectRecord

# The diaSource field behind each record field. These names hold from 5.0 on; older
# versions spelled some differently, but they also lack cutoutScience, so no alert of theirs
# can become a record.
DIA_SOURCE_FIELDS = {
    "ra": "ra",
    "dec": "dec",
    "snr": "snr",
    "psf_flux": "psfFlux",
    "psf_flux_err": "psfFluxErr",
    "band": "band",
    "reliability": "reliability",
}
DIA_SOURCE_METADATA = (
    "diaObjectId",
    "ssObjectId",
    "midpointMjdTai",
    "visit",
    "detector",
    "ccdVisitId",
    "isDipole",
)
ALERT_METADATA = ("alertId", "observation_reason", "target_name")

WIRE_MAGIC = 0
WIRE_HEADER_LENGTH = 5
_SCHEMA_NAME = re.compile(r"^lsst\.v(\d+)_(\d+)\.alert$")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@functools.cache
def schemas_by_version() -> dict[str, Schema]:
    """Every alert schema lsst-alert-packet ships, newest version first."""
    registry = SchemaRegistry.all_schemas_from_filesystem()
    versions = sorted(registry.known_versions, key=_version_key, reverse=True)
    return {version: registry.get_by_version(version) for version in versions}


@functools.cache
def versions_by_schema_id() -> dict[int, str]:
    return {schema.get_schema_id(): version for version, schema in schemas_by_version().items()}


def wire_schema_id(message: bytes) -> int | None:
    """The schema id of a Confluent wire-format header naming a known Rubin schema, else None."""
    if len(message) < WIRE_HEADER_LENGTH or message[0] != WIRE_MAGIC:
        return None
    schema_id = int.from_bytes(message[1:WIRE_HEADER_LENGTH], "big")
    return schema_id if schema_id in versions_by_schema_id() else None


def _decode_exactly(body: bytes, schema: Schema) -> dict[str, Any] | None:
    """The alert if `body` is exactly one message of `schema`, else None."""
    stream = io.BytesIO(body)
    try:
        alert = fastavro.schemaless_reader(stream, schema.definition)
    # A trial parse with the wrong schema fails in arbitrary ways (EOFError, UnicodeDecodeError,
    # IndexError on a union branch, ...); every one of them just means "not this version".
    except Exception:
        return None
    return alert if stream.tell() == len(body) else None


def decode_schemaless(message: bytes) -> tuple[dict[str, Any], str, str]:
    """(alert, schema version, how the version was found) for one schemaless message."""
    schema_id = wire_schema_id(message)
    if schema_id is not None:
        version = versions_by_schema_id()[schema_id]
        alert = _decode_exactly(message[WIRE_HEADER_LENGTH:], schemas_by_version()[version])
        if alert is None:
            raise InputError(
                f"message does not decode with schema {version} named by its header "
                f"(schema id {schema_id})"
            )
        return alert, version, "wire-header"
    for version, schema in schemas_by_version().items():
        alert = _decode_exactly(message, schema)
        if alert is not None:
            return alert, version, "trial-parse"
    raise InputError(
        "neither an Avro container nor a schemaless Rubin alert of any known schema version "
        f"({', '.join(reversed(schemas_by_version()))})"
    )


def _alert_record(
    alert: dict[str, Any],
    source: str,
    version: str,
    version_from: str,
    origin: str | None,
    limits: IngestLimits,
) -> SubjectRecord:
    dia_source = alert.get("diaSource")
    if not isinstance(dia_source, dict):
        raise RecordError("alert has no diaSource")
    # Rubin cutout fields hold the FITS bytes themselves.
    cutouts = alert_cutouts(alert, lambda cutout: cutout, limits)
    stamps = {kind: cutout.image for kind, cutout in cutouts.items()}
    fields = {field: dia_source.get(name) for field, name in DIA_SOURCE_FIELDS.items()}
    fields["external_id"] = dia_source.get("diaSourceId")
    fields["metadata"] = {
        "schema_version": version,
        "schema_version_from": version_from,
        **pick_metadata(alert, ALERT_METADATA),
        **pick_metadata(dia_source, DIA_SOURCE_METADATA),
    }
    return make_record(source, stamps, fields, origin)


def _container_version(writer_schema: Any) -> str:
    match = _SCHEMA_NAME.match(avro_schema_name(writer_schema))
    return f"{match[1]}.{match[2]}" if match else "unknown"


def _read_container(path: Path, origin: str | None, limits: IngestLimits) -> Iterator[ReadItem]:
    with path.open("rb") as stream:
        writer_schema, alerts = open_avro_container(stream, "lsst", limits)
        version = _container_version(writer_schema)
        for index, alert in whole_alerts(alerts):
            source = record_source(path, index)
            yield guarded(source, _alert_record, alert, source, version, "container", origin,
                          limits)


def _read_message(path: Path, origin: str | None, limits: IngestLimits) -> ReadItem:
    limits.check_bytes(path.stat().st_size, path.name)
    alert, version, version_from = decode_schemaless(path.read_bytes())
    source = printable(path.name)
    return guarded(source, _alert_record, alert, source, version, version_from, origin, limits)


class RubinAvroReader(Reader):
    format_name = "rubin-avro"

    def _read(self, path: Path, origin: str | None, limits: IngestLimits) -> Iterator[ReadItem]:
        with path.open("rb") as stream:
            is_container = stream.read(len(AVRO_CONTAINER_MAGIC)) == AVRO_CONTAINER_MAGIC
        if is_container:
            yield from _read_container(path, origin, limits)
        else:
            yield _read_message(path, origin, limits)
