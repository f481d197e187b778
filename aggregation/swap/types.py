"""The values the SWAP core takes and returns: labels, parameters, the classification table,
volunteer skills and a run's result, with the input checks they share.

Pure numpy: no Django, no Celery. Everything here is immutable (frozen dataclasses); arrays are
not copied on the way out, so treat them as read-only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

REAL = 1
BOGUS = 0
UNKNOWN = -1  # "no label": a subject without reference truth, or one no rule could label


class SwapInputError(ValueError):
    """Bad input to the SWAP core: wrong shapes or dtypes, indices out of range, NaN, or
    parameters outside their domain. The message names the argument and what was wrong."""


# ---------------------------------------------------------------------------- input checks


def as_index_array(name: str, values, upper: int | None = None) -> np.ndarray:
    """`values` as a 1-D int64 array of indices in [0, upper). Integer dtypes are converted;
    floats are refused (with a NaN message when they hold NaN), as is anything out of range."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise SwapInputError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iu" and arr.size:  # an empty list arrives as float64: fine
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            raise SwapInputError(f"{name} contains NaN")
        raise SwapInputError(f"{name} must hold integer indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0:
            raise SwapInputError(f"{name} holds a negative index ({lo})")
        if upper is not None and hi >= upper:
            raise SwapInputError(f"{name} holds index {hi}, out of range for size {upper}")
    return arr


def as_bool_array(name: str, values) -> np.ndarray:
    """`values` as a 1-D bool array; integers must be 0 or 1."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise SwapInputError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise SwapInputError(f"{name} contains NaN")
    if arr.dtype.kind in "iuf" or arr.size == 0:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise SwapInputError(f"{name} must be boolean (or 0/1)")
        return arr.astype(bool)
    raise SwapInputError(f"{name} must be boolean, got dtype {arr.dtype}")


def as_label_array(name: str, values, size: int | None = None) -> np.ndarray:
    """`values` as a 1-D int8 array of REAL / BOGUS / UNKNOWN (1 / 0 / -1)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise SwapInputError(f"{name} must be 1-D, got shape {arr.shape}")
    if size is not None and arr.shape[0] != size:
        raise SwapInputError(f"{name} has {arr.shape[0]} entries, expected {size}")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise SwapInputError(f"{name} contains NaN (use UNKNOWN = -1 for 'no label')")
    if arr.size == 0:
        return arr.astype(np.int8)
    if arr.dtype.kind not in "iubf":
        raise SwapInputError(f"{name} must be integer labels, got dtype {arr.dtype}")
    if not np.isin(arr, (UNKNOWN, BOGUS, REAL)).all():
        raise SwapInputError(f"{name} must hold only REAL=1, BOGUS=0 or UNKNOWN=-1")
    return arr.astype(np.int8)


def as_float_array(name: str, values, size: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise SwapInputError(f"{name} must be 1-D, got shape {arr.shape}")
    if size is not None and arr.shape[0] != size:
        raise SwapInputError(f"{name} has {arr.shape[0]} entries, expected {size}")
    if np.isnan(arr).any():
        raise SwapInputError(f"{name} contains NaN")
    return arr


def check_offsets(offsets, n_values: int) -> np.ndarray:
    """CSR offsets: int, 1-D, starting at 0, non-decreasing, ending at `n_values`."""
    arr = as_index_array("traj_offsets", offsets)
    if arr.size == 0 or arr[0] != 0 or arr[-1] != n_values:
        raise SwapInputError(
            f"traj_offsets must start at 0 and end at len(traj_values) = {n_values}"
        )
    if (np.diff(arr) < 0).any():
        raise SwapInputError("traj_offsets must be non-decreasing")
    return arr


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


# ---------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class SwapParams:
    """Parameters of a SWAP run. Checked on construction, so an instance is always valid.

    Skills use pseudo-counts: P = (skill_prior * skill_strength + n_correct) /
    (skill_strength + n_seen). The defaults (0.5, 2) are Laplace smoothing, (n_correct + 1) /
    (n_seen + 2), as in zooniverse/swap and kSWAP; Space Warps used 0.5 with strength 4.
    """

    prior: float = 0.5  # Pr(Real) before any classification
    skill_prior: float = 0.5  # initial P for both skills
    skill_strength: float = 2.0  # total pseudo-count behind skill_prior
    skill_floor: float = 0.05  # skills are clamped to [skill_floor, skill_ceiling]
    skill_ceiling: float = 0.95
    require_reference: bool = True  # only volunteers with >= 1 reference classification count
    real_threshold: float = 0.9  # Pr(Real) >= this is Real
    bogus_threshold: float = 0.1  # Pr(Real) <= this is Bogus
    stability_window: int = 3  # the stable set needs this many last points over a threshold

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise SwapInputError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise SwapInputError(f"{name} must be finite, got {value!r}")
            return float(value)

        prior = number("prior")
        if not 0.0 < prior < 1.0:
            raise SwapInputError(f"prior must be in (0, 1), got {prior}")
        skill_prior = number("skill_prior")
        if not 0.0 <= skill_prior <= 1.0:
            raise SwapInputError(f"skill_prior must be in [0, 1], got {skill_prior}")
        if not number("skill_strength") > 0.0:
            raise SwapInputError(f"skill_strength must be > 0, got {self.skill_strength}")
        floor, ceiling = number("skill_floor"), number("skill_ceiling")
        if not 0.0 < floor <= ceiling < 1.0:
            raise SwapInputError(
                "need 0 < skill_floor <= skill_ceiling < 1 (log-odds stay finite), "
                f"got floor {floor}, ceiling {ceiling}"
            )
        real, bogus = number("real_threshold"), number("bogus_threshold")
        if not 0.0 <= bogus < real <= 1.0:
            raise SwapInputError(
                f"need 0 <= bogus_threshold < real_threshold <= 1, got {bogus} and {real}"
            )
        if not isinstance(self.require_reference, bool | np.bool_):
            raise SwapInputError(
                f"require_reference must be a bool, got {self.require_reference!r}"
            )
        if not _is_int(self.stability_window) or self.stability_window < 1:
            raise SwapInputError(
                f"stability_window must be an integer >= 1, got {self.stability_window!r}"
            )


# ---------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class ClassificationTable:
    """All classifications of a run, one row each, in time order (the caller sorts).

    On construction, integer index arrays of any width become int64 and 0/1 answers become
    bool (no copy when they already are); anything else is refused with SwapInputError.
    """

    subject: np.ndarray  # int64 indices in [0, n_subjects)
    volunteer: np.ndarray  # int64 indices in [0, n_volunteers)
    says_real: np.ndarray  # bool
    n_subjects: int
    n_volunteers: int

    def __post_init__(self) -> None:
        for name in ("n_subjects", "n_volunteers"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise SwapInputError(f"{name} must be an integer >= 0, got {value!r}")
            object.__setattr__(self, name, int(value))
        object.__setattr__(self, "subject", as_index_array("subject", self.subject))
        object.__setattr__(self, "volunteer", as_index_array("volunteer", self.volunteer))
        object.__setattr__(self, "says_real", as_bool_array("says_real", self.says_real))
        self.validate()

    @classmethod
    def from_arrays(cls, subject, volunteer, says_real, n_subjects: int | None = None,
                    n_volunteers: int | None = None) -> ClassificationTable:
        """A table from array-likes; the sizes default to the largest index + 1."""
        subject = as_index_array("subject", subject)
        volunteer = as_index_array("volunteer", volunteer)
        if n_subjects is None:
            n_subjects = int(subject.max()) + 1 if subject.size else 0
        if n_volunteers is None:
            n_volunteers = int(volunteer.max()) + 1 if volunteer.size else 0
        return cls(subject, volunteer, says_real, n_subjects, n_volunteers)

    def __len__(self) -> int:
        return int(self.subject.shape[0])

    def validate(self) -> None:
        n = self.subject.shape[0]
        if self.volunteer.shape[0] != n or self.says_real.shape[0] != n:
            raise SwapInputError(
                "subject, volunteer and says_real must have the same length, got "
                f"{n}, {self.volunteer.shape[0]} and {self.says_real.shape[0]}"
            )
        as_index_array("subject", self.subject, self.n_subjects)
        as_index_array("volunteer", self.volunteer, self.n_volunteers)
        if self.says_real.dtype != np.bool_:
            raise SwapInputError(f"says_real must be bool, got {self.says_real.dtype}")


def check_truth(truth, table: ClassificationTable) -> np.ndarray:
    return as_label_array("truth", truth, table.n_subjects)


# ---------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Skills:
    """Per volunteer: reference counts and the skills the scoring used.

    The counts are always hard counts of reference classifications (subjects with known
    truth). `p_real` / `p_bogus` are the clamped skills; in EM mode they are the EM's, which
    also learn from non-reference subjects, so they need not follow from the counts.
    """

    n_real_seen: np.ndarray  # reference Reals classified
    n_real_correct: np.ndarray  # ... and called Real
    n_bogus_seen: np.ndarray
    n_bogus_correct: np.ndarray
    p_real: np.ndarray  # P(says Real | Real), clamped
    p_bogus: np.ndarray  # P(says Bogus | Bogus), clamped
    contributes: np.ndarray  # bool: this volunteer's classifications move posteriors

    @property
    def n_reference(self) -> np.ndarray:
        return self.n_real_seen + self.n_bogus_seen

    def __len__(self) -> int:
        return int(self.p_real.shape[0])


@dataclass(frozen=True)
class SwapResult:
    """Posteriors, trajectories and labels of one run.

    Trajectories are stored CSR-style: subject i's is traj_values[traj_offsets[i]:
    traj_offsets[i + 1]], Pr(Real) after each contributing classification in time order.
    """

    p_real: np.ndarray  # final Pr(Real) per subject; the prior where nothing contributed
    n_counted: np.ndarray  # classifications of the subject in the table (contributing or not)
    traj_offsets: np.ndarray
    traj_values: np.ndarray
    unstable_label: np.ndarray  # int8 REAL / BOGUS / UNKNOWN: the threshold on the final value
    stable_label: np.ndarray  # int8: the last `stability_window` points all past one threshold
    skills: Skills
    mode: str  # "batch", "online" or "em"
    iterations: int = 0  # EM only
    converged: bool = True  # EM only
    params: SwapParams | None = field(default=None, compare=False)  # what the run used
    # Final log-odds of Real per subject (the prior's where nothing contributed): exact where
    # p_real has rounded to 1.0, and what an online continuation starts from.
    log_odds: np.ndarray | None = None

    def trajectory(self, i: int) -> np.ndarray:
        return self.traj_values[self.traj_offsets[i] : self.traj_offsets[i + 1]]

    @property
    def n_contributing(self) -> np.ndarray:
        return np.diff(self.traj_offsets)

    @property
    def n_subjects(self) -> int:
        return int(self.p_real.shape[0])
