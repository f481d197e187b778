"""How a union of reference sets settles subjects its sets label differently: the rule (pure),
the batch run, the online update and the command, under both policies, Unsure never counting."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.management import call_command
from hypothesis import given
from hypothesis import strategies as st

from aggregation import selectors, services
from aggregation.models import AggregationRun, SubjectPosterior
from aggregation.swap import BOGUS, REAL, UNKNOWN
from labeling import services as labeling_services
from labeling.errors import InvalidInput
from labeling.records import (
    COUNTED_REFERENCE_LABELS,
    REFERENCE_LABELS,
    UNION_DROP,
    UNION_FIRST,
    UNION_POLICIES,
    UNSURE,
    union_label,
)

# --- the rule ---------------------------------------------------------------------------------

labels = st.lists(st.sampled_from(REFERENCE_LABELS), max_size=5)


@given(labels, st.sampled_from(UNION_POLICIES))
def test_unsure_never_counts(given_labels, policy):
    without_unsure = [label for label in given_labels if label != UNSURE]
    assert union_label(given_labels, policy) == union_label(without_unsure, policy)
    label, _ = union_label(given_labels, policy)
    assert label is None or label in COUNTED_REFERENCE_LABELS


@given(labels)
def test_conflict_means_two_different_counted_labels(given_labels):
    counted = {label for label in given_labels if label != UNSURE}
    for policy in UNION_POLICIES:
        assert union_label(given_labels, policy)[1] == (len(counted) > 1)


@given(labels)
def test_the_policies_differ_only_on_conflicts(given_labels):
    drop, drop_conflict = union_label(given_labels, UNION_DROP)
    first, first_conflict = union_label(given_labels, UNION_FIRST)
    assert drop_conflict == first_conflict
    if drop_conflict:
        assert drop is None
        assert first == next(label for label in given_labels if label != UNSURE)
    else:
        assert drop == first


def test_worked_examples():
    assert union_label(["real", "bogus"], UNION_DROP) == (None, True)
    assert union_label(["real", "bogus"], UNION_FIRST) == ("real", True)
    assert union_label(["unsure", "bogus"], UNION_FIRST) == ("bogus", False)
    assert union_label(["unsure"], UNION_FIRST) == (None, False)
    assert union_label(["bogus", "bogus"], UNION_DROP) == ("bogus", False)
    with pytest.raises(ValueError, match="union policy"):
        union_label(["real"], "vote")


# --- on the database ----------------------------------------------------------------------------


def _set(name: str):
    team = labeling_services.expert_team_get_or_create(name)
    return labeling_services.reference_set_get_or_create(name=name, team=team)


@pytest.fixture
def union(crowd):
    """rubin labels subjects 0-5 (even Real, odd Bogus); oxford agrees on 0, says Real on 1
    (a conflict), labels 7 Bogus, is unsure on 2 (no conflict) and alone unsure on 8."""
    oxford = _set("oxford")
    s = crowd.subject_ids
    labeling_services.reference_labels_bulk_create(oxford, [
        (s[0], "real"), (s[1], "real"), (s[7], "bogus"), (s[2], UNSURE), (s[8], UNSURE),
    ])
    return crowd, oxford


def _truth_by_subject(crowd, sets, policy):
    data = selectors.classification_data(crowd.workflow.pk)
    truth = selectors.reference_truth(data.subject_ids, sets, policy)
    return dict(zip(data.subject_ids.tolist(), truth.truth.tolist(), strict=True)), truth


@pytest.mark.django_db
def test_drop_leaves_conflicts_out_and_lists_them(union):
    crowd, oxford = union
    s = crowd.subject_ids
    truth, reference = _truth_by_subject(crowd, [crowd.reference, oxford], UNION_DROP)
    assert reference.conflicts == [s[1]]
    assert truth[s[0]] == REAL
    assert truth[s[1]] == UNKNOWN
    assert truth[s[2]] == REAL  # oxford's Unsure neither conflicts nor removes rubin's Real
    assert truth[s[7]] == BOGUS
    assert truth[s[8]] == UNKNOWN  # Unsure alone is no truth


@pytest.mark.django_db
def test_first_gives_the_first_named_set_the_conflict_and_still_lists_it(union):
    crowd, oxford = union
    s = crowd.subject_ids
    rubin_first, reference = _truth_by_subject(crowd, [crowd.reference, oxford], UNION_FIRST)
    assert reference.conflicts == [s[1]]
    assert rubin_first[s[1]] == BOGUS  # rubin's label
    oxford_first, reference = _truth_by_subject(crowd, [oxford, crowd.reference], UNION_FIRST)
    assert reference.conflicts == [s[1]]
    assert oxford_first[s[1]] == REAL  # oxford's label
    assert {k: v for k, v in rubin_first.items() if k != s[1]} == {
        k: v for k, v in oxford_first.items() if k != s[1]
    }
    assert rubin_first[s[8]] == UNKNOWN


@pytest.mark.django_db
def test_an_unknown_policy_is_refused_before_a_run_exists(union):
    crowd, oxford = union
    with pytest.raises(InvalidInput, match="union policy"):
        services.run_create(workflow=crowd.workflow, reference_sets=[crowd.reference, oxford],
                            union_policy="vote")
    assert not AggregationRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("spec", "policy", "subject_1"), [
    ("rubin+oxford", UNION_DROP, UNKNOWN),
    ("rubin+oxford", UNION_FIRST, BOGUS),
    ("oxford+rubin", UNION_FIRST, REAL),
])
def test_the_command_records_the_policy_and_the_online_update_follows_it(
    union, spec, policy, subject_1
):
    crowd, _ = union
    out = io.StringIO()
    call_command("aggregate", "--workflow", crowd.workflow.slug, "--reference-sets", spec,
                 "--union-policy", policy, "--mode", "online", stdout=out)
    run = AggregationRun.objects.get()
    assert run.summary["union_policy"] == policy
    assert run.summary["reference_conflicts"] == [crowd.subject_ids[1]]
    assert f"union policy {policy}" in out.getvalue()
    assert [s.name for s in selectors.run_reference_sets(run)] == spec.split("+")
    # The live update settles each subject exactly as the run did.
    batch, _ = _truth_by_subject(crowd, selectors.run_reference_sets(run), policy)
    for subject_id in crowd.subject_ids:
        assert selectors.subject_truth_for(run, subject_id) == batch[subject_id]
    assert selectors.subject_truth_for(run, crowd.subject_ids[1]) == subject_1


@pytest.mark.django_db
def test_a_live_answer_on_a_conflict_calibrates_the_volunteer_under_first_only(union):
    crowd, oxford = union
    results = {}
    for policy in UNION_POLICIES:
        run = services.run_create(workflow=crowd.workflow, mode="online",
                                  reference_sets=[crowd.reference, oxford], union_policy=policy)
        services.run_execute(run.pk)
        newcomer = labeling_services.volunteer_for_external_name(f"new-{policy}")
        labeling_services.classification_create(
            volunteer=newcomer, workflow_id=crowd.workflow.pk, subject_id=crowd.subject_ids[1],
            answer="bogus", client_id=uuid.uuid4(),
        )
        skill = run.skills.get(volunteer=newcomer)
        results[policy] = (skill.n_bogus_seen, skill.n_real_seen)
        assert SubjectPosterior.objects.filter(run=run, subject_id=crowd.subject_ids[1]).exists()
    assert results[UNION_DROP] == (0, 0)
    assert results[UNION_FIRST] == (1, 0)


@pytest.mark.django_db
def test_the_periodic_run_keeps_the_last_runs_policy_and_order(union):
    crowd, oxford = union
    services.run_execute(services.run_create(
        workflow=crowd.workflow, reference_sets=[oxford, crowd.reference],
        union_policy=UNION_FIRST,
    ).pk)
    labeling_services.classification_create(
        volunteer=labeling_services.volunteer_for_external_name("late"),
        workflow_id=crowd.workflow.pk, subject_id=crowd.subject_ids[-1], answer="real",
        client_id=uuid.uuid4(),
    )
    [periodic] = services.periodic_runs_create()
    assert selectors.run_union_policy(periodic) == UNION_FIRST
    assert [s.name for s in selectors.run_reference_sets(periodic)] == ["oxford", "rubin"]
