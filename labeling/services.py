"""Every write of the labeling app: workflows, ingest, classifications, reference labels."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.validators import validate_slug
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Q, Subquery
from django.db.models.sql import InsertQuery, UpdateQuery
from django.utils import timezone

from labeling import hooks, roles, rules, selectors, serving, stamps, throttle
from labeling.client_ip import client_ip
from labeling.errors import Conflict, Forbidden, InvalidInput, NotFound
from labeling.models import (
    Classification,
    ExpertTeam,
    NotCounted,
    Project,
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
from labeling.records import (
    ANSWERS,
    EXPLANATION_MAX_LENGTH,
    REFERENCE_LABELS,
    Rejection,
    SubjectRecord,
)
from labeling.reference_csv import (
    EXTERNAL_ID,
    SUBJECT_ID,
    ReferenceCsv,
    ReferenceRow,
    RowProblem,
)

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


def subject_set_get_or_create(*, project: Project, name: str) -> SubjectSet:
    """A subject set of the project, linked to no workflow: its subjects are never served."""
    subject_set, _ = SubjectSet.objects.get_or_create(project=project, name=name)
    return subject_set


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
    size, fit = settings.STAMP_SIZE, settings.STAMP_FIT
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
                triplet = stamps.normalise_triplet(item, size, fit)
            except stamps.StampError as exc:
                report.rejected.append(Rejection(item.source, str(exc)))
                continue
            prepared[item.external_id] = _Prepared(item, triplet)
        existing = _existing_external_ids(subject_set.project_id, list(prepared))
        report.duplicates.extend(sorted(existing))
        fresh = [p for external_id, p in prepared.items() if external_id not in existing]
        try:
            stored = _store_batch(fresh, subject_set, size, fit)
        except (IntegrityError, DataError):
            # Another ingest stored some of these external ids since we looked, or the
            # database refused a value the readers let through: go one by one, so that only
            # the offending record is lost.
            stored = []
            for item in fresh:
                try:
                    stored += _store_batch([item], subject_set, size, fit)
                except IntegrityError:
                    report.duplicates.append(item.record.external_id)
                except DataError as exc:
                    reason = f"refused by the database: {str(exc).strip()}"
                    report.rejected.append(Rejection(item.record.source, reason))
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


def _store_batch(
    batch: list[_Prepared], subject_set: SubjectSet, size: int, fit: str
) -> list[int]:
    subjects = []
    written: list[str] = []
    try:
        for item in batch:
            subject = _subject_from_record(item.record, subject_set)
            subject.stamp_size = size
            subject.original_shapes = [list(shape) for shape in item.triplet.original_shapes]
            subject.centre_offset = list(item.triplet.centre_offset)
            subject.stamp_fit = fit
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


def volunteer_lookup(request) -> Volunteer | None:
    """The volunteer behind a request, if they have answered before; writes nothing."""
    volunteers = selectors.volunteer_asking(request)
    return None if volunteers is None else volunteers.first()


def volunteer_for_request(request) -> Volunteer:
    """The volunteer behind a request: the signed-in user, else the browser session, both
    created at the first answer. A client address may create only
    `ANONYMOUS_IDENTITIES_PER_HOUR` anonymous identities (Throttled, 429)."""
    if request.user.is_authenticated:
        volunteer, _ = Volunteer.objects.get_or_create(user=request.user)
        volunteer.user = request.user  # already loaded: the expert check needs no query
        return volunteer
    volunteer = volunteer_lookup(request)
    if volunteer is not None:
        return volunteer
    # The client's address, not the reverse proxy's (behind nginx every request has its address).
    throttle.rate_limit(f"anonymous:{client_ip(request) or ''}",
                        settings.ANONYMOUS_IDENTITIES_PER_HOUR, 3600,
                        "new anonymous volunteers from this address")
    if not request.session.session_key:
        request.session.save()
    volunteer, _ = Volunteer.objects.get_or_create(session_key=request.session.session_key)
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
    # False when the answer can earn no feedback (not a reference subject, or the workflow
    # shows none), known from the locked status row: the reply then reads nothing more.
    may_earn_feedback: bool = True


def classification_submit(
    *,
    request,
    workflow_id: int,
    subject_id: int,
    answer: str,
    client_id: uuid.UUID,
    token: str,
    answered_at: datetime | None = None,
) -> ClassificationOutcome:
    """An answer from the API: only for a subject the queue served this caller (`token`,
    else NotServed, 403, and nothing is written), at most `ANSWERS_PER_MINUTE` a minute
    (Throttled, 429). An anonymous caller's identity is created here, at its first answer."""
    identity = serving.identity_for_request(request)
    serving.require_served(identity, workflow_id, subject_id, token)
    throttle.rate_limit(f"answers:{identity.key}", settings.ANSWERS_PER_MINUTE, 60, "answers")
    return classification_create(
        volunteer=volunteer_for_request(request), workflow_id=workflow_id,
        subject_id=subject_id, answer=answer, client_id=client_id, answered_at=answered_at,
        user_agent=request.headers.get("User-Agent", ""),
    )


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
        created_at, external_id, live_update,
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
    created_at: datetime | None  # None: now, read once the subject's lock is held
    external_id: str
    live_update: bool


def _classification_record(
    submission: _Submission, *, store_repeats: bool
) -> ClassificationOutcome:
    volunteer, subject_id = submission.volunteer, submission.subject_id
    with transaction.atomic():
        # One volunteer's answers one at a time, first: the live step teaches the volunteer in
        # the order their answers commit, and a replay teaches in the order of created_at, so
        # the time is taken while no other answer of theirs can be in flight. (NO KEY: other
        # rows' foreign keys to the volunteer stay free.)
        list(Volunteer.objects.select_for_update(no_key=True).filter(pk=volunteer.pk).values("pk"))
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
        if not reason and _on_probation(volunteer, status.volunteer_answered or 0):
            reason = NotCounted.PROBATION
        if not reason:
            _count(status, submission.answer)
        classification = Classification(
            client_id=submission.client_id,
            volunteer=volunteer,
            subject_id=subject_id,
            workflow_id=submission.workflow_id,
            answer=submission.answer,
            answered_at=submission.answered_at,
            user_agent=submission.user_agent,
            # Taken under the volunteer's and the subject's locks, so answers are stamped in the
            # order they are applied to the live state: a replay, ordered by time, agrees.
            created_at=submission.created_at or timezone.now(),
            external_id=submission.external_id,
            counted=not reason,
            not_counted_reason=reason,
        )
        _store(classification, status if not reason else None)
        if submission.live_update and rules.swap_reads(reason):
            # In this transaction: the live state changes if and only if the answer is stored.
            hooks.answer_stored(hooks.StoredAnswer(
                classification.pk, submission.workflow_id, subject_id, volunteer.pk,
                submission.answer == "real",
            ))
    return ClassificationOutcome(
        classification, created=True, subject_retired=status.retired,
        may_earn_feedback=status.is_reference and status.workflow.feedback_enabled,
    )


def _locked_status(submission: _Submission) -> SubjectWorkflowStatus:
    """The subject's status row, locked (and only it: `of=self` leaves the workflow row free
    for every other subject's answers), with its workflow and whether it is a reference."""
    try:
        return (
            SubjectWorkflowStatus.objects.select_for_update(of=("self",))
            .select_related("workflow")
            .annotate(
                is_reference=selectors.IS_REFERENCE,
                # For probation: how many answers the volunteer had stored in the workflow.
                volunteer_answered=Subquery(
                    VolunteerWorkflowCount.objects.filter(
                        volunteer=submission.volunteer, workflow_id=submission.workflow_id
                    ).values("n_classified")[:1]
                ),
            )
            .get(workflow_id=submission.workflow_id, subject_id=submission.subject_id)
        )
    except SubjectWorkflowStatus.DoesNotExist:
        raise NotFound(
            f"subject {submission.subject_id} is not part of workflow {submission.workflow_id}"
        ) from None


_STATUS_COUNTED = ("n_counted", "first_answer", "unanimous", "retired", "retired_at")


def _count(status: SubjectWorkflowStatus, answer: str) -> None:
    """Apply the retirement rule to the status row in memory; `_store` writes it."""
    state, retires = rules.advance(status.retirement_state, answer, status.workflow.retirement_rule)
    status.n_counted = state.n_counted
    status.first_answer = state.first_answer
    status.unanimous = state.unanimous
    # Reference (gold) subjects never retire: they calibrate every new volunteer.
    if retires and not status.is_reference:
        status.retired = True
        status.retired_at = timezone.now()


def _store(classification: Classification, counted: SubjectWorkflowStatus | None) -> None:
    """Write the answer, the volunteer's count and (when it counted) the subject's new status.

    On PostgreSQL the three are one statement, the count and the status as data-modifying
    CTEs of the answer's INSERT, each built by the ORM: one round trip instead of three.
    """
    if connection.vendor != "postgresql":
        _volunteer_count_increment(classification.volunteer_id, classification.workflow_id)
        if counted is not None:
            counted.save(update_fields=_STATUS_COUNTED)
        classification.save(force_insert=True)
        return
    ctes = [f"answered AS ({_COUNT_INCREMENT})"]
    params = [classification.volunteer_id, classification.workflow_id]
    if counted is not None:
        update = UpdateQuery(SubjectWorkflowStatus)
        update.add_update_values({name: getattr(counted, name) for name in _STATUS_COUNTED})
        update.add_filter("pk", counted.pk)
        update_sql, update_params = update.get_compiler(connection.alias).as_sql()
        ctes.append(f"status AS ({update_sql})")
        params += update_params
    fields = [field for field in Classification._meta.concrete_fields if not field.primary_key]
    insert = InsertQuery(Classification)
    insert.insert_values(fields, [classification])
    compiler = insert.get_compiler(connection.alias)
    compiler.returning_fields = [Classification._meta.pk]
    ((insert_sql, insert_params),) = compiler.as_sql()
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(ctes)} {insert_sql}", [*params, *insert_params])
        classification.pk = cursor.fetchone()[0]
    classification._state.adding = False


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


def _on_probation(volunteer: Volunteer, answered_earlier: int) -> bool:
    """An anonymous volunteer's first `ANONYMOUS_PROBATION_ANSWERS` answers in a workflow do
    not count toward retirement: retiring a subject then takes identities with a history."""
    probation = settings.ANONYMOUS_PROBATION_ANSWERS
    return bool(probation) and volunteer.session_key is not None and answered_earlier < probation


_COUNT_TABLE = VolunteerWorkflowCount._meta.db_table


# Add one answer to a volunteer's count in a workflow: an upsert (PostgreSQL and SQLite
# alike), so a first answer needs no separate insert that could race; the row stays locked
# until commit, so one volunteer's answers count in turn.
_COUNT_INCREMENT = (
    f"INSERT INTO {_COUNT_TABLE} (volunteer_id, workflow_id, n_classified)"
    " VALUES (%s, %s, 1) ON CONFLICT (volunteer_id, workflow_id)"
    f" DO UPDATE SET n_classified = {_COUNT_TABLE}.n_classified + 1"
)


def _volunteer_count_increment(volunteer_id: int, workflow_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_INCREMENT, [volunteer_id, workflow_id])


def volunteer_counts_add(workflow_id: int, volunteer_ids: Iterable[int]) -> None:
    """Add answers stored in bulk (imports, simulations) rather than through
    `classification_create` to their volunteers' counts in the workflow: one volunteer id per
    answer. Run it in the transaction that wrote them."""
    added = Counter(volunteer_ids)
    if not added:
        return
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {_COUNT_TABLE} (volunteer_id, workflow_id, n_classified)"
            " VALUES (%s, %s, %s) ON CONFLICT (volunteer_id, workflow_id)"
            f" DO UPDATE SET n_classified = {_COUNT_TABLE}.n_classified + excluded.n_classified",
            [(volunteer_id, workflow_id, n) for volunteer_id, n in sorted(added.items())],
        )


def _not_counted_reason(
    volunteer: Volunteer, status: SubjectWorkflowStatus, *, answered_before: bool
) -> str:
    return rules.not_counted_reason(
        repeat=answered_before,
        # Asked only of a reference subject: whether the volunteer is an expert costs a query.
        expert_on_reference=bool(status.is_reference and volunteer.user_id
                                 and roles.is_expert(volunteer.user)),
        active=status.workflow.active,
        retired=status.retired,
    )


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


@dataclass(frozen=True)
class ReferenceLabelWrite:
    label: ReferenceLabel
    outcome: str  # one of LABEL_OUTCOMES


LABEL_CREATED, LABEL_CHANGED, LABEL_UNCHANGED = "created", "changed", "unchanged"
LABEL_OUTCOMES = (LABEL_CREATED, LABEL_CHANGED, LABEL_UNCHANGED)


def reference_label_write(
    *,
    reference_set: ReferenceSet,
    subject: Subject,
    label: str,
    expert=None,
    explanation: str = "",
    source: str = ReferenceLabelChange.Source.API,
) -> ReferenceLabelWrite:
    """Set a subject's label and explanation in a reference set, and record the change.

    An expert may only write their team's set. The label row is locked while it changes, so
    two experts changing one label at once are both recorded, one after the other. Setting
    the label and explanation it already has changes and records nothing.
    """
    _require_reference_label(label)
    _require_explanation(explanation)
    if source not in ReferenceLabelChange.Source.values:
        raise InvalidInput(f"source must be one of {', '.join(ReferenceLabelChange.Source.values)}")
    if expert is not None and reference_set.team.name not in roles.expert_team_names(expert):
        raise Forbidden(f"reference set {reference_set.name!r} is not one of your team's")
    wanted = _WantedLabel(subject.pk, label, explanation, expert.pk if expert else None)
    try:
        return _reference_label_write_once(reference_set, wanted, source)
    except IntegrityError:
        # Another expert created this label between our look and our insert: it exists now,
        # so this write becomes a change of it.
        return _reference_label_write_once(reference_set, wanted, source)


def reference_label_set(
    *,
    reference_set: ReferenceSet,
    subject: Subject,
    label: str,
    expert=None,
    explanation: str = "",
    source: str = ReferenceLabelChange.Source.API,
) -> ReferenceLabel:
    """`reference_label_write`, returning the label only (the review page's contract)."""
    return reference_label_write(
        reference_set=reference_set, subject=subject, label=label, expert=expert,
        explanation=explanation, source=source,
    ).label


@dataclass(frozen=True)
class _WantedLabel:
    subject_id: int
    label: str
    explanation: str
    expert_id: int | None


def _reference_label_write_once(
    reference_set: ReferenceSet, wanted: _WantedLabel, source: str
) -> ReferenceLabelWrite:
    with transaction.atomic():
        current = (
            ReferenceLabel.objects.select_for_update()
            .filter(reference_set=reference_set, subject_id=wanted.subject_id)
            .first()
        )
        if current is not None and not _differs(current, wanted):
            return ReferenceLabelWrite(current, LABEL_UNCHANGED)
        now = timezone.now()
        change = _change_row(reference_set, current, wanted, source, now)
        if current is None:
            current = ReferenceLabel.objects.create(
                reference_set=reference_set, subject_id=wanted.subject_id, label=wanted.label,
                explanation=wanted.explanation, expert_id=wanted.expert_id, updated_at=now,
            )
            outcome = LABEL_CREATED
        else:
            _apply(current, wanted, now)
            current.save(update_fields=_CHANGED_FIELDS)
            outcome = LABEL_CHANGED
        change.save()
        if change.old_label != change.new_label:
            hooks.reference_labels_changed([wanted.subject_id])
    return ReferenceLabelWrite(current, outcome)


_CHANGED_FIELDS = ["label", "explanation", "expert", "updated_at"]


def _differs(current: ReferenceLabel, wanted: _WantedLabel) -> bool:
    """A real change: the label or its explanation. Who confirms an unchanged label is not."""
    return (current.label, current.explanation) != (wanted.label, wanted.explanation)


def _apply(current: ReferenceLabel, wanted: _WantedLabel, now: datetime) -> None:
    current.label, current.explanation = wanted.label, wanted.explanation
    current.expert_id, current.updated_at = wanted.expert_id, now


def _change_row(
    reference_set: ReferenceSet, current: ReferenceLabel | None, wanted: _WantedLabel,
    source: str, now: datetime,
) -> ReferenceLabelChange:
    return ReferenceLabelChange(
        reference_set=reference_set, subject_id=wanted.subject_id, expert_id=wanted.expert_id,
        old_label=current.label if current else "",
        old_explanation=current.explanation if current else "",
        new_label=wanted.label, new_explanation=wanted.explanation,
        source=source, changed_at=now,
    )


def _require_reference_label(label: str) -> None:
    if label not in REFERENCE_LABELS:
        raise InvalidInput(f"label must be one of {', '.join(REFERENCE_LABELS)}, got {label!r}")


def _require_explanation(explanation: str) -> None:
    if len(explanation) > EXPLANATION_MAX_LENGTH:
        raise InvalidInput(f"explanation must be at most {EXPLANATION_MAX_LENGTH} characters")


def _reference_labels_write(
    reference_set: ReferenceSet,
    wanted: list[_WantedLabel],
    *,
    source: str,
    keep_existing: bool,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Many labels of one set at once, in the caller's transaction, each change recorded as
    `reference_label_write` records it. Returns how many were created, changed, unchanged.

    The set's existing labels for these subjects are locked a chunk at a time before they are
    compared. With `keep_existing`, a label the set already has is left as it is.
    """
    counts = dict.fromkeys(LABEL_OUTCOMES, 0)
    now = timezone.now()
    for start in range(0, len(wanted), _LABEL_CHUNK):
        chunk = wanted[start : start + _LABEL_CHUNK]
        existing = {
            label.subject_id: label
            for label in ReferenceLabel.objects.select_for_update().filter(
                reference_set=reference_set, subject_id__in=[w.subject_id for w in chunk]
            )
        }
        new, changed, changes = [], [], []
        for item in chunk:
            current = existing.get(item.subject_id)
            if current is not None and (keep_existing or not _differs(current, item)):
                counts[LABEL_UNCHANGED] += 1
                continue
            changes.append(_change_row(reference_set, current, item, source, now))
            if current is None:
                new.append(ReferenceLabel(
                    reference_set=reference_set, subject_id=item.subject_id, label=item.label,
                    explanation=item.explanation, expert_id=item.expert_id, updated_at=now,
                ))
            else:
                _apply(current, item, now)
                changed.append(current)
        ReferenceLabel.objects.bulk_create(new)
        ReferenceLabel.objects.bulk_update(changed, _CHANGED_FIELDS)
        ReferenceLabelChange.objects.bulk_create(changes)
        relabelled = [c.subject_id for c in changes if c.old_label != c.new_label]
        if relabelled:
            hooks.reference_labels_changed(relabelled)
        counts[LABEL_CREATED] += len(new)
        counts[LABEL_CHANGED] += len(changed)
        if on_progress:
            on_progress(len(chunk))
    return counts


# Under SQLite's limit on query variables.
_LABEL_CHUNK = 500


def reference_labels_bulk_create(
    reference_set: ReferenceSet,
    labels: Iterable[tuple[int, str]],
    *,
    source: str = ReferenceLabelChange.Source.IMPORT,
) -> int:
    """Labels from an import or the simulator, (subject id, label) pairs, in one transaction.

    Subjects the set already labels keep their label; returns how many labels were added.
    """
    wanted: dict[int, _WantedLabel] = {}
    for subject_id, label in labels:
        _require_reference_label(label)
        wanted.setdefault(subject_id, _WantedLabel(subject_id, label, "", None))
    with transaction.atomic():
        counts = _reference_labels_write(
            reference_set, list(wanted.values()), source=source, keep_existing=True
        )
    return counts[LABEL_CREATED]


# --- reference label import ----------------------------------------------------------------


@dataclass
class ReferenceImportReport:
    reference_set: str
    set_created: bool = False
    dry_run: bool = False
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LABEL_OUTCOMES, 0))
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def written(self) -> bool:
        return self.ok and not self.dry_run


def reference_labels_import(
    parsed: ReferenceCsv,
    *,
    set_name: str,
    team_name: str | None = None,
    project_name: str | None = None,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ReferenceImportReport:
    """Import a parsed reference-label file into a set: all of it, or nothing.

    Every row is checked first (the file's own problems come in `parsed`; here: unknown
    subjects, external ids in several projects, unknown experts, experts outside the set's
    team). With any problem, or a dry run, nothing is written, not even a new set; the report
    still counts what would have been created, changed and left unchanged. Errors that concern
    the whole import (no such team or project, a set of another team) raise.
    """
    project = _project_named(project_name) if project_name else None
    report = ReferenceImportReport(reference_set=set_name, dry_run=dry_run,
                                   problems=list(parsed.problems))
    with transaction.atomic():
        reference_set, report.set_created = _import_target_set(set_name, team_name)
        wanted = _import_rows_resolve(parsed, reference_set, project, report.problems)
        report.problems.sort(key=lambda problem: problem.row)
        if report.ok:
            report.counts = _reference_labels_write(
                reference_set, wanted, source=ReferenceLabelChange.Source.IMPORT,
                keep_existing=False, on_progress=on_progress,
            )
        if not report.written:
            transaction.set_rollback(True)
    return report


def _project_named(name: str) -> Project:
    try:
        return Project.objects.get(name=name)
    except Project.DoesNotExist:
        known = ", ".join(Project.objects.order_by("name").values_list("name", flat=True))
        raise NotFound(f"no project {name!r} (known: {known or 'none'})") from None


def _import_target_set(set_name: str, team_name: str | None) -> tuple[ReferenceSet, bool]:
    reference_set = (
        ReferenceSet.objects.select_related("team").select_for_update().filter(name=set_name)
        .first()
    )
    if reference_set is not None:
        if team_name and reference_set.team.name != team_name:
            raise Conflict(f"reference set {set_name!r} belongs to team "
                           f"{reference_set.team.name!r}, not {team_name!r}")
        return reference_set, False
    if not team_name:
        raise InvalidInput(f"no reference set {set_name!r}: give --team to create it")
    try:
        validate_slug(set_name)
    except ValidationError:
        raise InvalidInput(f"reference set name {set_name!r}: use letters, digits, - and _"
                           ) from None
    team = ExpertTeam.objects.filter(name=team_name).first()
    if team is None:
        known = ", ".join(ExpertTeam.objects.order_by("name").values_list("name", flat=True))
        raise NotFound(f"no expert team {team_name!r} (known: {known or 'none'}); "
                       "staff create teams in the admin")
    return ReferenceSet.objects.create(name=set_name, team=team), True


def _import_rows_resolve(
    parsed: ReferenceCsv, reference_set: ReferenceSet, project: Project | None,
    problems: list[RowProblem],
) -> list[_WantedLabel]:
    subjects = _import_subjects(parsed, project)
    experts = _import_experts(parsed, reference_set.team)
    wanted, row_of_subject = [], {}
    for row in parsed.rows:
        try:
            subject_id = _import_subject_of(row, parsed.key, subjects, project)
            expert_id = _import_expert_of(row, reference_set.team, experts)
        except InvalidInput as exc:
            problems.append(RowProblem(row.row, exc.message))
            continue
        if subject_id in row_of_subject:
            problems.append(RowProblem(row.row, f"duplicate subject {subject_id}: already on "
                                                f"row {row_of_subject[subject_id]}"))
            continue
        row_of_subject[subject_id] = row.row
        wanted.append(_WantedLabel(subject_id, row.label, row.explanation, expert_id))
    return wanted


_SubjectMatch = tuple[int, str, str]  # subject id, external id, project name


def _import_subjects(
    parsed: ReferenceCsv, project: Project | None
) -> dict[int | str, list[_SubjectMatch]]:
    """The subjects the rows name, by the file's key (subject id or external id)."""
    by_id = parsed.key == SUBJECT_ID
    keys = [row.subject_id if by_id else row.external_id for row in parsed.rows]
    found: dict[int | str, list[_SubjectMatch]] = {}
    for start in range(0, len(keys), _LABEL_CHUNK):
        chunk = keys[start : start + _LABEL_CHUNK]
        rows = Subject.objects.filter(pk__in=chunk) if by_id else Subject.objects.filter(
            external_id__in=chunk
        )
        if project is not None:
            rows = rows.filter(project=project)
        for pk, external_id, project_name in rows.values_list("pk", "external_id",
                                                              "project__name"):
            found.setdefault(pk if by_id else external_id, []).append(
                (pk, external_id, project_name)
            )
    return found


def _import_subject_of(
    row: ReferenceRow, key: str, subjects: dict[int | str, list[_SubjectMatch]],
    project: Project | None,
) -> int:
    where = f" in project {project.name!r}" if project else ""
    if key == SUBJECT_ID:
        matches = subjects.get(row.subject_id, [])
        if not matches:
            raise InvalidInput(f"unknown subject: no subject id {row.subject_id}{where}")
        subject_id, external_id, _ = matches[0]
        if row.external_id and row.external_id != external_id:
            raise InvalidInput(f"subject {subject_id} has external id {external_id!r}, "
                               f"not {row.external_id!r}")
        return subject_id
    matches = subjects.get(row.external_id, [])
    if not matches:
        raise InvalidInput(f"unknown subject: no {EXTERNAL_ID} {row.external_id!r}{where}")
    if len(matches) > 1:
        projects = ", ".join(sorted(name for _, _, name in matches))
        raise InvalidInput(f"external id {row.external_id!r} is in several projects "
                           f"({projects}): give --project")
    return matches[0][0]


def _import_experts(parsed: ReferenceCsv, team: ExpertTeam) -> dict[str, tuple[int, bool]]:
    """(user id, whether in the team) by user name, for the experts the rows name."""
    names = {row.expert for row in parsed.rows if row.expert}
    members = set(team.group.user_set.filter(username__in=names).values_list("pk", flat=True))
    users = get_user_model().objects.filter(username__in=names).values_list("username", "pk")
    return {name: (pk, pk in members) for name, pk in users}


def _import_expert_of(
    row: ReferenceRow, team: ExpertTeam, experts: dict[str, tuple[int, bool]]
) -> int | None:
    """The row's expert's user id; None when the row names no expert."""
    if not row.expert:
        return None
    if row.expert not in experts:
        raise InvalidInput(f"unknown expert {row.expert!r}")
    user_id, in_team = experts[row.expert]
    if not in_team:
        raise InvalidInput(f"expert {row.expert!r} is not in team {team.name!r}")
    return user_id


# --- expert team membership ----------------------------------------------------------------


def expert_team_member_add(*, team: ExpertTeam, user) -> bool:
    """Make a user an expert of a team; False when they already were."""
    if team.group.user_set.filter(pk=user.pk).exists():
        return False
    team.group.user_set.add(user)
    return True


def expert_team_member_remove(*, team: ExpertTeam, user) -> None:
    if not team.group.user_set.filter(pk=user.pk).exists():
        raise NotFound(f"{user.username!r} is not in team {team.name!r}")
    team.group.user_set.remove(user)


def expert_team_members_set(*, team: ExpertTeam, users: Iterable) -> None:
    """The team's experts become exactly `users` (the admin's member list)."""
    team.group.user_set.set(users)
