"""Writing a parsed Zooniverse export: subjects, volunteers, reference labels, classifications.

Everything happens in one transaction: an import goes in whole (its valid rows) or, if it
fails part way, not at all. Rows the parser rejected are only reported. The identity
conventions are in the package doc (`labeling.zooniverse`).

Gold standard (`gold_reference_set`): a subject is *gold* when any of its rows in the file has
``gold_standard`` true. Its reference label in the named set is the answer of its *expert*
rows (``expert`` set), when they agree; a gold subject with no expert row, or with expert rows
that disagree, gets no label and is listed in the report. A subject the set already labels
keeps its label (a differing expert answer is counted in the report). The set is created with
a team of the same name when it does not exist; an existing set is used with its own team.
Labels are written before any classification is replayed, so gold subjects never retire.

Rows already stored in the target workflow (by external id) are skipped; the same export
imported into another workflow is imported there in full. The others are decided in time
order, as `labeling.services.classification_create` decides one answer (``store_repeats``: a
second answer by the same volunteer is stored as a repeat, not counted), except two kinds
that the service cannot recognise and that are stored as not counted directly: an expert row
on a subject that has a reference label (in any set), as ``expert_on_reference``, because
imported experts have no user account for the service to recognise; and a row whose metadata
says ``seen_before``, as ``repeat``, because the earlier answer may lie outside the export.

Two ways to apply them, with the same result (a property test holds them to it):

- ``BULK`` (the default): the rule runs in memory over every row (`labeling.bulk`), then
  the rows are written with ``COPY`` on PostgreSQL (``bulk_create`` elsewhere) and the
  statuses that changed are updated in one statement.
- ``ROW_BY_ROW``: each row through the classification service, as a live answer would go.

Retirement: by default our rule is replayed. With ``retirement=EXPORT`` each subject's
retirement is the export's own (`ParsedExport.retirements`): a subject retires when
Zooniverse retired it, answers after its ``retired_at`` are stored as ``retired``, and the
counts (n_counted, first answer, unanimity) are kept without retiring anything by our rule.
Reference subjects never retire either way. Only the bulk path can do this.

Neither path touches the live aggregation state: after the import commits, the
`classifications_imported` signal tells whoever keeps it (aggregation) to rebuild it.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from labeling import services
from labeling.bulk import BulkAnswers, chunks, writes
from labeling.errors import InvalidInput, LabelingError
from labeling.models import (
    Classification,
    NotCounted,
    ReferenceLabel,
    ReferenceSet,
    Subject,
    SubjectSet,
    SubjectWorkflowStatus,
    Volunteer,
    Workflow,
)
from labeling.zooniverse.parse import (
    ExportClassification,
    ExportSubject,
    ParsedExport,
    RowRejection,
)
from labeling.zooniverse.signals import classifications_imported

# client_id = uuid5(CLIENT_ID_NAMESPACE, "<workflow slug>/zooniverse:<classification_id>"):
# the same row imported into the same workflow always gets the same client id, on any
# machine, and a row imported into two workflows gets two (client ids are unique).
CLIENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://www.zooniverse.org/classifications")
DEFAULT_SUBJECT_SET = "zooniverse"
REFUSED = "refused by the classification service"
BULK, ROW_BY_ROW = "bulk", "row-by-row"
METHODS = (BULK, ROW_BY_ROW)
RULE, EXPORT = "rule", "export"
RETIREMENTS = (RULE, EXPORT)


def client_id_for(workflow: Workflow, external_id: str) -> uuid.UUID:
    return uuid.uuid5(CLIENT_ID_NAMESPACE, f"{workflow.slug}/{external_id}")


@dataclass
class ImportReport:
    rows_read: int = 0
    zooniverse_workflow_id: str = ""
    skipped_other_workflows: int = 0
    imported: int = 0
    counted: int = 0
    not_counted: Counter[str] = field(default_factory=Counter)
    already_present: int = 0
    rejected: list[RowRejection] = field(default_factory=list)
    subjects_created: int = 0
    subjects_retired: int = 0
    volunteers_created: int = 0
    anonymous_volunteers_created: int = 0
    volunteers_in_file: int = 0
    anonymous_volunteers_in_file: int = 0
    reference_set: str = ""
    gold_subjects: int = 0
    reference_labels_added: int = 0
    gold_without_expert: list[str] = field(default_factory=list)
    gold_conflicting: list[str] = field(default_factory=list)
    gold_differing_from_set: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected

    @property
    def rejected_by_kind(self) -> Counter[str]:
        return Counter(rejection.kind for rejection in self.rejected)


@dataclass(frozen=True)
class GoldLabels:
    labels: dict[str, str]
    gold: set[str]
    without_expert: list[str]
    conflicting: list[str]


def zooniverse_import(
    parsed: ParsedExport,
    *,
    workflow: Workflow,
    subject_set_name: str = DEFAULT_SUBJECT_SET,
    gold_reference_set: str | None = None,
    source: str = "",
    method: str = BULK,
    retirement: str = RULE,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Write `parsed` into `workflow`, all in one transaction; see the module doc."""
    if method not in METHODS:
        raise InvalidInput(f"method must be one of {', '.join(METHODS)}")
    if retirement not in RETIREMENTS:
        raise InvalidInput(f"retirement must be one of {', '.join(RETIREMENTS)}")
    if retirement == EXPORT and method != BULK:
        raise InvalidInput("the export's retirements can only be taken by the bulk import")
    report = ImportReport(
        rows_read=parsed.rows_read,
        zooniverse_workflow_id=parsed.workflow_id,
        skipped_other_workflows=parsed.skipped_other_workflows,
        rejected=list(parsed.rejections),
    )
    rows = parsed.classifications
    names = {row.volunteer_name: row.anonymous for row in rows}
    report.volunteers_in_file = len(names)
    report.anonymous_volunteers_in_file = sum(names.values())
    with transaction.atomic():
        subject_set = services.subject_set_attach(workflow=workflow, name=subject_set_name)
        present = _stored_external_ids(workflow, [row.external_id for row in rows])
        todo = [row for row in rows if row.external_id not in present]
        report.already_present = len(rows) - len(todo)
        if on_progress and report.already_present:
            on_progress(report.already_present)
        subject_pks = _subjects_ensure(parsed.subjects, workflow, subject_set, source, report)
        if gold_reference_set:
            _gold_labels_write(rows, subject_pks, gold_reference_set, report)
        reference_pks = _reference_subject_pks(subject_pks.values())
        volunteers = _volunteers_ensure({row.volunteer_name: row.anonymous for row in todo},
                                        report)
        if method == BULK:
            retirements = None
            if retirement == EXPORT:
                retirements = {subject_pks[subject_id]: retired_at for subject_id, retired_at
                               in parsed.retirements.items() if subject_id in subject_pks}
            _bulk_apply(todo, workflow, volunteers, subject_pks, reference_pks, retirements,
                        report, on_progress)
        else:
            retired_before = _retired_count(workflow, subject_pks.values())
            for row in todo:
                _replay(row, workflow, volunteers[row.volunteer_name],
                        subject_pks[row.subject_id], reference_pks, report)
                if on_progress:
                    on_progress(1)
            report.subjects_retired = (_retired_count(workflow, subject_pks.values())
                                       - retired_before)
        if report.imported:
            workflow_pk = workflow.pk
            transaction.on_commit(lambda: classifications_imported.send(
                sender=ImportReport, workflow_id=workflow_pk
            ))
    report.rejected.sort(key=lambda rejection: rejection.row)
    return report


def _bulk_apply(
    rows: list[ExportClassification],
    workflow: Workflow,
    volunteers: dict[str, Volunteer],
    subject_pks: dict[str, int],
    reference_pks: set[int],
    retirements: dict[int, datetime | None] | None,
    report: ImportReport,
    on_progress: Callable[[int], None] | None,
) -> None:
    """Decide every row in memory with the retirement rule, then write them all at once."""
    volunteer_ids = [volunteers[row.volunteer_name].pk for row in rows]
    subject_ids = [subject_pks[row.subject_id] for row in rows]
    answers = BulkAnswers(workflow, subject_ids, volunteer_ids, reference_subjects=reference_pks,
                          export_retirements=retirements)
    reasons = answers.decide(rows, volunteer_ids, subject_ids)
    writes.rows_write(
        Classification,
        _CLASSIFICATION_COLUMNS,
        (
            (client_id_for(workflow, row.external_id), volunteer_id, subject_id, workflow.pk,
             row.answer, row.created_at, row.finished_at, row.user_agent[:300], not reason,
             str(reason), row.external_id)
            for row, volunteer_id, subject_id, reason in zip(
                rows, volunteer_ids, subject_ids, reasons, strict=True
            )
        ),
        on_progress=on_progress,
    )
    answers.statuses_write()
    services.volunteer_counts_add(workflow.pk, volunteer_ids)
    report.subjects_retired = answers.newly_retired()
    report.imported += len(rows)
    for reason in reasons:
        if reason:
            report.not_counted[reason] += 1
        else:
            report.counted += 1


_CLASSIFICATION_COLUMNS = (
    "client_id", "volunteer_id", "subject_id", "workflow_id", "answer", "created_at",
    "answered_at", "user_agent", "counted", "not_counted_reason", "external_id",
)


def _replay(
    row: ExportClassification,
    workflow: Workflow,
    volunteer: Volunteer,
    subject_pk: int,
    reference_pks: set[int],
    report: ImportReport,
) -> None:
    forced = ""
    if row.expert and subject_pk in reference_pks:
        forced = NotCounted.EXPERT_ON_REFERENCE
    elif row.seen_before:
        forced = NotCounted.REPEAT
    if forced:
        classification = _store_not_counted(row, workflow, volunteer, subject_pk, forced)
    else:
        try:
            outcome = services.classification_create(
                volunteer=volunteer,
                workflow_id=workflow.pk,
                subject_id=subject_pk,
                answer=row.answer,
                client_id=client_id_for(workflow, row.external_id),
                user_agent=row.user_agent,
                answered_at=row.finished_at,
                store_repeats=True,
                created_at=row.created_at,
                external_id=row.external_id,
                # Answers from the past belong in a replay (`aggregate`), not appended to
                # the live run in import order.
                live_update=False,
            )
        except LabelingError as exc:
            # The service's own savepoint has rolled its writes back; the import goes on.
            report.rejected.append(
                RowRejection(row.row, row.classification_id, REFUSED, f"{REFUSED}: {exc}")
            )
            return
        classification = outcome.classification
    report.imported += 1
    if classification.counted:
        report.counted += 1
    else:
        report.not_counted[classification.not_counted_reason] += 1


def _store_not_counted(
    row: ExportClassification, workflow: Workflow, volunteer: Volunteer, subject_pk: int,
    reason: str,
) -> Classification:
    """A classification that does not count: it changes no retirement state, so it needs no
    lock on the subject's status row."""
    services.volunteer_counts_add(workflow.pk, [volunteer.pk])
    return Classification.objects.create(
        client_id=client_id_for(workflow, row.external_id),
        volunteer=volunteer,
        subject_id=subject_pk,
        workflow=workflow,
        answer=row.answer,
        answered_at=row.finished_at,
        user_agent=row.user_agent[:300],
        created_at=row.created_at,
        external_id=row.external_id,
        counted=False,
        not_counted_reason=reason,
    )


# --- subjects ------------------------------------------------------------------------------


def _subjects_ensure(
    subjects: dict[str, ExportSubject],
    workflow: Workflow,
    subject_set: SubjectSet,
    source: str,
    report: ImportReport,
) -> dict[str, int]:
    """{zooniverse subject id: Subject pk}, creating the unknown ones without stamps, and a
    status row in `workflow` for each (new subjects get one in every workflow of the set,
    as an ingest gives them)."""
    by_external = {subject.external_id: subject for subject in subjects.values()}
    existing: dict[str, int] = {}
    for chunk in chunks(list(by_external)):
        existing.update(
            Subject.objects.filter(project_id=workflow.project_id, external_id__in=chunk)
            .values_list("external_id", "pk")
        )
    fresh = [subject for external_id, subject in by_external.items()
             if external_id not in existing]
    now = timezone.now()
    writes.rows_write(Subject, _SUBJECT_COLUMNS, (
        (workflow.project_id, subject_set.pk, subject.external_id, subject.origin[:40],
         subject.snr, subject.psf_flux, subject.psf_flux_err, subject.ra, subject.dec,
         subject.band[:8], subject.reliability, subject.metadata, 0, [], source[:500], now)
        for subject in fresh
    ))
    report.subjects_created = len(fresh)
    for chunk in chunks([subject.external_id for subject in fresh]):
        existing.update(
            Subject.objects.filter(project_id=workflow.project_id, external_id__in=chunk)
            .values_list("external_id", "pk")
        )
    fresh_pks = {existing[subject.external_id] for subject in fresh}
    set_workflows = set(subject_set.workflows.values_list("pk", flat=True)) | {workflow.pk}
    pairs = {(workflow.pk, pk) for pk in existing.values() if pk not in fresh_pks}
    for chunk in chunks(sorted(pairs)):
        pairs.difference_update(
            SubjectWorkflowStatus.objects.filter(
                workflow=workflow, subject_id__in=[pk for _, pk in chunk]
            ).values_list("workflow_id", "subject_id")
        )
    pairs |= {(workflow_pk, pk) for workflow_pk in set_workflows for pk in fresh_pks}
    # As `services.statuses_create` makes them; none of these pairs has a status yet.
    writes.rows_write(SubjectWorkflowStatus, ("workflow_id", "subject_id", "random_key"), (
        (workflow_pk, pk, random.random()) for workflow_pk, pk in sorted(pairs)
    ))
    return {subject_id: existing[subject.external_id] for subject_id, subject in
            subjects.items()}


# New subjects have no stamps: aggregated, never served.
_SUBJECT_COLUMNS = (
    "project_id", "subject_set_id", "external_id", "origin", "snr", "psf_flux", "psf_flux_err",
    "ra", "dec", "band", "reliability", "metadata", "stamp_size", "original_shapes", "source",
    "created_at",
)


def _retired_count(workflow: Workflow, subject_pks: Iterable[int]) -> int:
    return sum(
        SubjectWorkflowStatus.objects.filter(
            workflow=workflow, subject_id__in=chunk, retired=True
        ).count()
        for chunk in chunks(list(subject_pks))
    )


# --- volunteers ----------------------------------------------------------------------------


def _volunteers_ensure(names: dict[str, bool], report: ImportReport) -> dict[str, Volunteer]:
    """{external name: Volunteer} for every name; `names` maps each to whether anonymous."""
    volunteers = _volunteers_named(names)
    fresh = [name for name in names if name not in volunteers]
    # As `services.volunteer_for_external_name` makes them, all at once.
    Volunteer.objects.bulk_create((Volunteer(external_name=name) for name in fresh),
                                  batch_size=writes.ORM_BATCH, ignore_conflicts=True)
    volunteers.update(_volunteers_named(fresh))
    report.volunteers_created += len(fresh)
    report.anonymous_volunteers_created += sum(names[name] for name in fresh)
    return volunteers


def _volunteers_named(names: Iterable[str]) -> dict[str, Volunteer]:
    found: dict[str, Volunteer] = {}
    for chunk in chunks(list(names)):
        found.update(
            (volunteer.external_name, volunteer)
            for volunteer in Volunteer.objects.filter(external_name__in=chunk)
        )
    return found


# --- gold standard -------------------------------------------------------------------------


def gold_labels(rows: Iterable[ExportClassification]) -> GoldLabels:
    """The reference label of each gold subject from its expert rows; see the module doc."""
    gold: set[str] = set()
    expert_answers: dict[str, set[str]] = {}
    for row in rows:
        if row.gold_standard:
            gold.add(row.subject_id)
        if row.expert:
            expert_answers.setdefault(row.subject_id, set()).add(row.answer)
    labels, without, conflicting = {}, [], []
    for subject_id in sorted(gold, key=lambda s: (len(s), s)):
        answers = expert_answers.get(subject_id, set())
        if not answers:
            without.append(subject_id)
        elif len(answers) > 1:
            conflicting.append(subject_id)
        else:
            labels[subject_id] = next(iter(answers))
    return GoldLabels(labels, gold, without, conflicting)


def _gold_labels_write(
    rows: list[ExportClassification], subject_pks: dict[str, int], set_name: str,
    report: ImportReport,
) -> None:
    found = gold_labels(rows)
    reference_set = ReferenceSet.objects.filter(name=set_name).first()
    if reference_set is None:
        team = services.expert_team_get_or_create(set_name)
        reference_set = services.reference_set_get_or_create(name=set_name, team=team)
    pairs = [(subject_pks[subject_id], label) for subject_id, label in found.labels.items()]
    stored: dict[int, str] = {}
    for chunk in chunks([pk for pk, _ in pairs]):
        stored.update(
            ReferenceLabel.objects.filter(reference_set=reference_set, subject_id__in=chunk)
            .values_list("subject_id", "label")
        )
    pk_to_subject = {pk: subject_id for subject_id, pk in subject_pks.items()}
    report.reference_set = reference_set.name
    report.gold_subjects = len(found.gold)
    report.gold_without_expert = found.without_expert
    report.gold_conflicting = found.conflicting
    report.gold_differing_from_set = [
        pk_to_subject[pk] for pk, label in pairs if pk in stored and stored[pk] != label
    ]
    report.reference_labels_added = services.reference_labels_bulk_create(reference_set, pairs)


def _reference_subject_pks(subject_pks: Iterable[int]) -> set[int]:
    found: set[int] = set()
    for chunk in chunks(list(subject_pks)):
        found.update(
            ReferenceLabel.objects.counted()
            .filter(subject_id__in=chunk)
            .values_list("subject_id", flat=True)
        )
    return found


# --- helpers -------------------------------------------------------------------------------


def _stored_external_ids(workflow: Workflow, external_ids: list[str]) -> set[str]:
    """Those of `external_ids` the workflow already holds (only it: see the module doc).

    One read of all the workflow's external ids: for a large export that is far cheaper
    than looking its ids up a chunk at a time."""
    wanted = set(external_ids)
    return {
        external_id for external_id in Classification.objects.filter(workflow=workflow)
        .exclude(external_id="").values_list("external_id", flat=True).iterator(chunk_size=20_000)
        if external_id in wanted
    }
