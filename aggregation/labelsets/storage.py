"""Where a label set's artifact lives: a folder and, next to it, the same files as one archive."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

# An export's staging folder under LABEL_SETS_ROOT, until its files are placed (the sweeper
# removes those a killed export left).
STAGING_PREFIX = ".export-"


def folder_name(number: int) -> str:
    return f"label-set-{number:04d}"


def folder_of(path: str) -> Path:
    """The artifact folder of a LabelSet, from its `path` field."""
    return Path(settings.LABEL_SETS_ROOT) / path


def archive_of(path: str) -> Path:
    """The downloadable archive (an uncompressed tar of the folder) of a LabelSet."""
    return Path(settings.LABEL_SETS_ROOT) / f"{path}.tar"
