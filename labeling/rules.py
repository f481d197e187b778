"""The volunteer-facing science rules: retirement, what SWAP reads, and gold injection.

Pure Python: the classification service and the simulator apply these, and the property
tests pin them, without a database.
"""

from __future__ import annotations

from dataclasses import dataclass

from labeling.records import ANSWERS

# DESIGN.md: retire at 2 if the first two counted classifications agree, else at 7.
DEFAULT_RETIRE_AGREE = 2
DEFAULT_RETIRE_MAX = 7

# Why a stored answer did not count toward retirement (`Classification.not_counted_reason`;
# the empty string means it counted). The model's choices are built from these.
COUNTED = ""
REPEAT = "repeat"
RETIRED = "retired"
EXPERT_ON_REFERENCE = "expert_on_reference"
WORKFLOW_INACTIVE = "workflow_inactive"
# An anonymous volunteer's first answers in a workflow (README, "What the platform defends
# against"): a crowd of fresh anonymous identities cannot retire a subject.
PROBATION = "probation"

# Answers SWAP never reads: a volunteer's second answer on a subject (one person is one
# witness), and an expert's answer on a subject whose reference label that expert's team set
# (it would be the truth grading itself). Every other answer is evidence, counted toward
# retirement or not: an answer that arrives after retirement, or to an inactive workflow, still
# says something about the subject and the volunteer.
NOT_SWAP_EVIDENCE = frozenset({REPEAT, EXPERT_ON_REFERENCE})


def swap_reads(not_counted_reason: str) -> bool:
    """Whether SWAP (live step, batch, EM, reports, label sets) reads a stored answer."""
    return not_counted_reason not in NOT_SWAP_EVIDENCE


def not_counted_reason(*, repeat: bool, expert_on_reference: bool, active: bool,
                       retired: bool) -> str:
    """Why an answer does not count toward retirement (COUNTED when it does): the
    classification service and the bulk import's replay both decide with this. The two
    reasons SWAP does not read come first, so an answer that is both a repeat and late, say,
    is never mistaken for evidence. (Probation is decided after, by the service only: imports
    and the simulator have no anonymous volunteers.)"""
    if repeat:
        return REPEAT
    if expert_on_reference:
        return EXPERT_ON_REFERENCE
    if not active:
        return WORKFLOW_INACTIVE
    if retired:
        return RETIRED
    return COUNTED


# Reference subjects are injected at a rate that decays with how many classifications the
# volunteer has made in the workflow: (classifications made so far below which the rate
# applies, rate); `None` is the open-ended last step.
DEFAULT_GOLD_SCHEDULE: tuple[tuple[int | None, float], ...] = (
    (20, 0.40),
    (40, 0.30),
    (60, 0.20),
    (None, 0.10),
)


@dataclass(frozen=True)
class RetirementRule:
    agree: int = DEFAULT_RETIRE_AGREE
    maximum: int = DEFAULT_RETIRE_MAX

    def __post_init__(self) -> None:
        if self.agree < 1:
            raise ValueError(f"retire-agree must be at least 1, got {self.agree}")
        if self.maximum < self.agree:
            raise ValueError(
                f"retire-max ({self.maximum}) must be at least retire-agree ({self.agree})"
            )


@dataclass(frozen=True)
class RetirementState:
    """What the rule needs to remember about a subject's counted classifications."""

    n_counted: int = 0
    first_answer: str = ""
    unanimous: bool = True


def advance(state: RetirementState, answer: str, rule: RetirementRule) -> tuple[
    RetirementState, bool
]:
    """Count one more classification; return the new state and whether the subject retires.

    The first `rule.agree` counted answers all agreeing retires the subject at that count;
    otherwise it retires when `rule.maximum` have been counted.
    """
    if answer not in ANSWERS:
        raise ValueError(f"answer must be one of {ANSWERS}, got {answer!r}")
    first = state.first_answer or answer
    new = RetirementState(
        n_counted=state.n_counted + 1,
        first_answer=first,
        unanimous=state.unanimous and answer == first,
    )
    retires = (new.n_counted == rule.agree and new.unanimous) or new.n_counted >= rule.maximum
    return new, retires


def validate_gold_schedule(schedule) -> tuple[tuple[int | None, float], ...]:
    """Check a schedule read from JSON or the command line; return it as tuples."""
    steps = tuple((None if upto is None else int(upto), float(rate)) for upto, rate in schedule)
    if not steps or steps[-1][0] is not None:
        raise ValueError("the gold schedule's last step must be open-ended (upto = null)")
    bounds = [upto for upto, _ in steps[:-1]]
    if any(upto is None for upto in bounds) or bounds != sorted(set(bounds)):
        raise ValueError("the gold schedule's bounds must increase strictly")
    if any(not 0.0 <= rate <= 1.0 for _, rate in steps):
        raise ValueError("gold injection rates must lie in [0, 1]")
    return steps


def gold_rate(n_classified: int, schedule=DEFAULT_GOLD_SCHEDULE) -> float:
    """The probability that the next subject shown is a reference subject."""
    for upto, rate in schedule:
        if upto is None or n_classified < upto:
            return rate
    raise ValueError("the gold schedule's last step must be open-ended")
