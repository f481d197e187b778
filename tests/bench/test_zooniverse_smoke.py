"""A tiny run of bench/zooniverse.py, so that a change which breaks it fails here. Nothing is
timed: only that every figure comes out."""

import pytest

from bench import zooniverse
from bench.results import Results
from labeling.models import Classification

pytestmark = pytest.mark.django_db

OURS = ("import_s", "import_rows_per_s", "aggregate_s", "ours_total_s")


def test_our_half_imports_and_aggregates_a_small_export(capsys):
    results = Results()
    zooniverse.run(results, rows=60, compare_rows=30, panoptes=None)
    n_rows = results.figures["zooniverse_rows"]
    assert n_rows >= 60
    assert Classification.objects.count() == n_rows
    assert set(results.figures) == {"zooniverse_rows", *(f"zooniverse_{name}" for name in OURS)}
    assert "side by side skipped" in capsys.readouterr().err


def test_both_halves_on_one_small_export():
    cli = zooniverse.panoptes_cli()
    if cli is None:
        pytest.skip("panoptes-aggregation is not installed (make bench builds .venv-panoptes "
                    "from requirements-panoptes.txt; CI installs requirements-dev only)")
    results = Results()
    zooniverse.run(results, rows=30, compare_rows=40, panoptes=cli)
    for name in (*OURS, "panoptes_extract_s", "panoptes_reduce_s", "panoptes_total_s",
                 "panoptes_over_ours"):
        assert results.figures[f"zooniverse_compare_{name}"] > 0
