"""Every read of the labeling app that needs more than a plain lookup."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.db import connection
from django.db.models import Exists, F, OuterRef, QuerySet, Subquery, Value

from labeling import pixel_payload, rendering, rules, stamp_store, stamps, surveys
from labeling.errors import InvalidInput, NotFound
from labeling.models import (
    Classification,
    ExpertTeam,
    ReferenceLabel,
    ReferenceLabelChange,
    ReferenceSet,
    Subject,
    SubjectSet,
    SubjectWorkflowStatus,
    Volunteer,
    VolunteerWorkflowCount,
    Workflow,
)
from labeling.records import ANSWERS, STAMP_KINDS

logger = logging.getLogger(__name__)

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


def volunteer_asking(request) -> QuerySet[Volunteer] | None:
    """The volunteer behind a request, as a query (at most one row, none before their first
    answer); None for a visitor without a session, who cannot have answered."""
    if request.user.is_authenticated:
        return Volunteer.objects.filter(user=request.user)
    session_key = request.session.session_key
    return Volunteer.objects.filter(session_key=session_key) if session_key else None


def subject_queue_for_request(
    request, workflow_id: int, *, n: int, exclude: frozenset[int] = frozenset()
) -> SubjectQueue:
    """`subject_queue` for whoever asks, in two statements: the workflow with the asker's
    volunteer id and count, then the draw."""
    workflows = Workflow.objects.filter(pk=workflow_id)
    volunteers = volunteer_asking(request)
    if volunteers is not None:
        workflows = workflows.annotate(
            asking_volunteer=Subquery(volunteers.values("pk")[:1]),
            asking_count=Subquery(
                VolunteerWorkflowCount.objects.filter(
                    workflow=OuterRef("pk"), volunteer__in=volunteers.values("pk")
                ).values("n_classified")[:1]
            ),
        )
    workflow = workflows.first()
    if workflow is None:
        raise NotFound(f"workflow {workflow_id} does not exist")
    return _subject_queue(
        workflow, getattr(workflow, "asking_volunteer", None),
        getattr(workflow, "asking_count", None) or 0, n=n, exclude=exclude,
        rng=random.Random(),
    )


def subject_queue(
    *,
    volunteer: Volunteer | None,
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
    n_classified = 0
    if volunteer is not None:
        n_classified = VolunteerWorkflowCount.objects.filter(
            volunteer=volunteer, workflow=workflow
        ).values_list("n_classified", flat=True).first() or 0
    return _subject_queue(workflow, None if volunteer is None else volunteer.pk, n_classified,
                          n=n, exclude=exclude, rng=rng or random.Random())


def _subject_queue(
    workflow: Workflow, volunteer_id: int | None, n_classified: int, *, n: int,
    exclude: frozenset[int], rng: random.Random,
) -> SubjectQueue:
    if not 1 <= n <= MAX_QUEUE_SIZE:
        raise InvalidInput(f"n must be between 1 and {MAX_QUEUE_SIZE}")
    if not workflow.active:
        return SubjectQueue([], finished=True, n_classified=n_classified)
    schedule = rules.validate_gold_schedule(workflow.gold_schedule)
    n_gold = sum(rng.random() < rules.gold_rate(n_classified + i, schedule) for i in range(n))

    unseen = _servable(workflow)
    if exclude:
        unseen = unseen.exclude(subject_id__in=exclude)
    if volunteer_id is not None:
        seen = Classification.objects.filter(volunteer_id=volunteer_id,
                                             subject_id=OuterRef("subject_id"))
        unseen = unseen.exclude(Exists(seen))
    # Science is drawn for every place, in the same statement as gold: the places gold
    # cannot fill go to science, and one row tells whether any science is left.
    science = _Pool(unseen.exclude(IS_REFERENCE), want=n)
    # The tutorial shows its examples with their answers: as gold they would measure nothing,
    # so they are served to nobody. The draw takes enough spare rows to skip them all, and
    # marks the explained ones (only those can be examples), so the examples themselves are
    # looked up only when an explained subject was drawn.
    gold = _Pool(unseen.filter(IS_REFERENCE), want=n_gold,
                 spare=TUTORIAL_EXAMPLES_PER_ANSWER * len(ANSWERS))
    _draw([science, gold], rng, lambda: {example.subject_id
                                         for example in tutorial_examples(workflow)})
    if not science.ids:
        return SubjectQueue([], finished=True, n_classified=n_classified)
    ids = science.ids[: n - len(gold.ids)] + gold.ids
    rng.shuffle(ids)
    return SubjectQueue(ids, finished=False, n_classified=n_classified)


def workflow_finished(workflow: Workflow) -> bool:
    """Whether the workflow is done for everyone: inactive, or no subject it serves (reference
    subjects aside, as in `subject_queue`) is left unretired."""
    if not workflow.active:
        return True
    return not _servable(workflow).exclude(IS_REFERENCE).exists()


# A gold subject: one some set labels Real or Bogus (an Unsure label alone is no truth).
IS_REFERENCE = Exists(ReferenceLabel.objects.counted().filter(subject_id=OuterRef("subject_id")))
# Only an explained reference label can make its subject a tutorial example.
_IS_EXPLAINED = Exists(
    ReferenceLabel.objects.counted().filter(subject_id=OuterRef("subject_id"))
    .exclude(explanation="")
)


def _servable(workflow: Workflow) -> QuerySet[SubjectWorkflowStatus]:
    """The workflow's unretired subjects that can be shown: subjects imported without stamps
    are there to be aggregated, not shown."""
    return SubjectWorkflowStatus.objects.filter(workflow=workflow, retired=False).exclude(
        subject__stamps=""
    )


@dataclass
class _Pool:
    """One pool the queue draws from: `want` ids, highest priority first, random within a
    priority; `spare` more rows are read each time, for ids the caller may skip.

    Within one priority level, an index range scan from a random key, wrapping round, draws
    without ORDER BY random(), which would sort every candidate row on each request: the scan
    up from the key first, and the scan round from the bottom only when that falls short."""

    statuses: QuerySet[SubjectWorkflowStatus]
    want: int
    spare: int = 0
    ids: list[int] = field(default_factory=list)
    below: float | None = None  # the last priority level drawn from; None before the first
    start: float | None = None  # the current level's random key; None before it is drawn
    level: float | None = None  # the current level's priority, once a row of it is seen
    exhausted: bool = False

    def pending(self) -> bool:
        return not self.exhausted and len(self.ids) < self.want

    def next_query(self, rng: random.Random) -> QuerySet:
        """The next scan: up from a new level's random key, or round from its bottom. The
        level's priority is a subquery of the same statement."""
        remaining = self.statuses
        if self.below is not None:
            remaining = remaining.filter(priority__lt=self.below)
        top = Subquery(remaining.order_by("-priority").values("priority")[:1])
        level = remaining.filter(priority=top).order_by("random_key")
        if self.start is None:
            self.start = rng.random()
            scan = level.filter(random_key__gte=self.start)
        else:
            scan = level.filter(random_key__lt=self.start)
        return scan.annotate(
            explained=_IS_EXPLAINED if self.spare else Value(False)
        ).values_list("subject_id", "priority", "random_key", "explained")[: self.limit()]

    def limit(self) -> int:
        return self.want - len(self.ids) + self.spare

    def take(self, rows: list[tuple], skip: set[int] | None, *, wrapped: bool) -> None:
        """Add a scan's rows; move on to the wrap, the next level down, or nothing left."""
        limit = self.limit()
        rows = sorted(rows, key=lambda row: row[2])
        self.ids += [subject_id for subject_id, *_ in rows
                     if skip is None or subject_id not in skip]
        if rows:
            self.level = rows[0][1]
        if not wrapped and len(rows) < limit:
            return  # the scan round from the bottom of this level comes next
        if wrapped or len(rows) < limit:
            if self.level is None:
                self.exhausted = True  # the level was empty: nothing is left at all
            self.below, self.start, self.level = self.level, None, None
        del self.ids[self.want:]


def _draw(pools: list[_Pool], rng: random.Random, skipped: Callable[[], set[int]]) -> None:
    """Fill every pool's `ids`, one scan of each pool per statement: one statement unless a
    scan falls short. Rows marked explained are dropped if in `skipped()`, asked only then."""
    skip: set[int] | None = None
    while pending := [pool for pool in pools if pool.pending()]:
        wrapped = [pool.start is not None for pool in pending]
        rows = _union_all([pool.next_query(rng) for pool in pending])
        if skip is None and any(explained for part in rows for *_, explained in part):
            skip = skipped()
        for pool, part, wraps in zip(pending, rows, wrapped, strict=True):
            pool.take(part, skip, wrapped=wraps)


def _union_all(parts: list[QuerySet]) -> list[list[tuple]]:
    """Run the querysets as one statement; return each one's rows (unordered)."""
    pieces, params = [], []
    for index, part in enumerate(parts):
        sql, part_params = part.query.get_compiler(using=part.db).as_sql()
        pieces.append(f"SELECT {index} AS part, q{index}.* FROM ({sql}) AS q{index}")
        params.extend(part_params)
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(pieces), params)
        rows = cursor.fetchall()
    grouped: list[list[tuple]] = [[] for _ in parts]
    for part, *row in rows:
        grouped[part].append(tuple(row))
    return grouped


def subject_image_png(subject_id: int, kind: str) -> bytes:
    """A stamp rendered for display, from the render cache or rendered and cached now: the
    stamp's native footprint in the cube, FITS row 0 at the bottom (labeling.rendering)."""
    if kind not in STAMP_KINDS:
        raise NotFound(f"no stamp {kind!r}; the stamps are {', '.join(STAMP_KINDS)}")
    scale = settings.RENDER_SCALE
    cache = storages["renders"]
    path = f"{rendering.STRETCH_VERSION}/{subject_id}/{kind}@{scale}.png"
    if cache.exists(path):
        with cache.open(path, "rb") as handle:
            return handle.read()
    subject, cube = _subject_cube(subject_id)
    png = rendering.render_stamp_png(cube, kind, scale=scale,
                                     window=_display_window(subject, kind))
    cache.save(path, ContentFile(png))
    return png


def _subject_cube(subject_id: int) -> tuple[Subject, np.ndarray]:
    try:
        subject = Subject.objects.only(
            "stamps", "stamp_size", "stamp_fit", "original_shapes", "centre_offset", "metadata"
        ).get(pk=subject_id)
    except Subject.DoesNotExist:
        raise NotFound(f"subject {subject_id} does not exist") from None
    if not subject.stamps:
        raise NotFound(f"subject {subject_id} has no stamps")
    with subject.stamps.open("rb") as handle:
        return subject, stamps.cube_from_bytes(handle.read(), subject.stamp_size)


def _display_window(subject: Subject, kind: str) -> tuple[slice, slice]:
    shape = subject.original_shapes[STAMP_KINDS.index(kind)]
    return stamps.display_window(tuple(shape), tuple(subject.centre_offset),
                                 subject.stamp_size, subject.stamp_fit)


def subject_cubes(stamp_names: Sequence[str], size: int) -> np.ndarray:
    """The stamp cubes stored under `stamp_names` (Subject.stamps names), as one float32
    (n, 3, size, size) array in that order; StampError if one is corrupt or of another size."""
    cubes = np.empty((len(stamp_names), 3, size, size), dtype=np.float32)
    for i, name in enumerate(stamp_names):
        with default_storage.open(name, "rb") as handle:
            try:
                cubes[i] = stamps.cube_from_bytes(handle.read(), size)
            except stamps.StampError as exc:
                raise stamps.StampError(f"{name}: {exc}") from None
    return cubes


def stamp_store_name(project_id: int, subject_set_id: int) -> str:
    """The storage folder of a subject set's bulk stamp store (labeling.stamp_store), next
    to the project's per-subject stamp files."""
    return f"stamps/{project_id}/sets/{subject_set_id}"


def stamp_sources(names: Sequence[str]) -> list[stamp_store.Source | None] | None:
    """The per-subject stamp files `names` as a bulk store knows them; None when the storage
    keeps no local files (a store is then never used). A name that could point outside the
    storage's folder is None: a store never serves it, and reading its file refuses it."""
    try:
        root = default_storage.path("")
    except NotImplementedError:
        return None
    # One join per name, not the storage's path(): 20,000 of those cost a second.
    return [
        None if name.startswith("/") or ".." in name.split("/")
        else stamp_store.Source(name, os.path.join(root, name))
        for name in names
    ]


def subject_cube_reader(subject_set_ids: Iterable[int], size: int
                        ) -> Callable[[Sequence[str]], np.ndarray]:
    """A reader of stamp cubes by stamp name, giving what `subject_cubes` gives, byte for
    byte, for subjects of these subject sets: each set's bulk store serves the cubes it holds
    verified (see labeling.stamp_store), and the rest (a store missing, stale, corrupt, or a
    subject of another set) are read one file at a time. The stores are opened once, here."""
    stores = []
    for set_id, project_id in SubjectSet.objects.filter(pk__in=list(subject_set_ids)
                                                        ).values_list("pk", "project_id"):
        folder = stamp_sources([stamp_store_name(project_id, set_id)])
        if folder is None:
            break
        try:
            stores.append(stamp_store.open_store(Path(folder[0].path), size))
        except stamp_store.StoreUnusable as exc:
            logger.warning("stamp store of subject set %s not used: %s", set_id, exc)

    def read(stamp_names: Sequence[str]) -> np.ndarray:
        cubes = np.empty((len(stamp_names), 3, size, size), dtype=np.float32)
        missing = np.ones(len(stamp_names), dtype=bool)
        sources = stamp_sources(stamp_names) if stores else []
        servable = np.array([source is not None for source in sources], dtype=bool)
        for store in stores:
            waiting = np.flatnonzero(missing & servable)
            if not len(waiting):
                break
            # Fancy indexing copies: a store writes straight into `cubes` only when it is
            # asked for every subject, as the first store usually is.
            target = cubes if len(waiting) == len(cubes) else np.empty_like(cubes[waiting])
            not_served = store.read_into([sources[i] for i in waiting], target)
            if target is not cubes:
                cubes[waiting[~not_served]] = target[~not_served]
            missing[waiting[~not_served]] = False
        waiting = np.flatnonzero(missing)
        if len(waiting):
            cubes[waiting] = subject_cubes([stamp_names[i] for i in waiting], size)
        return cubes

    return read


def subject_pixels(subject_id: int) -> dict:
    """A subject's stamp values, for reading pixels and drawing stretches in the viewer,
    exactly as the pictures show them: the compact payload of labeling.pixel_payload (each
    stamp's display window in picture order, float32 in base64, NaN kept, with its shape and
    the detection pixel's place)."""
    subject, cube = _subject_cube(subject_id)
    return pixel_payload.encode_pixels(
        cube,
        windows={kind: _display_window(subject, kind) for kind in STAMP_KINDS},
        unit=surveys.stamp_unit(subject.metadata),
        render_scale=settings.RENDER_SCALE,
    )


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
        ReferenceLabel.objects.counted().filter(subject_id=subject_id)
        .order_by("pk")
        .values_list("label", "explanation")
    )
    if not labels:
        return None
    label, explanation = next(((lab, exp) for lab, exp in labels if exp), labels[0])
    return ReferenceFeedback(label=label, explanation=explanation)


# --- reference sets, for experts -----------------------------------------------------------


def reference_set_get(set_id: int) -> ReferenceSet:
    try:
        return ReferenceSet.objects.select_related("team").get(pk=set_id)
    except ReferenceSet.DoesNotExist:
        raise NotFound(f"reference set {set_id} does not exist") from None


def subject_get(subject_id: int) -> Subject:
    try:
        return Subject.objects.get(pk=subject_id)
    except Subject.DoesNotExist:
        raise NotFound(f"subject {subject_id} does not exist") from None


def expert_team_get(name: str) -> ExpertTeam:
    try:
        return ExpertTeam.objects.select_related("group").get(name=name)
    except ExpertTeam.DoesNotExist:
        raise NotFound(f"expert team {name!r} does not exist") from None


def user_get(username: str):
    try:
        return get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise NotFound(f"no user {username!r}") from None


def reference_label_history(
    reference_set: ReferenceSet, subject: Subject
) -> QuerySet[ReferenceLabelChange]:
    """Every change of one subject's label in one set, oldest first."""
    return (
        ReferenceLabelChange.objects.filter(reference_set=reference_set, subject=subject)
        .select_related("expert")
        .order_by("changed_at", "pk")
    )


@dataclass(frozen=True)
class SetLabel:
    reference_set: str
    team: str
    label: str
    explanation: str
    expert: str | None
    updated_at: datetime


def subject_reference_labels(subject_id: int) -> list[SetLabel]:
    """Every reference set's label for one subject (Unsure included), by set name."""
    rows = (
        ReferenceLabel.objects.filter(subject_id=subject_id)
        .select_related("reference_set__team", "expert")
        .order_by("reference_set__name")
    )
    return [
        SetLabel(row.reference_set.name, row.reference_set.team.name, row.label,
                 row.explanation, row.expert.username if row.expert else None, row.updated_at)
        for row in rows
    ]


@dataclass(frozen=True)
class Disagreement:
    subject_id: int
    label: str  # this set's
    other_set: str
    other_team: str
    other_label: str
    other_expert: str | None


def reference_disagreements(reference_set: ReferenceSet) -> list[Disagreement]:
    """Where other teams' sets label this set's subjects differently (Unsure against a label
    counts: the other team could not confirm it), by subject, then other set."""
    this_label = ReferenceLabel.objects.filter(
        reference_set=reference_set, subject_id=OuterRef("subject_id")
    ).values("label")
    rows = (
        ReferenceLabel.objects.filter(
            subject_id__in=reference_set.labels.values("subject_id")
        )
        .exclude(reference_set__team_id=reference_set.team_id)
        .annotate(this_label=Subquery(this_label))
        .exclude(label=F("this_label"))
        .select_related("reference_set__team", "expert")
        .order_by("subject_id", "reference_set__name")
    )
    return [
        Disagreement(row.subject_id, row.this_label, row.reference_set.name,
                     row.reference_set.team.name, row.label,
                     row.expert.username if row.expert else None)
        for row in rows
    ]


def reference_labels_export_rows(reference_set: ReferenceSet):
    """The set's labels as rows of `reference_csv.EXPORT_COLUMNS` values, by subject id,
    streamed from the database."""
    rows = (
        ReferenceLabel.objects.filter(reference_set=reference_set)
        .order_by("subject_id")
        .values_list("subject_id", "subject__external_id", "subject__origin", "label",
                     "expert__username", "explanation", "updated_at")
    )
    for subject_id, external_id, origin, label, expert, explanation, updated_at in rows.iterator(
        chunk_size=2000
    ):
        yield (subject_id, external_id, origin, label, expert or "", explanation,
               updated_at.isoformat())
