"""`manage.py simulate subjects` and `manage.py demo_setup`: synthetic data through the real
ingest service, with a seeded reference set of true labels."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from labeling.models import ReferenceLabel, Subject, SubjectWorkflowStatus, Workflow

pytestmark = pytest.mark.django_db


def simulate(**options) -> str:
    out = StringIO()
    call_command("simulate", "subjects", stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def test_simulated_subjects_carry_truth_and_seed_the_reference_set(workflow):
    out = simulate(n=150, seed=3, workflow="wf", reference_fraction=0.2)
    subjects = Subject.objects.all()
    assert subjects.count() == 150
    assert "ingested 150" in out
    assert SubjectWorkflowStatus.objects.filter(workflow=workflow).count() == 150
    labels = ReferenceLabel.objects.select_related("subject", "reference_set")
    assert {label.reference_set.name for label in labels} == {"sim-experts"}
    # The reference labels are the simulator's truth, on about the asked-for fraction.
    assert all(label.label == label.subject.metadata["sim_truth"] for label in labels)
    assert 15 <= labels.count() <= 45
    assert {s.metadata["sim_truth"] for s in subjects} == {"real", "bogus"}


def test_the_same_seed_gives_the_same_reference_subjects(workflow):
    simulate(n=60, seed=5, workflow="wf", reference_fraction=0.3, subject_set="a")
    first = set(ReferenceLabel.objects.values_list("subject__external_id", flat=True))
    ReferenceLabel.objects.all().delete()
    Subject.objects.all().delete()
    simulate(n=60, seed=5, workflow="wf", reference_fraction=0.3, subject_set="b")
    assert set(ReferenceLabel.objects.values_list("subject__external_id", flat=True)) == first


@pytest.mark.parametrize(
    ("options", "message"),
    [({"n": 0, "workflow": "wf"}, "--n"), ({"n": 5, "workflow": "nope"}, "no workflow"),
     ({"n": 5, "workflow": "wf", "reference_fraction": 1.5}, "reference-fraction")],
)
def test_bad_options_are_clear_errors(workflow, options, message):
    with pytest.raises(CommandError, match=message):
        simulate(**options)
    assert Subject.objects.count() == 0


def test_demo_setup_is_idempotent_and_creates_every_role(db, django_user_model):
    out = StringIO()
    call_command("demo_setup", n=40, stdout=out, stderr=StringIO())
    call_command("demo_setup", n=40, stdout=StringIO(), stderr=StringIO())
    assert Workflow.objects.filter(slug="demo").count() == 1
    assert Subject.objects.count() == 40
    assert ReferenceLabel.objects.exists()
    expert = django_user_model.objects.get(username="expert")
    assert expert.groups.filter(expert_team__name="sim-experts").exists()
    assert django_user_model.objects.get(username="admin").is_staff
    assert "demo ready" in out.getvalue()
