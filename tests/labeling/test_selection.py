"""GET /api/workflows/{id}/queue/: what a volunteer is shown next."""

import random
import uuid
from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling import selectors, services
from labeling.models import Classification, SubjectWorkflowStatus, Volunteer
from tests.conftest import add_subjects, classify, token_client
from tests.fixtures import zooniverse as zoo

pytestmark = pytest.mark.django_db


def queue(client, workflow, **params):
    query = "&".join(f"{key}={value}" for key, value in params.items())
    response = client.get(f"/api/workflows/{workflow.pk}/queue/?{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_queue_never_offers_a_subject_the_volunteer_classified(workflow, make_user):
    ids = add_subjects(workflow, 30)
    client = token_client(make_user("v"))
    seen = set()
    for _ in range(30):
        body = queue(client, workflow, n=1)
        if body["finished"]:
            break
        (subject,) = body["subjects"]
        assert subject["id"] not in seen
        seen.add(subject["id"])
        assert classify(client, workflow.pk, subject["id"], "bogus").status_code == 201
    assert seen == set(ids)
    assert queue(client, workflow, n=5) == {"finished": True, "n_classified": 30, "subjects": []}


def test_queue_never_offers_a_retired_subject(workflow, make_user):
    ids = add_subjects(workflow, 10)
    retired = set(ids[:7])
    SubjectWorkflowStatus.objects.filter(subject_id__in=retired).update(retired=True)
    client = token_client(make_user("v"))
    offered = {s["id"] for _ in range(20) for s in queue(client, workflow, n=10)["subjects"]}
    assert offered == set(ids) - retired


def test_an_inactive_workflow_offers_nothing(workflow, subject_ids, make_user):
    workflow.active = False
    workflow.save()
    body = queue(token_client(make_user("v")), workflow, n=5)
    assert body["finished"] is True
    assert body["subjects"] == []


def test_volunteers_see_ids_and_images_only(workflow, subject_ids, make_user):
    body = queue(token_client(make_user("v")), workflow, n=3)
    assert len(body["subjects"]) == 3
    for subject in body["subjects"]:
        assert set(subject) == {"id", "images", "token"}
        assert set(subject["images"]) == {"template", "science", "difference"}


def test_exclude_skips_what_the_client_already_holds(workflow, make_user):
    ids = add_subjects(workflow, 6)
    client = token_client(make_user("v"))
    held = ids[:4]
    body = queue(client, workflow, n=6, exclude=",".join(map(str, held)))
    assert {s["id"] for s in body["subjects"]} == set(ids[4:])


@pytest.mark.parametrize("params", ["n=0", "n=51", "n=abc", "exclude=1,x"])
def test_bad_queue_parameters_get_400(workflow, subject_ids, make_user, params):
    response = token_client(make_user("v")).get(f"/api/workflows/{workflow.pk}/queue/?{params}")
    assert response.status_code == 400


def test_unknown_workflow_gets_404(db, make_user):
    response = token_client(make_user("v")).get("/api/workflows/424242/queue/")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_higher_priority_subjects_come_first(workflow, make_user):
    ids = add_subjects(workflow, 20)
    SubjectWorkflowStatus.objects.filter(subject_id__in=ids[:3]).update(priority=5.0)
    body = queue(token_client(make_user("v")), workflow, n=3)
    assert {s["id"] for s in body["subjects"]} == set(ids[:3])


@pytest.mark.parametrize("seed", range(5))
def test_a_short_priority_level_is_topped_up_from_the_next_one_down(workflow, seed):
    ids = add_subjects(workflow, 20)
    SubjectWorkflowStatus.objects.filter(subject_id__in=ids[:3]).update(priority=5.0)
    SubjectWorkflowStatus.objects.filter(subject_id__in=ids[3:6]).update(priority=2.0)
    volunteer = services.volunteer_for_external_name("v")
    drawn = selectors.subject_queue(volunteer=volunteer, workflow=workflow, n=8,
                                    rng=random.Random(seed)).subject_ids
    assert len(drawn) == len(set(drawn)) == 8
    assert set(ids[:6]) <= set(drawn)


def gold_fraction(workflow, volunteer, reference_ids, draws=400):
    rng = random.Random(7)
    hits = total = 0
    for _ in range(draws):
        result = selectors.subject_queue(volunteer=volunteer, workflow=workflow, n=1, rng=rng)
        total += len(result.subject_ids)
        hits += sum(pk in reference_ids for pk in result.subject_ids)
    return hits / total


def test_reference_subjects_are_injected_at_the_scheduled_rate(workflow):
    ids = add_subjects(workflow, 200)
    team = services.expert_team_get_or_create("rubin")
    reference_set = services.reference_set_get_or_create(name="rubin", team=team)
    reference_ids = set(ids[:100])
    services.reference_labels_bulk_create(reference_set, [(pk, "real") for pk in reference_ids])
    newcomer = services.volunteer_for_external_name("newcomer")
    # Half the pool is gold, yet a newcomer gets it at the 40% rate of the schedule...
    assert gold_fraction(workflow, newcomer, reference_ids) == pytest.approx(0.40, abs=0.07)
    # ...a volunteer with 60 classifications at 10%...
    veteran = services.volunteer_for_external_name("veteran")
    for pk in ids[100:160]:
        services.classification_create(volunteer=veteran, workflow_id=workflow.pk, subject_id=pk,
                                       answer="real", client_id=uuid.uuid4())
    assert gold_fraction(workflow, veteran, reference_ids) == pytest.approx(0.10, abs=0.05)
    workflow.gold_schedule = [[None, 0.0]]
    workflow.save()
    # ...and a workflow that turns injection off never shows gold.
    assert gold_fraction(workflow, newcomer, reference_ids) == 0.0


@pytest.mark.parametrize(("random_key", "statements"), [(1.0, 3), (0.0, 4)])
def test_one_queue_request_is_two_statements_after_authentication(
    workflow, make_user, random_key, statements
):
    """The workflow with the volunteer's id and count, then one draw of science and gold
    together; the token lookup is authentication's. No count of the volunteer's answers.
    A draw wraps round (one statement more) only when the scan up from its random start
    falls short: never with every key at 1.0, always with every key at 0.0."""
    ids = add_subjects(workflow, 40)
    team = services.expert_team_get_or_create("rubin")
    reference_set = services.reference_set_get_or_create(name="rubin", team=team)
    services.reference_labels_bulk_create(reference_set, [(pk, "real") for pk in ids[:20]])
    client = token_client(make_user("v"))
    for subject in queue(client, workflow, n=5)["subjects"]:
        assert classify(client, workflow.pk, subject["id"], "real").status_code == 201
    SubjectWorkflowStatus.objects.update(random_key=random_key)
    for _ in range(5):
        with CaptureQueriesContext(connection) as captured:
            body = queue(client, workflow, n=10)
        assert len(body["subjects"]) == 10
        assert body["n_classified"] == 5
        assert len(captured) == statements, [query["sql"] for query in captured]


@pytest.mark.parametrize("n_answers", [0, 1, 7])
def test_the_queue_reads_the_count_of_every_stored_answer(workflow, make_user, n_answers):
    ids = add_subjects(workflow, 10)
    user = make_user("v")
    client = token_client(user)
    for pk in ids[:n_answers]:
        assert classify(client, workflow.pk, pk, "bogus").status_code == 201
    assert classify(client, workflow.pk, ids[0], "real").status_code == (409 if n_answers else 201)
    stored = Classification.objects.filter(volunteer__user=user, workflow=workflow).count()
    assert queue(client, workflow, n=1)["n_classified"] == stored == max(n_answers, 1)


@pytest.mark.parametrize("row_by_row", [False, True])
def test_an_import_counts_every_answer_it_stores(workflow, tmp_path, row_by_row):
    """Imports write answers in bulk, or row by row with repeats stored: every stored answer
    is in its volunteer's count, as the queue's gold schedule reads it."""
    alice, bob = zoo.logged_in("alice", 101), zoo.logged_in("bob", 202)
    path = zoo.write_export(tmp_path / "export.csv", [
        zoo.row(1, 11, "Real", minute=1, **alice), zoo.row(2, 12, "Bogus", minute=2, **alice),
        zoo.row(3, 11, "Bogus", minute=3, **alice), zoo.row(4, 11, "Real", minute=4, **bob),
    ])
    call_command("import_zooniverse", str(path), workflow=workflow.slug, stdout=StringIO(),
                 stderr=StringIO(), row_by_row=row_by_row)
    stored = Counter(Classification.objects.filter(workflow=workflow)
                     .values_list("volunteer_id", flat=True))
    assert sorted(stored.values()) == [1, 3]
    for volunteer_id, n_stored in stored.items():
        volunteer = Volunteer.objects.get(pk=volunteer_id)
        assert selectors.subject_queue(volunteer=volunteer, workflow=workflow,
                                       n=1).n_classified == n_stored
