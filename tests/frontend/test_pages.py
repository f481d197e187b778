"""The landing page and signing in after classifying anonymously."""

import pytest
from django.test import Client

from labeling.models import Classification, Volunteer
from tests.conftest import classify

pytestmark = pytest.mark.django_db


def test_home_lists_active_workflows_with_progress(workflow, subject_ids):
    page = Client().get("/")
    assert page.status_code == 200
    assert b"wf" in page.content
    assert b"Test project" in page.content


@pytest.mark.parametrize(
    ("role", "links", "absent"),
    [
        ({}, [], ["/review/wf/", "/reference/", "/label-sets/"]),
        ({"team": "rubin"}, ["/review/wf/", "/reference/", "/aggregation/"], ["/label-sets/"]),
        ({"ml": True}, ["/label-sets/"], ["/review/wf/", "/reference/", "/aggregation/"]),
        ({"staff": True}, ["/review/wf/", "/reference/", "/aggregation/", "/label-sets/"], []),
    ],
    ids=["volunteer", "expert", "ml-team", "staff"],
)
def test_home_links_each_role_to_its_workbench(workflow, make_user, role, links, absent):
    client = Client()
    client.force_login(make_user("someone", **role))
    page = client.get("/").content.decode()
    for link in links:
        assert f'href="{link}"' in page
    for link in absent:
        assert f'href="{link}"' not in page


def sign_in(client, username):
    return client.post("/accounts/login/", {"username": username, "password": "pw-12345!x"})


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user("member", password="pw-12345!x")


def anonymous_classification(client, workflow, subject_id):
    client.get(f"/api/workflows/{workflow.pk}/queue/?n=1")
    response = classify(client, workflow.pk, subject_id)
    assert response.status_code == 201
    return Classification.objects.get(pk=response.json()["id"])


def test_signing_in_keeps_the_anonymous_history(workflow, subject_ids, member):
    client = Client()
    earlier = anonymous_classification(client, workflow, subject_ids[0])
    assert sign_in(client, "member").status_code == 302
    volunteer = Volunteer.objects.get(user=member)
    assert volunteer.pk == earlier.volunteer_id
    assert volunteer.session_key is None
    # Signed in, the same subject is still theirs: a second answer is a conflict.
    assert classify(client, workflow.pk, subject_ids[0]).status_code == 409


def test_an_existing_identity_is_not_merged(workflow, subject_ids, member):
    signed_in = Client()
    sign_in(signed_in, "member")
    assert classify(signed_in, workflow.pk, subject_ids[1]).status_code == 201
    browser = Client()
    earlier = anonymous_classification(browser, workflow, subject_ids[0])
    sign_in(browser, "member")
    assert Volunteer.objects.get(pk=earlier.volunteer_id).user is None
    assert Volunteer.objects.filter(user=member).count() == 1


def test_a_failed_sign_in_claims_nothing(workflow, subject_ids, member):
    client = Client()
    earlier = anonymous_classification(client, workflow, subject_ids[0])
    response = client.post("/accounts/login/", {"username": "member", "password": "wrong"})
    assert response.status_code == 200
    assert Volunteer.objects.get(pk=earlier.volunteer_id).user is None
