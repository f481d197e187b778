"""Expert reference labels: writing with history, Unsure never counting, disagreements
between teams, the CSV export, and who may read and write what."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from labeling import selectors, services
from labeling.errors import Forbidden, InvalidInput
from labeling.models import (
    ReferenceLabel,
    ReferenceLabelChange,
    SubjectWorkflowStatus,
    Volunteer,
)
from labeling.reference_csv import EXPORT_COLUMNS
from tests.conftest import classify, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def rubin(make_user):
    expert = make_user("ann", team="rubin")
    team = services.expert_team_get_or_create("rubin")
    return services.reference_set_get_or_create(name="rubin", team=team), expert


@pytest.fixture
def oxford(make_user):
    expert = make_user("olga", team="oxford")
    team = services.expert_team_get_or_create("oxford")
    return services.reference_set_get_or_create(name="oxford", team=team), expert


def _subject(subject_id):
    return selectors.subject_get(subject_id)


def _history(reference_set, subject_id):
    return [(c.old_label, c.new_label, c.expert.username if c.expert else None, c.source)
            for c in selectors.reference_label_history(reference_set, _subject(subject_id))]


# --- writing and history --------------------------------------------------------------------


def test_each_real_change_is_recorded_once_with_who_and_what(rubin, subject_ids, make_user):
    reference_set, ann = rubin
    bob = make_user("bob", team="rubin")
    subject = _subject(subject_ids[0])
    outcomes = [
        services.reference_label_write(reference_set=reference_set, subject=subject,
                                       label=label, expert=expert, explanation=explanation,
                                       source="review").outcome
        for label, expert, explanation in [
            ("real", ann, ""), ("real", bob, ""), ("bogus", bob, ""), ("bogus", ann, "dipole"),
            ("unsure", ann, ""),
        ]
    ]
    assert outcomes == ["created", "unchanged", "changed", "changed", "changed"]
    assert _history(reference_set, subject_ids[0]) == [
        ("", "real", "ann", "review"), ("real", "bogus", "bob", "review"),
        ("bogus", "bogus", "ann", "review"), ("bogus", "unsure", "ann", "review"),
    ]
    explanations = [(c.old_explanation, c.new_explanation)
                    for c in selectors.reference_label_history(reference_set, subject)]
    assert explanations[2:] == [("", "dipole"), ("dipole", "")]
    label = ReferenceLabel.objects.get(reference_set=reference_set, subject=subject)
    assert (label.label, label.expert.username) == ("unsure", "ann")


def test_the_review_page_contract_returns_the_label(rubin, subject_ids):
    reference_set, ann = rubin
    label = services.reference_label_set(reference_set=reference_set,
                                         subject=_subject(subject_ids[0]), label="bogus",
                                         expert=ann, explanation="cosmic ray", source="review")
    assert isinstance(label, ReferenceLabel)
    assert (label.label, label.explanation) == ("bogus", "cosmic ray")


def test_another_teams_expert_and_a_bad_label_change_nothing(rubin, oxford, subject_ids):
    reference_set, _ = rubin
    _, olga = oxford
    with pytest.raises(Forbidden):
        services.reference_label_set(reference_set=reference_set,
                                     subject=_subject(subject_ids[0]), label="real", expert=olga)
    with pytest.raises(InvalidInput, match="label must be one of real, bogus, unsure"):
        services.reference_label_set(reference_set=reference_set,
                                     subject=_subject(subject_ids[0]), label="maybe")
    assert not ReferenceLabel.objects.exists()
    assert not ReferenceLabelChange.objects.exists()


def test_bulk_labels_keep_existing_ones_and_record_what_they_add(rubin, subject_ids):
    reference_set, ann = rubin
    services.reference_label_set(reference_set=reference_set, subject=_subject(subject_ids[0]),
                                 label="real", expert=ann)
    added = services.reference_labels_bulk_create(
        reference_set, [(subject_ids[0], "bogus"), (subject_ids[1], "bogus")],
        source="simulator",
    )
    assert added == 1
    assert reference_set.labels.get(subject_id=subject_ids[0]).label == "real"
    assert _history(reference_set, subject_ids[1]) == [("", "bogus", None, "simulator")]


# --- Unsure is stored, never truth ------------------------------------------------------------


def test_an_unsure_only_subject_is_not_gold_anywhere(workflow, subject_ids, rubin, make_user):
    reference_set, ann = rubin
    unsure, gold = subject_ids[0], subject_ids[1]
    for subject_id, label in [(unsure, "unsure"), (gold, "bogus")]:
        services.reference_label_set(reference_set=reference_set, subject=_subject(subject_id),
                                     label=label, expert=ann, explanation="looked at it")
    workflow.feedback_enabled = True
    workflow.save()
    # Not a tutorial example, and no feedback.
    assert {e.subject_id for e in selectors.tutorial_examples(workflow)} == {gold}
    assert selectors.reference_feedback(workflow_id=workflow.pk, subject_id=unsure) is None
    assert selectors.reference_feedback(workflow_id=workflow.pk, subject_id=gold) is not None
    # It retires like any other subject (gold never retires), and an expert's answer counts.
    assert classify(token_client(ann), workflow.pk, unsure).json()["counted"] is True
    assert classify(token_client(make_user("v1")), workflow.pk, unsure).json()[
        "subject_retired"] is True
    # When every other subject has retired, the Unsure one still keeps the workflow going:
    # it is science, not gold.
    SubjectWorkflowStatus.objects.exclude(subject_id=unsure).update(retired=True)
    SubjectWorkflowStatus.objects.filter(subject_id=unsure).update(retired=False)
    assert not selectors.workflow_finished(workflow)
    queue = selectors.subject_queue(volunteer=Volunteer.objects.create(external_name="fresh"),
                                    workflow=workflow, n=5)
    assert (queue.subject_ids, queue.finished) == ([unsure], False)


# --- disagreements and every set's label --------------------------------------------------------


def test_disagreements_list_other_teams_differing_labels(rubin, oxford, subject_ids,
                                                         make_user):
    rubin_set, ann = rubin
    oxford_set, olga = oxford
    team = services.expert_team_get_or_create("rubin")
    rubin_b = services.reference_set_get_or_create(name="rubin-b", team=team)
    s = subject_ids
    for reference_set, expert, labels in [
        (rubin_set, ann, {s[0]: "real", s[1]: "bogus", s[2]: "real"}),
        (oxford_set, olga, {s[0]: "real", s[1]: "real", s[2]: "unsure", s[3]: "bogus"}),
        (rubin_b, ann, {s[0]: "bogus"}),  # same team: not a disagreement between teams
    ]:
        for subject_id, label in labels.items():
            services.reference_label_set(reference_set=reference_set,
                                         subject=_subject(subject_id), label=label,
                                         expert=expert)
    found = selectors.reference_disagreements(rubin_set)
    assert [(d.subject_id, d.label, d.other_set, d.other_label, d.other_expert)
            for d in found] == [(s[1], "bogus", "oxford", "real", "olga"),
                                (s[2], "real", "oxford", "unsure", "olga")]
    every = selectors.subject_reference_labels(s[0])
    assert [(x.reference_set, x.team, x.label) for x in every] == [
        ("oxford", "oxford", "real"), ("rubin", "rubin", "real"), ("rubin-b", "rubin", "bogus"),
    ]


# --- the API ---------------------------------------------------------------------------------


def test_api_writes_201_then_200_and_keeps_history(rubin, subject_ids):
    reference_set, ann = rubin
    client = token_client(ann)
    url = f"/api/reference-sets/{reference_set.pk}/labels/"
    first = client.post(url, {"subject": subject_ids[0], "label": "real"}, format="json")
    same = client.post(url, {"subject": subject_ids[0], "label": "real"}, format="json")
    changed = client.post(url, {"subject": subject_ids[0], "label": "bogus",
                                "explanation": "bright-star residual"}, format="json")
    assert [r.status_code for r in (first, same, changed)] == [201, 200, 200]
    assert changed.json()["explanation"] == "bright-star residual"
    history = client.get(f"{url}{subject_ids[0]}/history/").json()
    assert [(h["old_label"], h["new_label"], h["expert"], h["source"]) for h in history] == [
        ("", "real", "ann", "api"), ("real", "bogus", "ann", "api"),
    ]


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"subject": 1, "label": "maybe"}, 400, "invalid"),
    ({"label": "real"}, 400, "invalid"),
    ({"subject": 1, "label": "real", "explanation": "x" * 301}, 400, "invalid"),
    ({"subject": 99999, "label": "real"}, 404, "not_found"),
])
def test_api_bad_writes_get_a_json_error_and_change_nothing(rubin, subject_ids, body, status,
                                                            error):
    reference_set, ann = rubin
    body = {**body, "subject": subject_ids[0]} if body.get("subject") == 1 else body
    response = token_client(ann).post(f"/api/reference-sets/{reference_set.pk}/labels/", body,
                                      format="json")
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert not ReferenceLabel.objects.exists()


@pytest.mark.parametrize("url", [
    "/api/reference-sets/9999/labels/", "/api/reference-sets/9999/labels.csv",
    "/api/reference-sets/9999/disagreements/", "/api/reference-sets/9999/labels/1/history/",
])
def test_unknown_sets_are_404_json(rubin, url):
    response = token_client(rubin[1]).get(url)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_history_of_an_unknown_subject_is_404(rubin):
    reference_set, ann = rubin
    response = token_client(ann).get(f"/api/reference-sets/{reference_set.pk}/labels/999/history/")
    assert response.status_code == 404


def test_csv_export_streams_every_label(rubin, subject_ids):
    reference_set, ann = rubin
    services.reference_label_set(reference_set=reference_set, subject=_subject(subject_ids[1]),
                                 label="bogus", expert=ann, explanation='a "dipole", clearly')
    services.reference_labels_bulk_create(reference_set, [(subject_ids[0], "unsure")])
    response = token_client(ann).get(f"/api/reference-sets/{reference_set.pk}/labels.csv")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == list(EXPORT_COLUMNS)
    external = selectors.subject_get(subject_ids[1]).external_id
    assert [row[:6] for row in rows[1:]] == [
        [str(subject_ids[0]), selectors.subject_get(subject_ids[0]).external_id, "ss", "unsure",
         "", ""],
        [str(subject_ids[1]), external, "ss", "bogus", "ann", 'a "dipole", clearly'],
    ]


# --- permissions: every role against every reference endpoint ---------------------------------

ROLES = ["anonymous", "volunteer", "expert_rubin", "expert_oxford", "ml", "staff"]
READERS = {"expert_rubin", "expert_oxford", "staff"}


@pytest.fixture
def clients(make_user, rubin, oxford):
    return {
        "anonymous": APIClient(),
        "volunteer": token_client(make_user("volunteer")),
        "expert_rubin": token_client(rubin[1]),
        "expert_oxford": token_client(oxford[1]),
        "ml": token_client(make_user("ml", ml=True)),
        "staff": token_client(make_user("staff", staff=True)),
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", ["labels/", "labels.csv", "disagreements/",
                                  "labels/{subject}/history/"])
def test_reference_reads_are_for_staff_and_experts_of_any_team(clients, rubin, subject_ids,
                                                               role, path):
    reference_set, ann = rubin
    services.reference_label_set(reference_set=reference_set, subject=_subject(subject_ids[0]),
                                 label="real", expert=ann)
    url = f"/api/reference-sets/{reference_set.pk}/{path.format(subject=subject_ids[0])}"
    response = clients[role].get(url)
    assert response.status_code == (200 if role in READERS else 403)
    if response.status_code == 403:
        assert response.json()["error"] in {"permission_denied", "not_authenticated"}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("label", ["real", "unsure"])
def test_only_the_owning_teams_experts_write(clients, rubin, subject_ids, role, label):
    reference_set, _ = rubin
    response = clients[role].post(f"/api/reference-sets/{reference_set.pk}/labels/",
                                  {"subject": subject_ids[0], "label": label}, format="json")
    assert response.status_code == (201 if role == "expert_rubin" else 403)
    assert ReferenceLabel.objects.exists() == (role == "expert_rubin")
    assert ReferenceLabelChange.objects.exists() == (role == "expert_rubin")


@pytest.mark.parametrize("role", ROLES)
def test_only_staff_manage_team_members(clients, make_user, role):
    newcomer = make_user("newcomer")
    url = "/api/teams/rubin/members/"
    added = clients[role].post(url, {"username": "newcomer"}, format="json")
    assert added.status_code == (201 if role == "staff" else 403)
    in_team = Group.objects.get(name="experts:rubin").user_set.filter(pk=newcomer.pk).exists()
    assert in_team == (role == "staff")


def test_staff_add_and_remove_experts(clients, make_user, subject_ids, rubin):
    reference_set, _ = rubin
    newcomer = make_user("newcomer")
    staff = clients["staff"]
    url = "/api/teams/rubin/members/"
    write = {"subject": subject_ids[0], "label": "bogus"}
    labels_url = f"/api/reference-sets/{reference_set.pk}/labels/"
    assert token_client(newcomer).post(labels_url, write, format="json").status_code == 403
    assert staff.post(url, {"username": "newcomer"}, format="json").status_code == 201
    assert staff.post(url, {"username": "newcomer"}, format="json").status_code == 200
    assert token_client(newcomer).post(labels_url, write, format="json").status_code == 201
    assert staff.delete(url, {"username": "newcomer"}, format="json").status_code == 204
    assert staff.delete(url, {"username": "newcomer"}, format="json").status_code == 404
    assert token_client(newcomer).post(labels_url, write, format="json").status_code == 403


@pytest.mark.parametrize(("url", "body", "status"), [
    ("/api/teams/nasa/members/", {"username": "ann"}, 404),
    ("/api/teams/rubin/members/", {"username": "nobody"}, 404),
    ("/api/teams/rubin/members/", {}, 400),
])
def test_team_member_errors_are_json(clients, url, body, status):
    response = clients["staff"].post(url, body, format="json")
    assert response.status_code == status
    assert "error" in response.json()


def test_staff_create_a_team_with_members_in_the_admin(client, make_user):
    admin = make_user("root", staff=True)
    admin.is_superuser = True
    admin.save()
    ann = make_user("ann2")
    client.force_login(admin)
    response = client.post("/admin/labeling/expertteam/add/",
                           {"name": "hawaii", "members": [ann.pk]})
    assert response.status_code == 302, response.content[:2000]
    team = selectors.expert_team_get("hawaii")
    assert list(team.group.user_set.values_list("username", flat=True)) == ["ann2"]
    response = client.post(f"/admin/labeling/expertteam/{team.pk}/change/",
                           {"name": "hawaii", "members": []})
    assert response.status_code == 302
    assert not team.group.user_set.exists()
