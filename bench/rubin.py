"""Queue latency at Rubin scale: GET /api/workflows/{id}/queue/?n=10 over 250,000 subjects
and 1,000,000 classifications by 3,750 volunteers.

What it measures: p50 and p99 latency and requests per second of the queue under 32
concurrent clients against gunicorn, overall and separately for the most active 1% of
volunteers (whose many classifications the queue must exclude), the SQL statements of one
queue request, and how long loading the data set took.

The data set is what a season of Rubin Difference Detectives could leave behind, generated
with numpy and loaded with COPY:
- 8% of the subjects are reference (gold) subjects, labelled in a reference set. They never
  retire and take a fixed share of the classifications, as gold injection serves them.
- Every other subject's answers follow the retirement rule: the first two agree (retired at
  two) or not (retired at seven); subjects still in progress hold fewer. Whether a subject
  has finished is drawn so that the classifications add up exactly.
- Volunteers' activity is heavy-tailed (Zipf, exponent 1), as on Zooniverse: a few
  volunteers make a large share of the classifications; nobody answers a subject twice.
- Queue requests come from volunteers in proportion to their activity, because each
  request serves the next ten subjects of someone classifying.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from bench import seed
from bench.database import connect, copy_rows
from bench.loadgen import Request, http_request, run_load
from bench.queries import count_queries
from bench.results import BenchError, Results, log
from bench.server import Gunicorn, GunicornConfig

N_SUBJECTS = 250_000
N_CLASSIFICATIONS = 1_000_000
N_VOLUNTEERS = 3_750
N_CLIENTS = 32
QUEUE_SIZE = 10

REFERENCE_FRACTION = 0.08  # of the subjects
# Of the classifications. Gold injection serves 40% reference subjects to newcomers and 10%
# to volunteers past 60 classifications, and most classifications come from the latter.
REFERENCE_SHARE = 0.12
REAL_FRACTION = 0.3
# Volunteers answer a difference image correctly this often; the chance that the first two
# answers agree (0.7^2 + 0.3^2 = 58%) sets how many subjects need seven answers.
ACCURACY = 0.7
ZIPF_EXPONENT = 1.0
SPAN_DAYS = 120
HEAVIEST_FRACTION = 0.01


@dataclass
class Season:
    """The generated data set; subjects and volunteers are indices until loaded."""

    is_reference: np.ndarray  # per subject
    truth_real: np.ndarray  # per subject
    n_counted: np.ndarray  # per subject
    retired: np.ndarray  # per subject
    # Per classification, sorted by time:
    subject: np.ndarray
    volunteer: np.ndarray
    answer_real: np.ndarray
    created_us: np.ndarray  # microseconds since the epoch
    activity: np.ndarray  # classifications per volunteer


def _draw_counts(
    rng: np.random.Generator, first_two_agree: np.ndarray, budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """How many answers each non-reference subject has, summing to `budget` when possible.

    A subject that has finished holds its full sequence (2 if the first two agree, else 7)
    and is retired; one in progress holds fewer. Subjects finish in random order until the
    budget is spent.
    """
    full = np.where(first_two_agree, 2, 7)
    in_progress = rng.integers(0, full)  # 0 .. full - 1 answers so far
    counts = in_progress.copy()
    order = rng.permutation(len(full))
    extra = np.cumsum((full - in_progress)[order])
    n_finished = int(np.searchsorted(extra, budget - in_progress.sum(), side="right"))
    finished = np.zeros(len(full), dtype=bool)
    finished[order[:n_finished]] = True
    counts[finished] = full[finished]
    return counts, finished


def _assign_volunteers(
    rng: np.random.Generator, subject: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """A volunteer per classification, drawn by activity, never twice on one subject."""
    n_volunteers = len(weights)
    volunteer = rng.choice(n_volunteers, size=len(subject), p=weights)
    while True:
        key = subject.astype(np.int64) * n_volunteers + volunteer
        order = np.argsort(key, kind="stable")
        repeat = np.zeros(len(key), dtype=bool)
        repeat[order[1:]] = key[order[1:]] == key[order[:-1]]
        if not repeat.any():
            return volunteer
        volunteer[repeat] = rng.choice(n_volunteers, size=int(repeat.sum()), p=weights)


def generate(
    n_subjects: int, n_classifications: int, n_volunteers: int, rng_seed: int = 7
) -> Season:
    rng = np.random.default_rng(rng_seed)
    is_reference = np.zeros(n_subjects, dtype=bool)
    is_reference[rng.choice(n_subjects, int(n_subjects * REFERENCE_FRACTION), replace=False)] = True
    truth_real = rng.random(n_subjects) < REAL_FRACTION

    # Non-reference subjects: seven potential answers each, of which the first n count.
    science = np.flatnonzero(~is_reference)
    correct = rng.random((len(science), 7)) < ACCURACY
    answers = np.where(correct, truth_real[science, None], ~truth_real[science, None])
    counts, finished = _draw_counts(
        rng, answers[:, 0] == answers[:, 1],
        n_classifications - int(n_classifications * REFERENCE_SHARE),
    )
    n_counted = np.zeros(n_subjects, dtype=np.int64)
    n_counted[science] = counts
    retired = np.zeros(n_subjects, dtype=bool)
    retired[science] = finished
    # Reference subjects take whatever is left, spread evenly at random.
    gold = np.flatnonzero(is_reference)
    n_counted[gold] = rng.multinomial(
        n_classifications - counts.sum(), np.full(len(gold), 1 / len(gold))
    )

    # One row per classification, grouped by subject, in answer order within a subject.
    subject = np.repeat(np.arange(n_subjects), n_counted)
    starts = np.cumsum(n_counted) - n_counted
    position = np.arange(len(subject)) - np.repeat(starts, n_counted)
    answer_real = np.where(
        rng.random(len(subject)) < ACCURACY, truth_real[subject], ~truth_real[subject]
    )
    row_of_science = np.full(n_subjects, -1)
    row_of_science[science] = np.arange(len(science))
    from_matrix = ~is_reference[subject]
    answer_real[from_matrix] = answers[row_of_science[subject[from_matrix]], position[from_matrix]]

    # Time: each subject is first seen at a random moment of the season, and answers follow
    # about a day apart.
    now_us = int(time.time() * 1e6)
    day_us = 86_400e6
    first_seen = rng.uniform(0, SPAN_DAYS - 10, n_subjects) * day_us
    gaps = rng.exponential(day_us, len(subject))
    gaps[position == 0] = 0
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[starts[n_counted > 0]], n_counted[n_counted > 0])
    created_us = (now_us - SPAN_DAYS * day_us + first_seen[subject] + elapsed).astype(np.int64)
    created_us = np.minimum(created_us, now_us - 60_000_000)

    weights = 1.0 / np.arange(1, n_volunteers + 1) ** ZIPF_EXPONENT
    volunteer = _assign_volunteers(rng, subject, weights / weights.sum())

    by_time = np.argsort(created_us, kind="stable")
    return Season(
        is_reference=is_reference, truth_real=truth_real, n_counted=n_counted, retired=retired,
        subject=subject[by_time], volunteer=volunteer[by_time],
        answer_real=answer_real[by_time], created_us=created_us[by_time],
        activity=np.bincount(volunteer, minlength=n_volunteers),
    )


def _iso(microseconds: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(microseconds.astype("datetime64[us]")), "+00")


def _statuses(season: Season) -> dict[str, np.ndarray]:
    """Each subject's retirement state, as the classification service would have left it."""
    n = len(season.n_counted)
    order = np.lexsort((season.created_us, season.subject))  # by subject, then time
    real, created = season.answer_real[order], season.created_us[order]
    has_answers = season.n_counted > 0
    ends = np.cumsum(season.n_counted)
    starts = (ends - season.n_counted)[has_answers]
    first_answer = np.full(n, "", dtype=object)
    first_answer[has_answers] = np.where(real[starts], "real", "bogus")
    unanimous = np.ones(n, dtype=bool)
    unanimous[has_answers] = (
        np.minimum.reduceat(real, starts) == np.maximum.reduceat(real, starts)
    )
    retired_at = np.full(n, "", dtype=object)
    # A retired subject retired with its last answer (and every retired one has answers).
    retired_at[season.retired] = _iso(created[ends[season.retired] - 1])
    return {"n_counted": season.n_counted, "first_answer": first_answer,
            "unanimous": unanimous, "retired_at": retired_at}


def load(database_url: str, season: Season) -> tuple[int, list[str], dict[str, float]]:
    """COPY the season into a new workflow; return its id, the volunteers' tokens (by
    volunteer index) and how long each step took."""
    from labeling import services

    timings = {}
    started = time.monotonic()
    workflow, subject_set = seed.make_workflow("rubin")
    volunteers = seed.volunteers_with_tokens("rubin", len(season.activity))
    volunteer_ids = np.array([pk for pk, _ in volunteers])
    season_start = _iso(np.array([season.created_us.min()]))[0]
    with connect(database_url) as conn:
        subject_ids = seed.copy_subjects(conn, subject_set, len(season.n_counted), season_start)
        seed.copy_statuses(conn, workflow.pk, subject_ids, **_statuses(season))
        team = services.expert_team_get_or_create("bench-experts")
        reference_set = services.reference_set_get_or_create(name="bench-gold", team=team)
        gold = np.flatnonzero(season.is_reference)
        copy_rows(conn, "labeling_referencelabel",
                  ["reference_set_id", "subject_id", "label", "explanation", "created_at",
                   "updated_at"],
                  (f"{reference_set.pk}\t{subject_ids[i]}\t"
                   f"{'real' if season.truth_real[i] else 'bogus'}\t\t{season_start}"
                   f"\t{season_start}\n"
                   for i in gold.tolist()))
        conn.commit()
        timings["rubin_load_subjects_s"] = time.monotonic() - started

        started = time.monotonic()
        # The rows are consistent by construction, and checking their three foreign keys
        # at commit took 19 s instead of 11 s here. Skipping triggers needs a superuser
        # (the default URL's `postgres` is one); anyone else loads with the checks.
        (superuser,) = conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if superuser:
            conn.execute("SET session_replication_role = replica")
        _copy_classifications(conn, workflow.pk, subject_ids, volunteer_ids, season)
        conn.commit()
    # What classification_create keeps per answer: each volunteer's count, for the queue.
    services.volunteer_counts_add(workflow.pk, volunteer_ids[season.volunteer].tolist())
    timings["rubin_load_classifications_s"] = time.monotonic() - started

    started = time.monotonic()
    # VACUUM as well as ANALYZE: autovacuum keeps the visibility map of a live, insert-only
    # table current, which index-only scans of classifications rely on.
    with connect(database_url, autocommit=True) as conn:
        for table in ("labeling_classification", "labeling_subjectworkflowstatus",
                      "labeling_subject", "labeling_referencelabel", "labeling_volunteer",
                      "labeling_volunteerworkflowcount", "authtoken_token", "auth_user"):
            conn.execute(f"VACUUM ANALYZE {table}")
    timings["rubin_vacuum_analyze_s"] = time.monotonic() - started
    return workflow.pk, [token for _, token in volunteers], timings


def _copy_classifications(conn, workflow_id, subject_ids, volunteer_ids, season: Season) -> None:
    chunk = seed.CHUNK * 5
    total = len(season.subject)

    def chunks() -> Iterator[str]:
        with tqdm(total=total, desc="classifications", unit="row", unit_scale=True,
                  leave=False) as bar:
            for start in range(0, total, chunk):
                stop = min(start + chunk, total)
                client_ids = os.urandom(16 * (stop - start)).hex()
                rows = zip(
                    volunteer_ids[season.volunteer[start:stop]].tolist(),
                    subject_ids[season.subject[start:stop]].tolist(),
                    np.where(season.answer_real[start:stop], "real", "bogus").tolist(),
                    _iso(season.created_us[start:stop]).tolist(),
                    strict=True,
                )
                yield "".join(
                    f"{client_ids[32 * j : 32 * j + 32]}\t{volunteer}\t{subject}\t{workflow_id}"
                    f"\t{answer}\t{created}\t{seed.NULL}\tbench\tt\t\t\n"
                    for j, (volunteer, subject, answer, created) in enumerate(rows)
                )
                bar.update(stop - start)

    copy_rows(
        conn, "labeling_classification",
        ["client_id", "volunteer_id", "subject_id", "workflow_id", "answer", "created_at",
         "answered_at", "user_agent", "counted", "not_counted_reason", "external_id"],
        chunks(),
    )


def _clients(
    port: int, workflow_id: int, tokens: list[str], activity: np.ndarray, heaviest: set[int]
) -> list[Iterator[Request]]:
    path = f"/api/workflows/{workflow_id}/queue/?n={QUEUE_SIZE}"
    requests = [
        Request(
            http_request("GET", path, port, {"Authorization": f"Token {token}"}),
            expect=200, group="heaviest" if index in heaviest else "others",
        )
        for index, token in enumerate(tokens)
    ]
    weights = activity / activity.sum()

    def client(rng_seed: int) -> Iterator[Request]:
        rng = np.random.default_rng(rng_seed)
        while True:
            for index in rng.choice(len(requests), size=1000, p=weights).tolist():
                yield requests[index]

    return [client(c) for c in range(N_CLIENTS)]


def _one_at_a_time(path: str, token: str, repeats: int = 20) -> tuple[float, float]:
    """Mean SQL statements and median in-process milliseconds of one volunteer's queue
    requests, made one at a time: the cost of a request without queueing behind others,
    which under 32 clients hides how the cost grows with the volunteer's activity. The
    statement count varies with the random number of reference subjects drawn."""
    counts, times = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        n_queries, answer = count_queries(path, token, expect=200)
        times.append((time.perf_counter() - started) * 1000.0)
        if len(answer["subjects"]) != QUEUE_SIZE:
            raise BenchError(f"a queue came back short: {answer}")
        counts.append(n_queries)
    return float(np.mean(counts)), float(np.median(times))


def run(
    results: Results, database_url: str, media_root, config: GunicornConfig, *, scale: float,
    duration_s: float, warmup_s: float,
) -> None:
    n_subjects = int(N_SUBJECTS * scale)
    n_classifications = int(N_CLASSIFICATIONS * scale)
    n_volunteers = max(int(N_VOLUNTEERS * scale), 100)
    log(f"generating {n_subjects:,} subjects, {n_classifications:,} classifications, "
        f"{n_volunteers:,} volunteers")
    started = time.monotonic()
    season = generate(n_subjects, n_classifications, n_volunteers)
    generate_s = time.monotonic() - started
    log("loading them with COPY")
    workflow_id, tokens, timings = load(database_url, season)

    results.add("rubin_subjects", n_subjects)
    results.add("rubin_reference_subjects", int(season.is_reference.sum()))
    results.add("rubin_classifications", len(season.subject))
    results.add("rubin_volunteers", n_volunteers)
    results.add("rubin_retired_pct", 100.0 * season.retired.mean())
    n_heaviest = max(1, int(n_volunteers * HEAVIEST_FRACTION))
    by_activity = np.argsort(season.activity)[::-1]
    heaviest = set(by_activity[:n_heaviest].tolist())
    results.add("rubin_heaviest_volunteer_classifications", int(season.activity.max()))
    results.add("rubin_heaviest_1pct_share_pct",
                100.0 * season.activity[by_activity[:n_heaviest]].sum() / len(season.subject))
    results.add("rubin_generate_s", generate_s)
    for name, seconds in timings.items():
        results.add(name, seconds)
    results.add("rubin_load_total_s", generate_s + sum(timings.values()))

    path = f"/api/workflows/{workflow_id}/queue/?n={QUEUE_SIZE}"
    heaviest_queries, heaviest_ms = _one_at_a_time(path, tokens[by_activity[0]])
    _, median_ms = _one_at_a_time(path, tokens[by_activity[len(by_activity) // 2]])
    results.add("queue_db_queries_per_request_mean", heaviest_queries)
    results.add("queue_inprocess_ms_heaviest_volunteer", heaviest_ms)
    results.add("queue_inprocess_ms_median_volunteer", median_ms)

    with Gunicorn(config, database_url, media_root) as server:
        log(f"measuring: {duration_s:.0f} s of GET /api/workflows/{workflow_id}/queue/")
        queue = run_load(
            port=server.port, server_pid=server.pid,
            clients=_clients(server.port, workflow_id, tokens, season.activity, heaviest),
            warmup_s=warmup_s, duration_s=duration_s,
        )
    queue.check("GET /api/workflows/{id}/queue/", 200)
    results.add(f"queue_rps_{N_CLIENTS}c", queue.rps)
    results.add(f"queue_p50_ms_{N_CLIENTS}c", queue.percentile_ms(50))
    results.add(f"queue_p99_ms_{N_CLIENTS}c", queue.percentile_ms(99))
    for group in ("heaviest", "others"):
        label = "heaviest_1pct" if group == "heaviest" else "other_volunteers"
        results.add(f"queue_requests_{label}", len(queue.latencies_ms.get(group, [])))
        results.add(f"queue_p50_ms_{label}", queue.percentile_ms(50, group))
        results.add(f"queue_p99_ms_{label}", queue.percentile_ms(99, group))
    for status, count in sorted(queue.statuses.items()):
        results.add(f"queue_status_{status}", count)
    results.add("queue_cpu_server_pct", queue.cpu.server_pct)
    results.add("queue_cpu_postgres_pct", queue.cpu.postgres_pct)
    results.add("queue_cpu_loadgen_pct", queue.cpu.loadgen_pct)
    results.add("queue_cpu_other_pct", queue.cpu.other_pct)
