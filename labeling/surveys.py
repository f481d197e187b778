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


# Where each survey's alert packets name the object, and the brokers' pages for it.
OBJECT_ID_KEYS = {ZTF: "objectId", RUBIN: "diaObjectId"}
BROKER_PAGES = {
    ZTF: (
        ("ALeRCE", "https://alerce.online/object/{id}"),
        ("Fink", "https://fink-portal.org/{id}"),
        ("Lasair", "https://lasair-ztf.lsst.ac.uk/objects/{id}/"),
        ("ANTARES", "https://antares.noirlab.edu/loci?query={antares}"),
    ),
    RUBIN: (
        ("ALeRCE", "https://alerce.online/object/{id}?survey=lsst"),
        ("Fink", "https://lsst.fink-portal.org/{id}"),
        ("Lasair", "https://lasair.lsst.ac.uk/objects/{id}/"),
        ("ANTARES", "https://antares.noirlab.edu/loci?query={antares}"),
    ),
}


def sky_links(ra: float | None, dec: float | None, metadata: Mapping[str, Any]) -> list[dict]:
    """Links out, never fetched here: the Legacy Survey viewer at the position, and the
    object's page in each broker that carries the subject's survey."""
    links = []
    if ra is not None and dec is not None:
        query = urlencode({"ra": f"{ra:.6f}", "dec": f"{dec:.6f}", "layer": "ls-dr10", "zoom": 16})
        links.append({"name": "Legacy Survey viewer",
                      "url": f"https://www.legacysurvey.org/viewer?{query}"})
    survey = survey_of(metadata)
    raw_id = metadata.get(OBJECT_ID_KEYS[survey]) if survey in BROKER_PAGES else None
    if raw_id not in (None, ""):  # 0 is a valid diaObjectId
        object_id = quote(str(raw_id), safe="")
        antares = quote(_antares_query(object_id))
        links += [{"name": name, "url": url.format(id=object_id, antares=antares)}
                  for name, url in BROKER_PAGES[survey]]
    return links


def _antares_query(object_id: str) -> str:
    # ANTARES's locus search page takes its Elasticsearch-style query in the address.
    return json.dumps({"currentPage": 1, "filters": [{
        "type": "query_string", "text": f"ID Lookup: {object_id}",
        "field": {"query": f"*{object_id}*",
                  "fields": ["properties.ztf_object_id", "properties.lsst_dia_object_id"]},
    }]}, separators=(",", ":"))
