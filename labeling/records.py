"""The contract between the ingest readers, the simulator and the Django services.

Pure Python + numpy: nothing here imports Django, so readers and the simulator can be
used and tested without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ANSWERS = ("real", "bogus")
STAMP_KINDS = ("template", "science", "difference")

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

    def stamps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (self.template, self.science, self.difference)


@dataclass(frozen=True)
class Rejection:
    """An input (or one record of it) that could not become a subject, and why."""

    source: str
    reason: str
