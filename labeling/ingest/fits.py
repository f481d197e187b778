"""FITS stamps: one multi-extension file per triplet, or one file per stamp.

Multi-extension file: the extensions named TEMPLATE, SCIENCE and DIFFERENCE (any case), or,
when none carries one of those names, the first three image HDUs in that order.

One file per stamp: ``<id>_template.fits``, ``<id>_science.fits``, ``<id>_difference.fits``
(also .fit/.fts, optionally gzipped) side by side. The path may be any of the three files, or
a directory, where every such group becomes one record and every other FITS file is read as a
multi-extension triplet. The ``<id>`` of the names is the external id unless a header says
otherwise.

Metadata is read from header keywords, each taken from the first header that has it (in file
order; for one file per stamp, the template's headers, then the science's, then the
difference's): EXTID or DIASRCID (external id), RBORIGIN (origin handle: the standard ORIGIN
keyword names the organisation that wrote the file, so it is not used), SNR, PSFFLUX, PSFFLUXE
(its error), RA, DEC (degrees), BAND or FILTER, RELIABIL (reliability score). No other
keyword is kept.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from labeling.ingest.base import (
    FitsHdu,
    Reader,
    ReadItem,
    RecordError,
    first_image,
    guarded,
    is_fits_name,
    is_utf8,
    make_record,
    printable,
    read_fits,
    unreadable_entry,
)
from labeling.ingest.limits import IngestLimits
from labeling.records import STAMP_KINDS, Rejection, SubjectRecord

HEADER_KEYWORDS = {
    "EXTID": "external_id",
    "DIASRCID": "external_id",
    "RBORIGIN": "origin",
    "SNR": "snr",
    "PSFFLUX": "psf_flux",
    "PSFFLUXE": "psf_flux_err",
    "RA": "ra",
    "DEC": "dec",
    "BAND": "band",
    "FILTER": "band",
    "RELIABIL": "reliability",
}

_STAMP_FILE = re.compile(
    r"^(?P<stem>.+)_(?P<kind>template|science|difference)\.(?:fits|fit|fts)(?:\.gz)?$",
    re.IGNORECASE,
)


def _fields_from_headers(hdus: Iterable[FitsHdu]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for hdu in hdus:
        for keyword, field_name in HEADER_KEYWORDS.items():
            if keyword in hdu.header:
                fields.setdefault(field_name, hdu.header[keyword])
    return fields


def _stamp_groups(paths: Iterable[Path]) -> dict[str, dict[str, Path]]:
    """The one-file-per-stamp files among `paths`, grouped by <id> and keyed by stamp kind."""
    groups: dict[str, dict[str, Path]] = defaultdict(dict)
    for path in paths:
        match = _STAMP_FILE.match(path.name)
        if match:
            groups[match["stem"]][match["kind"].lower()] = path
    return groups


def _triplet_from_multi_extension(
    path: Path, origin: str | None, limits: IngestLimits
) -> SubjectRecord:
    hdus = read_fits(path, printable(path.name), limits)
    named = {hdu.name.lower(): hdu.data for hdu in hdus if hdu.name.lower() in STAMP_KINDS}
    if named:
        stamps = named
    else:
        images = [hdu.data for hdu in hdus if hdu.data is not None]
        if len(images) < len(STAMP_KINDS):
            raise RecordError(
                f"expected extensions named TEMPLATE, SCIENCE, DIFFERENCE or three image HDUs, "
                f"found {len(images)} image HDU(s)"
            )
        stamps = dict(zip(STAMP_KINDS, images, strict=False))
    return make_record(path.name, stamps, _fields_from_headers(hdus), origin)


def _triplet_from_stamp_files(
    stem: str, files: dict[str, Path], source: str, origin: str | None, limits: IngestLimits
) -> SubjectRecord:
    stamps = {}
    headers: list[FitsHdu] = []
    for kind in STAMP_KINDS:
        if kind in files:
            hdus = read_fits(files[kind], files[kind].name, limits)
            stamps[kind] = first_image(hdus, files[kind].name)
            headers.extend(hdus)
    fields = {"external_id": stem, **_fields_from_headers(headers)}
    return make_record(source, stamps, fields, origin)


def _read_stamp_groups(
    groups: dict[str, dict[str, Path]], origin: str | None, limits: IngestLimits
) -> Iterator[ReadItem]:
    for stem, files in sorted(groups.items()):
        source = printable(f"{stem}_*.fits")
        yield guarded(source, _triplet_from_stamp_files, stem, files, source, origin, limits)


def _directory_entries(path: Path) -> tuple[list[Path], list[Rejection]]:
    """The readable FITS files of a directory, and a rejection for each FITS-named entry
    that cannot be read (a broken link, a link loop, a name that is not UTF-8)."""
    files, rejections = [], []
    for entry in sorted(path.iterdir()):
        if not is_fits_name(entry.name):
            continue
        if not is_utf8(entry.name):
            reason = "file name is not valid UTF-8; rename it"
        elif entry.is_file():
            files.append(entry)
            continue
        elif entry.is_symlink():
            reason = f"not read: {unreadable_entry(entry) or 'not a regular file'}"
        else:
            reason = "not read: not a regular file"
        rejections.append(Rejection(source=printable(entry.name), reason=reason))
    return files, rejections


class FitsReader(Reader):
    format_name = "fits"

    def _read(self, path: Path, origin: str | None, limits: IngestLimits) -> Iterator[ReadItem]:
        if path.is_dir():
            fits_files, rejections = _directory_entries(path)
            yield from rejections
            yield from _read_stamp_groups(_stamp_groups(fits_files), origin, limits)
            for single in fits_files:
                if not _STAMP_FILE.match(single.name):
                    yield guarded(printable(single.name), _triplet_from_multi_extension, single,
                                  origin, limits)
        elif match := _STAMP_FILE.match(path.name):
            siblings = _stamp_groups(path.parent.iterdir())
            yield from _read_stamp_groups({match["stem"]: siblings[match["stem"]]}, origin,
                                          limits)
        else:
            yield guarded(printable(path.name), _triplet_from_multi_extension, path, origin,
                          limits)
