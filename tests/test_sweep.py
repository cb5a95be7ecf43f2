"""`physworld sweep`: the W&B sweep format converts to Optuna's space; 2 trials of the tiny
PhysicsExpert preset run as `physworld train` subprocesses, the study resumes from SQLite, and the
results table and plot are written."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from physworld.cli import main
from physworld.data.generate import GenerateConfig, generate
from physworld.sweep import SweepError, parse_space

optuna = pytest.importorskip("optuna")

TINY = Path(__file__).resolve().parents[1] / "configs" / "physics_expert" / "tiny.yaml"

GUIDE_SWEEP = """
sweep_config:
  method: bayes
  metric: {name: val_loss, goal: minimize}
  parameters:
    optim.lr: {min: 0.0001, max: 0.01, distribution: log_uniform_values}
    model.hidden: {values: [8, 16]}
    model.message_passing_steps: {min: 1, max: 3}
    optim.warmup_steps: {value: 1}
    optim.grad_clip: {min: 0.5, max: 2.0}
    optim.min_lr_ratio: {min: -4.6, max: -2.3, distribution: log_uniform}
"""


def test_the_guides_wandb_format_converts_to_optuna_distributions():
    import yaml

    space = parse_space(yaml.safe_load(GUIDE_SWEEP))
    assert space["method"] == "bayes" and space["metric"] == {"name": "val_loss", "goal": "minimize"}
    p = space["parameters"]
    assert p["optim.lr"] == {"kind": "float", "low": 0.0001, "high": 0.01, "log": True}
    assert p["model.hidden"] == {"kind": "categorical", "values": [8, 16]}
    assert p["model.message_passing_steps"] == {"kind": "int", "low": 1, "high": 3}
    assert p["optim.warmup_steps"] == {"kind": "fixed", "value": 1}
    assert p["optim.grad_clip"] == {"kind": "float", "low": 0.5, "high": 2.0, "log": False}
    lr = p["optim.min_lr_ratio"]
    assert lr["log"] and math.isclose(lr["low"], math.exp(-4.6)) and math.isclose(lr["high"], math.exp(-2.3))
    for bad, message in [
        ({"parameters": {"a.b": {"min": 1}}}, "min: and max:"),
        ({"parameters": {"a.b": {"min": 0.1, "max": 1.0, "distribution": "q_normal"}}}, "not supported"),
        ({"method": "hyperband", "parameters": {"a.b": {"value": 1}}}, "method"),
        ({"method": "grid", "parameters": {"a.b": {"min": 0.1, "max": 1.0}}}, "grid needs"),
        ({"parameters": {}}, "needs `parameters:`"),
    ]:
        with pytest.raises(SweepError, match=message):
            parse_space(bad)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    generate(
        GenerateConfig(("pendulum", "projectile"), 2, frames_per_scene=20), root / "train", progress=False
    )
    generate(
        GenerateConfig(("pendulum", "projectile"), 1, frames_per_scene=20, seed=7),
        root / "val",
        progress=False,
    )
    return root


def test_two_trials_of_the_tiny_preset_then_resume(data, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(
        "metric: {name: val_loss, goal: minimize}\n"
        "parameters:\n  optim.lr: {min: 0.001, max: 0.01, distribution: log_uniform_values}\n"
        "  model.hidden: {values: [8, 16]}\n"
    )
    study = tmp_path / "study"
    args = ["sweep", "--recipe", "physics-expert", "--config", str(TINY), "--space", str(space)]
    args += [
        "--study-dir",
        str(study),
        "--quiet",
        f"data.train_dir={data / 'train'}",
        f"data.val_dir={data / 'val'}",
    ]
    args += ["train.max_steps=4", "train.eval_every=2", "train.tensorboard=false", "data.val_windows=8"]
    assert main([*args, "--trials", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 complete, 0 pruned of 2 trials" in out
    rows = list(csv.DictReader((study / "results.csv").open()))
    assert [r["state"] for r in rows] == ["complete", "complete"]
    values = [float(r["val_loss"]) for r in rows]
    assert all(math.isfinite(v) for v in values)
    assert float(rows[1]["best_so_far"]) == min(values)
    for r in rows:  # each trial trained in its own directory with the values Optuna chose
        config = (Path(r["output_dir"]) / "config.yaml").read_text()
        assert f"hidden: {r['param:model.hidden']}" in config
        assert (Path(r["output_dir"]) / "checkpoints" / "best.safetensors").is_file()
    assert (study / "results.md").read_text().startswith("# Sweep: val_loss (minimize)")
    assert (study / "sweep.png").read_bytes()[:4] == b"\x89PNG"

    # Rerunning with the same trial count resumes: nothing more runs.
    assert main([*args, "--trials", "2"]) == 0
    assert "2 complete, 0 pruned of 2 trials" in capsys.readouterr().out
    # Another space in the same study directory is refused in one line.
    space.write_text("parameters:\n  optim.lr: {values: [0.01]}\n")
    assert main([*args, "--trials", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds another sweep" in err


def test_a_setup_mistake_stops_the_sweep_in_one_line(data, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n  optim.no_such_key: {values: [1, 2]}\n")
    args = ["sweep", "--recipe", "physics-expert", "--config", str(TINY), "--space", str(space), "--quiet"]
    args += ["--study-dir", str(tmp_path / "s"), "--trials", "3", f"data.train_dir={data / 'train'}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "trial 0 failed" in err and "no_such_key" in err, err


class _PruningTrial:
    """An Optuna trial stand-in whose pruner stops it at the first reported value."""

    number = 0

    def __init__(self):
        self.reported, self.attrs = [], {}

    def suggest_categorical(self, name, choices):
        return choices[0]

    def report(self, value, step):
        self.reported.append((step, value))

    def should_prune(self):
        return True

    def set_user_attr(self, key, value):
        self.attrs[key] = value


def test_a_pruned_trial_stops_its_training_process_at_the_first_evaluation(data, tmp_path):
    from physworld.sweep import run_trial
    from physworld.training.metrics import read_metrics

    settings = {
        "recipe": "physics-expert",
        "config": str(TINY),
        "study_dir": str(tmp_path),
        "space": parse_space({"parameters": {"model.hidden": {"values": [8]}}}),
        "overrides": [
            f"data.train_dir={data / 'train'}",
            f"data.val_dir={data / 'val'}",
            "train.max_steps=100000",
            "train.eval_every=1",
            "train.tensorboard=false",
            "data.val_windows=4",
        ],
    }
    trial = _PruningTrial()
    with pytest.raises(optuna.TrialPruned):
        run_trial(trial, settings, poll_s=0.1)
    assert trial.reported and trial.reported[0][0] == 1  # val_loss at step 1 was reported, then pruned
    steps = [r["step"] for r in read_metrics(Path(trial.attrs["output_dir"]) / "metrics.jsonl")]
    assert max(steps) < 100000  # the training process was ended long before its last step
