"""POST /api/classifications/ and the service behind it: idempotency, conflicts, retirement,
the reasons a classification does not count, and bad input that changes nothing."""

import uuid

import pytest
from rest_framework.test import APIClient

from labeling import services
from labeling.models import Classification, NotCounted, SubjectWorkflowStatus
from tests.conftest import classify, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def volunteers(make_user):
    return [token_client(make_user(f"v{i}")) for i in range(8)]


def status_of(workflow, subject_id) -> SubjectWorkflowStatus:
    return SubjectWorkflowStatus.objects.get(workflow=workflow, subject_id=subject_id)


def test_create_returns_201_with_the_stored_classification(workflow, subject_ids, volunteers):
    client_id = uuid.uuid4()
    response = classify(volunteers[0], workflow.pk, subject_ids[0], "bogus", client_id)
    assert response.status_code == 201
    body = response.json()
    assert body["client_id"] == str(client_id)
    assert body["answer"] == "bogus"
    assert body["counted"] is True
    assert body["subject_retired"] is False
    stored = Classification.objects.get(client_id=client_id)
    assert (stored.subject_id, stored.workflow_id, stored.answer) == (
        subject_ids[0], workflow.pk, "bogus")


def test_replay_with_the_same_client_id_returns_the_first_result(
    workflow, subject_ids, volunteers
):
    client_id = uuid.uuid4()
    first = classify(volunteers[0], workflow.pk, subject_ids[0], "real", client_id)
    # A retry after a lost reply, even with another answer, is the same classification.
    again = classify(volunteers[0], workflow.pk, subject_ids[0], "bogus", client_id)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Classification.objects.count() == 1
    assert status_of(workflow, subject_ids[0]).n_counted == 1


def test_second_classification_of_a_subject_by_one_volunteer_is_a_conflict(
    workflow, subject_ids, volunteers
):
    classify(volunteers[0], workflow.pk, subject_ids[0])
    response = classify(volunteers[0], workflow.pk, subject_ids[0])
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert Classification.objects.count() == 1


def test_someone_elses_client_id_is_a_conflict(workflow, subject_ids, volunteers):
    client_id = uuid.uuid4()
    classify(volunteers[0], workflow.pk, subject_ids[0], client_id=client_id)
    response = classify(volunteers[1], workflow.pk, subject_ids[1], client_id=client_id)
    assert response.status_code == 409
    assert Classification.objects.count() == 1


def test_two_agreeing_answers_retire_the_subject(workflow, subject_ids, volunteers):
    assert classify(volunteers[0], workflow.pk, subject_ids[0]).json()["subject_retired"] is False
    assert classify(volunteers[1], workflow.pk, subject_ids[0]).json()["subject_retired"] is True
    status = status_of(workflow, subject_ids[0])
    assert status.retired
    assert status.n_counted == 2
    assert status.retired_at is not None


def test_disagreement_retires_at_seven_and_later_answers_do_not_count(
    workflow, subject_ids, volunteers
):
    answers = ["real", "bogus", "real", "real", "bogus", "real", "real"]
    replies = [classify(volunteers[i], workflow.pk, subject_ids[0], a).json()
               for i, a in enumerate(answers)]
    assert [r["subject_retired"] for r in replies] == [False] * 6 + [True]
    late = classify(volunteers[7], workflow.pk, subject_ids[0], "bogus")
    assert late.status_code == 201
    assert late.json()["counted"] is False
    assert Classification.objects.get(pk=late.json()["id"]).not_counted_reason == (
        NotCounted.RETIRED)
    assert status_of(workflow, subject_ids[0]).n_counted == 7


def test_expert_classifying_a_reference_subject_does_not_count(
    workflow, subject_ids, make_user
):
    expert = make_user("ex", team="rubin")
    team = services.expert_team_get_or_create("rubin")
    reference_set = services.reference_set_get_or_create(name="rubin", team=team)
    services.reference_labels_bulk_create(reference_set, [(subject_ids[0], "real")])
    reply = classify(token_client(expert), workflow.pk, subject_ids[0]).json()
    assert reply["counted"] is False
    assert Classification.objects.get(pk=reply["id"]).not_counted_reason == (
        NotCounted.EXPERT_ON_REFERENCE)
    # The same expert on an ordinary subject is a volunteer like any other.
    assert classify(token_client(expert), workflow.pk, subject_ids[1]).json()["counted"] is True


def test_reference_subjects_never_retire(workflow, subject_ids, volunteers):
    team = services.expert_team_get_or_create("rubin")
    reference_set = services.reference_set_get_or_create(name="rubin", team=team)
    services.reference_labels_bulk_create(reference_set, [(subject_ids[0], "bogus")])
    for volunteer in volunteers:
        reply = classify(volunteer, workflow.pk, subject_ids[0], "bogus").json()
        assert reply["counted"] is True
        assert reply["subject_retired"] is False
    assert status_of(workflow, subject_ids[0]).n_counted == len(volunteers)


def test_answers_to_an_inactive_workflow_are_kept_but_not_counted(
    workflow, subject_ids, volunteers
):
    workflow.active = False
    workflow.save()
    reply = classify(volunteers[0], workflow.pk, subject_ids[0]).json()
    assert reply["counted"] is False
    assert status_of(workflow, subject_ids[0]).n_counted == 0


def test_imports_store_repeats_as_not_counted(workflow, subject_ids):
    volunteer = services.volunteer_for_external_name("zooniverse:alice")
    for answer in ("real", "bogus"):
        services.classification_create(
            volunteer=volunteer, workflow_id=workflow.pk, subject_id=subject_ids[0],
            answer=answer, client_id=uuid.uuid4(), store_repeats=True,
        )
    repeat = Classification.objects.get(answer="bogus")
    assert (repeat.counted, repeat.not_counted_reason) == (False, NotCounted.REPEAT)
    assert status_of(workflow, subject_ids[0]).n_counted == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"subject": 1, "answer": "real", "client_id": str(uuid.uuid4())}, "workflow"),
        ({"workflow": 1, "subject": 1, "answer": "maybe", "client_id": str(uuid.uuid4())},
         "answer"),
        ({"workflow": 1, "subject": 1, "answer": "real", "client_id": "not-a-uuid"},
         "client_id"),
        ({"workflow": "x", "subject": 1, "answer": "real", "client_id": str(uuid.uuid4())},
         "workflow"),
    ],
)
def test_invalid_payloads_get_400_naming_the_field(workflow, volunteers, payload, field):
    response = volunteers[0].post("/api/classifications/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert Classification.objects.count() == 0


def test_malformed_json_gets_a_json_400(workflow, volunteers):
    response = volunteers[0].post(
        "/api/classifications/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "parse_error"


def test_unknown_subject_or_workflow_gets_404_and_changes_nothing(
    workflow, subject_ids, volunteers
):
    assert classify(volunteers[0], workflow.pk, 999_999).status_code == 404
    assert classify(volunteers[0], 999_999, subject_ids[0]).status_code == 404
    assert Classification.objects.count() == 0


def test_oversized_body_is_refused(workflow, volunteers, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = volunteers[0].post(
        "/api/classifications/", {"padding": "x" * 4096}, format="json"
    )
    assert response.status_code in (400, 413)
    assert Classification.objects.count() == 0


def test_anonymous_volunteers_classify_with_their_session_and_need_csrf(workflow, subject_ids):
    client = APIClient(enforce_csrf_checks=True)
    queue = client.get(f"/api/workflows/{workflow.pk}/queue/?n=1")
    assert queue.status_code == 200
    without_token = classify(client, workflow.pk, subject_ids[0])
    assert without_token.status_code == 403
    client.credentials(HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert classify(client, workflow.pk, subject_ids[0]).status_code == 201
    # The same browser session is the same volunteer.
    assert classify(client, workflow.pk, subject_ids[0]).status_code == 409
