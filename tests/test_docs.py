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


def test_readme_set_up_commands_are_what_ci_runs():
    """.ci/run runs both of the README's set-up commands (each line after a `# --- the README's ...`
    marker), each in its own fresh virtual environment."""
    readme = (ROOT / "README.md").read_text()
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [lines[i + 1] for i, line in enumerate(lines) if line.startswith("# --- the README's")]
    assert len(commands) == 2, "CI must run the README's test command and its main command"
    test_command, main_command = commands
    assert test_command in readme, f"README must show CI's test command verbatim: {test_command}"
    assert main_command.startswith("pip install -e . && physworld quickstart"), main_command
    assert "pip install -e . && physworld quickstart" in readme
    assert lines.count("python3 -m venv --clear .venv") == 1 and any("venv-base" in line for line in lines)


def test_every_benchmark_script_is_in_the_benchmark_document():
    doc = (ROOT / "BENCHMARKS.md").read_text()
    for script in sorted((ROOT / "bench").glob("bench_*.py")):
        assert f"python bench/{script.name}" in doc, f"BENCHMARKS.md must say how {script.name} is run"
