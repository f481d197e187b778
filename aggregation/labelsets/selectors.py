"""Reads for label sets: who may use them, the sets and their export jobs, the archive on disk,
and the class x origin counts of a manifest."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from aggregation.labelsets.core import CLASS_NAMES, SPLIT_NAMES
from aggregation.labelsets.storage import archive_of
from aggregation.models import LabelSet, LabelSetExport
from aggregation.swap.types import BOGUS, REAL
from labeling.errors import LabelingError, NotFound

REAL_NAME, BOGUS_NAME = CLASS_NAMES[REAL], CLASS_NAMES[BOGUS]

logger = logging.getLogger(__name__)


class ArchiveMissing(LabelingError):
    """The LabelSet row exists but its archive is gone or changed on disk: the server's fault
    (500), not the caller's, and nothing a retry fixes."""

    status_code = 500
    code = "archive_missing"


def label_sets_list():
    return LabelSet.objects.select_related("run__workflow", "created_by").prefetch_related(
        "run__reference_sets"
    )


def label_set_get(number: int) -> LabelSet:
    try:
        return label_sets_list().get(number=number)
    except LabelSet.DoesNotExist:
        raise NotFound(f"no label set {number}") from None


@dataclass(frozen=True)
class Archive:
    path: Path
    size: int
    filename: str


def label_set_archive(label_set: LabelSet) -> Archive:
    """The archive on disk, checked against the size registered at export."""
    path = archive_of(label_set.path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        logger.error("label set %s: archive %s is missing", label_set.number, path)
        raise ArchiveMissing(
            f"label set {label_set.number}'s archive is missing on the server; "
            "an operator has to restore it (the export is immutable and is not redone)"
        ) from None
    if size != label_set.archive_size:
        logger.error("label set %s: archive %s is %s bytes, registered %s",
                     label_set.number, path, size, label_set.archive_size)
        raise ArchiveMissing(
            f"label set {label_set.number}'s archive on the server is {size} bytes, but "
            f"{label_set.archive_size} were registered: it has been changed and is not served"
        )
    return Archive(path=path, size=size, filename=path.name)


def export_jobs_list():
    return LabelSetExport.objects.select_related("run__workflow", "label_set", "created_by")


def export_job_get(job_id: int) -> LabelSetExport:
    try:
        return export_jobs_list().get(pk=job_id)
    except LabelSetExport.DoesNotExist:
        raise NotFound(f"no label-set export job {job_id}") from None


def export_jobs_not_done():
    """Export jobs still waiting, running, or failed (with their error), newest first."""
    return export_jobs_list().exclude(status=LabelSetExport.Status.DONE).order_by("-pk")


def export_jobs_of_run(run_id: int):
    return export_jobs_list().filter(run_id=run_id).order_by("-pk")


@dataclass(frozen=True)
class SplitCounts:
    """One split's subjects by class and origin, as the manifest records them."""

    split: str
    by_class: dict[str, dict[str, int]]  # "real"/"bogus" -> origin -> subjects
    rows: list[tuple[str, int, int]]  # (origin, Real, Bogus), origins sorted
    total_real: int
    total_bogus: int


def manifest_counts(manifest: dict) -> list[SplitCounts]:
    """The manifest's split x class x origin counts, split by split in train, val, test order."""
    counts = []
    for split in SPLIT_NAMES:
        recorded = manifest["counts"][split]
        by_class = {name: recorded[name]["by_origin"] for name in (REAL_NAME, BOGUS_NAME)}
        origins = sorted(set(by_class[REAL_NAME]) | set(by_class[BOGUS_NAME]))
        rows = [(origin, by_class[REAL_NAME].get(origin, 0), by_class[BOGUS_NAME].get(origin, 0))
                for origin in origins]
        counts.append(SplitCounts(split, by_class, rows, recorded[REAL_NAME]["total"],
                                  recorded[BOGUS_NAME]["total"]))
    return counts


@dataclass(frozen=True)
class ManifestFile:
    name: str
    sha256: str
    size: int


def manifest_files(manifest: dict) -> list[ManifestFile]:
    return [ManifestFile(name, entry["sha256"], entry["bytes"])
            for name, entry in sorted(manifest["files"].items())]
