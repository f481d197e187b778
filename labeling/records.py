"""The contract between the ingest readers, the simulator and the Django services.

Pure Python + numpy: nothing here imports Django, so readers and the simulator can be
used and tested without a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ANSWERS = ("real", "bogus")
UNSURE = "unsure"
# What an expert may say about a subject. Unsure is stored (the expert looked and could not
# decide) but is never reference truth: only COUNTED_REFERENCE_LABELS calibrate volunteers,
# make a subject gold, or give volunteers feedback.
REFERENCE_LABELS = (*ANSWERS, UNSURE)
COUNTED_REFERENCE_LABELS = ANSWERS
# Longest explanation an expert may attach to a reference label (shown to volunteers).
EXPLANATION_MAX_LENGTH = 300

# How a union of reference sets (`rubin+oxford`) settles a subject the sets label
# differently. Either way the subject is listed as a conflict.
#   drop:  the subject calibrates nobody (it is left out of the union).
#   first: the first-named set that labels it Real or Bogus wins (rubin outranks oxford).
UNION_DROP = "drop"
UNION_FIRST = "first"
UNION_POLICIES = (UNION_DROP, UNION_FIRST)
DEFAULT_UNION_POLICY = UNION_DROP
STAMP_KINDS = ("template", "science", "difference")
# How a stamp smaller than the stored cube is fitted into it (the STAMP_FIT setting; see
# labeling.stamps.normalise_stamp): NaN padding keeps every pixel as measured at its native
# scale; resampling enlarges the stamp to fill the cube.
FIT_PAD = "pad"
FIT_RESAMPLE = "resample"
STAMP_FITS = (FIT_PAD, FIT_RESAMPLE)
# Column widths of Subject's text fields: readers reject a longer value with its reason
# instead of letting the database refuse the whole batch.
EXTERNAL_ID_MAX_LENGTH = 100
ORIGIN_MAX_LENGTH = 40
BAND_MAX_LENGTH = 8

# The origin handles of the Rubin Difference Detectives sample (DMTN-337, table 3), plus
# fake injections. Other handles are accepted; these are the ones the tools know by name.
KNOWN_ORIGINS = ("ss", "gaia", "reliability_cuts", "galaxy", "tns", "injection")


@dataclass(frozen=True)
class SubjectRecord:
    """One detection as read from an input, before its stamps are normalised.

    The stamps are 2-D arrays of any size and dtype, exactly as the input holds them;
    `labeling.stamps.normalise_triplet` turns them into the stored (3, S, S) float32 cube.
    `source` names where the record came from (file and index) for reports.
    """

    external_id: str
    template: np.ndarray
    science: np.ndarray
    difference: np.ndarray
    source: str
    origin: str = ""
    snr: float | None = None
    psf_flux: float | None = None
    psf_flux_err: float | None = None
    ra: float | None = None
    dec: float | None = None
    band: str = ""
    reliability: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # (row, column) of the detection in each stamp when it is not at index n // 2: a cutout
    # clipped at a detector edge, centred from the alert's position. None means n // 2.
    detection_pixel: tuple[int, int] | None = None

    def stamps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (self.template, self.science, self.difference)


@dataclass(frozen=True)
class Rejection:
    """An input (or one record of it) that could not become a subject, and why."""

    source: str
    reason: str


def union_label(labels: Sequence[str], policy: str) -> tuple[str | None, bool]:
    """One subject's label in a union of reference sets, and whether the sets conflict.

    `labels` are the labels the sets give the subject, in the union's order (the first-named
    set first), leaving out sets that do not label it. Unsure labels are ignored: a set that
    is unsure has no opinion, so it neither conflicts nor wins.
    """
    if policy not in UNION_POLICIES:
        raise ValueError(f"union policy must be one of {', '.join(UNION_POLICIES)}, "
                         f"got {policy!r}")
    counted = [label for label in labels if label in COUNTED_REFERENCE_LABELS]
    if not counted:
        return None, False
    conflict = len(set(counted)) > 1
    if conflict and policy == UNION_DROP:
        return None, True
    return counted[0], conflict
