"""Hostile requests get a clear 4xx, never a 500: JSON nested deeper than the stack allows, and
the image of a subject imported without stamps."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from labeling.api.parsers import MAX_JSON_DEPTH, json_depth
from labeling.models import Subject, SubjectSet
from tests.conftest import served_token


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _answer_with_extra(client: APIClient, workflow_id: int, subject_id: int,
                       extra: str) -> str:
    """A valid answer's JSON (served to `client`) with one more (ignored) key holding `extra`
    verbatim."""
    token = served_token(client, workflow_id, subject_id)
    return (f'{{"workflow": {workflow_id}, "subject": {subject_id}, "answer": "real", '
            f'"client_id": "{uuid.uuid4()}", "token": "{token}", "x": {extra}}}')


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 100_000])
def test_deeply_nested_json_is_a_400_that_says_why(workflow, subject_ids, depth):
    client = APIClient()
    body = _answer_with_extra(client, workflow.pk, subject_ids[0], _nested(depth))
    response = client.post("/api/classifications/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "parse_error"
    assert "nested deeper than" in response.json()["detail"]


@pytest.mark.django_db
def test_json_nested_within_the_bound_is_parsed(workflow, subject_ids):
    client = APIClient()
    body = _answer_with_extra(client, workflow.pk, subject_ids[0], _nested(MAX_JSON_DEPTH - 1))
    response = client.post("/api/classifications/", body, content_type="application/json")
    assert response.status_code == 201  # unknown keys are ignored, as before


def _depth_recursive(value) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth_recursive(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth_recursive(v) for v in value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=30,
)


@given(json_values)
def test_json_depth_is_the_recursive_definition(value):
    assert json_depth(value) == _depth_recursive(value)


@pytest.mark.django_db
def test_the_image_of_a_subject_without_stamps_is_a_404(workflow):
    subject_set = SubjectSet.objects.create(project=workflow.project, name="imported")
    subject = Subject.objects.create(project=workflow.project, subject_set=subject_set,
                                     external_id="zooniverse-1", stamp_size=0,
                                     original_shapes=[])
    response = APIClient().get(f"/api/subjects/{subject.pk}/images/difference.png")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found",
                               "detail": f"subject {subject.pk} has no stamps"}
