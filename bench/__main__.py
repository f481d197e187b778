"""`make bench` (`python -m bench`): every benchmark in order, on a fresh PostgreSQL database.

1. Classification throughput and the health baseline (`bench.classify`), which also picks
   the gunicorn settings.
2. Queue latency at Rubin scale (`bench.rubin`), on those settings.
3. An aggregation run read from PostgreSQL at ten million classifications: stage times and
   peak memory (`bench.aggregation_db`).
4. Label sets at 20,000 subjects: export throughput and the download's peak memory
   (`bench.labelsets`).
4b. Expert review queues at 250,000 subjects and 1,000,000 classifications: page latency
   through the review API (`bench.review`).
5. SWAP aggregation on simulated classifications (`bench.swap`), no database.
6. The real/bogus CNN on the CPU: inference, scoring and training-epoch throughput against
   the matmul rate (`bench.training`), no database.
7. A Zooniverse export imported and aggregated, and side by side with panoptes-aggregation's
   extract and reduce on one file (`bench.zooniverse`).

`python -m bench swap` (or `web`, `aggregation`, `labelsets`, `review`, `training`,
`zooniverse`) runs only those: `web` is 1 and 2, `aggregation` is 3, `labelsets` is 4,
`review` is 4b, `swap` is 5, `training` is 6, `zooniverse` is 7.

Figures go to stdout as `name: value` lines, and at the end to bench/results/latest.json
(every figure, its unit and target, the machine's load average) and bench/results/summary.md
(a Markdown table of the targets, each with its ratio, then every other figure; the README's
Benchmarks section is regenerated from it with `python -m bench.readme`). A run of only some
benchmarks writes latest-<names>.json and summary-<names>.md instead, leaving the full run's
files alone. Progress goes to stderr. Exits 0 when every figure was measured, 1 when a
measurement failed (e.g. an answer with the wrong status), 2 when PostgreSQL is not there.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import time

from bench import aggregation_db, classify, labelsets, review, rubin, swap, training, zooniverse
from bench.database import (
    DEFAULT_URL,
    bench_database_url,
    database_name,
    recreate,
    setup_django,
)
from bench.results import RESULTS_DIR, BenchError, Results, log, summary_path

# What `python -m bench NAME ...` can pick, in the order a full run goes.
BENCHMARKS = ("web", "aggregation", "labelsets", "review", "swap", "training", "zooniverse")
DATABASE_BENCHMARKS = {"web", "aggregation", "labelsets", "review", "zooniverse"}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n")[0],
        epilog="PostgreSQL: the server of DATABASE_URL (default "
        f"{DEFAULT_URL}); the database is its name with `_bench` appended unless it "
        "already ends so, and is dropped and recreated on every run.",
    )
    parser.add_argument("benchmarks", nargs="*", metavar="BENCHMARK",
                        help=f"run only these, of {', '.join(BENCHMARKS)} (default: all); "
                        "swap and training need no database")
    parser.add_argument("--duration", type=float, default=15.0,
                        help="seconds measured per load (default 15)")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds of unmeasured load first (default 3)")
    parser.add_argument("--trial", type=float, default=4.0,
                        help="seconds measured per gunicorn setting tried (default 4)")
    parser.add_argument("--rubin-scale", type=float, default=1.0,
                        help="fraction of the Rubin-scale data set to load (default 1)")
    parser.add_argument("--aggregation-scale", type=float, default=1.0,
                        help="fraction of the 10-million-classification aggregation run "
                        "(default 1)")
    parser.add_argument("--zooniverse-rows", type=int, default=zooniverse.FULL_ROWS,
                        help="rows of the Zooniverse export imported and aggregated "
                        f"(default {zooniverse.FULL_ROWS})")
    parser.add_argument("--zooniverse-compare-rows", type=int, default=zooniverse.COMPARE_ROWS,
                        help="rows of the export both sides run on, ours and "
                        f"panoptes-aggregation's (default {zooniverse.COMPARE_ROWS})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.benchmarks) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from "
                     f"{', '.join(BENCHMARKS)}")
    return args


def _stop_on_sigterm(signum, frame):
    # Unwinds like Ctrl-C, so the context managers stop gunicorn and remove temporary files.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = time.monotonic()
    selected = [name for name in BENCHMARKS if name in args.benchmarks] or list(BENCHMARKS)
    url = None
    try:
        results = Results()
        with contextlib.ExitStack() as stack:
            if DATABASE_BENCHMARKS & set(selected):
                url = bench_database_url()
                log(f"recreating database {database_name(url)} and migrating it")
                recreate(url)
                media_root = stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="bench-media-")
                )
                setup_django(url, media_root)
            if "web" in selected:
                config = classify.run(
                    results, url, media_root,
                    duration_s=args.duration, warmup_s=args.warmup, trial_s=args.trial,
                )
                rubin.run(
                    results, url, media_root, config,
                    scale=args.rubin_scale, duration_s=args.duration, warmup_s=args.warmup,
                )
            if "aggregation" in selected:
                aggregation_db.run(results, url, scale=args.aggregation_scale)
            if "labelsets" in selected:
                labelsets.run(results, url, media_root)
            if "review" in selected:
                review.run(results, url)
            if "zooniverse" in selected:
                zooniverse.run(results, rows=args.zooniverse_rows,
                               compare_rows=args.zooniverse_compare_rows,
                               panoptes=zooniverse.panoptes_cli())
        if "swap" in selected:
            swap.run(results)
        if "training" in selected:
            training.run(results)
        results.add("bench_total_s", time.monotonic() - started)
        if selected == list(BENCHMARKS):
            path = results.save()
        else:
            path = results.save(RESULTS_DIR / f"latest-{'-'.join(selected)}.json")
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bench: interrupted; gunicorn stopped, temporary files removed", file=sys.stderr)
        return 130
    log(f"summary table: {summary_path(path)}")
    if url is None:
        log(f"wrote {path}")
    else:
        log(f"wrote {path}; database {database_name(url)} is left for inspection "
            "and recreated by the next run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
