"""Docs that are generated from code stay in step with it."""

from __future__ import annotations

from pathlib import Path

from physworld.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_scenario_table_matches_the_code(capsys):
    from physworld.worlds.registry import SCENARIOS_3D

    assert main(["list-scenarios", "--markdown"]) == 0
    table_2d, table_3d = capsys.readouterr().out.strip().split("\n\n")  # 2D types, then 3D
    doc = (ROOT / "docs" / "SCENARIOS.md").read_text()
    for table in (table_2d, table_3d):
        assert table in doc, (
            "docs/SCENARIOS.md is stale: regenerate its tables with `physworld list-scenarios --markdown`"
        )
    assert table_2d.count("\n| ") == 35  # one row per type
    assert table_3d.count("\n| ") == len(SCENARIOS_3D)


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in readme, f"README must show CI's test command verbatim: {ci}"


def test_every_benchmark_script_is_in_the_benchmark_document():
    doc = (ROOT / "BENCHMARKS.md").read_text()
    for script in sorted((ROOT / "bench").glob("bench_*.py")):
        assert f"python bench/{script.name}" in doc, f"BENCHMARKS.md must say how {script.name} is run"
