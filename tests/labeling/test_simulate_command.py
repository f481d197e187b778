"""`manage.py simulate subjects`, `manage.py simulate volunteers` and `manage.py demo_setup`:
synthetic data through the real ingest service, with a seeded reference set of true labels,
classified by simulated volunteers through the real selection and retirement."""

from collections import Counter
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from aggregation.models import AggregationRun, LabelSet
from labeling import services
from labeling.models import (
    Classification,
    ReferenceLabel,
    Subject,
    SubjectWorkflowStatus,
    Volunteer,
    Workflow,
)
from simulation.triplets import KIND_EXPLANATION
from tests.conftest import add_subjects
from training.models import ModelVersion

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
    # Each label explains itself to volunteers by what the simulator drew.
    assert all(
        label.explanation == KIND_EXPLANATION[label.subject.metadata["sim_kind"]]
        for label in labels
    )


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
    call_command("demo_setup", n=150, stdout=out, stderr=StringIO())
    call_command("demo_setup", n=150, stdout=StringIO(), stderr=StringIO())
    assert Workflow.objects.filter(slug="demo").count() == 1
    assert Subject.objects.count() == 150
    assert ReferenceLabel.objects.exists()
    expert = django_user_model.objects.get(username="expert")
    assert expert.groups.filter(expert_team__name="sim-experts").exists()
    assert django_user_model.objects.get(username="admin").is_staff
    assert "demo ready" in out.getvalue()
    # Simulated volunteers answered, were aggregated once, exported once and trained on once.
    assert Classification.objects.filter(workflow__slug="demo").exists()
    run = AggregationRun.objects.get(workflow__slug="demo")
    assert run.status == AggregationRun.Status.DONE
    label_set = LabelSet.objects.get()
    assert label_set.run == run
    assert ModelVersion.objects.get().label_set == label_set


# --- simulate volunteers -------------------------------------------------------------------


def simulate_volunteers(**options) -> str:
    out = StringIO()
    call_command("simulate", "volunteers", stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def test_simulated_volunteers_exhaust_the_workflow_through_the_real_rules(workflow):
    simulate(n=40, seed=3, workflow="wf", reference_fraction=0.2)
    out = simulate_volunteers(workflow="wf", n=15, seed=3)

    reference_ids = set(ReferenceLabel.objects.values_list("subject_id", flat=True))
    assert reference_ids
    statuses = SubjectWorkflowStatus.objects.filter(workflow=workflow)
    science = statuses.exclude(subject_id__in=reference_ids)
    # Exhausted: every non-reference subject retired; reference subjects never retire.
    assert science.count() == 40 - len(reference_ids)
    assert not science.filter(retired=False).exists()
    assert not statuses.filter(subject_id__in=reference_ids, retired=True).exists()
    assert f"retired {science.count()}/{science.count()} subjects" in out
    assert "exhausted" in out

    classifications = Classification.objects.filter(workflow=workflow)
    made = classifications.count()
    assert f"{made} classifications" in out
    # Nobody saw a subject twice, and only the simulated volunteers classified.
    pairs = list(classifications.values_list("volunteer_id", "subject_id"))
    assert len(pairs) == len(set(pairs))
    names = set(classifications.values_list("volunteer__external_name", flat=True))
    assert names <= {f"sim-3-{i}" for i in range(15)}
    # Gold injection: reference subjects were served and answered.
    assert classifications.filter(subject_id__in=reference_ids).exists()

    # The retirement rule held: the first two counted answers agreed, or seven were counted.
    for status in science:
        answers = list(
            classifications.filter(subject_id=status.subject_id, counted=True)
            .order_by("created_at", "pk").values_list("answer", flat=True)
        )
        assert len(answers) == status.n_counted
        assert (len(answers) == 2 and answers[0] == answers[1]) or len(answers) == 7, answers
        assert not classifications.filter(subject_id=status.subject_id, counted=False).exists()


def test_the_summary_reports_activity_and_types(workflow):
    simulate(n=40, seed=3, workflow="wf", reference_fraction=0.2)
    out = simulate_volunteers(workflow="wf", n=15, seed=3)
    per_volunteer = Counter(
        Classification.objects.values_list("volunteer__external_name", flat=True)
    )
    assert f"by {len(per_volunteer)} volunteers" in out
    assert f"max {max(per_volunteer.values())}" in out
    for name in ("competent", "near_random", "optimistic", "pessimistic"):
        assert name in out


def test_a_rerun_with_the_same_seed_reuses_the_volunteers(workflow):
    simulate(n=40, seed=3, workflow="wf", reference_fraction=0.2)
    simulate_volunteers(workflow="wf", n=15, seed=3)
    first = set(Volunteer.objects.values_list("pk", "external_name"))
    assert len(first) == 15

    # Nothing left here: the same volunteers come back and find nothing to do.
    again = simulate_volunteers(workflow="wf", n=15, seed=3)
    assert "0 classifications" in again
    # On a second workflow they classify again, under the same identities.
    services.workflow_create(slug="wf2", project_name="Second project")
    simulate(n=20, seed=4, workflow="wf2", reference_fraction=0.2)
    simulate_volunteers(workflow="wf2", n=15, seed=3)
    assert set(Volunteer.objects.values_list("pk", "external_name")) == first
    assert Classification.objects.filter(workflow__slug="wf2").exists()
    # Another seed is another population.
    simulate_volunteers(workflow="wf2", n=2, seed=9)
    assert Volunteer.objects.filter(external_name__startswith="sim-9-").count() == 2


def test_max_classifications_stops_the_run(workflow):
    simulate(n=40, seed=3, workflow="wf")
    out = simulate_volunteers(workflow="wf", n=15, seed=3, max_classifications=7, batch=5)
    assert Classification.objects.count() == 7
    assert "--max-classifications" in out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workflow": "nope", "n": 5}, "no workflow 'nope'"),
        ({"workflow": "wf", "n": 0}, "--n must be at least 1"),
        ({"workflow": "wf", "n": 5, "seed": -1}, "--seed"),
        ({"workflow": "wf", "n": 5, "batch": 0}, "--batch"),
        ({"workflow": "wf", "n": 5, "batch": 51}, "--batch"),
        ({"workflow": "wf", "n": 5, "max_classifications": 0}, "--max-classifications"),
    ],
)
def test_bad_volunteer_options_are_clear_errors(workflow, options, message):
    simulate(n=10, seed=1, workflow="wf")
    with pytest.raises(CommandError, match=message):
        simulate_volunteers(**options)
    assert not Volunteer.objects.exists()
    assert not Classification.objects.exists()


def test_a_workflow_without_subjects_is_a_clear_error(workflow):
    with pytest.raises(CommandError, match="has no subjects"):
        simulate_volunteers(workflow="wf", n=5)
    assert not Volunteer.objects.exists()


def test_subjects_without_simulated_truth_are_a_clear_error(workflow):
    add_subjects(workflow, 3)
    with pytest.raises(CommandError, match="no simulated truth"):
        simulate_volunteers(workflow="wf", n=5)
    assert not Volunteer.objects.exists()
    assert not Classification.objects.exists()


def test_an_inactive_workflow_is_a_clear_error(workflow):
    simulate(n=5, seed=1, workflow="wf")
    Workflow.objects.filter(pk=workflow.pk).update(active=False)
    with pytest.raises(CommandError, match="not active"):
        simulate_volunteers(workflow="wf", n=5)
