"""The physics-expert recipe: presets validate, it learns, it resumes bit for bit, it survives NaNs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from physworld.cli import main
from physworld.data.generate import GenerateConfig, generate
from physworld.recipes import physics_expert as recipe
from physworld.training.checkpoint import load_checkpoint
from physworld.training.config import ConfigError, load_config
from physworld.training.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "configs" / "physics_expert").glob("*.yaml"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pe")
    generate(
        GenerateConfig(
            scenario_types=("pendulum", "billiards", "projectile"), num_scenes_per_type=3, frames_per_scene=40
        ),
        root / "train",
        progress=False,
    )
    generate(
        GenerateConfig(
            scenario_types=("pendulum", "billiards", "pong"),
            num_scenes_per_type=1,
            frames_per_scene=40,
            seed=7,
        ),
        root / "val",
        progress=False,
    )
    return root


def tiny(data, out, *extra):
    return [
        f"data.train_dir={data / 'train'}",
        f"data.val_dir={data / 'val'}",
        f"train.output_dir={out}",
        *extra,
    ]


def weights(path):
    return load_checkpoint(path).tensors


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_loads_and_validates(preset):
    cfg = load_config(preset, recipe.RecipeConfig)
    assert cfg.train.max_steps >= 1 and cfg.model.history >= 1
    assert {p.stem for p in PRESETS} >= {"tiny", "quickstart", "standard"}


def test_bad_config_errors_name_the_key(tmp_path):
    preset = ROOT / "configs" / "physics_expert" / "tiny.yaml"
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(preset, recipe.RecipeConfig, ["optim.lrr=0.1"])
    with pytest.raises(ConfigError, match="curriculum_stages"):
        load_config(preset, recipe.RecipeConfig, ["train.curriculum_stages=9"])
    with pytest.raises(ConfigError, match="unknown scenario type 'bogus'"):
        load_config(preset, recipe.RecipeConfig, ["data.scenario_types=[bogus]"])


def test_overfits_a_handful_of_scenes(data, tmp_path):
    """Trained on the same windows long enough, the one-step error collapses (no noise, no validation split)."""
    out = tmp_path / "overfit"
    overrides = tiny(
        data,
        out,
        "train.max_steps=300",
        "optim.lr=0.003",
        "optim.warmup_steps=10",
        "model.hidden=32",
        "model.message_passing_steps=2",
        "data.scenario_types=[pendulum, projectile]",
        f"data.val_dir={data / 'train'}",
        "data.val_windows=64",
        "train.eval_every=5",
    )
    recipe.main(str(ROOT / "configs" / "physics_expert" / "tiny.yaml"), overrides, progress=False)
    evals = [m for m in read_metrics(out / "metrics.jsonl") if "val_loss" in m]
    assert evals[0]["step"] == 5
    assert evals[-1]["val_loss"] < 0.1 * evals[0]["val_loss"], [(m["step"], m["val_loss"]) for m in evals]
    assert evals[-1]["val_position_error_px"] < 0.2 * evals[0]["val_position_error_px"]
    assert (out / "config.yaml").exists() and (out / "checkpoints" / "best.safetensors").exists()


def _cli(data, out, *extra):
    return [
        sys.executable,
        "-m",
        "physworld.cli",
        "train",
        "physics-expert",
        "--quiet",
        "--config",
        str(ROOT / "configs" / "physics_expert" / "tiny.yaml"),
        *tiny(data, out, *extra),
    ]


def test_killed_and_resumed_run_matches_an_uninterrupted_one(data, tmp_path):
    extra = (
        "train.max_steps=40",
        "train.save_every=3",
        "train.eval_every=10",
        "optim.grad_accum=2",
        "model.noise_std=0.1",
        "train.curriculum_stages=2",
    )
    ref = tmp_path / "ref"
    subprocess.run(_cli(data, ref, *extra), check=True)
    out = tmp_path / "out"
    kills = 0
    for wait_for_steps in (3, 12, 27):  # kill -9 after checkpoints at several points, stage 2 included
        proc = subprocess.Popen(_cli(data, out, *extra), start_new_session=True)
        while proc.poll() is None:
            metrics = out / "metrics.jsonl"
            if metrics.exists() and any(m.get("step", 0) >= wait_for_steps for m in read_metrics(metrics)):
                break
            time.sleep(0.01)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    subprocess.run(_cli(data, out, *extra), check=True)
    assert kills >= 2, "the run finished before it could be killed"
    a, b = (
        weights(ref / "checkpoints" / "latest.safetensors"),
        weights(out / "checkpoints" / "latest.safetensors"),
    )
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for stage in ("stage1", "stage2"):
        sa, sb = (
            weights(ref / "checkpoints" / f"{stage}.safetensors"),
            weights(out / "checkpoints" / f"{stage}.safetensors"),
        )
        assert all(torch.equal(sa[k], sb[k]) for k in sa if k.startswith("model."))
    steps = [m["step"] for m in read_metrics(out / "metrics.jsonl") if "loss" in m]
    assert steps == sorted(set(steps)), "a resumed run must not log a step twice"


def test_injected_nan_is_skipped_and_checkpoint_stays_good(data, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = recipe.windows.collate_graphs

    def poisoned(samples):
        batch = original(samples)
        calls["n"] += 1
        if calls["n"] in (4, 5):  # two bad batches in a row during training
            batch["history"][:] = float("nan")
        return batch

    monkeypatch.setattr(recipe.windows, "collate_graphs", poisoned)
    out = tmp_path / "nan"
    cfg = load_config(
        ROOT / "configs" / "physics_expert" / "tiny.yaml",
        recipe.RecipeConfig,
        tiny(data, out, "data.val_dir=null", "train.max_steps=10", "train.save_every=2"),
    )
    summary = recipe.train(cfg, progress=False)
    assert summary["steps"] == 10
    logged = read_metrics(out / "metrics.jsonl")
    assert any(m.get("skipped_nonfinite") == 2 for m in logged)
    for tensor in weights(out / "checkpoints" / "latest.safetensors").values():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all()


def test_too_many_bad_steps_stop_the_run_with_a_clear_message(data, tmp_path, monkeypatch, capsys):
    original = recipe.windows.collate_graphs

    def always_nan(samples):
        batch = original(samples)
        batch["history"][:] = float("nan")
        return batch

    monkeypatch.setattr(recipe.windows, "collate_graphs", always_nan)
    code = main(
        [
            "train",
            "physics-expert",
            "--quiet",
            "--config",
            str(ROOT / "configs" / "physics_expert" / "tiny.yaml"),
            *tiny(data, tmp_path / "bad", "data.val_dir=null", "train.max_bad_steps=3"),
        ]
    )
    assert code == 1
    assert "non-finite steps in a row" in capsys.readouterr().err


def test_cli_rejects_a_missing_dataset(tmp_path, capsys):
    code = main(
        [
            "train",
            "physics-expert",
            "--quiet",
            "--config",
            str(ROOT / "configs" / "physics_expert" / "tiny.yaml"),
            f"data.train_dir={tmp_path / 'nothing'}",
            f"train.output_dir={tmp_path / 'o'}",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "nothing" in err and "Traceback" not in err
