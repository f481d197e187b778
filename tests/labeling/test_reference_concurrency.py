"""Experts writing one reference label at the same moment, on PostgreSQL's row locks: every
change is recorded, in an order where each change starts from the label the previous one left.

SQLite serialises writers and ignores select_for_update, so these run only on PostgreSQL.
"""

import itertools

import pytest

from labeling import services
from labeling.models import ReferenceLabel, ReferenceLabelChange, Subject
from tests.conftest import add_subjects
from tests.labeling.test_concurrency import run_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def setup(django_user_model):
    workflow = services.workflow_create(slug="race-ref", project_name="race")
    subject = Subject.objects.get(pk=add_subjects(workflow, 1)[0])
    team = services.expert_team_get_or_create("rubin")
    reference_set = services.reference_set_get_or_create(name="rubin", team=team)
    experts = []
    for i in range(8):
        expert = django_user_model.objects.create_user(f"expert-{i}")
        expert.groups.add(team.group)
        experts.append(expert)
    return reference_set, subject, experts


def _write(reference_set, subject, expert, label):
    return lambda: services.reference_label_write(
        reference_set=reference_set, subject=subject, label=label, expert=expert,
        source="review",
    ).outcome


def _assert_history_is_a_chain(reference_set, subject):
    changes = list(ReferenceLabelChange.objects.filter(reference_set=reference_set,
                                                       subject=subject).order_by("pk"))
    assert changes[0].old_label == ""
    for before, after in itertools.pairwise(changes):
        assert after.old_label == before.new_label
        assert after.old_label != after.new_label
    current = ReferenceLabel.objects.get(reference_set=reference_set, subject=subject)
    assert current.label == changes[-1].new_label
    return changes


def test_experts_creating_one_label_at_once_create_it_once(setup):
    reference_set, subject, experts = setup
    labels = ["real", "bogus"] * 4
    outcomes, errors = run_at_once([_write(reference_set, subject, e, label)
                                    for e, label in zip(experts, labels, strict=True)])
    assert errors == []
    assert outcomes.count("created") == 1
    changes = _assert_history_is_a_chain(reference_set, subject)
    assert len(changes) == 1 + outcomes.count("changed")


def test_experts_changing_one_label_at_once_are_all_recorded_in_order(setup):
    reference_set, subject, experts = setup
    _write(reference_set, subject, experts[0], "unsure")()
    labels = ["real", "bogus"] * 4
    outcomes, errors = run_at_once([_write(reference_set, subject, e, label)
                                    for e, label in zip(experts, labels, strict=True)])
    assert errors == []
    changes = _assert_history_is_a_chain(reference_set, subject)
    assert len(changes) == 1 + outcomes.count("changed")
    assert outcomes.count("changed") >= 1
    assert "created" not in outcomes
