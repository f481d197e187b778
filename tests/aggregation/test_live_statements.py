"""What one answer costs the database with a live run: the statements of POST
/api/classifications/, counted on PostgreSQL, where the answer, the volunteer's count and the
subject's status are written in one statement, and the live step locks the posterior and the
skill in one statement and writes them in one more (`bench web` counts the same)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from aggregation import services
from aggregation.models import SubjectPosterior, VolunteerSkill
from tests.aggregation.conftest import build_crowd
from tests.conftest import classify, served_token, token_client

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# Authentication's token lookup, the volunteer, BEGIN, the volunteer's row locked (their
# answers apply one at a time), the subject's status locked (with the volunteer's count),
# earlier answers, the answer stored (with the count and the status, one statement), the live
# run, the subject's truth, the posterior and skill locked (one upsert), their new state (one
# update), COMMIT.
SCIENCE_ANSWER_STATEMENTS = 12


def _answer(client: APIClient, workflow_id: int, subject_id: int) -> list[str]:
    token = served_token(client, workflow_id, subject_id)  # outside the count: a test helper
    with CaptureQueriesContext(connection) as statements:
        response = classify(client, workflow_id, subject_id, "real", token=token)
    assert response.status_code == 201, response.content
    return [query["sql"] for query in statements]


def test_an_answer_on_a_science_subject_takes_twelve_statements(workflow, make_user):
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save()
    crowd = build_crowd(workflow, n_subjects=10, n_volunteers=2)
    run = services.run_create(workflow=workflow, reference_sets=[crowd.reference],
                              mode="online")
    live = services.run_execute(run.pk)
    client = token_client(make_user("counted"))
    _answer(client, workflow.pk, crowd.subject_ids[8])  # the first also creates the volunteer
    subject_id = crowd.subject_ids[9]
    before = SubjectPosterior.objects.get(run=live, subject_id=subject_id).n_counted
    statements = _answer(client, workflow.pk, subject_id)
    assert len(statements) == SCIENCE_ANSWER_STATEMENTS, "\n".join(statements)
    # ...and the live step did happen, through the merged statements.
    assert SubjectPosterior.objects.get(run=live, subject_id=subject_id).n_counted == before + 1
    skill = VolunteerSkill.objects.get(run=live, volunteer__user__username="counted")
    assert skill.n_classifications == 2
