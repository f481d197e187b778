"""Account services: attaching a browser's anonymous answers to an account on sign-in, and
deleting an account while its answers stay, anonymised."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Exists, OuterRef

from accounts import merge
from labeling import selectors as labeling_selectors
from labeling.models import Classification, NotCounted, SubjectWorkflowStatus, Volunteer

# What an anonymised volunteer is called once its account is gone (it must keep an identity).
DELETED_ACCOUNT_NAME = "deleted-account:{pk}"


@dataclass(frozen=True)
class MergeReport:
    """What a sign-in did with the browser's anonymous identity."""

    volunteer_id: int | None = None  # the account's volunteer, when there was anything to merge
    moved: int = 0  # answers that now belong to the account
    uncounted: int = 0  # answers that stopped counting: the same person's second answer
    subjects_recounted: int = 0  # subjects whose retirement state was recomputed


NOTHING_TO_MERGE = MergeReport()


def volunteer_merge_session(*, user, session_key: str | None) -> MergeReport:
    """On sign-in, the anonymous volunteer of this browser session joins the user's.

    With no volunteer identity yet, the user simply takes the anonymous one over. Otherwise
    the anonymous answers move to the account's volunteer and the anonymous identity is
    removed; a subject both identities answered keeps one counted answer (see
    `accounts.merge`) and its retirement state is recomputed. No answer is lost, none counts
    twice. Concurrent sign-ins of one user are serialised on the user's row, so a second one
    finds nothing left to merge. Works whether or not the session has an anonymous volunteer
    (it has none until its first answer).
    """
    if not session_key:
        return NOTHING_TO_MERGE
    with transaction.atomic():
        # Every merge into this user takes the user's row first: two sign-ins at once (two
        # tabs, two devices) run one after the other.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        anonymous = (Volunteer.objects.select_for_update()
                     .filter(session_key=session_key, user__isnull=True).first())
        if anonymous is None:
            return NOTHING_TO_MERGE
        account = Volunteer.objects.select_for_update().filter(user=user).first()
        if account is None:
            anonymous.user, anonymous.session_key = user, None
            anonymous.save(update_fields=["user", "session_key"])
            return MergeReport(volunteer_id=anonymous.pk,
                               moved=anonymous.classifications.count())
        return _merge_into(account, anonymous)


def _merge_into(account: Volunteer, anonymous: Volunteer) -> MergeReport:
    # Lock the status rows of every subject the anonymous identity answered, in one order, as
    # an answer does: an answer of the account on one of them waits for the merge, and then
    # sees the moved answer (a 409), so no duplicate slips in behind our back.
    statuses = _locked_statuses(anonymous)
    moved = Classification.objects.filter(volunteer=anonymous).update(volunteer=account)
    # The anonymous identity's per-run skills describe an identity that no longer exists; the
    # next batch run computes the account's skill from all its answers.
    anonymous.delete()
    uncounted, recounted = _resolve_duplicates(account, statuses)
    return MergeReport(volunteer_id=account.pk, moved=moved, uncounted=uncounted,
                       subjects_recounted=recounted)


def _locked_statuses(anonymous: Volunteer) -> dict[tuple[int, int], SubjectWorkflowStatus]:
    """The status rows of the subjects `anonymous` answered, locked in id order."""
    answered = Classification.objects.filter(
        volunteer=anonymous, workflow_id=OuterRef("workflow_id"), subject_id=OuterRef("subject_id")
    )
    rows = (SubjectWorkflowStatus.objects.select_for_update(of=("self",))
            .select_related("workflow")
            .annotate(is_reference=labeling_selectors.IS_REFERENCE)
            .filter(Exists(answered)).order_by("pk"))
    return {(row.workflow_id, row.subject_id): row for row in rows}


def _resolve_duplicates(account: Volunteer, statuses) -> tuple[int, int]:
    """Keep one counted answer per subject for the merged person; recompute those subjects."""
    answers = defaultdict(list)
    for row in (Classification.objects.filter(volunteer=account)
                .filter(subject_id__in={subject for _, subject in statuses})
                .order_by("created_at", "pk")
                .values("pk", "workflow_id", "subject_id", "counted")):
        pair = (row["workflow_id"], row["subject_id"])
        if pair in statuses:
            answers[pair].append(merge.PersonAnswer(row["pk"], row["counted"]))
    uncount = {pair: merge.answers_to_uncount(rows) for pair, rows in answers.items()}
    uncount = {pair: ids for pair, ids in uncount.items() if ids}
    all_ids = [pk for ids in uncount.values() for pk in ids]
    Classification.objects.filter(pk__in=all_ids).update(
        counted=False, not_counted_reason=NotCounted.REPEAT
    )
    for pair in uncount:
        _recount(statuses[pair])
    return len(all_ids), len(uncount)


def _recount(status: SubjectWorkflowStatus) -> None:
    counted = (Classification.objects
               .filter(workflow_id=status.workflow_id, subject_id=status.subject_id, counted=True)
               .order_by("created_at", "pk").values_list("answer", flat=True))
    result = merge.recount(counted, status.workflow.retirement_rule)
    status.n_counted = result.state.n_counted
    status.first_answer = result.state.first_answer
    status.unanimous = result.state.unanimous
    # Reference (gold) subjects never retire: they calibrate every new volunteer.
    retired = result.retired and not status.is_reference
    if not retired:
        status.retired_at = None
    status.retired = retired
    status.save(update_fields=["n_counted", "first_answer", "unanimous", "retired", "retired_at"])


def account_delete(user) -> None:
    """Delete the account. Its answers stay, under an anonymous identity with no link to the
    person; what else it wrote (Talk comments, jobs) loses its author."""
    with transaction.atomic():
        volunteer = Volunteer.objects.select_for_update().filter(user=user).first()
        if volunteer is not None:
            volunteer.user = None
            volunteer.external_name = DELETED_ACCOUNT_NAME.format(pk=volunteer.pk)
            volunteer.save(update_fields=["user", "external_name"])
        user.delete()
