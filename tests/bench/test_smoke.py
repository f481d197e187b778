"""Every part of `make bench` run at a tiny size: seconds, no timing asserted.

A schema change that breaks a benchmark's seeding (a NOT NULL column it does not write, a
renamed table) or its measurement then fails here, in CI, rather than in the next
`make bench`. Each test checks the figures its part reports, not how fast they were.
"""

from __future__ import annotations

import pytest

from bench import aggregation_db, labelsets, review, swap, training
from bench.results import Results


def _figures(results: Results, prefix: str) -> set[str]:
    return {name for name in results.figures if name.startswith(prefix)}


@pytest.mark.postgres
def test_aggregation_from_postgresql(database_url):
    results = Results()
    aggregation_db.run(results, database_url, scale=0.0001)  # 1,000 classifications
    figures = results.figures
    assert figures["aggregation_db_classifications"] == 1000
    assert figures["aggregation_db_subjects"] == 250
    assert {"aggregation_db_read_s", "aggregation_db_swap_s", "aggregation_db_write_s",
            "aggregation_db_commit_s", "aggregation_db_command_s",
            "aggregation_db_peak_rss_mb"} <= set(figures)


@pytest.mark.postgres
def test_label_set_export(database_url, settings):
    results = Results()
    # 400 subjects give each of the ten volunteers 200 answers, some on reference subjects,
    # as at full size: at 40, no skill is learnt and nothing is labelled.
    labelsets.run(results, database_url, settings.MEDIA_ROOT, n_subjects=400)
    figures = results.figures
    assert figures["labelsets_run_subjects"] == 400
    assert 0 < figures["labelsets_export_subjects"] <= 400
    assert figures["labelsets_export_subjects_per_s"] > 0
    assert figures["labelsets_export_cold_subjects_per_s"] > 0
    assert figures["labelsets_stamps_bulk_per_s"] > 0
    assert figures["labelsets_download_peak_rss_mb"] > 0


@pytest.mark.postgres
def test_review_queues(database_url):
    results = Results()
    review.run(results, database_url, n_subjects=400, n_classifications=1600, requests=5)
    assert {"review_queue_p50_ms", "review_queue_p99_ms"} <= _figures(results, "review_")


def test_swap_core():
    results = Results()
    swap.run(results, sizes=(2_000,), loop_size=2_000, online_steps=200)
    figures = results.figures
    assert figures["swap_2000_subjects"] == 500
    assert "swap_batch_2000_s" in figures
    assert figures["swap_loop_vs_batch_online_max_abs_diff_2000"] <= 1e-12


def test_cnn_on_the_cpu():
    results = Results()
    training.run(results, training.SMOKE)
    assert {"training_matmul_gflops", "training_inference_triplets_per_s",
            "training_epoch_triplets_per_s"} <= set(results.figures)
