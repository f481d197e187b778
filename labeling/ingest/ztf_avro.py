"""ZTF alert packets: Avro container files (usually one alert each).

Each cutout (cutoutScience, cutoutTemplate, cutoutDifference) is a record whose `stampData`
holds gzipped FITS bytes, normally 63x63; older packets carry plain FITS, and stamps clipped
at a CCD edge are smaller (kept as they are: the normaliser pads them with NaN). The external
id is `candid`. ZTF measures magnitudes, not fluxes, so psf_flux stays empty and magpsf and
sigmapsf go to metadata.

ZTF's 2017 prototype packets are read too: they have no `schemavsn`, a negative `candid`
(kept as the external id, sign and all) and 51x51 JPEG stamps. A JPEG holds display grey
levels (0-255), not counts, so such a subject's metadata says ``"cutout_encoding": "jpeg"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labeling.ingest.base import (
    ALERT_CUTOUT_FIELDS,
    JPEG_MAGIC,
    Cutout,
    Reader,
    ReadItem,
    RecordError,
    alert_cutouts,
    guarded,
    make_record,
    open_avro_container,
    pick_metadata,
    record_source,
    to_optional_float,
    wcs_pixel,
    whole_alerts,
)
from labeling.ingest.limits import IngestLimits
from labeling.records import SubjectRecord

BANDS_BY_FID = {1: "g", 2: "r", 3: "i"}
# ZTF cuts this many pixels square around each candidate (fewer at a CCD edge).
CUTOUT_SIDE = 63
# 2.5 / ln(10): a magnitude error sigma corresponds to a signal-to-noise of about 1.0857 / sigma.
MAG_ERROR_TO_SNR = 1.0857
CANDIDATE_METADATA = (
    "jd",
    "fid",
    "magpsf",
    "sigmapsf",
    "isdiffpos",
    "drb",
    "programid",
    "field",
    "rcid",
    "diffmaglim",
)
ALERT_METADATA = ("objectId", "schemavsn")


def _stamp_data(cutout: Any) -> bytes | None:
    """ZTF wraps each cutout's FITS bytes in a {fileName, stampData} record."""
    return cutout.get("stampData") if isinstance(cutout, dict) else None


def _alert_record(
    alert: dict[str, Any], source: str, origin: str | None, limits: IngestLimits
) -> SubjectRecord:
    candidate = alert.get("candidate")
    if not isinstance(candidate, dict):
        raise RecordError("alert has no candidate")
    cutouts = alert_cutouts(alert, _stamp_data, limits)
    stamps = {kind: cutout.image for kind, cutout in cutouts.items()}
    detection = _clipped_detection_pixel(cutouts["science"], candidate)
    sigmapsf = to_optional_float(candidate.get("sigmapsf"), "sigmapsf")
    fields = {
        "external_id": alert.get("candid", candidate.get("candid")),
        "ra": candidate.get("ra"),
        "dec": candidate.get("dec"),
        "band": BANDS_BY_FID.get(candidate.get("fid"), ""),
        "reliability": candidate.get("rb"),
        "snr": MAG_ERROR_TO_SNR / sigmapsf if sigmapsf and sigmapsf > 0 else None,
        "metadata": {
            **pick_metadata(alert, ALERT_METADATA),
            **pick_metadata(candidate, CANDIDATE_METADATA),
        },
    }
    if any((_stamp_data(alert.get(field)) or b"").startswith(JPEG_MAGIC)
           for field in ALERT_CUTOUT_FIELDS.values()):
        fields["metadata"]["cutout_encoding"] = "jpeg"
    if detection is not None:
        fields["metadata"]["centred_by"] = "cutout WCS and candidate ra/dec"
    return make_record(source, stamps, fields, origin, detection_pixel=detection)


def _clipped_detection_pixel(science: Cutout, candidate: dict[str, Any]) -> tuple[int, int] | None:
    """Where the detection is in a cutout clipped at a CCD edge, else None (index n // 2).

    ZTF cuts CUTOUT_SIDE pixels around the candidate, so a full cutout has it at the centre;
    a clipped one lost pixels on one side, which the array alone cannot tell. The cutout's
    WCS with the candidate's ra/dec says where it is.
    """
    if science.header is None or all(side >= CUTOUT_SIDE for side in science.image.shape):
        return None
    ra = to_optional_float(candidate.get("ra"), "ra")
    dec = to_optional_float(candidate.get("dec"), "dec")
    if ra is None or dec is None:
        return None
    return wcs_pixel(science.header, ra, dec, science.image.shape)


class ZtfAvroReader(Reader):
    format_name = "ztf-avro"

    def _read(self, path: Path, origin: str | None, limits: IngestLimits) -> Iterator[ReadItem]:
        with path.open("rb") as stream:
            _, alerts = open_avro_container(stream, "ztf", limits)
            for index, alert in whole_alerts(alerts):
                source = record_source(path, index)
                yield guarded(source, _alert_record, alert, source, origin, limits)
