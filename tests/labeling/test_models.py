"""Constraints the database and model validation hold, whoever writes."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from labeling.models import Classification, Volunteer, Workflow

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("schedule", [[[20, 0.4]], [[20, 2.0], [None, 0.1]], "often"])
def test_a_workflow_with_an_invalid_gold_schedule_does_not_validate(workflow, schedule):
    workflow.gold_schedule = schedule
    with pytest.raises(ValidationError, match="gold schedule"):
        workflow.full_clean()


def test_retire_max_below_retire_agree_is_refused_by_the_database(workflow):
    with pytest.raises(IntegrityError):
        Workflow.objects.filter(pk=workflow.pk).update(retire_agree=5, retire_max=3)


def test_a_volunteer_needs_an_identity(db):
    with pytest.raises(IntegrityError):
        Volunteer.objects.create()


def test_a_not_counted_classification_must_say_why(workflow, subject_ids):
    volunteer = Volunteer.objects.create(external_name="x")
    with pytest.raises(IntegrityError):
        Classification.objects.create(volunteer=volunteer, subject_id=subject_ids[0],
                                      workflow=workflow, answer="real", counted=False)
