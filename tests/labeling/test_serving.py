"""Gold integrity and anonymous identities: an answer counts only for a subject served to
that caller; visitors get no rows until they answer; identities and answers are rate-limited;
fresh anonymous identities cannot retire subjects."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.sessions.models import Session
from rest_framework.test import APIClient

from labeling import services
from labeling.models import Classification, SubjectWorkflowStatus, Volunteer
from tests.conftest import classify, served_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def gold(workflow, subject_ids):
    """Feedback on; the first four subjects are reference subjects with explanations beyond
    the tutorial's, so they stay in the gold pool."""
    workflow.feedback_enabled = True
    workflow.save()
    team = services.expert_team_get_or_create("rubin")
    reference = services.reference_set_get_or_create(name="rubin", team=team)
    services.reference_labels_bulk_create(reference, [(s, "bogus") for s in subject_ids[:4]])
    return subject_ids[:4]


def _queue(client, workflow, n=10):
    response = client.get(f"/api/workflows/{workflow.pk}/queue/?n={n}")
    assert response.status_code == 200
    return response.json()["subjects"]


def test_an_answer_with_the_queues_token_counts(workflow, subject_ids):
    client = APIClient()
    served = _queue(client, workflow, n=1)[0]
    reply = classify(client, workflow.pk, served["id"], token=served["token"])
    assert reply.status_code == 201


@pytest.mark.parametrize("how", ["no token for it", "another subject's", "another visitor's",
                                 "expired"])
def test_an_answer_for_a_subject_not_served_is_refused_and_changes_nothing(
    workflow, subject_ids, gold, settings, how
):
    client = APIClient()
    served = _queue(client, workflow, n=1)[0]
    target = next(s for s in gold if s != served["id"])
    token = {
        "no token for it": "1xajm8:JP8-ZE2IZvXQeKbGdVHTOJPC2kGERwzfEXhf4dfLgA0",
        "another subject's": served["token"],
        "another visitor's": served_token(APIClient(), workflow.pk, target),
        "expired": served_token(client, workflow.pk, target),
    }[how]
    if how == "expired":
        settings.SERVED_TOKEN_MAX_AGE_S = -1
    reply = classify(client, workflow.pk, target, token=token)
    assert reply.status_code == 403
    assert reply.json()["error"] == "not_served"
    assert "feedback" not in reply.json()
    assert Classification.objects.count() == 0
    assert Volunteer.objects.count() == 0
    assert Session.objects.count() == 0


def test_a_signed_in_users_token_is_theirs_alone(workflow, subject_ids, make_user):
    ann, bob = APIClient(), APIClient()
    ann.force_authenticate(make_user("ann"))
    bob.force_authenticate(make_user("bob"))
    assert classify(bob, workflow.pk, subject_ids[0],
                    token=served_token(ann, workflow.pk, subject_ids[0])).status_code == 403
    assert classify(ann, workflow.pk, subject_ids[0],
                    token=served_token(ann, workflow.pk, subject_ids[0])).status_code == 201


def test_missing_token_is_a_400_naming_the_field(workflow, subject_ids):
    reply = APIClient().post("/api/classifications/", {
        "workflow": workflow.pk, "subject": subject_ids[0], "answer": "real",
        "client_id": str(uuid.uuid4())}, format="json")
    assert reply.status_code == 400
    assert "token" in reply.json()["fields"]


def test_cookieless_queue_requests_create_no_rows(workflow, subject_ids):
    for _ in range(20):
        _queue(APIClient(), workflow)
    assert Volunteer.objects.count() == 0
    assert Session.objects.count() == 0


def test_the_identity_is_made_at_the_first_answer_and_kept(workflow, subject_ids):
    client = APIClient()
    first, second = _queue(client, workflow, n=2)
    assert classify(client, workflow.pk, first["id"], token=first["token"]).status_code == 201
    assert classify(client, workflow.pk, second["id"], token=second["token"]).status_code == 201
    assert Volunteer.objects.count() == 1
    assert Classification.objects.filter(volunteer=Volunteer.objects.get()).count() == 2


def test_new_anonymous_identities_are_rate_limited_per_address(workflow, subject_ids,
                                                               settings):
    settings.ANONYMOUS_IDENTITIES_PER_HOUR = 2
    replies = []
    for subject_id in subject_ids[:3]:
        client = APIClient()
        replies.append(classify(client, workflow.pk, subject_id).status_code)
    assert replies == [201, 201, 429]
    assert Volunteer.objects.count() == 2
    assert Classification.objects.count() == 2


def test_behind_a_proxy_the_identity_limit_is_per_client_not_per_proxy(workflow, subject_ids,
                                                                       settings):
    """Behind nginx every request comes from the proxy's address: the limit must follow the
    client it forwards (X-Forwarded-For), or 30 new visitors an hour would lock out everyone."""
    settings.ANONYMOUS_IDENTITIES_PER_HOUR = 1
    settings.TRUSTED_PROXY_COUNT = 1
    replies = []
    for client_address in ("203.0.113.1", "203.0.113.2", "203.0.113.1"):
        client = APIClient(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=client_address)
        replies.append(classify(client, workflow.pk, subject_ids[len(replies)]).status_code)
    assert replies == [201, 201, 429]


def test_answers_are_rate_limited_per_volunteer(workflow, subject_ids, settings, make_user):
    settings.ANSWERS_PER_MINUTE = 3
    client = APIClient()
    client.force_authenticate(make_user("fast"))
    codes = [classify(client, workflow.pk, s).status_code for s in subject_ids[:4]]
    assert codes == [201, 201, 201, 429]
    assert Classification.objects.count() == 3


def test_fresh_anonymous_identities_cannot_retire_a_subject(workflow, subject_ids, settings):
    settings.ANONYMOUS_PROBATION_ANSWERS = 2
    target = subject_ids[0]
    for _ in range(4):
        reply = classify(APIClient(), workflow.pk, target, "bogus")
        assert reply.status_code == 201
        assert reply.json()["counted"] is False
    status = SubjectWorkflowStatus.objects.get(workflow=workflow, subject_id=target)
    assert (status.retired, status.n_counted) == (False, 0)
    assert set(Classification.objects.values_list("not_counted_reason", flat=True)) == {
        "probation"}
    # With a history, an anonymous volunteer's answers count.
    regular = APIClient()
    codes = [classify(regular, workflow.pk, s).json()["counted"] for s in subject_ids[1:4]]
    assert codes == [False, False, True]


def test_the_gold_leak_is_closed(workflow, subject_ids, gold):
    """The attack the issue reports: answering gold subjects never served, for their label."""
    client = APIClient()
    _queue(client, workflow, n=1)
    leaked = [classify(client, workflow.pk, s, token="0:forged").json().get("feedback")
              for s in gold]
    assert leaked == [None] * len(gold)
    assert Classification.objects.count() == 0
