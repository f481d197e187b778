"""The review API: queue orders on crafted votes and real SWAP runs, the dossier, errors,
permissions, and a bounded number of queries."""

from __future__ import annotations

import numpy as np
import pytest
from rest_framework.test import APIClient

from aggregation import services as aggregation_services
from aggregation.models import AggregationRun, SubjectPosterior
from labeling import services
from labeling.models import Subject
from review import queues
from tests.aggregation.conftest import build_crowd
from tests.conftest import add_subjects, token_client
from tests.review.conftest import set_origin

pytestmark = pytest.mark.django_db


def ids_of(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["subjects"]]


def run_for(workflow, reference_set, mode="batch") -> AggregationRun:
    run = aggregation_services.run_create(
        workflow=workflow, reference_sets=[reference_set], mode=mode
    )
    return aggregation_services.run_execute(run.pk)


@pytest.fixture
def crafted(review):
    s = review.subject_ids
    for subject_id, answers in zip(s, ["rb", "rrbb", "rrrb", "rrrr", "", "rrb"], strict=True):
        review.vote(subject_id, answers)
    return review


# --- queue orders ----------------------------------------------------------------------------


def test_disagreement_queue_even_splits_first_more_votes_first(crafted, api):
    s = crafted.subject_ids
    response = api.get(crafted.queue_url("disagreement"))
    # 2:2 and 1:1 are even (the 4-vote one first), then 2:1, 3:1, 4:0; no votes: not listed.
    assert ids_of(response) == [s[1], s[0], s[5], s[2], s[3]]
    body = response.json()
    assert body["total"] == 5
    assert body["run"] is None
    first = body["subjects"][0]
    assert (first["n_real"], first["n_bogus"], first["n_volunteers"]) == (2, 2, 4)
    assert first["images"]["difference"].endswith("/difference.png")


def test_queues_skip_subjects_labelled_in_the_chosen_set_only(crafted, api, expert):
    s = crafted.subject_ids
    services.reference_label_set(reference_set=crafted.rubin, subject=Subject.objects.get(pk=s[1]),
                                 label="real", expert=expert)
    assert ids_of(api.get(crafted.queue_url("disagreement", set=crafted.rubin.pk))) == [
        s[0], s[5], s[2], s[3]]
    assert ids_of(api.get(crafted.queue_url("disagreement", set=crafted.oxford.pk)))[0] == s[1]


def test_pages_of_a_queue_add_up_to_the_whole_queue(crafted, api):
    whole = ids_of(api.get(crafted.queue_url("disagreement")))
    pages = [ids_of(api.get(crafted.queue_url("disagreement", offset=o, limit=2)))
             for o in (0, 2, 4, 6)]
    assert [i for page in pages for i in page] == whole
    assert pages[-1] == []


def test_posterior_queues_say_clearly_that_there_is_no_run_yet(crafted, api):
    for name in ("uncertain", "model"):
        response = api.get(crafted.queue_url(name))
        assert response.status_code == 409
        assert response.json()["error"] == "no_run"
        assert "no finished aggregation run" in response.json()["detail"]
    assert len(ids_of(api.get(crafted.queue_url("random", seed=3)))) == 6
    set_origin(crafted.subject_ids[:2], "injection")
    assert len(ids_of(api.get(crafted.queue_url("origin", origin="injection")))) == 2


def test_origin_queue_holds_one_origin_most_classified_first_without_a_run(crafted, api):
    s = crafted.subject_ids
    set_origin([s[0], s[1], s[4]], "injection")
    assert ids_of(api.get(crafted.queue_url("origin", origin="injection"))) == [s[1], s[0], s[4]]
    missing = api.get(crafted.queue_url("origin"))
    assert missing.status_code == 400
    assert "origin" in missing.json()["detail"]


def test_random_queue_is_reproducible_from_its_seed(crafted, api):
    one = ids_of(api.get(crafted.queue_url("random", seed=11)))
    assert one == ids_of(api.get(crafted.queue_url("random", seed=11)))
    assert sorted(one) == sorted(crafted.subject_ids)
    others = {tuple(ids_of(api.get(crafted.queue_url("random", seed=seed)))) for seed in range(5)}
    assert len(others) > 1


@pytest.fixture
def crowd_run(workflow):
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save()
    crowd = build_crowd(workflow)
    return crowd, run_for(workflow, crowd.reference)


def test_uncertain_queue_follows_the_runs_posteriors(crowd_run, make_user):
    crowd, run = crowd_run
    api = token_client(make_user("ranker", team="rubin"))
    response = api.get(f"/api/review/{crowd.workflow.pk}/queue/uncertain/?limit=200")
    rows = response.json()["subjects"]
    assert response.json()["run"]["id"] == run.pk
    posteriors = dict(SubjectPosterior.objects.filter(run=run).values_list("subject_id", "p_real"))
    assert sorted(r["id"] for r in rows) == sorted(posteriors)
    assert [r["p_real"] for r in rows] == [posteriors[r["id"]] for r in rows]
    bands = [np.floor(2 * abs(r["p_real"] - 0.5) * queues.PRIORITY_BANDS) for r in rows]
    assert bands == sorted(bands)
    assert bands[0] < bands[-1], "the crowd's posteriors should span several bands"


def test_model_queue_ranks_by_reliability_against_posterior_and_skips_unscored(crowd_run,
                                                                              make_user):
    crowd, _ = crowd_run
    api = token_client(make_user("ranker", team="rubin"))
    scored = crowd.subject_ids[::2]
    for i, subject_id in enumerate(scored):
        Subject.objects.filter(pk=subject_id).update(reliability=(i % 4) / 3)
    rows = api.get(f"/api/review/{crowd.workflow.pk}/queue/model/?limit=200").json()["subjects"]
    assert sorted(r["id"] for r in rows) == sorted(scored)
    gaps = [abs(r["reliability"] - r["p_real"]) for r in rows]
    bands = [np.floor((1 - gap) * queues.PRIORITY_BANDS) for gap in gaps]
    assert bands == sorted(bands)


def test_the_live_run_ranks_the_queues_unless_a_run_is_named(crowd_run, make_user):
    crowd, batch = crowd_run
    live = run_for(crowd.workflow, crowd.reference, mode="online")
    later = run_for(crowd.workflow, crowd.reference)
    api = token_client(make_user("ranker", team="rubin"))
    url = f"/api/review/{crowd.workflow.pk}/queue/uncertain/"
    assert api.get(url).json()["run"]["id"] == live.pk
    assert api.get(f"{url}?run={batch.pk}").json()["run"]["id"] == batch.pk
    AggregationRun.objects.filter(pk=live.pk).update(live=False)
    assert api.get(url).json()["run"]["id"] == later.pk


def test_a_named_run_must_be_a_finished_run_of_the_workflow(crowd_run, make_user, review):
    crowd, run = crowd_run
    api = token_client(make_user("ranker", team="rubin"))
    other = services.workflow_create(slug="other", project_name="Other")
    url = f"/api/review/{other.pk}/queue/uncertain/?run={run.pk}"
    assert api.get(url).status_code == 400
    assert "another workflow" in api.get(url).json()["detail"]
    assert api.get(f"/api/review/{other.pk}/queue/uncertain/?run=999999").status_code == 404
    pending = aggregation_services.run_create(workflow=crowd.workflow,
                                              reference_sets=[crowd.reference])
    unfinished = api.get(f"/api/review/{crowd.workflow.pk}/queue/uncertain/?run={pending.pk}")
    assert unfinished.status_code == 400
    assert "has not finished" in unfinished.json()["detail"]


def test_a_queue_request_is_a_fixed_number_of_queries(crowd_run, make_user,
                                                       django_assert_max_num_queries):
    crowd, _ = crowd_run
    api = token_client(make_user("ranker", team="rubin"))
    url = f"/api/review/{crowd.workflow.pk}/queue/uncertain/?set={crowd.reference.pk}&limit=200"
    with django_assert_max_num_queries(11):
        few = ids_of(api.get(url))
    add_subjects(crowd.workflow, 30, seed=99)
    run_for(crowd.workflow, crowd.reference)
    with django_assert_max_num_queries(11):
        ids_of(api.get(url.replace("uncertain", "origin") + "&origin=ss"))
    with django_assert_max_num_queries(11):
        assert len(ids_of(api.get(url))) >= len(few)


# --- the dossier -----------------------------------------------------------------------------


def test_the_dossier_holds_facts_votes_posterior_skills_and_every_teams_label(crowd_run,
                                                                              make_user):
    crowd, run = crowd_run
    expert = make_user("ranker", team="rubin")
    subject_id = crowd.subject_ids[0]
    services.reference_label_set(reference_set=services.reference_set_get_or_create(
        name="oxford", team=services.expert_team_get_or_create("oxford")),
        subject=Subject.objects.get(pk=subject_id), label="bogus")
    response = token_client(expert).get(
        f"/api/review/subjects/{subject_id}/?workflow={crowd.workflow.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["subject"]["id"] == subject_id
    assert body["subject"]["snr"] == 10.0
    assert body["subject"]["origin"] == "ss"
    votes = body["votes"]["classifications"]
    assert len(votes) == 5
    assert body["votes"]["n_real"] + body["votes"]["n_bogus"] == 5
    assert all(v["skill"] is not None for v in votes)
    assert [v["created_at"] for v in votes] == sorted(v["created_at"] for v in votes)
    posterior = SubjectPosterior.objects.get(run=run, subject_id=subject_id)
    assert body["posterior"]["trajectory"] == pytest.approx(posterior.trajectory)
    assert body["run"]["real_threshold"] == 0.9
    assert body["run"]["bogus_threshold"] == 0.1
    teams = {(label["team"], label["label"]) for label in body["reference_labels"]}
    assert teams == {("rubin", "real"), ("oxford", "bogus")}


def test_the_dossier_is_a_fixed_number_of_queries(crowd_run, make_user,
                                                  django_assert_max_num_queries):
    crowd, _ = crowd_run
    api = token_client(make_user("ranker", team="rubin"))
    with django_assert_max_num_queries(10):
        response = api.get(f"/api/review/subjects/{crowd.subject_ids[0]}/"
                           f"?workflow={crowd.workflow.pk}")
    assert len(response.json()["votes"]["classifications"]) == 5


def test_the_dossier_without_a_run_has_no_posterior(crafted, api):
    body = api.get(f"/api/review/subjects/{crafted.subject_ids[1]}/"
                   f"?workflow={crafted.workflow.pk}").json()
    assert body["run"] is None
    assert body["posterior"] is None
    assert (body["votes"]["n_real"], body["votes"]["n_bogus"]) == (2, 2)
    assert all(v["skill"] is None for v in body["votes"]["classifications"])


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "status", "error"), [
    ("/api/review/999999/queue/disagreement/", 404, "not_found"),
    ("/api/review/{wf}/queue/best/", 404, "not_found"),
    ("/api/review/{wf}/queue/disagreement/?set=999999", 404, "not_found"),
    ("/api/review/{wf}/queue/disagreement/?offset=-1", 400, "invalid"),
    ("/api/review/{wf}/queue/disagreement/?limit=many", 400, "invalid"),
    ("/api/review/{wf}/queue/random/?seed=-5", 400, "invalid"),
    ("/api/review/subjects/999999/?workflow={wf}", 404, "not_found"),
    ("/api/review/subjects/{subject}/?workflow=999999", 404, "not_found"),
    ("/api/review/subjects/{subject}/", 400, "invalid"),
    ("/api/review/subjects/{outsider}/?workflow={wf}", 404, "not_found"),
])
def test_bad_requests_get_a_json_error(review, api, url, status, error):
    other = services.workflow_create(slug="elsewhere", project_name="Elsewhere")
    outsider = add_subjects(other, 1, seed=5, set_name="elsewhere")[0]
    response = api.get(url.format(wf=review.workflow.pk, subject=review.subject_ids[0],
                                  outsider=outsider))
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["detail"]


# --- permissions -----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", "volunteer", "ml"])
def test_the_review_api_is_closed_to_volunteers_and_the_ml_team(review, make_user, who):
    client = {
        "anonymous": lambda: APIClient(),
        "volunteer": lambda: token_client(make_user("volunteer")),
        "ml": lambda: token_client(make_user("ml", ml=True)),
    }[who]()
    for url in (review.queue_url("random", seed=1),
                f"/api/review/subjects/{review.subject_ids[0]}/?workflow={review.workflow.pk}"):
        response = client.get(url)
        assert response.status_code in (401, 403)
        assert response.json()["error"] in ("not_authenticated", "permission_denied")


@pytest.mark.parametrize("who", ["staff", "other-team expert"])
def test_staff_and_every_teams_experts_may_read(review, make_user, who):
    user = make_user("staff", staff=True) if who == "staff" else make_user("ox", team="oxford")
    assert token_client(user).get(review.queue_url("random", seed=1)).status_code == 200


def test_an_expert_cannot_write_another_teams_set(review, api):
    response = api.post(f"/api/reference-sets/{review.oxford.pk}/labels/",
                        {"subject": review.subject_ids[0], "label": "real"}, format="json")
    assert response.status_code == 403
    assert not review.oxford.labels.exists()
    mine = api.post(f"/api/reference-sets/{review.rubin.pk}/labels/",
                    {"subject": review.subject_ids[0], "label": "real"}, format="json")
    assert mine.status_code in (200, 201)
