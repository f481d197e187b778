"""Every write of the labeling app: workflows, ingest, classifications, reference labels."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from aggregation import tasks as aggregation_tasks
from labeling import roles, rules, stamps
from labeling.errors import Conflict, Forbidden, InvalidInput, NotFound
from labeling.models import (
    Classification,
    ExpertTeam,
    NotCounted,
    Project,
    ReferenceLabel,
    ReferenceSet,
    Subject,
    SubjectSet,
    SubjectWorkflowStatus,
    Volunteer,
    Workflow,
)
from labeling.records import ANSWERS, Rejection, SubjectRecord

INGEST_BATCH = 500


# --- projects and workflows -------------------------------------------------------------


def workflow_create(
    *,
    slug: str,
    project_name: str,
    retire_agree: int = rules.DEFAULT_RETIRE_AGREE,
    retire_max: int = rules.DEFAULT_RETIRE_MAX,
    question: str | None = None,
) -> Workflow:
    """Create a workflow, and its project when the project does not exist yet."""
    try:
        rules.RetirementRule(agree=retire_agree, maximum=retire_max)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    if Workflow.objects.filter(slug=slug).exists():
        raise Conflict(f"workflow {slug!r} already exists")
    with transaction.atomic():
        project, _ = Project.objects.get_or_create(name=project_name)
        workflow = Workflow(
            project=project, slug=slug, retire_agree=retire_agree, retire_max=retire_max
        )
        if question:
            workflow.question = question
        try:
            workflow.full_clean(exclude=["project"])
        except ValidationError as exc:
            raise InvalidInput("; ".join(exc.messages)) from exc
        workflow.save()
    return workflow


def subject_set_attach(*, workflow: Workflow, name: str) -> SubjectSet:
    """The workflow's subject set of that name, created and linked when it is new."""
    with transaction.atomic():
        subject_set, _ = SubjectSet.objects.get_or_create(project=workflow.project, name=name)
        workflow.subject_sets.add(subject_set)
    return subject_set


def _require_answer(value: str, what: str) -> None:
    if value not in ANSWERS:
        raise InvalidInput(f"{what} must be one of {', '.join(ANSWERS)}, got {value!r}")


# --- ingest ------------------------------------------------------------------------------


@dataclass
class IngestReport:
    ingested: int = 0
    duplicates: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    subject_ids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected


@dataclass(frozen=True)
class _Prepared:
    record: SubjectRecord
    triplet: stamps.NormalisedTriplet


def subjects_ingest(
    records: Iterable[SubjectRecord | Rejection],
    *,
    subject_set: SubjectSet,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Store each record as a subject of `subject_set`, all or nothing per subject.

    Rejections from the readers pass through to the report; records whose stamps fail
    normalisation are rejected with the reason; external ids the project already has are
    skipped as duplicates. Subjects are written in batches: stamps files first, then the rows
    in one transaction, and the batch's files are removed again if that transaction fails.
    """
    report = IngestReport()
    size = settings.STAMP_SIZE
    iterator = iter(records)
    while batch := list(islice(iterator, INGEST_BATCH)):
        prepared: dict[str, _Prepared] = {}
        for item in batch:
            if isinstance(item, Rejection):
                report.rejected.append(item)
                continue
            if item.external_id in prepared:
                report.duplicates.append(item.external_id)
                continue
            try:
                triplet = stamps.normalise_triplet(item, size)
            except stamps.StampError as exc:
                report.rejected.append(Rejection(item.source, str(exc)))
                continue
            prepared[item.external_id] = _Prepared(item, triplet)
        existing = _existing_external_ids(subject_set.project_id, list(prepared))
        report.duplicates.extend(sorted(existing))
        fresh = [p for external_id, p in prepared.items() if external_id not in existing]
        try:
            stored = _store_batch(fresh, subject_set, size)
        except IntegrityError:
            # Another ingest stored some of these external ids since we looked: go one by one.
            stored = []
            for item in fresh:
                try:
                    stored += _store_batch([item], subject_set, size)
                except IntegrityError:
                    report.duplicates.append(item.record.external_id)
        report.subject_ids.extend(stored)
        report.ingested += len(stored)
        if on_progress:
            on_progress(len(batch))
    return report


def _existing_external_ids(project_id: int, external_ids: list[str]) -> set[str]:
    return set(
        Subject.objects.filter(project_id=project_id, external_id__in=external_ids).values_list(
            "external_id", flat=True
        )
    )


def _store_batch(batch: list[_Prepared], subject_set: SubjectSet, size: int) -> list[int]:
    subjects = []
    written: list[str] = []
    try:
        for item in batch:
            subject = _subject_from_record(item.record, subject_set)
            subject.stamp_size = size
            subject.original_shapes = [list(shape) for shape in item.triplet.original_shapes]
            subject.stamps.save(
                f"{uuid.uuid4().hex}.npy",
                ContentFile(stamps.cube_to_bytes(item.triplet.cube)),
                save=False,
            )
            written.append(subject.stamps.name)
            subjects.append(subject)
        with transaction.atomic():
            Subject.objects.bulk_create(subjects)
            workflows = list(subject_set.workflows.values_list("pk", flat=True))
            statuses_create(
                (workflow_id, subject.pk) for workflow_id in workflows for subject in subjects
            )
    except BaseException:
        for name in written:
            default_storage.delete(name)
        raise
    return [subject.pk for subject in subjects]


def statuses_create(pairs: Iterable[tuple[int, int]]) -> None:
    """A retirement status row for each (workflow id, subject id) pair that has none yet."""
    SubjectWorkflowStatus.objects.bulk_create(
        (
            SubjectWorkflowStatus(workflow_id=workflow_id, subject_id=subject_id,
                                  random_key=random.random())
            for workflow_id, subject_id in pairs
        ),
        batch_size=1000,
        ignore_conflicts=True,
    )


def _subject_from_record(record: SubjectRecord, subject_set: SubjectSet) -> Subject:
    return Subject(
        project_id=subject_set.project_id,
        subject_set=subject_set,
        external_id=record.external_id,
        origin=record.origin,
        snr=record.snr,
        psf_flux=record.psf_flux,
        psf_flux_err=record.psf_flux_err,
        ra=record.ra,
        dec=record.dec,
        band=record.band,
        reliability=record.reliability,
        metadata=record.metadata,
        source=record.source[:500],
    )


# --- volunteers --------------------------------------------------------------------------


def volunteer_for_request(request) -> Volunteer:
    """The volunteer behind a request: the signed-in user, else the browser session."""
    if request.user.is_authenticated:
        volunteer, _ = Volunteer.objects.get_or_create(user=request.user)
        return volunteer
    if not request.session.session_key:
        request.session.save()
    volunteer, _ = Volunteer.objects.get_or_create(session_key=request.session.session_key)
    return volunteer


def volunteer_claim_session(*, user, session_key: str | None) -> Volunteer | None:
    """On sign-in, the anonymous volunteer of this browser session becomes the user's.

    Only when the user has no volunteer identity yet: merging two histories could make one
    person's two answers on a subject both count, so an existing identity is left as it is.
    Returns the volunteer that was claimed, if any.
    """
    if not session_key or Volunteer.objects.filter(user=user).exists():
        return None
    with transaction.atomic():
        volunteer = Volunteer.objects.select_for_update().filter(session_key=session_key).first()
        if volunteer is None:
            return None
        volunteer.user = user
        volunteer.session_key = None
        volunteer.save(update_fields=["user", "session_key"])
    return volunteer


def volunteer_for_external_name(name: str) -> Volunteer:
    volunteer, _ = Volunteer.objects.get_or_create(external_name=name)
    return volunteer


# --- classifications ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClassificationOutcome:
    classification: Classification
    created: bool
    subject_retired: bool


def classification_create(
    *,
    volunteer: Volunteer,
    workflow_id: int,
    subject_id: int,
    answer: str,
    client_id: uuid.UUID,
    user_agent: str = "",
    answered_at: datetime | None = None,
    store_repeats: bool = False,
    created_at: datetime | None = None,
    external_id: str = "",
    live_update: bool = True,
) -> ClassificationOutcome:
    """Record one answer and apply the retirement rule, exactly, in one transaction.

    The subject's status row is locked first, so concurrent answers on one subject count
    one at a time and it retires once. A `client_id` seen before returns the first result
    (idempotent replay). A second answer from the same volunteer on the same subject is a
    Conflict, unless `store_repeats` (imports), which stores it as not counted. Imports also
    give `created_at` (the original time, which sets aggregation order) and `external_id`,
    and turn off `live_update`: answers from the past belong in a replay, not appended to the
    live aggregation run.
    """
    _require_answer(answer, "answer")
    submission = _Submission(
        volunteer, workflow_id, subject_id, answer, client_id, user_agent[:300], answered_at,
        created_at or timezone.now(), external_id, live_update,
    )
    try:
        return _classification_record(submission, store_repeats=store_repeats)
    except IntegrityError:
        # The same client_id raced in for another subject, whose lock we did not share:
        # the first one stored wins.
        replay = _replay(volunteer, client_id)
        if replay is None:
            raise
        return replay


@dataclass(frozen=True)
class _Submission:
    volunteer: Volunteer
    workflow_id: int
    subject_id: int
    answer: str
    client_id: uuid.UUID
    user_agent: str
    answered_at: datetime | None
    created_at: datetime
    external_id: str
    live_update: bool


def _classification_record(
    submission: _Submission, *, store_repeats: bool
) -> ClassificationOutcome:
    volunteer, subject_id = submission.volunteer, submission.subject_id
    with transaction.atomic():
        status = _locked_status(submission)
        # Read after the lock is held, in a statement of its own: under READ COMMITTED only a
        # new statement sees what a twin request committed while we waited for the lock.
        earlier = list(
            Classification.objects.filter(
                Q(client_id=submission.client_id)
                | Q(volunteer=volunteer, subject_id=subject_id, workflow_id=submission.workflow_id)
            )[:2]
        )
        for previous in earlier:
            if previous.client_id == submission.client_id:
                return _replay_outcome(previous, volunteer, status)
        reason = _not_counted_reason(volunteer, status, answered_before=bool(earlier))
        if reason == NotCounted.REPEAT and not store_repeats:
            raise Conflict(f"you have already classified subject {subject_id}")
        if not reason:
            _count(status, submission.answer)
        classification = Classification.objects.create(
            client_id=submission.client_id,
            volunteer=volunteer,
            subject_id=subject_id,
            workflow_id=submission.workflow_id,
            answer=submission.answer,
            answered_at=submission.answered_at,
            user_agent=submission.user_agent,
            created_at=submission.created_at,
            external_id=submission.external_id,
            counted=not reason,
            not_counted_reason=reason,
        )
        if not reason and submission.live_update:
            # robust: the answer is stored whatever happens to the live posterior's update;
            # the periodic batch run recomputes everything from the classifications anyway.
            # (a lambda, not a partial: Django logs a robust callback's __qualname__)
            classification_id = classification.pk
            transaction.on_commit(
                lambda: aggregation_tasks.queue_online_update(classification_id), robust=True
            )
    return ClassificationOutcome(classification, created=True, subject_retired=status.retired)


def _locked_status(submission: _Submission) -> SubjectWorkflowStatus:
    """The subject's status row, locked (and only it: `of=self` leaves the workflow row free
    for every other subject's answers), with its workflow and whether it is a reference."""
    try:
        return (
            SubjectWorkflowStatus.objects.select_for_update(of=("self",))
            .select_related("workflow")
            .annotate(
                is_reference=Exists(
                    ReferenceLabel.objects.filter(subject_id=OuterRef("subject_id"))
                )
            )
            .get(workflow_id=submission.workflow_id, subject_id=submission.subject_id)
        )
    except SubjectWorkflowStatus.DoesNotExist:
        raise NotFound(
            f"subject {submission.subject_id} is not part of workflow {submission.workflow_id}"
        ) from None


def _count(status: SubjectWorkflowStatus, answer: str) -> None:
    state, retires = rules.advance(status.retirement_state, answer, status.workflow.retirement_rule)
    status.n_counted = state.n_counted
    status.first_answer = state.first_answer
    status.unanimous = state.unanimous
    # Reference (gold) subjects never retire: they calibrate every new volunteer.
    if retires and not status.is_reference:
        status.retired = True
        status.retired_at = timezone.now()
    status.save(update_fields=["n_counted", "first_answer", "unanimous", "retired", "retired_at"])


def _replay(volunteer: Volunteer, client_id: uuid.UUID) -> ClassificationOutcome | None:
    previous = Classification.objects.filter(client_id=client_id).first()
    return None if previous is None else _replay_outcome(previous, volunteer)


def _replay_outcome(
    previous: Classification, volunteer: Volunteer, status: SubjectWorkflowStatus | None = None
) -> ClassificationOutcome:
    if previous.volunteer_id != volunteer.pk:
        raise Conflict("this client_id was already used by someone else")
    if status is None or (status.subject_id, status.workflow_id) != (
        previous.subject_id, previous.workflow_id
    ):
        status = SubjectWorkflowStatus.objects.get(
            workflow_id=previous.workflow_id, subject_id=previous.subject_id
        )
    return ClassificationOutcome(previous, created=False, subject_retired=status.retired)


def _not_counted_reason(
    volunteer: Volunteer, status: SubjectWorkflowStatus, *, answered_before: bool
) -> str:
    if not status.workflow.active:
        return NotCounted.WORKFLOW_INACTIVE
    if answered_before:
        return NotCounted.REPEAT
    if status.is_reference and volunteer.user_id and roles.is_expert(volunteer.user):
        return NotCounted.EXPERT_ON_REFERENCE
    if status.retired:
        return NotCounted.RETIRED
    return NotCounted.COUNTED


# --- expert teams and reference labels ---------------------------------------------------


def expert_team_get_or_create(name: str) -> ExpertTeam:
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name=f"experts:{name}")
        team, _ = ExpertTeam.objects.get_or_create(name=name, defaults={"group": group})
    return team


def reference_set_get_or_create(*, name: str, team: ExpertTeam) -> ReferenceSet:
    reference_set, created = ReferenceSet.objects.get_or_create(name=name, defaults={"team": team})
    if not created and reference_set.team_id != team.pk:
        raise Conflict(f"reference set {name!r} belongs to team {reference_set.team.name!r}")
    return reference_set


def reference_label_set(
    *, reference_set: ReferenceSet, subject: Subject, label: str, expert=None
) -> ReferenceLabel:
    """Set a subject's label in a reference set. An expert may only write their team's set."""
    _require_answer(label, "label")
    if expert is not None and reference_set.team.name not in roles.expert_team_names(expert):
        raise Forbidden(f"reference set {reference_set.name!r} is not one of your team's")
    reference_label, _ = ReferenceLabel.objects.update_or_create(
        reference_set=reference_set, subject=subject, defaults={"label": label, "expert": expert}
    )
    return reference_label


def reference_labels_bulk_create(
    reference_set: ReferenceSet, labels: Iterable[tuple[int, str]]
) -> int:
    """Labels from an import or the simulator, (subject id, label) pairs, in one transaction.

    Subjects the set already labels keep their label; returns how many labels were added.
    """
    rows = []
    for subject_id, label in labels:
        _require_answer(label, "label")
        rows.append(ReferenceLabel(reference_set=reference_set, subject_id=subject_id, label=label))
    with transaction.atomic():
        before = reference_set.labels.count()
        ReferenceLabel.objects.bulk_create(rows, ignore_conflicts=True)
        return reference_set.labels.count() - before


