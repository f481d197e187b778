"""Every role against every endpoint: who may read and write what."""

import pytest
from rest_framework.test import APIClient

from labeling import services
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "volunteer", "expert_rubin", "expert_oxford", "ml", "staff"]


@pytest.fixture
def clients(make_user):
    return {
        "anonymous": APIClient(),
        "volunteer": token_client(make_user("volunteer")),
        "expert_rubin": token_client(make_user("rubin-expert", team="rubin")),
        "expert_oxford": token_client(make_user("oxford-expert", team="oxford")),
        "ml": token_client(make_user("ml", ml=True)),
        "staff": token_client(make_user("staff", staff=True)),
    }


@pytest.fixture
def rubin_set(subject_ids):
    team = services.expert_team_get_or_create("rubin")
    reference_set = services.reference_set_get_or_create(name="rubin", team=team)
    services.reference_labels_bulk_create(reference_set, [(subject_ids[0], "bogus")])
    return reference_set


EXPECTED_SUBJECT_DETAIL = {"anonymous": 403, "volunteer": 403, "expert_rubin": 200,
                           "expert_oxford": 200, "ml": 200, "staff": 200}
EXPECTED_REFERENCE_READ = {"anonymous": 403, "volunteer": 403, "expert_rubin": 200,
                           "expert_oxford": 200, "ml": 403, "staff": 200}
EXPECTED_REFERENCE_WRITE = {"anonymous": 403, "volunteer": 403, "expert_rubin": 201,
                            "expert_oxford": 403, "ml": 403, "staff": 403}


@pytest.mark.parametrize("role", ROLES)
def test_subject_details_are_closed_to_volunteers(clients, subject_ids, role):
    response = clients[role].get(f"/api/subjects/{subject_ids[0]}/")
    assert response.status_code == EXPECTED_SUBJECT_DETAIL[role]
    if response.status_code == 200:
        assert response.json()["origin"] == "ss"
    else:
        assert "origin" not in response.json()


@pytest.mark.parametrize("role", ROLES)
def test_reference_labels_are_read_by_staff_and_experts_only(clients, rubin_set, role):
    listing = clients[role].get("/api/reference-sets/")
    labels = clients[role].get(f"/api/reference-sets/{rubin_set.pk}/labels/")
    assert listing.status_code == EXPECTED_REFERENCE_READ[role]
    assert labels.status_code == EXPECTED_REFERENCE_READ[role]
    if labels.status_code == 200:
        assert [label["label"] for label in labels.json()] == ["bogus"]


@pytest.mark.parametrize("role", ROLES)
def test_only_the_owning_teams_experts_write_a_reference_set(
    clients, rubin_set, subject_ids, role
):
    response = clients[role].post(
        f"/api/reference-sets/{rubin_set.pk}/labels/",
        {"subject": subject_ids[1], "label": "real"}, format="json",
    )
    assert response.status_code == EXPECTED_REFERENCE_WRITE[role]
    labelled = set(rubin_set.labels.values_list("subject_id", flat=True))
    assert (subject_ids[1] in labelled) == (response.status_code == 201)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_gets_a_queue_without_truth_in_it(
    clients, workflow, subject_ids, rubin_set, role
):
    body = clients[role].get(f"/api/workflows/{workflow.pk}/queue/?n=12").json()
    assert body["subjects"]
    for subject in body["subjects"]:
        assert set(subject) == {"id", "images", "token"}


def test_health_and_schema_are_public(clients):
    assert clients["anonymous"].get("/api/health/").json() == {"status": "ok"}
    schema = clients["anonymous"].get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/classifications/" in schema.content
