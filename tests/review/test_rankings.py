"""The review queues read from stored rankings give exactly the pages that ordering every
subject per request gives, and a finished run gets its rankings built."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregation import services as aggregation_services
from labeling import services
from labeling.models import Subject
from review import queues, selectors
from review import services as review_services
from review.models import QueueRanking
from tests.aggregation.conftest import build_crowd


@pytest.fixture
def crowd_run(workflow):
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save()
    crowd = build_crowd(workflow, n_subjects=24)
    Subject.objects.filter(pk__in=crowd.subject_ids[::3]).update(origin="ztf")
    run = aggregation_services.run_create(workflow=workflow, reference_sets=[crowd.reference])
    return crowd, aggregation_services.run_execute(run.pk)


def _page(crowd, run, name, *, origin="", seed=0, offset=0, limit=50, labelled_set=None):
    page = selectors.review_queue(workflow=crowd.workflow, name=name, run=run,
                                  reference_set=labelled_set, origin=origin, seed=seed,
                                  offset=offset, limit=limit)
    return page.total, page.subjects


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(set(queues.QUEUES) - queues.ORDERED_PER_REQUEST)),
    origin=st.sampled_from(["ss", "ztf", "nowhere"]),
    seed=st.integers(0, 2**32 - 1),
    offset=st.integers(0, 30),
    limit=st.integers(1, 30),
    n_labelled=st.integers(0, 24),
    with_set=st.booleans(),
)
def test_a_page_from_the_stored_ranking_equals_the_page_ordered_per_request(
    crowd_run, name, origin, seed, offset, limit, n_labelled, with_set
):
    crowd, run = crowd_run
    labelled = services.reference_set_get_or_create(
        name="oxford", team=services.expert_team_get_or_create("oxford"))
    labelled.labels.all().delete()
    services.reference_labels_bulk_create(
        labelled, [(s, "real") for s in crowd.subject_ids[:n_labelled]])
    args = {"origin": origin if name == queues.ORIGIN else "", "seed": seed,
            "offset": offset, "limit": limit, "labelled_set": labelled if with_set else None}

    QueueRanking.objects.all().delete()
    per_request = _page(crowd, run, name, **args)
    review_services.rankings_build(run.pk)
    assert QueueRanking.objects.filter(run=run, queue=name).exists()
    assert _page(crowd, run, name, **args) == per_request


def test_a_finished_run_gets_its_rankings_built_once_it_commits(
    crowd_run, django_capture_on_commit_callbacks, eager_celery
):
    crowd, _ = crowd_run
    run = aggregation_services.run_create(workflow=crowd.workflow,
                                          reference_sets=[crowd.reference])
    with django_capture_on_commit_callbacks(execute=True):
        aggregation_services.run_execute(run.pk)
    stored = set(QueueRanking.objects.filter(run=run).values_list("queue", "origin"))
    assert stored == {(name, "") for name in queues.QUEUES
                      if name != queues.ORIGIN and name not in queues.ORDERED_PER_REQUEST} | {
        (queues.ORIGIN, "ss"), (queues.ORIGIN, "ztf")}
    # Built again (the periodic refresh), it replaces the run's rankings.
    assert review_services.rankings_refresh() == [run.pk]
    assert QueueRanking.objects.filter(run=run).count() == len(stored)


def test_an_unfinished_run_gets_no_rankings(workflow):
    crowd = build_crowd(workflow, n_subjects=6, n_volunteers=2)
    run = aggregation_services.run_create(workflow=workflow, reference_sets=[crowd.reference])
    assert review_services.rankings_build(run.pk) == 0
    assert not QueueRanking.objects.exists()
