"""The live run: every answer SWAP reads updates it inside the answer's own transaction."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction

from aggregation import services
from aggregation.models import AggregationRun, SubjectPosterior, VolunteerSkill
from labeling import services as labeling_services
from labeling.models import Classification, SubjectWorkflowStatus, Volunteer

pytestmark = pytest.mark.django_db


def _live(crowd) -> AggregationRun:
    run = services.run_create(workflow=crowd.workflow, reference_sets=[crowd.reference],
                              mode="online")
    return services.run_execute(run.pk)


def _fresh_replay(crowd) -> AggregationRun:
    return _live(crowd)


def _state(run):
    posteriors = {
        p.subject_id: (round(p.p_real, 12), [round(x, 12) for x in p.trajectory], p.n_counted,
                       p.label, p.stable)
        for p in SubjectPosterior.objects.filter(run=run)
    }
    skills = {
        k.volunteer_id: (k.n_real_seen, k.n_real_correct, k.n_bogus_seen, k.n_bogus_correct,
                         k.n_classifications, k.contributes)
        for k in VolunteerSkill.objects.filter(run=run)
    }
    return posteriors, skills


def test_an_online_run_goes_live_when_built_and_replaces_the_old_one(crowd):
    first = _live(crowd)
    assert first.live
    assert first.replayed_through == Classification.objects.latest("pk").pk
    second = _live(crowd)
    first.refresh_from_db()
    assert (first.live, second.live) == (False, True)


def test_the_live_run_kept_answer_by_answer_equals_a_fresh_replay(crowd):
    live = _live(crowd)
    newcomer = Volunteer.objects.create(external_name="newcomer")
    for i, subject_id in enumerate(crowd.subject_ids):
        crowd.answer(newcomer, subject_id, "real" if i % 3 else "bogus")
    fresh = _fresh_replay(crowd)
    assert _state(live) == _state(fresh)
    assert VolunteerSkill.objects.get(run=live, volunteer=newcomer).n_classifications == len(
        crowd.subject_ids)


def test_late_answers_move_the_live_posterior(crowd):
    live = _live(crowd)
    retired = crowd.subject_ids[9]
    SubjectWorkflowStatus.objects.filter(subject_id=retired).update(retired=True)
    before = SubjectPosterior.objects.get(run=live, subject_id=retired)
    late = crowd.answer(Volunteer.objects.create(external_name="late"), retired, "real")
    assert not late.classification.counted
    after = SubjectPosterior.objects.get(run=live, subject_id=retired)
    assert after.n_counted == before.n_counted + 1


def test_repeats_and_answers_outside_the_live_path_leave_the_live_run_alone(crowd):
    live = _live(crowd)
    volunteer = crowd.volunteers[1]
    before = _state(live)
    labeling_services.classification_create(
        volunteer=volunteer, workflow_id=crowd.workflow.pk, subject_id=crowd.subject_ids[0],
        answer="real", client_id=uuid.uuid4(), store_repeats=True,
    )
    assert _state(live) == before


def test_an_answer_rolled_back_leaves_no_trace_in_the_live_run(crowd):
    live = _live(crowd)
    before = _state(live)
    newcomer = Volunteer.objects.create(external_name="newcomer")

    class Abort(Exception):
        pass

    def answer_then_fail():
        with transaction.atomic():
            crowd.answer(newcomer, crowd.subject_ids[7], "real")
            raise Abort

    with pytest.raises(Abort):
        answer_then_fail()
    assert _state(live) == before
    assert not Classification.objects.filter(volunteer=newcomer).exists()


def test_answers_stored_while_a_rebuild_computes_are_caught_up_once(crowd, monkeypatch):
    """The rebuild's replay reads up to its mark; answers stored after the mark (while the
    batch core computes) reach the new run through the catch-up, exactly once."""
    old = _live(crowd)
    newcomer = Volunteer.objects.create(external_name="during")
    compute = services._compute

    def compute_then_answer(run, on_progress):
        wrote = compute(run, on_progress)
        for subject_id in crowd.subject_ids[6:10]:
            crowd.answer(newcomer, subject_id, "bogus")
        return wrote

    monkeypatch.setattr(services, "_compute", compute_then_answer)
    rebuilt = services.run_execute(services.live_rebuild(crowd.workflow).pk)
    monkeypatch.undo()
    rebuilt.refresh_from_db()
    assert rebuilt.live
    assert rebuilt.replayed_through == Classification.objects.latest("pk").pk
    # The old live run took the answers live too; the new one holds each exactly once.
    assert _state(rebuilt) == _state(_fresh_replay(crowd)) == _state(old)


def test_a_reference_label_change_rebuilds_the_live_run(crowd, django_capture_on_commit_callbacks,
                                                       eager_celery):
    live = _live(crowd)
    subject_id = crowd.subject_ids[8]
    with django_capture_on_commit_callbacks(execute=True):
        labeling_services.reference_label_write(
            reference_set=crowd.reference, subject=labeling_services.Subject.objects.get(
                pk=subject_id), label="real",
        )
    rebuilt = AggregationRun.objects.get(workflow=crowd.workflow, live=True)
    assert rebuilt.pk != live.pk
    assert rebuilt.triggered_by == "reference labels"
    assert _state(rebuilt) != _state(live)
    assert _state(rebuilt) == _state(_fresh_replay(crowd))


@pytest.mark.parametrize("mode", ["batch", "online", "em"])
def test_tutorial_subjects_calibrate_nobody(crowd, mode):
    examples = crowd.subject_ids[:2]  # reference subjects 0 (Real) and 1 (Bogus)
    for subject_id, label in zip(examples, ["real", "bogus"], strict=True):
        labeling_services.reference_label_write(
            reference_set=crowd.reference, subject=labeling_services.Subject.objects.get(
                pk=subject_id), label=label, explanation="shown in the tutorial",
        )
    run = services.run_execute(services.run_create(
        workflow=crowd.workflow, reference_sets=[crowd.reference], mode=mode).pk)
    always_right = VolunteerSkill.objects.get(run=run, volunteer=crowd.volunteers[0])
    # Six reference subjects, three of each label; the tutorial shows one of each.
    assert (always_right.n_real_seen, always_right.n_bogus_seen) == (2, 2)
    assert run.n_reference_subjects == 4
    if mode == "online":
        newcomer = Volunteer.objects.create(external_name="newcomer")
        crowd.answer(newcomer, examples[0], "real")
        skill = VolunteerSkill.objects.get(run=run, volunteer=newcomer)
        assert (skill.n_real_seen, skill.n_classifications) == (0, 1)


@pytest.mark.parametrize("mode", ["batch", "em", "online"])
def test_every_mode_reads_answers_that_arrived_after_retirement(crowd, mode):
    retired = crowd.subject_ids[9]
    SubjectWorkflowStatus.objects.filter(subject_id=retired).update(retired=True)
    late = crowd.answer(Volunteer.objects.create(external_name="late"), retired, "real")
    assert late.classification.not_counted_reason == "retired"
    run = services.run_execute(services.run_create(
        workflow=crowd.workflow, reference_sets=[crowd.reference], mode=mode).pk)
    assert run.n_classifications == Classification.objects.count()
    assert SubjectPosterior.objects.get(run=run, subject_id=retired).n_counted == len(
        crowd.volunteers) + 1


def test_a_run_computed_but_not_swapped_in_goes_live_when_its_task_runs_again(crowd,
                                                                             monkeypatch):
    old = _live(crowd)
    monkeypatch.setattr(services, "_go_live", lambda run: None)  # the worker dies here
    rebuilt = services.run_execute(services.live_rebuild(crowd.workflow).pk)
    monkeypatch.undo()
    crowd.answer(Volunteer.objects.create(external_name="meanwhile"), crowd.subject_ids[3],
                 "real")
    assert (rebuilt.status, rebuilt.live) == ("done", False)
    services.run_execute(rebuilt.pk)  # the task, delivered again
    rebuilt.refresh_from_db()
    old.refresh_from_db()
    assert (old.live, rebuilt.live) == (False, True)
    assert _state(rebuilt) == _state(_fresh_replay(crowd))
    # An older run delivered again never displaces a newer live one.
    services.run_execute(old.pk)
    old.refresh_from_db()
    assert not old.live


def test_label_changes_before_a_rebuild_starts_share_one_rebuild(crowd):
    _live(crowd)
    first = services.live_rebuild(crowd.workflow)
    assert services.live_rebuild(crowd.workflow).pk == first.pk
