"""What a subject's survey tells the viewer: the unit of its stamps, when it was observed,
and where brokers and sky viewers show it. Pure Python: nothing here imports Django.

The survey is read from the metadata the alert readers keep (labeling/ingest): a Rubin
alert carries its diaSource's `diaObjectId` and `midpointMjdTai`, a ZTF alert its `objectId`
and candidate `jd`. A subject from another source (simulated, FITS, Zooniverse) has no
survey: no unit, no time, no broker links, and the viewer says so rather than guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

RUBIN = "rubin"
ZTF = "ztf"

# Rubin cutouts are calibrated fluxes in nanojansky; ZTF cutouts are in detector counts of
# unstated zero point, so no unit is claimed for them.
STAMP_UNITS = {RUBIN: "nJy"}

MJD_EPOCH = datetime(1858, 11, 17, tzinfo=UTC)
JD_MINUS_MJD = 2400000.5
# TAI runs ahead of UTC by the accumulated leap seconds (37 s since 2017): the time shown is
# UTC, as the brokers show it.
TAI_MINUS_UTC_SECONDS = 37


def survey_of(metadata: Mapping[str, Any]) -> str | None:
    if "diaObjectId" in metadata or "midpointMjdTai" in metadata:
        return RUBIN
    if "objectId" in metadata or "jd" in metadata:
        return ZTF
    return None


def stamp_unit(metadata: Mapping[str, Any]) -> str | None:
    return STAMP_UNITS.get(survey_of(metadata))


def observed_at(metadata: Mapping[str, Any]) -> datetime | None:
    """When the science image was taken (UTC), or None when the metadata does not say."""
    survey = survey_of(metadata)
    try:
        if survey == RUBIN:
            mjd = float(metadata["midpointMjdTai"])
            return MJD_EPOCH + timedelta(days=mjd, seconds=-TAI_MINUS_UTC_SECONDS)
        if survey == ZTF:
            return MJD_EPOCH + timedelta(days=float(metadata["jd"]) - JD_MINUS_MJD)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    return None


def sky_links(ra: float | None, dec: float | None, metadata: Mapping[str, Any]) -> list[dict]:
    """Links out, never fetched here: the Legacy Survey viewer at the position, and the
    object's page in each broker that carries the subject's survey."""
    links = []
    if ra is not None and dec is not None:
        query = urlencode({"ra": f"{ra:.6f}", "dec": f"{dec:.6f}", "layer": "ls-dr10", "zoom": 16})
        links.append({"name": "Legacy Survey viewer",
                      "url": f"https://www.legacysurvey.org/viewer?{query}"})
    survey = survey_of(metadata)
    if survey == ZTF and metadata.get("objectId"):
        object_id = quote(str(metadata["objectId"]), safe="")
        links += [
            {"name": "ALeRCE", "url": f"https://alerce.online/object/{object_id}"},
            {"name": "Fink", "url": f"https://fink-portal.org/{object_id}"},
            {"name": "Lasair", "url": f"https://lasair-ztf.lsst.ac.uk/objects/{object_id}/"},
            {"name": "ANTARES",
             "url": f"https://antares.noirlab.edu/loci?query={quote(_antares_query(object_id))}"},
        ]
    elif survey == RUBIN and metadata.get("diaObjectId") is not None:
        object_id = quote(str(metadata["diaObjectId"]), safe="")
        links += [
            {"name": "ALeRCE", "url": f"https://alerce.online/object/{object_id}?survey=lsst"},
            {"name": "Fink", "url": f"https://lsst.fink-portal.org/{object_id}"},
            {"name": "Lasair", "url": f"https://lasair.lsst.ac.uk/objects/{object_id}/"},
            {"name": "ANTARES",
             "url": f"https://antares.noirlab.edu/loci?query={quote(_antares_query(object_id))}"},
        ]
    return links


def _antares_query(object_id: str) -> str:
    # ANTARES's locus search page takes its Elasticsearch-style query in the address.
    return json.dumps({"currentPage": 1, "filters": [{
        "type": "query_string", "text": f"ID Lookup: {object_id}",
        "field": {"query": f"*{object_id}*",
                  "fields": ["properties.ztf_object_id", "properties.lsst_dia_object_id"]},
    }]}, separators=(",", ":"))
