"""The benchmark's report: targets and ratios in the summary, and the README's section
rewritten from it and from nothing else."""

from __future__ import annotations

import json

import pytest

from bench.readme import BEGIN, END, replace_summary
from bench.results import Results, summary_markdown


def test_summary_lists_targets_with_ratios_and_the_load(tmp_path, capsys):
    results = Results()
    results.figure("export_rate", 6000.0, unit="subjects/s", at_least=5000)
    results.figure("aggregate_s", 45.0, unit="s", at_most=30)
    results.add("plain", 7)
    path = results.save(tmp_path / "latest.json")

    data = json.loads(path.read_text())
    assert data["figures"] == {"export_rate": 6000.0, "aggregate_s": 45.0, "plain": 7}
    assert data["targets"]["aggregate_s"] == {"value": 30.0, "at_most": True}
    assert len(data["machine"]["load_average_before"]) == 3
    summary = (tmp_path / "summary.md").read_text()
    assert summary == summary_markdown(data)
    assert "Targets: 1 of 2 met." in summary
    assert "| `export_rate` | 6,000 subjects/s | >= 5,000 subjects/s | 1.20 | yes |" in summary
    assert "| `aggregate_s` | 45 s | <= 30 s | 1.50 | **no** |" in summary
    assert "| `plain` | 7 |" in summary
    assert "load average (1, 5, 15 min)" in summary
    # stdout stays `name: value` lines
    assert capsys.readouterr().out.splitlines() == [
        "export_rate: 6000.0", "aggregate_s: 45.0", "plain: 7"
    ]


def test_a_partial_run_writes_its_own_summary(tmp_path):
    Results().save(tmp_path / "latest-swap.json")
    assert (tmp_path / "summary-swap.md").exists()


def test_a_figure_is_reported_once_with_one_target():
    results = Results()
    results.add("x", 1)
    with pytest.raises(ValueError, match="twice"):
        results.add("x", 2)
    with pytest.raises(ValueError, match="not both"):
        results.figure("y", 1, at_most=2, at_least=0)
    with pytest.raises(ValueError, match="number"):
        results.figure("z", "fast", at_most=2)


def test_readme_section_is_replaced_between_the_markers_only():
    readme = f"# Title\n\n## Benchmarks\nprose\n{BEGIN}\nold table\n{END}\nafter\n"
    new = replace_summary(readme, "| new | table |\n")
    assert new == f"# Title\n\n## Benchmarks\nprose\n{BEGIN}\n| new | table |\n{END}\nafter\n"
    assert replace_summary(new, "| new | table |") == new


@pytest.mark.parametrize("readme", ["no markers", f"{END}\n{BEGIN}\n", f"{BEGIN}\n{BEGIN}\n{END}"])
def test_readme_without_a_proper_section_is_refused(readme):
    with pytest.raises(ValueError, match="must"):
        replace_summary(readme, "x")
