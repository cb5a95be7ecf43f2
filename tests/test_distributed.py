"""Training on several processes (torchrun, DDP over gloo on CPU): the same losses as one process with
the same global batch, files written once, and a killed distributed run resumes to the same weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from physworld.data.generate import GenerateConfig, generate
from physworld.training import distributed
from physworld.training.checkpoint import load_checkpoint
from physworld.training.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120  # bounded: a hung collective fails the test instead of the suite

# The tiny presets' global batches (8, 4, 4) split over 2 processes; noise_std > 0 exercises the
# shared noise stream of the recipes that add noise.
EXTRA = (
    "train.max_steps=8",
    "train.log_every=1",
    "train.save_every=2",
    "train.eval_every=4",
    "train.tensorboard=false",
    "optim.grad_accum=2",
)
NOISE = {"physics_expert": ("model.noise_std=0.1",), "ssm": ("model.noise_std=0.1",), "gpt": ()}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    generate(
        GenerateConfig(scenario_types=("pendulum", "billiards"), num_scenes_per_type=2, frames_per_scene=30),
        root / "train",
        progress=False,
    )
    generate(
        GenerateConfig(scenario_types=("pendulum",), num_scenes_per_type=1, frames_per_scene=30, seed=5),
        root / "val",
        progress=False,
    )
    # Prepare the window caches once here, so the timed runs below only train.
    from physworld.data import windows

    windows.prepare(root / "train", progress=False)
    windows.prepare(root / "val", progress=False)
    return root


def _command(data, out, nproc, recipe="physics_expert"):
    launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    return [
        sys.executable,
        *launch,
        "-m",
        f"physworld.recipes.{recipe}",
        "--config",
        str(ROOT / "configs" / recipe / "tiny.yaml"),
        "--quiet",
        f"data.train_dir={data / 'train'}",
        f"data.val_dir={data / 'val'}",
        f"train.output_dir={out}",
        *EXTRA,
        *NOISE[recipe],
    ]


def _env():
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)
    env.pop("WORLD_SIZE", None)
    return env


def _run(data, out, nproc, recipe="physics_expert"):
    subprocess.run(_command(data, out, nproc, recipe), check=True, env=_env(), timeout=TIMEOUT_S, cwd=ROOT)


def _weights(out):
    return load_checkpoint(out / "checkpoints" / "latest.safetensors").tensors


@pytest.fixture(scope="module", params=["physics_expert", "ssm", "gpt"])
def runs(request, data, tmp_path_factory):
    """One process and two, same global batch, over the same data and config."""
    root = tmp_path_factory.mktemp(f"ddp_{request.param}")
    _run(data, root / "one", 1, request.param)
    _run(data, root / "two", 2, request.param)
    return root


def test_two_processes_match_one_with_the_same_global_batch(runs):
    one, two = (read_metrics(runs / name / "metrics.jsonl") for name in ("one", "two"))
    loss_one = [m["loss"] for m in one if "loss" in m]
    loss_two = [m["loss"] for m in two if "loss" in m]
    assert len(loss_one) == len(loss_two) == 8
    # fp32; the ranks' weighted means add up in another order than one process's mean: 1e-5 relative.
    assert loss_two == pytest.approx(loss_one, rel=1e-5)
    val_one = [m["val_loss"] for m in one if "val_loss" in m]
    val_two = [m["val_loss"] for m in two if "val_loss" in m]
    assert val_two == pytest.approx(val_one, rel=1e-5)
    # Weights too, except the SSM's attention biases that add the same amount to every logit of a
    # softmax (the key part of qkv.bias, pair_bias.bias): their true gradient is zero, so Adam moves
    # them by rounding noise, differently in any two runs, without changing any output (the
    # validation losses above agree).
    noise_driven = ("mix.qkv.bias", "mix.pair_bias.bias")
    a, b = _weights(runs / "one"), _weights(runs / "two")
    for k in a:
        if k.startswith("model.") and not k.endswith(noise_driven):
            # atol 1e-5: Adam turns rounding noise in a near-zero gradient into a step of up to lr.
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)


def test_files_are_written_once_by_rank_zero(runs):
    one, two = runs / "one", runs / "two"
    names_one = sorted(p.name for p in (one / "checkpoints").iterdir())
    names_two = sorted(p.name for p in (two / "checkpoints").iterdir())
    assert names_two == names_one  # no per-rank copies, no leftover temporaries
    records = read_metrics(two / "metrics.jsonl")
    steps = [m["step"] for m in records if "loss" in m]
    assert steps == list(range(1, 9)), "each step logged once, not once per process"
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


def test_killed_distributed_run_resumes_to_the_same_weights(data, runs, tmp_path):
    if not runs.name.startswith("ddp_physics_expert"):
        pytest.skip("one recipe is enough for the kill test: the resume code is the same in each")
    out = tmp_path / "killed"
    proc = subprocess.Popen(_command(data, out, 2), env=_env(), cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            metrics = out / "metrics.jsonl"
            if metrics.exists() and any(m.get("step", 0) >= 3 for m in read_metrics(metrics)):
                break
            time.sleep(0.01)
    finally:
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both training processes
        proc.wait()
    assert killed, "the run finished before it could be killed"
    _run(data, out, 2)
    a, b = _weights(runs / "two"), _weights(out)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [m["step"] for m in read_metrics(out / "metrics.jsonl") if "loss" in m]
    assert steps == sorted(set(steps)), "a resumed run must not log a step twice"


def test_one_process_functions_are_no_ops():
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.shard_batches(range(10), 4) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert distributed.global_rows(5) == (0, 5)
    assert distributed.global_mean_scale(3) == 1.0
    assert distributed.mean_over_ranks({"loss": 2.0}) == {"loss": 2.0}


def test_lora_recipe_under_torchrun_splits_the_batch_and_writes_once(tmp_path):
    """lm_lora uses accelerate's Accelerator; under torchrun on a CPU it must join the process group
    (without cpu=True it saw one process in each, and both wrote the same checkpoint directory)."""
    pytest.importorskip("accelerate")
    pytest.importorskip("peft")
    from test_lm_lora import build_env

    env = build_env(tmp_path / "env")
    common = [
        "-m",
        "physworld.recipes.lm_lora",
        "--config",
        str(ROOT / "configs" / "lm_lora" / "tiny.yaml"),
        "--base-model",
        str(env["lfm2"]),
        "--data-dir",
        str(env["data"]),
    ]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    two, one = tmp_path / "two", tmp_path / "one"
    subprocess.run(
        [*launch, *common, "--output-dir", str(two)], check=True, env=_env(), timeout=TIMEOUT_S, cwd=ROOT
    )
    # The LoRA recipe's global batch is batch_size x grad_accum x processes (accelerate's convention).
    subprocess.run(
        [sys.executable, *common, "--output-dir", str(one), "data.batch_size=4"],
        check=True,
        env=_env(),
        timeout=TIMEOUT_S,
        cwd=ROOT,
    )
    records = {name: read_metrics(tmp_path / name / "metrics.jsonl") for name in ("one", "two")}
    steps = [m["step"] for m in records["two"] if "loss" in m]
    assert steps == [1, 2, 3, 4], "each step logged once, not once per process"
    assert [m["epoch"] for m in records["two"] if "loss" in m] == [
        m["epoch"] for m in records["one"] if "loss" in m
    ]
    # Not to 1e-5: this recipe averages the ranks' mean losses (accelerate's way) rather than weighting
    # them by their completion tokens, so it differs from one process by up to ~0.2 % here.
    loss_one = [m["loss"] for m in records["one"] if "loss" in m]
    loss_two = [m["loss"] for m in records["two"] if "loss" in m]
    assert loss_two == pytest.approx(loss_one, rel=1e-2)
    assert sorted(p.name for p in (two / "stage2").iterdir()) == sorted(
        p.name for p in (one / "stage2").iterdir()
    )
