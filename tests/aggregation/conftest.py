"""A small workflow with a reference set and volunteers' answers, built through the services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from labeling import services
from labeling.models import ReferenceSet, Volunteer, Workflow
from tests.conftest import add_subjects


@dataclass
class Crowd:
    workflow: Workflow
    subject_ids: list[int]
    reference: ReferenceSet
    volunteers: list[Volunteer]

    def answer(self, volunteer: Volunteer, subject_id: int, answer: str, *, at=None):
        return services.classification_create(
            volunteer=volunteer, workflow_id=self.workflow.pk, subject_id=subject_id,
            answer=answer, client_id=uuid.uuid4(), created_at=at,
        )


def build_crowd(workflow: Workflow, *, n_subjects=16, n_volunteers=5, seed=3) -> Crowd:
    """Subjects 0-5 are reference (even ids Real, odd Bogus); each volunteer answers every
    subject in a seeded random order, the first volunteer always right, the last always
    'real', the others right 70% of the time."""
    subject_ids = add_subjects(workflow, n_subjects, seed=seed)
    team = services.expert_team_get_or_create("rubin")
    reference = services.reference_set_get_or_create(name="rubin", team=team)
    truth = {s: ("real" if i % 2 == 0 else "bogus") for i, s in enumerate(subject_ids)}
    services.reference_labels_bulk_create(reference, [(s, truth[s]) for s in subject_ids[:6]])
    volunteers = [services.volunteer_for_external_name(f"crowd-{i}") for i in range(n_volunteers)]
    crowd = Crowd(workflow, subject_ids, reference, volunteers)
    rng = np.random.default_rng(seed)
    start = timezone.now() - timedelta(days=1)
    for tick, order in enumerate(rng.permutation(n_subjects * n_volunteers), 1):
        subject_id = subject_ids[order % n_subjects]
        v = order // n_subjects
        right = truth[subject_id]
        wrong = "bogus" if right == "real" else "real"
        if v == 0:
            answer = right
        elif v == n_volunteers - 1:
            answer = "real"
        else:
            answer = right if rng.random() < 0.7 else wrong
        crowd.answer(volunteers[v], subject_id, answer, at=start + timedelta(seconds=tick))
    return crowd


@pytest.fixture
def crowd(workflow) -> Crowd:
    # No retirement during the build: every volunteer answers every subject.
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save()
    return build_crowd(workflow)
