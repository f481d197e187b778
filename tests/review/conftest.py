"""A workflow with crafted votes, a reference set per team, and the review API's users."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from labeling import services
from labeling.models import ReferenceSet, Subject, Workflow
from tests.conftest import add_subjects, token_client


@dataclass
class Review:
    workflow: Workflow
    subject_ids: list[int]
    rubin: ReferenceSet
    oxford: ReferenceSet

    def vote(self, subject_id: int, answers: str) -> None:
        """One counted vote per letter, r or b, each by a new volunteer."""
        for answer in answers:
            services.classification_create(
                volunteer=services.volunteer_for_external_name(f"v-{uuid.uuid4()}"),
                workflow_id=self.workflow.pk, subject_id=subject_id,
                answer={"r": "real", "b": "bogus"}[answer], client_id=uuid.uuid4(),
            )

    def queue_url(self, name: str, **params) -> str:
        query = "&".join(f"{key}={value}" for key, value in params.items())
        return f"/api/review/{self.workflow.pk}/queue/{name}/?{query}"


@pytest.fixture
def review(workflow) -> Review:
    # No retirement: every vote counts.
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save()
    ids = add_subjects(workflow, 6)
    rubin = services.reference_set_get_or_create(
        name="rubin", team=services.expert_team_get_or_create("rubin"))
    oxford = services.reference_set_get_or_create(
        name="oxford", team=services.expert_team_get_or_create("oxford"))
    return Review(workflow, ids, rubin, oxford)


@pytest.fixture
def expert(make_user):
    return make_user("expert", team="rubin")


@pytest.fixture
def api(expert):
    return token_client(expert)


def set_origin(subject_ids: list[int], origin: str) -> None:
    Subject.objects.filter(pk__in=subject_ids).update(origin=origin)
