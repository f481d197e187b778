"""Label sets at 20,000 subjects: export throughput and the download's peak memory.

20,000 simulated subjects (stamps included, 8% in the simulator's reference set) get five
answers each, generated inside PostgreSQL from the simulated truth (85% right), and a batch
SWAP run labels them. The export of that run is timed in this process twice: first cold,
when it also builds the subject set's bulk stamp store (labeling.stamp_store) from the 20,000
per-subject files, then warm, the store current, as for every later export from the same
subjects; the target is the warm one's, and the two must write the same bytes. Then a child
process streams the whole archive through the download view (Django's test client, the real
URL, middleware, authentication and view) and reports its own peak resident memory (VmHWM);
a second child does everything but read the body, so the difference is what streaming
costs. Streaming in fixed-size chunks keeps it near zero whatever the archive's size.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.database import connect, insert_select
from bench.results import BenchError, Results, log

N_SUBJECTS = 20_000
ANSWERS_PER_SUBJECT = 5
ANSWERS_PER_VOLUNTEER = 200  # 500 volunteers at 20,000 subjects
VOLUNTEER_ACCURACY = 0.85
WORKFLOW = "bench-labelsets"
BENCH_USER = "bench-ml"
ROOT = Path(__file__).resolve().parent.parent


TARGET_SUBJECTS_PER_S = 5_000


def run(results: Results, url: str, media_root, *, n_subjects: int = N_SUBJECTS) -> None:
    """`n_subjects` is the full run's unless the smoke test (tests/bench) shrinks it."""
    from django.core.management import call_command

    from aggregation.labelsets.services import ExportOptions, label_set_export
    from aggregation.models import AggregationRun
    from labeling import services
    from labeling.management.commands.simulate import SIM_REFERENCE_SET

    log(f"labelsets: simulating {n_subjects:,} subjects with stamps")
    services.workflow_create(slug=WORKFLOW, project_name="Label-set benchmark")
    call_command("simulate", "subjects", "--n", str(n_subjects), "--seed", "1",
                 "--workflow", WORKFLOW, stdout=io.StringIO())
    _answer(url, n_subjects)
    log("labelsets: aggregating")
    call_command("aggregate", "--workflow", WORKFLOW, "--reference-sets", SIM_REFERENCE_SET,
                 stdout=io.StringIO())
    aggregation_run = AggregationRun.objects.filter(workflow__slug=WORKFLOW).latest("pk")

    options = ExportOptions(scenario="unstable")
    log("labelsets: exporting the unstable set, cold (building the stamp store)")
    started = time.monotonic()
    cold = label_set_export(aggregation_run.pk, options)
    cold_s = time.monotonic() - started
    log("labelsets: exporting it again, warm (the stamp store current)")
    started = time.monotonic()
    label_set = label_set_export(aggregation_run.pk, options)
    export_s = time.monotonic() - started
    if label_set.manifest != cold.manifest:
        raise BenchError("the warm export's files differ from the cold export's")
    results.add("labelsets_run_subjects", aggregation_run.n_subjects)
    results.add("labelsets_export_subjects", label_set.n_subjects)
    results.figure("labelsets_export_cold_s", cold_s, unit="s")
    results.figure("labelsets_export_cold_subjects_per_s", cold.n_subjects / cold_s,
                   unit="subjects/s")
    results.figure("labelsets_export_s", export_s, unit="s")
    rate = label_set.n_subjects / export_s
    if n_subjects == N_SUBJECTS:
        results.figure("labelsets_export_subjects_per_s", rate, unit="subjects/s",
                       at_least=TARGET_SUBJECTS_PER_S)
    else:  # the target is for 20,000 subjects
        results.figure("labelsets_export_subjects_per_s", rate, unit="subjects/s")
    results.add("labelsets_archive_mb", label_set.archive_size / 2**20)
    _stamp_reads(results)

    _bench_user()
    log("labelsets: streaming the archive through the download view in a child process")
    from django.conf import settings

    env = {**os.environ, "DATABASE_URL": url, "DJANGO_MEDIA_ROOT": str(media_root),
           "LABEL_SETS_ROOT": str(settings.LABEL_SETS_ROOT)}
    received, peak_kib = _child(label_set.number, env, read_body=True)
    if received != label_set.archive_size:
        raise BenchError(f"the download sent {received} bytes of {label_set.archive_size}")
    _, baseline_kib = _child(label_set.number, env, read_body=False)
    results.add("labelsets_download_peak_rss_mb", peak_kib / 1024)
    results.add("labelsets_download_baseline_rss_mb", baseline_kib / 1024)
    results.add("labelsets_download_streaming_cost_mb", (peak_kib - baseline_kib) / 1024)


def _answer(url: str, n_subjects: int) -> None:
    """ANSWERS_PER_SUBJECT answers per subject by distinct volunteers, right with probability
    VOLUNTEER_ACCURACY, one millisecond apart."""
    from labeling import services

    log(f"labelsets: {n_subjects * ANSWERS_PER_SUBJECT:,} answers generated in PostgreSQL")
    first = services.volunteer_for_external_name("bench-labelsets-0").pk
    n_volunteers = max(10, n_subjects * ANSWERS_PER_SUBJECT // ANSWERS_PER_VOLUNTEER)
    for i in range(1, n_volunteers):
        services.volunteer_for_external_name(f"bench-labelsets-{i}")
    with connect(url) as conn:
        insert_select(
            conn, "labeling_classification",
            {"client_id": "gen_random_uuid()",
             "volunteer_id": "%(first)s + (s.id * %(k)s + g) %% %(nv)s",
             "subject_id": "s.id", "workflow_id": "w.id",
             "answer": "CASE WHEN random() < %(accuracy)s THEN s.metadata->>'sim_truth'"
                       " WHEN s.metadata->>'sim_truth' = 'real' THEN 'bogus' ELSE 'real' END",
             "created_at": "now() + (s.id * %(k)s + g) * interval '1 millisecond'",
             "counted": "true"},
            "FROM labeling_subject s JOIN labeling_workflow w ON w.project_id = s.project_id,"
            " generate_series(0, %(k)s - 1) g WHERE w.slug = %(workflow)s",
            {"first": first, "k": ANSWERS_PER_SUBJECT, "nv": n_volunteers,
             "accuracy": VOLUNTEER_ACCURACY, "workflow": WORKFLOW},
        )


def _stamp_reads(results: Results) -> None:
    """The stamps alone, every subject's, read as the export reads them (chunks of
    artifact.CHUNK_SUBJECTS) one file at a time and from the stamp store, chunk by chunk in
    this process: the part of the export the store changes, apart from the writing,
    whose time moves with the disk's other traffic. Both must give the same bytes."""
    from django.conf import settings

    from aggregation.labelsets.artifact import CHUNK_SUBJECTS
    from labeling import selectors
    from labeling.models import Subject

    rows = list(Subject.objects.filter(statuses__workflow__slug=WORKFLOW).exclude(stamps="")
                .order_by("pk").values_list("stamps", "subject_set_id"))
    names = [name for name, _ in rows]
    chunks = [names[i : i + CHUNK_SUBJECTS] for i in range(0, len(names), CHUNK_SUBJECTS)]
    log(f"labelsets: reading {len(names):,} subjects' stamps one file at a time and in bulk")
    size = settings.STAMP_SIZE
    started = time.monotonic()
    read = selectors.subject_cube_reader({set_id for _, set_id in rows}, size)
    bulk_s, per_file_s = time.monotonic() - started, 0.0  # opening the store counts
    for chunk in chunks:  # chunk by chunk, so that only one chunk of each is held
        started = time.monotonic()
        per_file = selectors.subject_cubes(chunk, size)
        per_file_s += time.monotonic() - started
        started = time.monotonic()
        bulk = read(chunk)
        bulk_s += time.monotonic() - started
        if per_file.tobytes() != bulk.tobytes():
            raise BenchError("the stamp store gave other pixels than the stamp files")
    results.figure("labelsets_stamps_per_file_per_s", len(names) / per_file_s,
                   unit="subjects/s")
    results.figure("labelsets_stamps_bulk_per_s", len(names) / bulk_s, unit="subjects/s")
    results.add("labelsets_stamps_bulk_speedup", per_file_s / bulk_s)


def _bench_user() -> None:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_user(BENCH_USER, is_staff=True)
    Token.objects.create(user=user)


def _child(number: int, env: dict[str, str], *, read_body: bool) -> tuple[int, int]:
    """(bytes received, peak RSS in KiB) of a child process that downloads label set
    `number`, reading the body or not."""
    command = [sys.executable, "-m", "bench.labelsets", str(number),
               "read" if read_body else "headers"]
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    output, errors = child.communicate()
    if child.returncode != 0:
        raise BenchError(f"the download child failed:\n{errors.decode()}")
    received, peak_kib = output.split()
    return int(received), int(peak_kib)


def _peak_rss_kib() -> int:
    """This process's own peak resident memory, in KiB. Not ru_maxrss: a child created by
    fork and exec inherits its parent's peak there, and the parent maps whole stamp stores."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise BenchError("no VmHWM in /proc/self/status: peak memory needs Linux")


def _download(number: int, read_body: bool) -> int:
    """In the child: the download as the ML team's client asks for it; bytes received."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.test import Client
    from rest_framework.authtoken.models import Token

    token = Token.objects.get(user__username=BENCH_USER)
    client = Client(HTTP_HOST="localhost", headers={"Authorization": f"Token {token.key}"})
    response = client.get(f"/api/label-sets/{number}/download/")
    if response.status_code != 200:
        raise SystemExit(f"download answered {response.status_code}")
    received = sum(len(chunk) for chunk in response.streaming_content) if read_body else 0
    response.close()
    return received


if __name__ == "__main__":
    print(_download(int(sys.argv[1]), read_body=sys.argv[2] == "read"), _peak_rss_kib())
