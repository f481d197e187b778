"""The bulk Zooniverse import: scoped to its workflow, equal to the row-by-row replay, and able
to take the export's own retirements."""

import tempfile
from contextlib import ExitStack
from io import StringIO
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aggregation import services as aggregation_services
from aggregation.models import AggregationRun
from labeling import services
from labeling.bulk import writes as bulk_writes
from labeling.models import Classification, NotCounted, SubjectWorkflowStatus, Volunteer
from labeling.zooniverse import parse
from labeling.zooniverse import services as zservices
from labeling.zooniverse.signals import classifications_imported
from tests.fixtures import zooniverse as zoo

pytestmark = pytest.mark.django_db

ALICE = zoo.logged_in("alice", 101)
BOB = zoo.logged_in("bob", 202)
DAVE = zoo.logged_in("dave", 404)


def run(path, workflow="wf", **options) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("import_zooniverse", str(path), workflow=workflow, stdout=out,
                     stderr=StringIO(), **options)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def stored(workflow) -> dict[str, tuple]:
    return {
        external_id: (volunteer, counted, reason)
        for external_id, volunteer, counted, reason in Classification.objects.filter(
            workflow=workflow
        ).values_list("external_id", "volunteer__external_name", "counted",
                      "not_counted_reason")
    }


# --- scoping -------------------------------------------------------------------------------


def test_an_export_overlapping_one_in_another_workflow_is_imported_in_full(workflow, tmp_path):
    other = services.workflow_create(slug="other", project_name="Another project")
    first = zoo.write_export(tmp_path / "a.csv", [
        zoo.row(1, 11, "Real", minute=1, **ALICE), zoo.row(2, 11, "Real", minute=2, **BOB),
    ])
    assert run(first)[0] == 0
    # The second export shares classification 2 with the first, and adds 3.
    second = zoo.write_export(tmp_path / "b.csv", [
        zoo.row(2, 11, "Real", minute=2, **BOB), zoo.row(3, 11, "Bogus", minute=3, **DAVE),
    ])
    code, out = run(second, workflow="other")
    assert code == 0, out
    assert "already present 0" in out
    assert "imported 2 classifications into other: 2 counted" in out
    assert stored(other) == {
        "zooniverse:2": ("zooniverse:user:202", True, ""),
        "zooniverse:3": ("zooniverse:user:404", True, ""),
    }
    assert len(stored(workflow)) == 2
    # Within its own workflow a row is still imported once.
    code, out = run(second, workflow="other")
    assert "already present 2" in out
    assert Classification.objects.filter(workflow=other).count() == 2


def test_the_row_by_row_path_is_scoped_too(workflow, tmp_path):
    services.workflow_create(slug="other", project_name="Test project")
    path = zoo.write_export(tmp_path / "a.csv", [zoo.row(1, 11, **ALICE), zoo.row(2, 11, **BOB)])
    assert run(path)[0] == 0
    code, out = run(path, workflow="other", row_by_row=True)
    assert code == 0, out
    assert "imported 2 classifications into other: 2 counted" in out


# --- the export's retirements --------------------------------------------------------------


def retired_meta(subject_id: int, retired_at: str | None) -> dict:
    block = {"id": 1, "workflow_id": 30123, "retirement_reason": "classification_count",
             "retired_at": retired_at}
    return {**zoo.subject_metadata(subject_id), "retired": block}


def test_the_export_s_retirements_replace_the_rule(workflow, tmp_path):
    retired_at = "2025-11-11T18:03:30.000Z"  # between minutes 3 and 4
    rows = [
        # 11: Zooniverse retired it after three answers, though the first two agree.
        zoo.row(1, 11, "Real", minute=1, **ALICE),
        zoo.row(2, 11, "Real", minute=2, **BOB),
        zoo.row(3, 11, "Bogus", minute=3, **DAVE),
        zoo.row(4, 11, "Real", minute=4, subject_meta=retired_meta(11, retired_at),
                **zoo.anonymous("aa")),
        # 12: the first two agree, but Zooniverse never retired it.
        zoo.row(5, 12, "Real", minute=1, **ALICE),
        zoo.row(6, 12, "Real", minute=2, **BOB),
        # 13: retired, at a time the block does not give: every answer counts.
        zoo.row(7, 13, "Bogus", minute=1, subject_meta=retired_meta(13, None), **ALICE),
    ]
    path = zoo.write_export(tmp_path / "a.csv", rows)
    code, out = run(path, retirement_from_export=True)
    assert code == 0, out
    reasons = {k: reason for k, (_, _, reason) in stored(workflow).items()}
    assert reasons == {
        "zooniverse:1": "", "zooniverse:2": "", "zooniverse:3": "",
        "zooniverse:4": NotCounted.RETIRED, "zooniverse:5": "", "zooniverse:6": "",
        "zooniverse:7": "",
    }
    status = {
        external_id: (n, unanimous, retired, retired_at)
        for external_id, n, unanimous, retired, retired_at in SubjectWorkflowStatus.objects
        .filter(workflow=workflow)
        .values_list("subject__external_id", "n_counted", "unanimous", "retired", "retired_at")
    }
    assert status["zooniverse:11"] == (3, False, True, parse.parse_timestamp(retired_at))
    assert status["zooniverse:12"][:3] == (2, True, False)
    assert status["zooniverse:13"][:3] == (1, True, True)
    assert "subjects retired by this import 2" in out
    # The default replays our rule: 11 and 12 retire at two agreeing answers, 13 stays open.
    services.workflow_create(slug="ruled", project_name="Test project")
    run(path, workflow="ruled")
    assert sorted(SubjectWorkflowStatus.objects.filter(workflow__slug="ruled", retired=True)
                  .values_list("subject__external_id", flat=True)) == [
        "zooniverse:11", "zooniverse:12"
    ]


def test_the_export_s_retirements_need_the_bulk_path(workflow, tmp_path):
    path = zoo.write_export(tmp_path / "a.csv", [zoo.row(1, 11)])
    with pytest.raises(Exception, match="--row-by-row"):
        run(path, retirement_from_export=True, row_by_row=True)
    assert not Classification.objects.exists()


# --- the live state ------------------------------------------------------------------------


def test_an_import_asks_for_the_live_run_to_be_rebuilt_after_commit(
    workflow, tmp_path, django_capture_on_commit_callbacks
):
    sent = []

    def receiver(sender, **kwargs):
        sent.append(kwargs["workflow_id"])

    classifications_imported.connect(receiver)
    try:
        path = zoo.write_export(tmp_path / "a.csv", [zoo.row(1, 11)])
        with django_capture_on_commit_callbacks(execute=True):
            run(path)
        with django_capture_on_commit_callbacks(execute=True):
            run(path)  # nothing new: nothing to rebuild
    finally:
        classifications_imported.disconnect(receiver)
    assert sent == [workflow.pk]


def test_the_live_run_is_rebuilt_as_it_was_set_up(workflow, tmp_path,
                                                  django_capture_on_commit_callbacks):
    team = services.expert_team_get_or_create("rubin")
    reference_set = services.reference_set_get_or_create(name="rubin", team=team)
    live = aggregation_services.run_execute(aggregation_services.run_create(
        workflow=workflow, reference_sets=[reference_set], mode=AggregationRun.Mode.ONLINE,
        params=aggregation_services.swap_params(prior=0.3),
    ).pk)
    assert live.live
    path = zoo.write_export(tmp_path / "a.csv", [zoo.row(1, 11)])
    with mock.patch.object(aggregation_services, "run_queue") as queued, \
            django_capture_on_commit_callbacks(execute=True):
        run(path)
    # The rebuild replaces the live run once it is computed (queued here, not run).
    rebuilt = AggregationRun.objects.get(triggered_by="import")
    assert rebuilt.pk != live.pk
    assert not rebuilt.live
    assert rebuilt.triggered_by == "import"
    assert rebuilt.parameters == live.parameters
    assert list(rebuilt.reference_sets.all()) == [reference_set]
    queued.assert_called_once_with(rebuilt)


# --- bulk against row by row ---------------------------------------------------------------

VOLUNTEERS = [zoo.logged_in(name, 100 + k) for k, name in enumerate("abcd")] + [
    zoo.anonymous("e1"), zoo.anonymous("f2"),
    zoo.logged_in("expert", 909),  # also a signed-in expert here (see below)
]

export_rows = st.lists(
    st.tuples(
        st.integers(1, 4),  # subject
        st.integers(0, len(VOLUNTEERS) - 1),
        st.sampled_from(["Real", "Bogus"]),
        st.integers(0, 12),  # minute: ties are broken by classification id
        st.booleans(),  # the export's expert flag
        st.integers(0, 9),  # 0: seen before
        st.integers(0, 5),  # 0: Zooniverse retired the subject by then
    ),
    max_size=24,
)


def export_of(rows, gold_subjects: set[int]) -> list[dict]:
    written = []
    for number, (subject, who, answer, minute, expert, seen, retired) in enumerate(rows, 1):
        meta = zoo.subject_metadata(subject)
        if retired == 0:
            meta = retired_meta(subject, zoo.timestamp(minute).replace(" UTC", "Z"))
        written.append(zoo.row(
            number, subject, answer, minute=minute, expert=expert, seen_before=seen == 0,
            gold=subject in gold_subjects, subject_meta=meta, **VOLUNTEERS[who],
        ))
    return written


def snapshot(workflow, report: zservices.ImportReport) -> dict:
    classifications = list(
        Classification.objects.filter(workflow=workflow).order_by("pk").values_list(
            "external_id", "volunteer__external_name", "subject__external_id", "answer",
            "created_at", "answered_at", "user_agent", "counted", "not_counted_reason",
        )
    )
    statuses = sorted(
        SubjectWorkflowStatus.objects.filter(workflow=workflow).values_list(
            "subject__external_id", "n_counted", "first_answer", "unanimous", "retired"
        )
    )
    counts = (report.imported, report.counted, dict(report.not_counted),
              report.already_present, report.subjects_retired, len(report.rejected))
    return {"classifications": classifications, "statuses": statuses, "report": counts}


def import_file(path: Path, workflow, method: str, gold: bool):
    parsed = parse.read_export(path, answer_map=parse.parse_answer_map(
        parse.DEFAULT_ANSWER_MAP, ("real", "bogus")))
    return zservices.zooniverse_import(
        parsed, workflow=workflow, gold_reference_set="gold" if gold else None,
        method=method,
    )


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "orm"])
@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=export_rows,
    earlier=st.integers(0, 24),
    gold_subjects=st.sets(st.integers(1, 4), max_size=2),
    gold=st.booleans(),
    agree=st.integers(1, 3),
    extra=st.integers(0, 3),
    active=st.booleans(),
)
# The signed-in expert (volunteer 6) answers a subject that the export's expert made gold.
@example(rows=[(1, 0, "Real", 0, True, 5, 5), (1, 6, "Bogus", 1, False, 5, 5)], earlier=0,
         gold_subjects={1}, gold=True, agree=2, extra=1, active=True)
def test_bulk_and_row_by_row_imports_store_the_same(
    copy, rows, earlier, gold_subjects, gold, agree, extra, active
):
    """An earlier export (a prefix of the rows), then the whole one, into two workflows of one
    project: by the bulk path into one, row by row into the other. Same rows, flags, order,
    statuses and counts. On PostgreSQL, `copy` picks COPY or the ORM path of the bulk writes."""
    if copy and not bulk_writes.uses_copy():
        pytest.skip("COPY needs PostgreSQL")
    with ExitStack() as stack:
        stack.enter_context(transaction.atomic())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if not copy:
            stack.enter_context(mock.patch.object(bulk_writes, "uses_copy", return_value=False))
        bulk, one_by_one = (
            services.workflow_create(slug=slug, project_name="Equivalence",
                                     retire_agree=agree, retire_max=agree + extra)
            for slug in ("bulk", "one-by-one")
        )
        for workflow in (bulk, one_by_one):
            workflow.active = active
            workflow.save(update_fields=["active"])
        # A signed-in expert who is also an imported volunteer: the service does not count
        # their answers on reference subjects; the bulk path must not either.
        expert = services.expert_team_get_or_create("gold").group.user_set.create(
            username="expert"
        )
        Volunteer.objects.create(user=expert, external_name="zooniverse:user:909")
        whole = zoo.write_export(folder / "whole.csv", export_of(rows, gold_subjects))
        prefix = zoo.write_export(folder / "prefix.csv",
                                  export_of(rows[:earlier], gold_subjects))
        results = {
            path.name: (
                snapshot(bulk, import_file(path, bulk, zservices.BULK, gold)),
                snapshot(one_by_one, import_file(path, one_by_one, zservices.ROW_BY_ROW, gold)),
            )
            for path in (prefix, whole)
        }
        transaction.set_rollback(True)
    for name, (by_bulk, by_row) in results.items():
        assert by_bulk == by_row, name
