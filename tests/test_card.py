"""Model cards: `physworld card` and `physworld evaluate` write README.md into the run directory from
its files: family and data from the checkpoint metadata, the config, metrics beside baselines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from physworld.cli import main
from physworld.data.generate import GenerateConfig, generate

TINY = Path(__file__).resolve().parents[1] / "configs" / "physics_expert" / "tiny.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("card")
    generate(
        GenerateConfig(("pendulum", "projectile"), 2, frames_per_scene=20), root / "train", progress=False
    )
    generate(
        GenerateConfig(("pendulum", "pong"), 1, frames_per_scene=20, seed=5), root / "val", progress=False
    )
    overrides = [f"data.train_dir={root / 'train'}", f"train.output_dir={root / 'run'}", "train.max_steps=3"]
    assert main(["train", "physics-expert", "--quiet", "--config", str(TINY), *overrides]) == 0
    return root


def test_card_without_evaluation_names_family_data_config_and_says_not_evaluated(run, capsys):
    assert main(["card", "--run-dir", str(run / "run")]) == 0
    card = (run / "run" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: physworld\n")
    assert "**Family**: physics-expert, trained by `physworld train physics-expert`" in card
    assert f"`{run / 'train'}`: 4 scenes of 2 types, 20 frames each, seed 0" in card
    types = re.search(r"seen in training\*\* \(2\): (.*)", card).group(1)
    assert sorted(types.split(", ")) == ["pendulum", "projectile"]
    assert "- **Training**: 3 steps" in card
    assert "`checkpoints/latest.safetensors`" in card
    assert "hidden: 16" in card  # the config, verbatim
    assert "Not evaluated yet" in card and "## Limitations" in card


def test_evaluate_rewrites_the_card_with_metrics_beside_baselines(run, capsys):
    ckpt = run / "run" / "checkpoints" / "latest.safetensors"
    args = ["evaluate", "--checkpoint", str(ckpt), "--val-dir", str(run / "val"), "--model", "physics-expert"]
    args += [
        "--output-dir",
        str(run / "eval"),
        "--context-frames",
        "3",
        "--rollout-frames",
        "5",
        "--no-render",
    ]
    assert main([*args, "--quiet"]) == 0
    assert f"model card -> {run / 'run' / 'README.md'}" in capsys.readouterr().out
    card = (run / "run" / "README.md").read_text()
    assert "Not evaluated yet" not in card
    assert "### Seen types" in card and "### Held-out types (never in training)" in card
    # every method's row: this model, the analytic baselines and the chaos floor, with numbers
    for name in ("this model", "constant position", "constant velocity", "ballistic", "chaos floor"):
        assert len(re.findall(rf"\| [^|]*{name}[^|]* \| [0-9.e+-]+ \| [0-9.e+-]+ \|", card, re.I)) == 2, name
    assert re.search(r"On held-out types this model (beats|loses|ties)", card)


def test_a_directory_that_is_no_run_is_one_line(tmp_path, capsys):
    assert main(["card", "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no config.yaml" in err
