"""Aggregation runs on the database: reading, computing, writing, the live run, the command."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from aggregation import selectors, services
from aggregation.models import AggregationRun, SubjectPosterior, VolunteerSkill
from aggregation.swap import BOGUS, REAL, UNKNOWN, OnlineSwap, swap_batch
from labeling import services as labeling_services
from labeling.errors import InvalidInput
from labeling.models import Classification, Subject, SubjectWorkflowStatus, Volunteer
from tests.aggregation.conftest import build_crowd
from tests.conftest import add_subjects as labeling_add_subjects

pytestmark = pytest.mark.django_db


def _run(crowd, mode="batch", **params):
    run = services.run_create(
        workflow=crowd.workflow, reference_sets=[crowd.reference], mode=mode,
        params=services.swap_params(**params),
    )
    return services.run_execute(run.pk)


def _posteriors(run) -> dict[int, SubjectPosterior]:
    return {p.subject_id: p for p in SubjectPosterior.objects.filter(run=run)}


# --- reading ---------------------------------------------------------------------------------


def test_classification_data_is_counted_answers_in_server_time_order(crowd):
    # An import of an older answer lands first in time order, whatever its id.
    late_volunteer = Volunteer.objects.create(external_name="late")
    early = timezone.now() - timedelta(days=30)
    crowd.answer(late_volunteer, crowd.subject_ids[-1], "bogus", at=early)
    data = selectors.classification_data(crowd.workflow.pk)

    counted = Classification.objects.filter(workflow=crowd.workflow, counted=True)
    assert len(data.table.subject) == counted.count()
    first = (data.subject_ids[data.table.subject[0]], data.volunteer_ids[data.table.volunteer[0]])
    assert first == (crowd.subject_ids[-1], late_volunteer.pk)
    assert not data.table.says_real[0]
    ordered = list(counted.order_by("created_at", "pk").values_list("subject_id", "answer"))
    got = list(zip(data.subject_ids[data.table.subject].tolist(),
                   np.where(data.table.says_real, "real", "bogus").tolist(), strict=True))
    assert got == ordered


def test_classification_data_reads_late_answers_but_not_repeats_or_experts_on_reference(
    crowd, make_user
):
    late = Volunteer.objects.create(external_name="late")
    subject_id = crowd.subject_ids[9]
    SubjectWorkflowStatus.objects.filter(subject_id=subject_id).update(retired=True)
    crowd.workflow.active = False
    crowd.workflow.save()
    crowd.answer(late, crowd.subject_ids[0], "real")  # to an inactive workflow
    crowd.workflow.active = True
    crowd.workflow.save()
    crowd.answer(late, subject_id, "bogus")  # after retirement
    repeat = labeling_services.classification_create(
        volunteer=late, workflow_id=crowd.workflow.pk, subject_id=subject_id, answer="real",
        client_id=uuid.uuid4(), store_repeats=True,
    ).classification
    expert = Volunteer.objects.create(user=make_user("ann", team="rubin"))
    on_reference = crowd.answer(expert, crowd.subject_ids[0], "real").classification
    assert (repeat.not_counted_reason, on_reference.not_counted_reason) == (
        "repeat", "expert_on_reference")

    data = selectors.classification_data(crowd.workflow.pk)
    read = Classification.objects.exclude(pk__in=[repeat.pk, on_reference.pk])
    assert Classification.objects.filter(volunteer=late, counted=False).count() == 3
    assert len(data.table.subject) == read.count()
    assert late.pk in data.volunteer_ids
    assert expert.pk not in data.volunteer_ids


def test_reference_union_drops_subjects_the_sets_disagree_on(crowd):
    oxford = _reference_set("oxford")
    # oxford agrees on subject 0, disagrees on subject 1, adds subject 7
    labeling_services.reference_labels_bulk_create(oxford, [
        (crowd.subject_ids[0], "real"), (crowd.subject_ids[1], "real"),
        (crowd.subject_ids[7], "bogus"),
    ])
    data = selectors.classification_data(crowd.workflow.pk)
    union = selectors.reference_truth(data.subject_ids, [crowd.reference, oxford])
    index = {s: i for i, s in enumerate(data.subject_ids.tolist())}
    assert union.truth[index[crowd.subject_ids[0]]] == REAL
    assert union.truth[index[crowd.subject_ids[1]]] == UNKNOWN
    assert union.truth[index[crowd.subject_ids[7]]] == BOGUS
    assert union.conflicts == [crowd.subject_ids[1]]
    assert (union.truth != UNKNOWN).sum() == 6  # 6 rubin - 1 conflict + 1 oxford


def _reference_set(name: str):
    team = labeling_services.expert_team_get_or_create(name)
    return labeling_services.reference_set_get_or_create(name=name, team=team)


def test_reference_sets_parse_accepts_unions_and_names_unknown_sets(crowd):
    assert [s.name for s in selectors.reference_sets_parse("rubin")] == ["rubin"]
    _reference_set("oxford")
    assert [s.name for s in selectors.reference_sets_parse("rubin+oxford")] == ["rubin", "oxford"]
    assert [s.name for s in selectors.reference_sets_parse("rubin,oxford")] == ["rubin", "oxford"]
    with pytest.raises(InvalidInput, match=r"unknown reference set.*nasa.*known: oxford, rubin"):
        selectors.reference_sets_parse("rubin+nasa")
    with pytest.raises(InvalidInput):
        selectors.reference_sets_parse(" + ")


# --- a run -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["batch", "online", "em"])
def test_run_stores_what_the_core_computes(crowd, mode):
    run = _run(crowd, mode)
    assert run.status == AggregationRun.Status.DONE
    data = selectors.classification_data(crowd.workflow.pk)
    truth = selectors.reference_truth(data.subject_ids, [crowd.reference]).truth
    expected = services._swap(mode, data, truth, services.swap_params())
    stored = _posteriors(run)
    assert len(stored) == data.table.n_subjects == run.n_subjects
    for i, subject_id in enumerate(data.subject_ids.tolist()):
        posterior = stored[subject_id]
        assert posterior.p_real == pytest.approx(expected.p_real[i], abs=1e-12)
        assert posterior.trajectory == pytest.approx(expected.trajectory(i).tolist(), abs=1e-12)
        assert posterior.n_counted == expected.n_counted[i]
        assert posterior.stable == (expected.stable_label[i] != UNKNOWN)
        assert posterior.label == {REAL: "real", BOGUS: "bogus", UNKNOWN: ""}[
            int(expected.unstable_label[i])]
    skills = {s.volunteer_id: s for s in VolunteerSkill.objects.filter(run=run)}
    for j, volunteer_id in enumerate(data.volunteer_ids.tolist()):
        assert skills[volunteer_id].p_real == pytest.approx(expected.skills.p_real[j])
        assert skills[volunteer_id].n_real_seen == expected.skills.n_real_seen[j]
    assert run.n_reference_subjects == 6
    totals = {row["scenario"]: row for row in run.summary["breakdown"]}
    labels = [p.label for p in stored.values()]
    assert totals["unstable"]["total_real"] == labels.count("real")
    assert totals["unstable"]["total_bogus"] == labels.count("bogus")
    assert totals["stable"]["total_real"] == sum(
        p.stable and p.label == "real" for p in stored.values())


def test_the_always_right_volunteer_earns_the_top_skill_and_the_optimist_a_poor_one(crowd):
    run = _run(crowd)
    skills = {s.volunteer_id: s for s in VolunteerSkill.objects.filter(run=run)}
    expert_like, optimist = skills[crowd.volunteers[0].pk], skills[crowd.volunteers[-1].pk]
    # 3 reference Reals and 3 Bogus each: (1 + 3) / (2 + 3) = 0.8 for a perfect volunteer.
    assert (expert_like.p_real, expert_like.p_bogus) == pytest.approx((0.8, 0.8))
    # The optimist says Real to everything: right on all 3 Reals, wrong on all 3 Bogus.
    assert (optimist.p_real, optimist.p_bogus) == pytest.approx((0.8, 0.2))


def test_running_a_finished_run_again_changes_nothing(crowd):
    run = _run(crowd)
    before = sorted(SubjectPosterior.objects.filter(run=run).values_list("pk", "p_real"))
    again = services.run_execute(run.pk)
    assert again.status == AggregationRun.Status.DONE
    assert sorted(SubjectPosterior.objects.filter(run=run).values_list("pk", "p_real")) == before


def test_a_failed_run_says_why_and_leaves_no_results(crowd, monkeypatch):
    run = services.run_create(workflow=crowd.workflow, reference_sets=[crowd.reference])

    def explode(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(services, "_write_skills", explode)
    with pytest.raises(MemoryError):
        services.run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == AggregationRun.Status.FAILED
    assert "MemoryError: simulated" in run.error
    assert not SubjectPosterior.objects.filter(run=run).exists()
    # A retry after the fault recomputes from scratch.
    monkeypatch.undo()
    assert services.run_execute(run.pk).status == AggregationRun.Status.DONE


def test_invalid_parameters_are_refused_before_a_run_exists(crowd):
    for bad in ({"prior": 1.0}, {"stability_window": 0}, {"prior": float("nan")}):
        with pytest.raises(InvalidInput, match="invalid SWAP parameters"):
            services.swap_params(**bad)
    with pytest.raises(InvalidInput, match="mode"):
        services.run_create(workflow=crowd.workflow, reference_sets=[crowd.reference],
                            mode="vote")
    assert not AggregationRun.objects.exists()


# --- the periodic run ----------------------------------------------------------------------------


def test_the_periodic_run_aggregates_workflows_with_new_answers_only(crowd, monkeypatch):
    from aggregation import tasks

    queued = []
    monkeypatch.setattr(tasks.aggregate_workflow, "delay", queued.append)
    first = services.periodic_runs_create()
    assert [run.workflow for run in first] == [crowd.workflow]
    assert [s.name for s in first[0].reference_sets.all()] == ["rubin"]
    assert first[0].triggered_by == "schedule"
    # Nothing new since: no new run.
    assert services.periodic_runs_create() == []
    later = Volunteer.objects.create(external_name="later")
    crowd.answer(later, crowd.subject_ids[8], "bogus",
                 at=timezone.now() + timedelta(minutes=1))
    assert len(services.periodic_runs_create()) == 1


# --- the command ---------------------------------------------------------------------------------


def test_aggregate_command_prints_the_breakdown(crowd):
    out = io.StringIO()
    call_command("aggregate", "--workflow", crowd.workflow.slug, "--reference-sets", "rubin",
                 "--prior", "0.3", stdout=out)
    run = AggregationRun.objects.get()
    assert run.parameters["prior"] == 0.3
    text = out.getvalue()
    assert "Total Real" in text
    assert "Total Bogus" in text
    for row in run.summary["breakdown"]:
        assert row["scenario"] in text
        assert f"{row['total_real']:,}" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--workflow", "nope", "--reference-sets", "rubin"], "no workflow"),
    (["--workflow", "wf", "--reference-sets", "nasa"], "unknown reference set"),
    (["--workflow", "wf", "--reference-sets", "rubin", "--prior", "0"], "invalid SWAP"),
    (["--workflow", "wf", "--reference-sets", "rubin", "--compare"], "simulated truth"),
])
def test_aggregate_command_refuses_bad_input_clearly(crowd, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("aggregate", *args, stdout=io.StringIO())


def test_replay_matches_the_pure_online_loop(crowd):
    """The database path and the core's reference loop agree on the same answers."""
    data = selectors.classification_data(crowd.workflow.pk)
    truth = selectors.reference_truth(data.subject_ids, [crowd.reference]).truth
    params = services.swap_params()
    loop = OnlineSwap(params, truth)
    for s, v, r in zip(data.table.subject, data.table.volunteer, data.table.says_real,
                       strict=True):
        loop.update(int(s), int(v), bool(r))
    vectorised = swap_batch(data.table, truth, params, skill_timing="at_classification")
    np.testing.assert_allclose(loop.result(data.table.n_subjects).p_real, vectorised.p_real,
                               atol=1e-12)


@pytest.mark.postgres
def test_copy_reader_equals_the_orm_reader(crowd):
    copy_columns = selectors._array_columns(crowd.workflow.pk, None)
    orm_columns = selectors._iterator_columns(crowd.workflow.pk, None)
    for a, b in zip(copy_columns, orm_columns, strict=True):
        np.testing.assert_array_equal(a, b)
    through = int(copy_columns[0][len(copy_columns[0]) // 2])
    a = selectors._array_columns(crowd.workflow.pk, through)
    assert (a[0] <= through).all()
    assert len(a[0]) == (copy_columns[0] <= through).sum()


def test_simulated_truth_is_compared_when_subjects_carry_it(workflow):
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save()
    crowd = build_crowd(workflow)
    for i, subject in enumerate(Subject.objects.order_by("pk")):
        subject.metadata = {"sim_truth": "real" if i % 2 == 0 else "bogus"}
        subject.save()
    run = _run(crowd)
    truth = run.summary["truth"]
    assert truth["unstable"]["n_subjects"] == len(crowd.subject_ids) - 6
    assert 0 <= truth["stable"]["n_labelled"] <= truth["unstable"]["n_labelled"]
    assert truth["majority"]["n_labelled"] > 0


def test_the_swap_evidence_filter_is_the_pure_rule(workflow):
    """One classification stored with each reason: the queryset filter keeps exactly those the
    pure rule reads."""
    from labeling.models import NotCounted
    from labeling.rules import swap_reads

    subject_ids = labeling_add_subjects(workflow, len(NotCounted.values))
    by_reason = {}
    for reason, subject_id in zip(NotCounted.values, subject_ids, strict=True):
        by_reason[reason] = Classification.objects.create(
            volunteer=Volunteer.objects.create(external_name=f"v-{reason or 'counted'}"),
            subject_id=subject_id, workflow=workflow, answer="real", counted=not reason,
            not_counted_reason=reason,
        ).pk
    read = set(selectors.swap_evidence(Classification.objects.all()).values_list("pk", flat=True))
    assert read == {pk for reason, pk in by_reason.items() if swap_reads(reason)}
    assert {reason for reason in NotCounted.values if not swap_reads(reason)} == {
        "repeat", "expert_on_reference"}
