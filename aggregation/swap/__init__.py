"""The pure SWAP core: numpy/scipy only, no Django, no Celery.

Batch (`swap_batch`), online (`online_step`, `OnlineSwap`) and EM (`swap_em`) aggregation of
Real/Bogus classifications into per-subject Pr(Real), trajectories and stable/unstable labels,
plus the reports that judge them. See core.py for the model and DESIGN.md for the rules.
"""

from aggregation.swap.baselines import crowdkit_dawid_skene
from aggregation.swap.core import (
    PRIOR_MODES,
    SKILL_TIMINGS,
    EmOptions,
    majority_vote,
    stability_labels,
    swap_batch,
    swap_em,
    volunteer_skills,
)
from aggregation.swap.online import OnlineSwap, SubjectState, VolunteerState, online_step
from aggregation.swap.reports import (
    BreakdownRow,
    LabelAccuracy,
    VolunteerReferenceFractions,
    breakdown,
    esc_fraction,
    esc_score,
    exponential_weight,
    format_breakdown,
    label_accuracy,
    label_flips,
    volunteer_reference_fractions,
)
from aggregation.swap.ties import TIE_EPSILON, TIE_RULE, is_tie, threshold_labels
from aggregation.swap.types import (
    BOGUS,
    REAL,
    UNKNOWN,
    ClassificationTable,
    Skills,
    SwapInputError,
    SwapParams,
    SwapResult,
)

__all__ = [
    "BOGUS",
    "PRIOR_MODES",
    "REAL",
    "SKILL_TIMINGS",
    "TIE_EPSILON",
    "TIE_RULE",
    "UNKNOWN",
    "BreakdownRow",
    "ClassificationTable",
    "EmOptions",
    "LabelAccuracy",
    "OnlineSwap",
    "Skills",
    "SubjectState",
    "SwapInputError",
    "SwapParams",
    "SwapResult",
    "VolunteerReferenceFractions",
    "VolunteerState",
    "breakdown",
    "crowdkit_dawid_skene",
    "esc_fraction",
    "esc_score",
    "exponential_weight",
    "format_breakdown",
    "is_tie",
    "label_accuracy",
    "label_flips",
    "majority_vote",
    "online_step",
    "stability_labels",
    "swap_batch",
    "swap_em",
    "threshold_labels",
    "volunteer_reference_fractions",
    "volunteer_skills",
]
