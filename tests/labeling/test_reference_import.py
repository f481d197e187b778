"""import_reference_labels and export_reference_labels: all or nothing, every bad row named,
changes in the history, and an export that imports back unchanged."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from labeling import services
from labeling.models import ReferenceLabel, ReferenceLabelChange, ReferenceSet, Subject
from tests.conftest import add_subjects

pytestmark = pytest.mark.django_db


@pytest.fixture
def rubin(make_user):
    ann = make_user("ann", team="rubin")
    make_user("olga", team="oxford")
    team = services.expert_team_get_or_create("rubin")
    return services.reference_set_get_or_create(name="rubin", team=team), ann


def _external(subject_id):
    return Subject.objects.get(pk=subject_id).external_id


def _import(path, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_reference_labels", str(path), *args, stdout=out, stderr=err)
    return out.getvalue()


def _labels():
    return set(ReferenceLabel.objects.values_list("reference_set__name", "subject_id", "label",
                                                  "expert__username", "explanation"))


def test_import_creates_changes_and_leaves_alone_with_history(tmp_path, rubin, subject_ids):
    reference_set, ann = rubin
    services.reference_label_set(reference_set=reference_set,
                                 subject=Subject.objects.get(pk=subject_ids[1]), label="real",
                                 expert=ann)
    services.reference_label_set(reference_set=reference_set,
                                 subject=Subject.objects.get(pk=subject_ids[2]), label="bogus",
                                 expert=ann)
    path = tmp_path / "labels.csv"
    path.write_text("external_id,label,expert,explanation\n"
                    f"{_external(subject_ids[0])},Real,ann,clear point source\n"
                    f"{_external(subject_ids[1])},BOGUS,,\n"
                    f"{_external(subject_ids[2])},bogus,,\n"
                    f"{_external(subject_ids[3])},unsure,,\n")
    out = _import(path, "--set", "rubin")
    assert "2 created, 1 changed, 1 unchanged" in out
    assert _labels() == {
        ("rubin", subject_ids[0], "real", "ann", "clear point source"),
        ("rubin", subject_ids[1], "bogus", None, ""),
        ("rubin", subject_ids[2], "bogus", "ann", ""),
        ("rubin", subject_ids[3], "unsure", None, ""),
    }
    imported = ReferenceLabelChange.objects.filter(source="import")
    assert sorted(imported.values_list("subject_id", "old_label", "new_label")) == [
        (subject_ids[0], "", "real"), (subject_ids[1], "real", "bogus"),
        (subject_ids[3], "", "unsure"),
    ]


def test_bad_rows_are_all_reported_and_nothing_changes(tmp_path, rubin, subject_ids,
                                                       make_user):
    make_user("stranger")
    before = _labels()
    path = tmp_path / "bad.csv"
    path.write_text("subject_id,label,expert\n"
                    f"{subject_ids[0]},real,ann\n"
                    "999999,real,\n"
                    f"{subject_ids[1]},perhaps,\n"
                    f"{subject_ids[2]},real,nobody\n"
                    f"{subject_ids[3]},real,olga\n"
                    f"{subject_ids[0]},bogus,\n"
                    f"{subject_ids[4]},real,stranger\n")
    err = io.StringIO()
    with pytest.raises(CommandError, match="6 bad row") as raised:
        call_command("import_reference_labels", str(path), "--set", "rubin", stderr=err)
    assert raised.value.returncode == 2
    assert err.getvalue().splitlines() == [
        "row 2: unknown subject: no subject id 999999",
        "row 3: invalid label 'perhaps': expected one of real, bogus, unsure",
        "row 4: unknown expert 'nobody'",
        "row 5: expert 'olga' is not in team 'rubin'",
        f"row 6: duplicate subject {subject_ids[0]}: already on row 1",
        "row 7: expert 'stranger' is not in team 'rubin'",
    ]
    assert _labels() == before
    assert not ReferenceLabelChange.objects.exists()


def test_dry_run_counts_but_writes_nothing_not_even_a_new_set(tmp_path, rubin, subject_ids):
    path = tmp_path / "labels.csv"
    path.write_text(f"subject_id,label\n{subject_ids[0]},real\n")
    out = _import(path, "--set", "rubin-2", "--team", "rubin", "--dry-run")
    assert "dry run, nothing written" in out
    assert "(new): 1 created" in out
    assert not ReferenceSet.objects.filter(name="rubin-2").exists()
    assert not ReferenceLabel.objects.exists()


def test_a_new_set_needs_an_existing_team(tmp_path, rubin, subject_ids):
    path = tmp_path / "labels.csv"
    path.write_text(f"subject_id,label\n{subject_ids[0]},real\n")
    with pytest.raises(CommandError, match="give --team"):
        _import(path, "--set", "new-set")
    with pytest.raises(CommandError, match=r"no expert team 'rubn'.*known: oxford, rubin"):
        _import(path, "--set", "new-set", "--team", "rubn")
    with pytest.raises(CommandError, match="belongs to team 'rubin', not 'oxford'"):
        _import(path, "--set", "rubin", "--team", "oxford")
    assert "(new): 1 created" in _import(path, "--set", "new-set", "--team", "rubin")
    assert ReferenceSet.objects.get(name="new-set").team.name == "rubin"


@pytest.mark.parametrize(("text", "message"), [
    ("subject_id,lable\n1,real\n", "unknown column"),
    ("", "empty"),
])
def test_an_unusable_file_is_a_clear_error(tmp_path, rubin, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(CommandError, match=message):
        _import(path, "--set", "rubin")
    with pytest.raises(CommandError, match="cannot read"):
        _import(tmp_path / "missing.csv", "--set", "rubin")


def test_an_external_id_in_two_projects_needs_project(tmp_path, rubin, workflow):
    other = services.workflow_create(slug="other", project_name="Other project")
    first = add_subjects(workflow, 1, seed=5, set_name="twin")[0]
    add_subjects(other, 1, seed=5, set_name="twin")
    path = tmp_path / "labels.csv"
    path.write_text(f"external_id,label\n{_external(first)},real\n")
    with pytest.raises(CommandError, match="1 bad row"):
        _import(path, "--set", "rubin")
    assert not ReferenceLabel.objects.exists()
    _import(path, "--set", "rubin", "--project", "Test project")
    assert list(ReferenceLabel.objects.values_list("subject_id", flat=True)) == [first]
    with pytest.raises(CommandError, match="no project 'Nope'"):
        _import(path, "--set", "rubin", "--project", "Nope")


def test_an_export_imports_back_unchanged(tmp_path, rubin, subject_ids):
    reference_set, ann = rubin
    for subject_id, label, explanation in [(subject_ids[0], "real", 'a "clean", point source'),
                                           (subject_ids[1], "bogus", ""),
                                           (subject_ids[2], "unsure", "")]:
        services.reference_label_set(reference_set=reference_set,
                                     subject=Subject.objects.get(pk=subject_id), label=label,
                                     expert=ann, explanation=explanation)
    path = tmp_path / "export.csv"
    out = io.StringIO()
    call_command("export_reference_labels", "--set", "rubin", "-o", str(path), stdout=out,
                 stderr=io.StringIO())
    assert "exported 3 labels" in out.getvalue()
    before, changes = _labels(), ReferenceLabelChange.objects.count()
    assert "0 created, 0 changed, 3 unchanged" in _import(path, "--set", "rubin")
    assert (_labels(), ReferenceLabelChange.objects.count()) == (before, changes)
    # Into another team's set: the same labels, the expert dropped where not a member.
    copy = path.read_text().replace(",ann,", ",,")
    path.write_text(copy)
    _import(path, "--set", "oxford-copy", "--team", "oxford")
    assert {(s, lab) for name, s, lab, _, _ in _labels() if name == "oxford-copy"} == {
        (s, lab) for name, s, lab, _, _ in before
    }


def test_export_of_an_unknown_set_is_an_error(rubin):
    with pytest.raises(CommandError, match="no reference set 'nope'"):
        call_command("export_reference_labels", "--set", "nope")
