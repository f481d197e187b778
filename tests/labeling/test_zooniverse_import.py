"""`manage.py import_zooniverse`: an export file written in Zooniverse's format, end to end."""

import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from labeling import selectors, services
from labeling.bulk import writes as bulk_writes
from labeling.models import (
    Classification,
    ExpertTeam,
    NotCounted,
    ReferenceLabel,
    ReferenceSet,
    Subject,
    SubjectSet,
    SubjectWorkflowStatus,
    Volunteer,
)
from labeling.zooniverse import services as zservices
from tests.conftest import add_subjects
from tests.fixtures import zooniverse as zoo

pytestmark = pytest.mark.django_db

ALICE = zoo.logged_in("alice", 101)
BOB = zoo.logged_in("bob", 202)
DAVE = zoo.logged_in("dave", 404)
ERIN = zoo.logged_in("erin", 505)
FRANK = zoo.logged_in("frank", 606)
ANON_A = zoo.anonymous("aa11")
ANON_B = zoo.anonymous("bb22")
MODELS = (Subject, SubjectWorkflowStatus, SubjectSet, Volunteer, Classification, ReferenceLabel,
          ReferenceSet, ExpertTeam)


def run(path, **options) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("import_zooniverse", str(path), workflow="wf", stdout=out,
                     stderr=StringIO(), **options)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def snapshot() -> dict:
    """Every row of every table an import writes, as comparable values."""
    return {model.__name__: sorted(model.objects.values_list(), key=repr) for model in MODELS}


def status(subject_id: int) -> SubjectWorkflowStatus:
    return SubjectWorkflowStatus.objects.get(subject__external_id=f"zooniverse:{subject_id}")


def scenario_rows() -> list[dict]:
    """12 good rows on subjects 11-14 and 6 bad ones, deliberately out of time order."""
    return [
        # Subject 14: in time order alice and bob agree (retired), dave comes after. Read in
        # file order, dave's Bogus would come first and the subject would not retire.
        zoo.row(1401, 14, "Bogus", minute=10, **DAVE),
        zoo.row(1101, 11, "Real", minute=1, **ALICE),
        zoo.row(1103, 11, "Bogus", minute=3, **ANON_A),  # after retirement
        zoo.row(1102, 11, "Real", minute=2, **BOB),
        zoo.row(1201, 12, "Real", minute=1, **ALICE),
        zoo.row(1202, 12, "Bogus", minute=2, **BOB),  # disagree: stays open
        zoo.row(1301, 13, "Real", minute=4, **ALICE),
        zoo.row(1302, 13, "Real", minute=5, **ALICE),  # a true duplicate: a repeat
        # Seen before by its (anonymous) volunteer, though not in this file: a repeat.
        zoo.row(1303, 13, "Real", minute=6, seen_before=True, **ANON_A),
        zoo.row(1304, 13, "Real", minute=7, **ANON_B),  # agrees with alice: retires
        zoo.row(1402, 14, "Real", minute=8, **ALICE),
        zoo.row(1403, 14, "Real", minute=9, **BOB),
        # Bad rows, all on subject 15, which must therefore not be created.
        zoo.row(1501, 15, raw={"annotations": '[{"task": "T0", "value": "Real"'}),
        zoo.row(1502, 15, raw={"metadata": "{'seen_before': true}"}),
        zoo.row(1503, 15, raw={"subject_data": "{15: {}}"}),
        zoo.row(1504, 15, "Maybe"),
        zoo.row(1505, 15, raw={"created_at": "yesterday"}),
        zoo.row(1506, 15, raw={"subject_ids": ""}),
    ]


@pytest.fixture
def export(tmp_path):
    return zoo.write_export(tmp_path / "classifications.csv", scenario_rows())


def test_an_export_is_replayed_in_time_order_with_exact_counts(workflow, export):
    code, out = run(export)
    assert code == 2, out

    assert Classification.objects.count() == 12
    assert Classification.objects.filter(counted=True).count() == 8
    reasons = dict(
        Classification.objects.filter(counted=False)
        .values_list("external_id", "not_counted_reason")
    )
    assert reasons == {
        "zooniverse:1103": NotCounted.RETIRED,
        "zooniverse:1302": NotCounted.REPEAT,
        "zooniverse:1303": NotCounted.REPEAT,
        "zooniverse:1401": NotCounted.RETIRED,
    }
    assert [(status(s).retired, status(s).n_counted) for s in (11, 12, 13, 14)] == [
        (True, 2), (False, 2), (True, 2), (True, 2)
    ]
    assert not status(12).unanimous

    assert sorted(Subject.objects.values_list("external_id", flat=True)) == [
        "zooniverse:11", "zooniverse:12", "zooniverse:13", "zooniverse:14"
    ]
    assert sorted(Volunteer.objects.values_list("external_name", flat=True)) == [
        "zooniverse:not-logged-in-aa11", "zooniverse:not-logged-in-bb22",
        "zooniverse:user:101", "zooniverse:user:202", "zooniverse:user:404",
    ]

    for line in (
        "read 18 rows of classifications.csv (Zooniverse workflow 30123)",
        "imported 12 classifications into wf: 8 counted, 2 repeats, 4 not counted in all",
        "already present 0",
        "rejected 6",
        "subjects created 4 (no stamps: aggregated, never served); "
        "subjects retired by this import 3",
        "volunteers created 5, of them anonymous 2 (in the file: 5, anonymous 2)",
    ):
        assert line in out, out
    assert ("by reason: bad annotations 1, bad created_at 1, bad metadata JSON 1, "
            "bad subject_data 1, bad subject_ids 1, unknown answer 1") in out
    for number, ident in ((13, 1501), (14, 1502), (15, 1503), (16, 1504), (17, 1505),
                          (18, 1506)):
        assert f"row {number} (classification {ident}): " in out
    assert "unknown answer 'Maybe'" in out


def test_imported_classifications_keep_their_time_id_and_a_derived_client_id(workflow, export):
    run(export)
    classification = Classification.objects.get(external_id="zooniverse:1102")
    assert classification.created_at == zoo.moment(2)
    assert classification.answered_at == zoo.moment(2)
    assert classification.client_id == uuid.uuid5(zservices.CLIENT_ID_NAMESPACE,
                                                   "wf/zooniverse:1102")
    assert classification.volunteer.external_name == "zooniverse:user:202"
    assert classification.user_agent.startswith("Mozilla")


def test_subjects_keep_their_zooniverse_metadata_and_have_no_stamps(workflow, export):
    run(export)
    subject = Subject.objects.get(external_id="zooniverse:11")
    expected = zoo.subject_metadata(11)
    assert subject.metadata == expected
    assert (subject.origin, subject.snr, subject.band) == (
        expected["#origin"], expected["#snr"], expected["band"]
    )
    assert not subject.stamps
    assert subject.subject_set.name == "zooniverse"
    assert workflow.subject_sets.filter(name="zooniverse").exists()
    assert subject.source == "zooniverse:classifications.csv"


def test_two_anonymous_hashes_are_two_volunteers(workflow, export):
    run(export)
    first = Volunteer.objects.get(external_name="zooniverse:not-logged-in-aa11")
    second = Volunteer.objects.get(external_name="zooniverse:not-logged-in-bb22")
    assert first.pk != second.pk
    assert first.user_id is None
    assert first.session_key is None
    assert set(first.classifications.values_list("external_id", flat=True)) == {
        "zooniverse:1103", "zooniverse:1303"
    }


def test_a_reimport_changes_nothing(workflow, export):
    assert run(export)[0] == 2
    before = snapshot()
    code, out = run(export)
    assert code == 2  # the same bad rows are reported again
    assert snapshot() == before
    assert "imported 0 classifications" in out
    assert "already present 12" in out
    assert "subjects created 0" in out
    assert "volunteers created 0" in out


def test_a_newer_export_adds_only_its_new_rows(workflow, tmp_path):
    rows = [zoo.row(1, 11, "Real", minute=1, **ALICE), zoo.row(2, 12, "Real", minute=1)]
    assert run(zoo.write_export(tmp_path / "a.csv", rows))[0] == 0
    rows.append(zoo.row(3, 11, "Real", minute=5, **BOB))
    code, out = run(zoo.write_export(tmp_path / "b.csv", rows))
    assert code == 0, out
    assert "imported 1 classifications into wf: 1 counted" in out
    assert "already present 2" in out
    assert Classification.objects.count() == 3
    assert status(11).retired


def test_a_clean_file_exits_0(workflow, tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", [zoo.row(1, 11), zoo.row(2, 11, **BOB)])
    code, out = run(path)
    assert code == 0, out
    assert "rejected 0" in out


def test_a_missing_column_is_fatal_and_leaves_the_database_unchanged(workflow, tmp_path):
    before = snapshot()
    path = zoo.write_export(tmp_path / "c.csv", scenario_rows(), drop=["subject_ids"])
    with pytest.raises(CommandError, match="missing column subject_ids"):
        run(path)
    assert snapshot() == before


def test_a_crash_part_way_leaves_nothing(workflow, export, monkeypatch):
    """The bulk import fails after its classifications are written: none stay."""
    before = snapshot()

    def failing(*args, **kwargs):
        assert Classification.objects.count() == 12
        raise RuntimeError("the database went away")

    monkeypatch.setattr(bulk_writes, "statuses_update", failing)
    with pytest.raises(RuntimeError, match="went away"):
        run(export)
    assert snapshot() == before


def test_a_crash_part_way_through_a_row_by_row_import_leaves_nothing(workflow, export,
                                                                      monkeypatch):
    before = snapshot()
    real_create = services.classification_create
    calls = []

    def failing(**kwargs):
        calls.append(kwargs)
        if len(calls) == 5:
            raise RuntimeError("the database went away")
        return real_create(**kwargs)

    monkeypatch.setattr(services, "classification_create", failing)
    with pytest.raises(RuntimeError, match="went away"):
        run(export, row_by_row=True)
    assert len(calls) == 5
    assert snapshot() == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workflow": "nope"}, "no workflow 'nope'"),
        ({"answer_map": "Real=yes"}, "--answer-map"),
        ({"gold_as_reference": "not a slug"}, "--gold-as-reference"),
    ],
)
def test_bad_options_are_command_errors(workflow, export, options, message):
    with pytest.raises(CommandError, match=message):
        call_command("import_zooniverse", str(export), **{"workflow": "wf", **options},
                     stdout=StringIO(), stderr=StringIO())
    assert Classification.objects.count() == 0


def test_a_missing_file_is_a_command_error(workflow, tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run(tmp_path / "absent.csv")


def test_imported_subjects_are_never_served(workflow, export):
    run(export)
    stamped = set(add_subjects(workflow, 2))
    newcomer = services.volunteer_for_external_name("newcomer")
    queue = selectors.subject_queue(volunteer=newcomer, workflow=workflow, n=10)
    assert set(queue.subject_ids) == stamped
    # Only the stamp-less subject 12 is open besides them; once the stamped are gone, nothing.
    for subject_id in stamped:
        services.classification_create(volunteer=newcomer, workflow_id=workflow.pk,
                                       subject_id=subject_id, answer="real",
                                       client_id=uuid.uuid4())
    queue = selectors.subject_queue(volunteer=newcomer, workflow=workflow, n=10)
    assert queue.subject_ids == []
    assert queue.finished


def test_an_existing_subject_is_reused_and_joins_the_workflow(workflow, tmp_path):
    other = services.workflow_create(slug="other", project_name="Test project")
    path = zoo.write_export(tmp_path / "c.csv", [zoo.row(1, 11), zoo.row(2, 11, **BOB)])
    call_command("import_zooniverse", str(path), workflow="other", stdout=StringIO(),
                 stderr=StringIO())
    subject = Subject.objects.get()
    more = zoo.write_export(tmp_path / "d.csv", [zoo.row(3, 11, **DAVE)])
    assert run(more)[0] == 0
    assert Subject.objects.get() == subject
    assert SubjectWorkflowStatus.objects.filter(subject=subject).count() == 2
    assert status_in(workflow, subject).n_counted == 1
    assert status_in(other, subject).retired


def status_in(workflow, subject) -> SubjectWorkflowStatus:
    return SubjectWorkflowStatus.objects.get(workflow=workflow, subject=subject)


def test_a_mixed_file_asks_for_the_workflow(workflow, tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", [
        zoo.row(1, 11), zoo.row(2, 11, **BOB), zoo.row(3, 12, workflow_id="999"),
    ])
    code, out = run(path)
    assert code == 2
    assert "row 3 (classification 3): workflow_id 999, not the file's main workflow" in out
    assert "--zooniverse-workflow-id" in out
    code, out = run(path, zooniverse_workflow_id="999")
    assert code == 0, out
    assert "skipped 2 rows of other Zooniverse workflows" in out
    assert Classification.objects.count() == 3


def test_an_even_mix_is_a_command_error(workflow, tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", [zoo.row(1, 11), zoo.row(2, 12, workflow_id="9")])
    with pytest.raises(CommandError, match="--zooniverse-workflow-id"):
        run(path)


def test_a_custom_answer_map(workflow, tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", [zoo.row(1, 11, "Yes"), zoo.row(2, 12, "No")])
    assert run(path, answer_map="Yes=real,No=bogus")[0] == 0
    assert sorted(Classification.objects.values_list("answer", flat=True)) == ["bogus", "real"]


# --- gold standard -------------------------------------------------------------------------


def gold_rows() -> list[dict]:
    return [
        # 21: gold, the expert says Bogus; two volunteers agree, yet a reference never retires.
        zoo.row(2101, 21, "Bogus", minute=1, gold=True, expert=True, **ERIN),
        zoo.row(2102, 21, "Bogus", minute=2, gold=True, **ALICE),
        zoo.row(2103, 21, "Bogus", minute=3, gold=True, **BOB),
        # 22: gold without an expert answer.
        zoo.row(2201, 22, "Real", minute=1, gold=True, **ALICE),
        # 23: gold, the experts disagree.
        zoo.row(2301, 23, "Real", minute=1, gold=True, expert=True, **ERIN),
        zoo.row(2302, 23, "Bogus", minute=2, gold=True, expert=True, **FRANK),
        # 24: not gold; an expert's answer there is an ordinary classification.
        zoo.row(2401, 24, "Real", minute=1, expert=True, **ERIN),
    ]


def test_gold_expert_answers_become_reference_labels(workflow, tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", gold_rows())
    code, out = run(path, gold_as_reference="rubin")
    assert code == 0, out
    reference_set = ReferenceSet.objects.get(name="rubin")
    assert reference_set.team.name == "rubin"
    labels = dict(reference_set.labels.values_list("subject__external_id", "label"))
    assert labels == {"zooniverse:21": "bogus"}
    assert not status(21).retired
    assert status(21).n_counted == 2
    reasons = dict(Classification.objects.filter(counted=False)
                   .values_list("external_id", "not_counted_reason"))
    assert reasons == {"zooniverse:2101": NotCounted.EXPERT_ON_REFERENCE}
    assert "reference labels added 1 to rubin (3 gold subjects)" in out
    assert "gold subjects without an expert answer: 1 (22)" in out
    assert "gold subjects whose expert answers disagree: 1 (23)" in out

    before = snapshot()
    code, out = run(path, gold_as_reference="rubin")
    assert code == 0
    assert snapshot() == before
    assert "reference labels added 0 to rubin" in out


def test_an_existing_reference_set_keeps_its_team_and_labels(workflow, tmp_path):
    oxford = services.expert_team_get_or_create("oxford")
    legacy = services.reference_set_get_or_create(name="legacy", team=oxford)
    path = zoo.write_export(tmp_path / "c.csv", gold_rows())
    assert run(path)[0] == 0  # no gold option: subjects only, every expert answer counts
    assert not Classification.objects.filter(
        not_counted_reason=NotCounted.EXPERT_ON_REFERENCE
    ).exists()
    services.reference_labels_bulk_create(
        legacy, [(Subject.objects.get(external_id="zooniverse:21").pk, "real")]
    )
    code, out = run(path, gold_as_reference="legacy")
    assert code == 0
    assert not ExpertTeam.objects.filter(name="legacy").exists()
    assert dict(legacy.labels.values_list("subject__external_id", "label")) == {
        "zooniverse:21": "real"
    }
    assert "reference labels added 0 to legacy" in out
    assert "expert answers differing from the set's existing label: 1 (21)" in out


def test_without_the_gold_option_experts_count_as_volunteers(workflow, tmp_path):
    path = zoo.write_export(tmp_path / "c.csv", gold_rows())
    assert run(path)[0] == 0
    assert ReferenceLabel.objects.count() == 0
    assert status(21).retired  # erin and alice agree
