"""`physworld train vjepa`: trains on clips, resumes bit for bit, watches collapse, checkpointing and DDP
give the same losses, and what it writes loads through load_video_encoder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from physworld.data import clips as C
from physworld.data.generate import GenerateConfig, generate
from physworld.models import vjepa as V
from physworld.recipes import vjepa as R
from physworld.training.checkpoint import load_checkpoint
from physworld.training.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "vjepa" / "tiny.yaml")
QUIET = ["train.tensorboard=false", "train.log_every=1"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("vjepa") / "train"
    generate(
        GenerateConfig(scenario_types=("billiards", "pendulum"), num_scenes_per_type=4, frames_per_scene=20),
        root,
        num_workers=1,
        progress=False,
    )
    C.render_clips(
        root, C.ClipConfig(resolution=16, frames=4, fps=15, captions=False), num_workers=1, progress=False
    )
    R.open_clips(root)  # decode the clip view once here, so the runs below only train
    return root


def _train(clips, out, *overrides):
    torch.set_num_threads(1)
    return R.main(
        TINY, [f"data.train_dir={clips}", f"train.output_dir={out}", *QUIET, *overrides], progress=False
    )


def _losses(out):
    return [m["loss"] for m in read_metrics(out / "metrics.jsonl") if "loss" in m]


def test_trains_logs_collapse_metrics_and_loads_as_an_encoder(clips, tmp_path):
    summary = _train(
        clips, tmp_path / "run", "train.max_steps=4", f"data.val_dir={clips}", "train.eval_every=4"
    )
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    train = [m for m in records if "loss" in m]
    assert [m["step"] for m in train] == [1, 2, 3, 4]
    for m in train:
        assert m["target_std"] > 0 and 1 <= m["target_effective_rank"] <= 32 and "context_std" in m
        assert m["mean_target_loss"] > 0
    val = [m for m in records if "val_loss" in m]
    assert len(val) == 1 and val[0]["val_copy_last_error"] > 0
    # the recipe checkpoint and the save_pretrained directory hold the same (target) encoder
    a, info = V.load_video_encoder(summary["latest"])
    b, _ = V.load_video_encoder(summary["pretrained"])
    assert info["grid"] == (2, 4, 4) and info["source"] == summary["latest"]
    frames = torch.rand(2, 4, 3, 16, 16)
    assert torch.equal(a(frames), b(frames))
    ckpt = load_checkpoint(summary["latest"])
    target = {k: v for k, v in ckpt.tensors.items() if k.startswith("model.target_encoder.")}
    online = {k.replace("target_encoder.", "encoder.", 1): v for k, v in target.items()}
    assert any(not torch.equal(ckpt.tensors[k], target[t]) for k, t in zip(online, target, strict=True))


def test_killed_run_resumes_bit_identical(clips, tmp_path, monkeypatch):
    steps = ["train.max_steps=6", "train.save_every=2"]
    _train(clips, tmp_path / "straight", *steps)
    calls = {"n": 0}
    real = R.frames_of

    def dies_at_step_5(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # as a kill after the checkpoint of step 4
        return real(*args, **kwargs)

    monkeypatch.setattr(R, "frames_of", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        _train(clips, tmp_path / "killed", *steps)
    monkeypatch.setattr(R, "frames_of", real)
    _train(clips, tmp_path / "killed", *steps)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "latest.safetensors").tensors
    b = load_checkpoint(tmp_path / "killed" / "checkpoints" / "latest.safetensors").tensors
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert _losses(tmp_path / "killed") == _losses(tmp_path / "straight")


def test_gradient_checkpointing_and_bf16_keep_the_losses(clips, tmp_path):
    plain = _losses(Path(_train(clips, tmp_path / "a", "train.max_steps=3")["output_dir"]))
    ckpt = _losses(
        Path(
            _train(clips, tmp_path / "b", "train.max_steps=3", "train.gradient_checkpointing=true")[
                "output_dir"
            ]
        )
    )
    assert ckpt == pytest.approx(plain, rel=1e-6)
    bf16 = _losses(
        Path(_train(clips, tmp_path / "c", "train.max_steps=3", "train.precision=bf16")["output_dir"])
    )
    assert bf16 == pytest.approx(plain, rel=0.05) and bf16 != plain  # autocast really ran in bf16


def test_causal_objective_trains_the_trajectory_term(clips, tmp_path):
    out = tmp_path / "causal"
    _train(
        clips,
        out,
        "train.max_steps=3",
        "model.tubelet=1",  # 4 tubelet steps: room for second differences
        "model.causal=true",
        "causality.enabled=true",
        "causality.fraction=1.0",
    )
    train = [m for m in read_metrics(out / "metrics.jsonl") if "loss" in m]
    assert all(m["causal_step"] == 1 and m["trajectory_loss"] > 0 for m in train)
    assert all(
        m["loss"] == pytest.approx(m["latent_loss"] + 0.1 * m["trajectory_loss"], rel=1e-5) for m in train
    )


def test_collapse_stops_the_run_with_a_message(clips, tmp_path, monkeypatch, capsys):
    class ZeroInit(V.VJEPA):  # every patch embedding zero: every token the same vector
        def __init__(self, cfg):
            super().__init__(cfg)
            for enc in (self.encoder, self.target_encoder):
                torch.nn.init.zeros_(enc.encoder.embeddings.patch_embeddings.proj.weight)
                torch.nn.init.zeros_(enc.encoder.embeddings.patch_embeddings.proj.bias)

    monkeypatch.setattr(R, "VJEPA", ZeroInit)
    with pytest.raises(RuntimeError, match="representation collapsed") as e:
        _train(clips, tmp_path / "dead", "train.max_steps=10", "optim.lr=1e-9", "collapse.patience=3")
    assert isinstance(e.value.__cause__, R.RepresentationCollapsed)
    assert "step 3" in str(e.value) and (tmp_path / "dead" / "checkpoints" / "latest.safetensors").is_file()
    # on the command line: one line, exit 1, as a run that stopped itself
    from physworld.cli import main

    code = main(
        [
            "train",
            "vjepa",
            "--config",
            TINY,
            "--quiet",
            f"data.train_dir={clips}",
            f"train.output_dir={tmp_path / 'dead2'}",
            "optim.lr=1e-9",
            "collapse.patience=3",
            "train.tensorboard=false",
        ]
    )
    assert code == 1
    assert "stopped: representation collapsed" in capsys.readouterr().err


def test_user_mistakes_are_one_line(clips, tmp_path, capsys):
    from physworld.cli import main

    base = ["train", "vjepa", "--config", TINY, "--quiet", f"train.output_dir={tmp_path / 'x'}"]
    assert main([*base, f"data.train_dir={clips}", "causality.enabled=true"]) == 2
    assert "set model.causal=true" in capsys.readouterr().err
    assert main([*base, f"data.train_dir={tmp_path}"]) == 2
    assert "render-clips" in capsys.readouterr().err
    assert main([*base, f"data.train_dir={clips}", "model.frames=8"]) == 2
    assert "fewer than model.frames=8" in capsys.readouterr().err


def _ddp_command(clips, out, nproc):
    launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    return [
        sys.executable,
        *launch,
        "-m",
        "physworld.recipes.vjepa",
        "--config",
        TINY,
        "--quiet",
        f"data.train_dir={clips}",
        f"train.output_dir={out}",
        "train.max_steps=4",
        *QUIET,
        "optim.grad_accum=2",
    ]


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(clips, tmp_path):
    """python -m pytest tests/test_vjepa_recipe.py -m slow -k processes (about 50 s on 2 cores)."""
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.pop("WORLD_SIZE", None)
    for n in (1, 2):
        subprocess.run(_ddp_command(clips, tmp_path / str(n), n), check=True, env=env, timeout=300, cwd=ROOT)
    one, two = _losses(tmp_path / "1"), _losses(tmp_path / "2")
    assert len(one) == 4 and two == pytest.approx(one, rel=1e-5)
    a = load_checkpoint(tmp_path / "1" / "checkpoints" / "latest.safetensors").tensors
    b = load_checkpoint(tmp_path / "2" / "checkpoints" / "latest.safetensors").tensors
    for k in a:
        if k.startswith("model."):
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)


def test_starts_from_a_pretrained_directory(clips, tmp_path, monkeypatch):
    import huggingface_hub.constants
    from transformers import VJEPA2Model

    torch.manual_seed(3)
    hf = VJEPA2Model(V.hf_config(V.VJEPAConfig()))
    hf.save_pretrained(tmp_path / "init")
    summary = _train(
        clips,
        tmp_path / "run",
        "train.max_steps=1",
        "optim.warmup_steps=0",
        "optim.lr=1e-12",
        f"train.init_from={tmp_path / 'init'}",
    )
    encoder, _ = V.load_video_encoder(summary["latest"])
    for name, value in encoder.encoder.state_dict().items():  # one step at lr 1e-12: still the init
        torch.testing.assert_close(value, hf.encoder.state_dict()[name], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="model.dim=64 \\(it has 32\\)"):
        _train(clips, tmp_path / "other", "model.dim=64", f"train.init_from={tmp_path / 'init'}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="hub"):
        _train(clips, tmp_path / "hub", "train.init_from=physworld-no-such-org/vjepa2")
