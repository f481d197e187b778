"""Every read of the labeling app that needs more than a plain lookup."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db.models import Exists, OuterRef, QuerySet

from labeling import rendering, rules, stamps
from labeling.errors import InvalidInput, NotFound
from labeling.models import (
    Classification,
    ReferenceLabel,
    Subject,
    SubjectWorkflowStatus,
    Volunteer,
    Workflow,
)
from labeling.records import ANSWERS, STAMP_KINDS

MAX_QUEUE_SIZE = 50
# The tutorial shows this many reference subjects of each answer, with the experts' label.
TUTORIAL_EXAMPLES_PER_ANSWER = 2


@dataclass(frozen=True)
class SubjectQueue:
    subject_ids: list[int]
    finished: bool
    n_classified: int


def workflow_get(workflow_id: int) -> Workflow:
    try:
        return Workflow.objects.get(pk=workflow_id)
    except Workflow.DoesNotExist:
        raise NotFound(f"workflow {workflow_id} does not exist") from None


def subject_queue(
    *,
    volunteer: Volunteer,
    workflow: Workflow,
    n: int,
    exclude: frozenset[int] = frozenset(),
    rng: random.Random | None = None,
) -> SubjectQueue:
    """The next `n` subjects for a volunteer, in the order to show them.

    Never a subject they classified, a retired one, or one in `exclude` (what the client
    already holds). Reference subjects are mixed in at the workflow's gold-injection rate for
    the volunteer's count; the rest are random among the unretired, highest priority first.
    `finished` is true when no non-reference subject is left for this volunteer: the gold
    subjects alone are no reason to keep someone classifying.
    """
    if not 1 <= n <= MAX_QUEUE_SIZE:
        raise InvalidInput(f"n must be between 1 and {MAX_QUEUE_SIZE}")
    rng = rng or random.Random()
    n_classified = Classification.objects.filter(workflow=workflow, volunteer=volunteer).count()
    if not workflow.active:
        return SubjectQueue([], finished=True, n_classified=n_classified)
    schedule = rules.validate_gold_schedule(workflow.gold_schedule)
    n_gold = sum(rng.random() < rules.gold_rate(n_classified + i, schedule) for i in range(n))

    seen = Classification.objects.filter(volunteer=volunteer, subject_id=OuterRef("subject_id"))
    unseen = _servable(workflow).exclude(Exists(seen)).exclude(subject_id__in=exclude)
    science = unseen.exclude(_IS_REFERENCE)
    gold = _draw(unseen.filter(_IS_REFERENCE), n_gold, rng)
    # The tutorial shows its examples with their answers: as gold they would measure nothing,
    # so they are served to nobody. Only explained labels can be examples, and that check on
    # the few drawn ids is cheap; finding the examples themselves is done only when needed.
    if gold and _any_explained(gold):
        examples = {example.subject_id for example in tutorial_examples(workflow)}
        if examples.intersection(gold):
            gold = _draw(
                unseen.filter(_IS_REFERENCE).exclude(subject_id__in=examples), n_gold, rng
            )
    regular = _draw(science, n - len(gold), rng)
    if not regular and not science.exists():
        return SubjectQueue([], finished=True, n_classified=n_classified)
    ids = regular + gold
    rng.shuffle(ids)
    return SubjectQueue(ids, finished=False, n_classified=n_classified)


def _any_explained(subject_ids: list[int]) -> bool:
    # By subject id alone, so the plan is always the index on it: a handful of rows.
    labels = ReferenceLabel.objects.filter(subject_id__in=subject_ids)
    return any(labels.values_list("explanation", flat=True))


def workflow_finished(workflow: Workflow) -> bool:
    """Whether the workflow is done for everyone: inactive, or no subject it serves (reference
    subjects aside, as in `subject_queue`) is left unretired."""
    if not workflow.active:
        return True
    return not _servable(workflow).exclude(_IS_REFERENCE).exists()


_IS_REFERENCE = Exists(ReferenceLabel.objects.filter(subject_id=OuterRef("subject_id")))


def _servable(workflow: Workflow) -> QuerySet[SubjectWorkflowStatus]:
    """The workflow's unretired subjects that can be shown: subjects imported without stamps
    are there to be aggregated, not shown."""
    return SubjectWorkflowStatus.objects.filter(workflow=workflow, retired=False).exclude(
        subject__stamps=""
    )


def _draw(statuses: QuerySet[SubjectWorkflowStatus], k: int, rng: random.Random) -> list[int]:
    """k subject ids, highest priority first, random within a priority (by the random key).

    Within one priority level, an index range scan from a random key, wrapping round, draws
    without ORDER BY random(), which would sort every candidate row on each request.
    """
    ids: list[int] = []
    remaining = statuses
    while len(ids) < k:
        top = remaining.order_by("-priority").values_list("priority", flat=True).first()
        if top is None:
            break
        level = (
            remaining.filter(priority=top).order_by("random_key").values_list("subject_id",
                                                                               flat=True)
        )
        start = rng.random()
        ids += level.filter(random_key__gte=start)[: k - len(ids)]
        if len(ids) < k:
            ids += level.filter(random_key__lt=start)[: k - len(ids)]
        remaining = remaining.filter(priority__lt=top)
    return ids


def subject_image_png(subject_id: int, kind: str) -> bytes:
    """A stamp rendered for display, from the render cache or rendered and cached now."""
    if kind not in STAMP_KINDS:
        raise NotFound(f"no stamp {kind!r}; the stamps are {', '.join(STAMP_KINDS)}")
    scale = settings.RENDER_SCALE
    cache = storages["renders"]
    path = f"{rendering.STRETCH_VERSION}/{subject_id}/{kind}@{scale}.png"
    if cache.exists(path):
        with cache.open(path, "rb") as handle:
            return handle.read()
    try:
        subject = Subject.objects.only("stamps", "stamp_size").get(pk=subject_id)
    except Subject.DoesNotExist:
        raise NotFound(f"subject {subject_id} does not exist") from None
    with subject.stamps.open("rb") as handle:
        cube = stamps.cube_from_bytes(handle.read(), subject.stamp_size)
    png = rendering.render_stamp_png(cube, kind, scale=scale)
    cache.save(path, ContentFile(png))
    return png


def subject_pixels(subject_id: int) -> dict[str, list[list[float | None]]]:
    """A subject's stamp values, for reading pixels on the classify page: per stamp kind,
    rows of float32 values rounded to float32 precision (7 significant digits), NaN as None."""
    try:
        subject = Subject.objects.only("stamps", "stamp_size").get(pk=subject_id)
    except Subject.DoesNotExist:
        raise NotFound(f"subject {subject_id} does not exist") from None
    if not subject.stamps:
        raise NotFound(f"subject {subject_id} has no stamps")
    with subject.stamps.open("rb") as handle:
        cube = stamps.cube_from_bytes(handle.read(), subject.stamp_size)
    return {
        kind: [[None if math.isnan(v) else float(f"{v:.7g}") for v in row] for row in stamp]
        for kind, stamp in zip(STAMP_KINDS, cube.astype(np.float64).tolist(), strict=True)
    }


@dataclass(frozen=True)
class TutorialExample:
    subject_id: int
    label: str
    explanation: str


def tutorial_examples(workflow: Workflow) -> list[TutorialExample]:
    """The reference subjects the tutorial shows: for each answer, the first
    `TUTORIAL_EXAMPLES_PER_ANSWER` reference labels (oldest first) of the workflow's subjects
    that carry an explanation. `subject_queue` never serves them, to anyone.

    Reference subjects with explanations beyond these stay in the gold pool, where the
    workflow's feedback shows their explanation after a volunteer answers.
    """
    examples: list[TutorialExample] = []
    seen: set[int] = set()
    for answer in ANSWERS:
        rows = (
            ReferenceLabel.objects.filter(
                label=answer,
                subject__statuses__workflow=workflow,
            )
            .exclude(explanation="")
            .exclude(subject__stamps="")
            .exclude(subject_id__in=seen)
            .order_by("pk")
            .values_list("subject_id", "explanation")[:TUTORIAL_EXAMPLES_PER_ANSWER]
        )
        for subject_id, explanation in rows:
            seen.add(subject_id)
            examples.append(TutorialExample(subject_id, answer, explanation))
    return examples


@dataclass(frozen=True)
class ReferenceFeedback:
    label: str
    explanation: str


def reference_feedback(*, workflow_id: int, subject_id: int) -> ReferenceFeedback | None:
    """What the experts say about a reference subject, for the volunteer who just answered
    it; None unless the workflow shows feedback and the subject is a reference subject.
    Of several reference labels, the oldest with an explanation wins, else the oldest."""
    if not Workflow.objects.filter(pk=workflow_id, feedback_enabled=True).exists():
        return None
    labels = list(
        ReferenceLabel.objects.filter(subject_id=subject_id)
        .order_by("pk")
        .values_list("label", "explanation")
    )
    if not labels:
        return None
    label, explanation = next(((lab, exp) for lab, exp in labels if exp), labels[0])
    return ReferenceFeedback(label=label, explanation=explanation)
