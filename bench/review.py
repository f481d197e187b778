"""Expert review queues at Rubin scale: page latency through the review API.

250,000 subjects (bench.seed's COPY, 8% of them labelled in a reference set, a tenth of them
of a second origin) and 1,000,000 counted classifications from 20,000 volunteers (generated
inside PostgreSQL), aggregated by a batch run. The run's queue rankings are built (timed:
`review_rankings_build_s`, off the request path in production), then an expert's token asks
`GET /api/review/{workflow}/queue/{name}/` through Django's test client (real URL,
middleware, authentication and view) for pages of every queue, at random offsets, seeds
and with the reference set's labelled subjects left out: p50 and p99 per page, target
p99 <= 100 ms. For the ratio, the same queues ordered per request from every subject (what
a page cost before rankings, and still costs for a run not yet ranked) are timed in process.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from bench import seed
from bench.database import connect, insert_select
from bench.results import BenchError, Results, log

N_SUBJECTS = 250_000
N_CLASSIFICATIONS = 1_000_000
N_VOLUNTEERS = 20_000
REFERENCE_FRACTION = 0.08
SECOND_ORIGIN = "ztf"
REQUESTS = 300
PAGE = 50
TARGET_P99_MS = 100.0
REFERENCE_SET = "bench-review"
EXPERT = "bench-reviewer"


def run(results: Results, url: str, *, n_subjects: int = N_SUBJECTS,
        n_classifications: int = N_CLASSIFICATIONS, requests: int = REQUESTS) -> None:
    """The sizes are the full run's unless the smoke test (tests/bench) shrinks them."""
    from aggregation import services as aggregation_services
    from review import queues
    from review import services as review_services

    workflow, reference_set = _seed(url, n_subjects, n_classifications)
    log("review: a batch aggregation run")
    aggregation_run = aggregation_services.run_create(workflow=workflow,
                                                      reference_sets=[reference_set])
    aggregation_run = aggregation_services.run_execute(aggregation_run.pk)
    started = time.perf_counter()
    review_services.rankings_build(aggregation_run.pk)
    results.figure("review_rankings_build_s", time.perf_counter() - started, unit="s")
    results.add("review_subjects", n_subjects)
    results.add("review_classifications", n_classifications)

    client = _expert_client(reference_set)
    rng = np.random.default_rng(0)
    names = list(queues.QUEUES)
    # Unmeasured first pages: the first request of a process imports the URL conf (and
    # torch through it), which a running server has done long before.
    for name in names:
        client.get(f"/api/review/{workflow.pk}/queue/{name}/?origin={SECOND_ORIGIN}")
    log(f"review: {requests} queue pages through the API")
    timings = []
    for i in range(requests):
        name = names[i % len(names)]
        offset = int(rng.integers(0, max(1, n_subjects // 10)))
        path = (f"/api/review/{workflow.pk}/queue/{name}/?set={reference_set.pk}"
                f"&limit={PAGE}&offset={offset}&seed={int(rng.integers(0, 2**31))}"
                + (f"&origin={SECOND_ORIGIN}" if name == queues.ORIGIN else ""))
        started = time.perf_counter()
        response = client.get(path)
        timings.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise BenchError(f"GET {path} answered {response.status_code}: "
                             f"{response.content[:300]!r}")
    p99 = float(np.percentile(timings, 99)) * 1000
    results.figure("review_queue_p50_ms", statistics.median(timings) * 1000, unit="ms")
    results.figure("review_queue_p99_ms", p99, unit="ms",
                   at_most=TARGET_P99_MS if n_subjects == N_SUBJECTS else None)
    unranked = _ordered_per_request(workflow, aggregation_run, reference_set)
    results.figure("review_queue_unranked_median_ms", unranked * 1000, unit="ms")
    results.add("review_unranked_over_ranked_p50", unranked / statistics.median(timings))


def _seed(url: str, n_subjects: int, n_classifications: int):
    from labeling import services

    log(f"review: {n_subjects:,} subjects, {n_classifications:,} classifications")
    workflow, subject_set = seed.make_workflow("bench-review")
    team = services.expert_team_get_or_create(REFERENCE_SET)
    reference_set = services.reference_set_get_or_create(name=REFERENCE_SET, team=team)
    with connect(url) as conn:
        subject_ids = seed.copy_subjects(conn, subject_set, n_subjects)
        seed.copy_statuses(conn, workflow.pk, subject_ids)
        conn.execute("UPDATE labeling_subject SET origin = %s WHERE subject_set_id = %s"
                     " AND id %% 10 = 0", (SECOND_ORIGIN, subject_set.pk))
        seed.insert_volunteers(conn, "bench-review-", N_VOLUNTEERS)
        seed.insert_reference_labels(conn, reference_set.pk, subject_set.pk, REFERENCE_FRACTION)
        # Subject s's k-th answer comes from volunteer (s + k (n_subjects + 1)) mod
        # N_VOLUNTEERS, distinct over a subject's few answers; 40% say Real. The queues read
        # votes per subject, not who gave them.
        insert_select(
            conn, "labeling_classification",
            {"client_id": "gen_random_uuid()",
             "volunteer_id": "v.first + (g + g / %(ns)s) %% %(nv)s",
             "subject_id": "%(first)s + g %% %(ns)s", "workflow_id": "%(workflow)s",
             "answer": "CASE WHEN random() < 0.4 THEN 'real' ELSE 'bogus' END",
             "created_at": "now() + g * interval '1 millisecond'", "counted": "true"},
            "FROM generate_series(0, %(n)s - 1) g,"
            " (SELECT min(id) AS first FROM labeling_volunteer"
            "  WHERE external_name LIKE 'bench-review-%%') v",
            {"nv": N_VOLUNTEERS, "ns": n_subjects, "first": int(subject_ids[0]),
             "workflow": workflow.pk, "n": n_classifications},
        )
        conn.execute("ANALYZE")
    return workflow, reference_set


def _expert_client(reference_set):
    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_user(EXPERT)
    user.groups.add(reference_set.team.group)
    token = Token.objects.create(user=user)
    return Client(HTTP_HOST="localhost", headers={"Authorization": f"Token {token.key}"})


def _ordered_per_request(workflow, aggregation_run, reference_set) -> float:
    """Median seconds to order the uncertain queue from every subject, as a page without a
    stored ranking does."""
    from review import queues, selectors

    times = []
    for _ in range(3):
        started = time.perf_counter()
        candidates = selectors.candidates_of(workflow, aggregation_run, reference_set, "")
        queues.queue_order(queues.UNCERTAIN, candidates)
        times.append(time.perf_counter() - started)
    return statistics.median(times)
