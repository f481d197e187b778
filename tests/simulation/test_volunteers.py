"""The simulated volunteer population: determinism, the heavy tail, the type mixture and
the low-SNR bias."""

from __future__ import annotations

import random
import uuid
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeling import services
from labeling.models import Classification, NotCounted, Subject, SubjectWorkflowStatus
from simulation.volunteers import (
    SKILL_MIXTURE,
    SNR_HALF,
    VOLUNTEER_TYPES,
    Serving,
    answer,
    make_population,
    p_says_real,
    visibility,
)


@pytest.fixture(scope="module")
def population():
    return make_population(20_000, seed=11)


def test_the_same_seed_gives_the_same_population_and_answers():
    a, b = make_population(300, seed=4), make_population(300, seed=4)
    for field in ("activity", "sensitivity", "specificity", "types"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    volunteers = np.arange(300)
    truth = volunteers % 2 == 0
    snr = np.geomspace(3, 1000, 300)
    np.testing.assert_array_equal(
        answer(a, volunteers, truth, snr, np.random.default_rng(1)),
        answer(b, volunteers, truth, snr, np.random.default_rng(1)),
    )
    other = make_population(300, seed=5)
    assert not np.array_equal(a.activity, other.activity)


def test_a_volunteer_does_not_depend_on_the_population_size():
    # sim-SEED-I keeps its skill when a re-run asks for more volunteers.
    small, large = make_population(15, seed=3), make_population(2500, seed=3)
    for field in ("activity", "sensitivity", "specificity", "types"):
        np.testing.assert_array_equal(getattr(small, field), getattr(large, field)[:15])
    assert len(make_population(0, seed=3)) == 0


@pytest.mark.parametrize(("n", "seed"), [(-1, 0), (5, -2), (2.5, 0)])
def test_bad_sizes_and_seeds_are_rejected(n, seed):
    with pytest.raises(ValueError, match="non-negative integer"):
        make_population(n, seed)


def test_activity_is_heavy_tailed(population):
    activity = population.activity
    # Most would give fewer than 100 classifications (82% expected)...
    assert 0.79 < np.mean(activity < 100) < 0.85
    # ... and a few over 10,000 (0.29% expected: 58 of 20,000), so a population of 1,000
    # has about three.
    assert 30 < np.sum(activity > 10_000) < 90
    # The top 1% would give over half of all classifications (57% expected).
    top = np.sort(activity)[::-1][: len(activity) // 100]
    assert top.sum() / activity.sum() > 0.45
    np.testing.assert_allclose(population.weights.sum(), 1.0)


def test_the_type_mixture_is_present_in_its_proportions(population):
    assert set(VOLUNTEER_TYPES) == {"competent", "near_random", "optimistic", "pessimistic"}
    for name, prior in SKILL_MIXTURE.items():
        share = np.mean(population.types == name)
        assert share == pytest.approx(prior.proportion, abs=0.015), name


def test_each_type_answers_as_its_name_says(population):
    sens, spec, types = population.sensitivity, population.specificity, population.types
    assert np.all((sens > 0) & (sens < 1) & (spec > 0) & (spec < 1))
    competent = types == "competent"
    assert np.median(sens[competent]) > 0.85
    assert np.median(spec[competent]) > 0.85
    near_random = types == "near_random"
    assert np.all(np.abs(sens[near_random] - 0.5) < 0.3)
    assert np.all(np.abs(spec[near_random] - 0.5) < 0.3)
    # Optimists nearly always say Real, whatever the truth; pessimists nearly always Bogus.
    optimistic, pessimistic = types == "optimistic", types == "pessimistic"
    assert np.median(sens[optimistic]) > 0.95
    assert np.median(1 - spec[optimistic]) > 0.85
    assert np.median(spec[pessimistic]) > 0.95
    assert np.median(1 - sens[pessimistic]) > 0.85


def test_answers_follow_the_skills(population):
    rng = np.random.default_rng(0)
    competent = np.flatnonzero(population.types == "competent")[:200]
    volunteers = np.repeat(competent, 100)
    bright = np.full(volunteers.shape, 500.0)
    said_real_on_real = answer(population, volunteers, True, bright, rng).mean()
    said_real_on_bogus = answer(population, volunteers, False, bright, rng).mean()
    assert said_real_on_real == pytest.approx(population.sensitivity[competent].mean(), abs=0.01)
    assert said_real_on_bogus == pytest.approx(
        1 - population.specificity[competent].mean(), abs=0.01
    )
    # Scalars in, a plain bool out.
    assert isinstance(answer(population, 0, True, 20.0, rng), bool)


def test_low_snr_reals_are_called_bogus_more_often(population):
    rng = np.random.default_rng(7)
    volunteers = np.repeat(np.arange(2000), 10)
    faint = answer(population, volunteers, True, np.full(volunteers.shape, 4.0), rng)
    bright = answer(population, volunteers, True, np.full(volunteers.shape, 100.0), rng)
    # The same volunteers, the same number of Reals: the faint ones get far fewer Real votes.
    assert faint.mean() < bright.mean() - 0.3
    # A fading source's negative SNR is as faint as its size says.
    np.testing.assert_allclose(visibility(-4.0), visibility(4.0))


def test_visibility_and_the_probabilities_behind_the_bias(population):
    snr = np.array([3.0, SNR_HALF, 10.0, 20.0, 1000.0])
    v = visibility(snr)
    assert np.all(np.diff(v) > 0)
    assert v[1] == pytest.approx(0.5)
    assert v[-1] > 0.999
    assert visibility(np.nan) == 1.0
    for i in range(50):
        on_real = p_says_real(population, i, True, snr)
        on_bogus = p_says_real(population, i, False, snr)
        # Bogus subjects do not depend on SNR; a faint Real drifts towards how the volunteer
        # answers a Bogus, and a bright Real is answered with the volunteer's sensitivity.
        np.testing.assert_allclose(on_bogus, 1 - population.specificity[i])
        assert on_real[-1] == pytest.approx(population.sensitivity[i], abs=1e-3)
        if population.sensitivity[i] > 1 - population.specificity[i]:
            assert np.all(np.diff(on_real) > 0)


# --- serving in memory (simulate volunteers --bulk) ----------------------------------------


@settings(max_examples=60)
@given(
    n_science=st.integers(1, 40),
    n_reference=st.integers(0, 8),
    rate=st.floats(0.0, 1.0),
    steps=st.lists(st.tuples(st.integers(0, 4), st.integers(1, 12), st.booleans()),
                   max_size=40),
    seed=st.integers(0, 2**16),
)
def test_serving_never_repeats_a_subject_or_serves_a_retired_one(
    n_science, n_reference, rate, steps, seed
):
    science = set(range(n_science))
    reference = set(range(1000, 1000 + n_reference))
    serving = Serving(science, reference, random.Random(seed), gold_rate=lambda n: rate)
    retired: set[int] = set()
    for volunteer, size, retire_first in steps:
        queue = serving.queue(volunteer, size)
        unseen = science - retired - serving.seen.get(volunteer, set())
        if queue is None:
            assert not unseen  # finished only when no science subject is left to them
            continue
        assert len(queue) == len(set(queue)) <= size
        assert not set(queue) & (serving.seen.get(volunteer, set()) | retired)
        assert set(queue) <= science | reference
        assert set(queue) & science or not unseen or len(queue) == size
        for subject in queue:
            serving.answered(volunteer, subject)
        if retire_first and set(queue) & science:
            subject = min(set(queue) & science)
            serving.retire(subject)
            retired.add(subject)
    assert serving.n_open == len(science - retired)


def test_serving_mixes_gold_in_at_the_rate():
    serving = Serving(range(10_000), range(20_000, 30_000), random.Random(1),
                      gold_rate=lambda n: 0.25)
    served = [s for volunteer in range(200) for s in serving.queue(volunteer, 10)]
    gold = sum(s >= 20_000 for s in served) / len(served)
    assert 0.2 < gold < 0.3


# --- bulk against one by one ---------------------------------------------------------------


@pytest.mark.django_db
@settings(max_examples=8, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 1000),
    n_volunteers=st.integers(1, 12),
    batch=st.integers(1, 6),
    agree=st.integers(1, 3),
    extra=st.integers(0, 3),
    limit=st.none() | st.integers(1, 80),
)
def test_a_bulk_simulation_stores_what_answering_one_by_one_would(
    seed, n_volunteers, batch, agree, extra, limit
):
    """`simulate volunteers --bulk`, then its answers sent in the same order through
    `classification_create` into a twin workflow over the same subjects: the same counted
    flags, reasons and retirements. This also catches the per-answer path drifting away from
    the rules the bulk mode applies in memory."""
    with transaction.atomic():
        workflow = services.workflow_create(slug="sim", project_name="Simulated",
                                            retire_agree=agree, retire_max=agree + extra)
        twin = services.workflow_create(slug="twin", project_name="Simulated",
                                        retire_agree=agree, retire_max=agree + extra)
        call_command("simulate", "subjects", n=24, seed=seed, workflow="sim",
                     reference_fraction=0.25, stdout=StringIO(), stderr=StringIO())
        services.statuses_create((twin.pk, subject_id) for subject_id in
                                 Subject.objects.values_list("pk", flat=True))
        call_command("simulate", "volunteers", workflow="sim", n=n_volunteers, seed=seed,
                     batch=batch, max_classifications=limit, bulk=True, stdout=StringIO(),
                     stderr=StringIO())
        made = list(Classification.objects.filter(workflow=workflow).order_by("pk")
                    .select_related("volunteer"))
        assert made
        for classification in made:
            services.classification_create(
                volunteer=classification.volunteer, workflow_id=twin.pk,
                subject_id=classification.subject_id, answer=classification.answer,
                client_id=uuid.uuid4(), created_at=classification.created_at,
            )
        by_bulk, by_one = (
            (
                list(Classification.objects.filter(workflow=w).order_by("pk").values_list(
                    "volunteer_id", "subject_id", "answer", "created_at", "counted",
                    "not_counted_reason")),
                sorted(SubjectWorkflowStatus.objects.filter(workflow=w).values_list(
                    "subject_id", "n_counted", "first_answer", "unanimous", "retired")),
            )
            for w in (workflow, twin)
        )
        transaction.set_rollback(True)
    assert by_bulk == by_one
    # As from the real queue, which never serves a retired subject: no answer came too late.
    assert NotCounted.RETIRED not in {reason for *_, reason in by_bulk[0]}
