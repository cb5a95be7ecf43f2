"""Shared training pieces: typed configs, safetensors checkpoints, loop utilities, metric logging."""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import pytest

from physworld.training.config import ConfigError, config_to_dict, load_config, save_config

HAS_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "safetensors"))
HAS_TENSORBOARD = HAS_TORCH and importlib.util.find_spec("tensorboard") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs torch and safetensors")
needs_tensorboard = pytest.mark.skipif(not HAS_TENSORBOARD, reason="needs torch and tensorboard")

if HAS_TORCH:
    import torch
    from safetensors import safe_open

    from physworld.training import checkpoint as ckpt_mod
    from physworld.training.checkpoint import (
        CheckpointError,
        CheckpointManager,
        load_checkpoint,
        restore,
        save_checkpoint,
    )
    from physworld.training.loop_utils import (
        NonFiniteGuard,
        TooManyBadSteps,
        clip_gradients,
        cosine_with_warmup,
        grads_finite,
        progress_bar,
        seed_everything,
        set_lr,
    )
    from physworld.training.metrics import MetricLogger, read_metrics


# ---------------------------------------------------------------- config


@dataclass
class OptimCfg:
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0


@dataclass
class ModelCfg:
    hidden: int
    kind: Literal["mlp", "gnn"] = "mlp"
    dropout: Optional[float] = None  # noqa: UP045 - the typing spelling must work too


@dataclass
class TrainCfg:
    out_dir: str
    model: ModelCfg
    optim: OptimCfg = field(default_factory=OptimCfg)
    steps: int = 100
    warmup: int = 10
    tags: list[str] = field(default_factory=list)
    use_amp: bool = False
    stages: tuple[int, ...] = (1, 2)

    def validate(self):
        if self.warmup > self.steps:
            raise ValueError(f"warmup ({self.warmup}) exceeds steps ({self.steps}); lower warmup")


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """
out_dir: runs/a
model:
  hidden: 32
  kind: gnn
  dropout: 0.1
optim:
  lr: 1
  betas: [0.8, 0.9]
tags: [x, y]
stages: [1, 2, 3]
"""


def test_config_nested_dataclasses_load_and_ints_become_floats(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), TrainCfg)
    assert cfg.model == ModelCfg(hidden=32, kind="gnn", dropout=0.1)
    assert cfg.optim.lr == 1.0 and type(cfg.optim.lr) is float
    assert cfg.optim.betas == (0.8, 0.9) and isinstance(cfg.optim.betas, tuple)
    assert cfg.optim.weight_decay == 0.0  # default kept
    assert cfg.tags == ["x", "y"] and cfg.stages == (1, 2, 3)
    assert cfg.steps == 100 and cfg.use_amp is False


def test_config_reads_yaml11_exponent_floats(tmp_path):
    # YAML 1.1 reads `1e-3` (no dot) as a string; a float field takes it as the number it means
    cfg = load_config(write(tmp_path, "out_dir: a\nmodel: {hidden: 1}\noptim: {lr: 1e-3}\n"), TrainCfg)
    assert cfg.optim.lr == 0.001


def test_config_unknown_key_names_file_dotted_key_and_valid_keys(tmp_path):
    path = write(tmp_path, "out_dir: a\nmodel: {hidden: 1}\noptim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, TrainCfg)
    msg = str(e.value)
    assert str(path) in msg and "optim.lrr" in msg
    assert "lr, betas, weight_decay" in msg and "did you mean 'lr'" in msg


def test_config_wrong_type_and_missing_field(tmp_path):
    path = write(tmp_path, "out_dir: a\nmodel: {hidden: 1}\nsteps: many\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: steps: expected an integer, got str 'many'"):
        load_config(path, TrainCfg)
    with pytest.raises(ConfigError, match=r"model\.hidden: expected an integer, got float 3\.5"):
        load_config(write(tmp_path, "out_dir: a\nmodel: {hidden: 3.5}\n"), TrainCfg)
    with pytest.raises(ConfigError, match=r"use_amp: expected true or false"):
        load_config(write(tmp_path, "out_dir: a\nmodel: {hidden: 1}\nuse_amp: 1\n"), TrainCfg)
    with pytest.raises(ConfigError, match=r"optim\.betas: expected a list of exactly 2 items, got 3"):
        load_config(write(tmp_path, "out_dir: a\nmodel: {hidden: 1}\noptim: {betas: [1, 2, 3]}\n"), TrainCfg)
    with pytest.raises(ConfigError, match=r"cfg\.yaml: model\.hidden: missing required key"):
        load_config(write(tmp_path, "out_dir: a\nmodel: {kind: mlp}\n"), TrainCfg)
    with pytest.raises(ConfigError, match=r"cfg\.yaml: out_dir: expected a string, got int 5; quote it"):
        load_config(write(tmp_path, "out_dir: 5\nmodel: {hidden: 1}\n"), TrainCfg)


def test_config_literal_choice_enforced(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.kind: 'cnn' is not one of the choices: 'mlp', 'gnn'"):
        load_config(write(tmp_path, "out_dir: a\nmodel: {hidden: 1, kind: cnn}\n"), TrainCfg)


def test_config_overrides_apply_and_bad_override_is_named(tmp_path):
    path = write(tmp_path, GOOD)
    cfg = load_config(
        path, TrainCfg, ["optim.lr=1e-3", "model.kind=mlp", "tags=[a, b]", "model.dropout=null"]
    )
    assert cfg.optim.lr == 0.001 and cfg.model.kind == "mlp" and cfg.tags == ["a", "b"]
    assert cfg.model.dropout is None
    # an override can fill a section the file leaves out
    minimal = write(tmp_path, "out_dir: a\nmodel: {hidden: 2}\n", "min.yaml")
    assert load_config(minimal, TrainCfg, ["optim.weight_decay=0.1"]).optim.weight_decay == 0.1

    with pytest.raises(ConfigError, match=r"override 'optim\.lrr=1': unknown key 'optim\.lrr'.*valid keys"):
        load_config(path, TrainCfg, ["optim.lrr=1"])
    with pytest.raises(ConfigError) as e:
        load_config(path, TrainCfg, ["steps=abc"])
    assert "steps" in str(e.value) and "override 'steps=abc'" in str(e.value)
    with pytest.raises(ConfigError, match=r"override 'steps': expected KEY=VALUE"):
        load_config(path, TrainCfg, ["steps"])
    with pytest.raises(ConfigError, match=r"'model\.hidden' is not a section"):
        load_config(path, TrainCfg, ["model.hidden.x=1"])


def test_config_validate_hook_is_called_and_names_the_file(tmp_path):
    path = write(tmp_path, "out_dir: a\nmodel: {hidden: 1}\nsteps: 5\nwarmup: 10\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: warmup \(10\) exceeds steps \(5\); lower warmup"):
        load_config(path, TrainCfg)
    assert load_config(path, TrainCfg, ["warmup=5"]).warmup == 5


def test_config_yaml_errors_name_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"cfg\.yaml:3:\d+: invalid YAML: found duplicate key 'steps'"):
        load_config(write(tmp_path, "out_dir: a\nsteps: 1\nsteps: 2\n"), TrainCfg)
    with pytest.raises(ConfigError, match=r"cfg\.yaml:\d+:\d+: invalid YAML"):
        load_config(write(tmp_path, "out_dir: [a\n"), TrainCfg)
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
        load_config(tmp_path / "missing.yaml", TrainCfg)
    with pytest.raises(ConfigError, match=r"top level must be a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"), TrainCfg)


def test_save_config_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), TrainCfg, ["optim.lr=1e-10"])
    out = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert out.read_text().startswith("# resolved config: ")
    assert load_config(out, TrainCfg) == cfg
    assert config_to_dict(cfg)["optim"] == {"lr": 1e-10, "betas": [0.8, 0.9], "weight_decay": 0.0}
    assert [p.name for p in out.parent.iterdir()] == ["config.yaml"]  # no temp file left behind


# ---------------------------------------------------------------- checkpoint


def make_model(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 2)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    return model, optimizer


def train(model, optimizer, steps: int, start: int = 0):
    """Batches come from the global torch RNG, numpy and random; dropout draws too: RNG state matters."""
    for step in range(start, start + steps):
        set_lr(optimizer, cosine_with_warmup(step, 2, 10, 1e-2))
        x = torch.randn(8, 4) + float(np.random.rand()) + random.random()  # noqa: NPY002
        loss = ((model(x) - x[:, :2].sin()) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@needs_torch
def test_resume_from_checkpoint_is_bit_identical(tmp_path):
    seed_everything(1)
    ref_model, ref_opt = make_model(0)
    train(ref_model, ref_opt, 7)

    seed_everything(1)
    model, opt = make_model(0)
    train(model, opt, 3)
    path = save_checkpoint(tmp_path / "c.safetensors", model, opt, step=3, extra={"data_position": 24})

    seed_everything(99)  # a fresh process: other weights, other RNG states
    model2, opt2 = make_model(5)
    assert not torch.equal(model2[0].weight, model[0].weight)
    meta = restore(load_checkpoint(path), model2, opt2)
    assert meta["step"] == 3 and meta["extra"] == {"data_position": 24}
    train(model2, opt2, 4, start=3)

    for (name, a), b in zip(ref_model.state_dict().items(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    ref_state, state = ref_opt.state_dict(), opt2.state_dict()
    assert ref_state["param_groups"] == state["param_groups"]
    for i in ref_state["state"]:
        for k, v in ref_state["state"][i].items():
            assert torch.equal(v, state["state"][i][k]), (i, k)


@needs_torch
def test_rng_states_are_restored(tmp_path):
    model, _ = make_model(0)
    gen = torch.Generator().manual_seed(7)
    path = save_checkpoint(tmp_path / "c.safetensors", model, extra_generators={"data": gen})
    expected = (torch.rand(3), random.random(), np.random.rand(2), torch.rand(2, generator=gen))  # noqa: NPY002
    seed_everything(123)
    gen.manual_seed(0)
    restore(load_checkpoint(path), model, extra_generators={"data": gen})
    got = (torch.rand(3), random.random(), np.random.rand(2), torch.rand(2, generator=gen))  # noqa: NPY002
    assert torch.equal(got[0], expected[0]) and got[1] == expected[1]
    assert np.array_equal(got[2], expected[2]) and torch.equal(got[3], expected[3])
    with pytest.raises(CheckpointError, match="no state for generator 'other'"):
        restore(load_checkpoint(path), model, extra_generators={"other": torch.Generator()})


@needs_torch
def test_checkpoint_is_plain_safetensors_without_pickle(tmp_path):
    model, opt = make_model(0)
    train(model, opt, 2)
    sched = {"last_epoch": 2, "history": (0.1, 0.2), "buf": torch.arange(3)}
    path = save_checkpoint(
        tmp_path / "c.safetensors", model, opt, scheduler_state=sched, step=2, config={"lr": 0.01}
    )
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    assert 8 + n + max(ends) == len(data)  # header length, JSON header, tensor bytes: nothing else
    meta = json.loads(header["__metadata__"]["physworld.meta"])
    assert meta["step"] == 2 and meta["optimizer"]["class"] == "AdamW" and meta["config"] == {"lr": 0.01}
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
    assert {"model.0.weight", "model.3.bias", "optim.state.0.exp_avg", "rng.torch_cpu"} <= keys
    assert f"model.{next(iter(model.state_dict()))}" in keys
    loaded = load_checkpoint(path)
    assert loaded.meta["scheduler_state"]["history"] == (0.1, 0.2)
    assert torch.equal(loaded.meta["scheduler_state"]["buf"], torch.arange(3))
    source = inspect.getsource(ckpt_mod)
    assert not re.search(r"torch\.load\(|\bpickle\b|weights_only", source)


@needs_torch
def test_damaged_checkpoints_give_clear_errors(tmp_path):
    model, opt = make_model(0)
    path = save_checkpoint(tmp_path / "c.safetensors", model, opt)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.safetensors: not a readable safetensors file"):
        load_checkpoint(truncated)
    flipped = tmp_path / "flipped.safetensors"
    flipped.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    with pytest.raises(
        CheckpointError, match=r"flipped\.safetensors: tensor data does not match its checksum"
    ):
        load_checkpoint(flipped)
    with pytest.raises(CheckpointError, match=r"nope\.safetensors: no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.safetensors")
    other, _ = make_model(0)
    other.append(torch.nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match=r"c\.safetensors: does not fit model Sequential"):
        restore(load_checkpoint(path), other)


@needs_torch
def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    model, opt = make_model(0)
    path = save_checkpoint(tmp_path / "c.safetensors", model, opt, step=1)
    before = path.read_bytes()
    train(model, opt, 1)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, opt, step=2)
    monkeypatch.undo()
    monkeypatch.setattr(model, "state_dict", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, opt, step=2)

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # temp files cleaned up
    assert load_checkpoint(path).step == 1


@needs_torch
def test_checkpoint_manager_keeps_lowest_metric(tmp_path):
    model, opt = make_model(0)
    manager = CheckpointManager(tmp_path / "ckpts")
    assert manager.latest_path() is None and manager.best_metric is None
    assert manager.save_best(0.5, model, step=1)
    assert not manager.save_best(0.7, model, step=2)
    assert not manager.save_best(float("nan"), model, step=3)
    assert manager.save_best(0.3, model, step=4)
    assert not manager.save_best(0.3, model, step=5)
    best = load_checkpoint(manager.best_path())
    assert best.meta["best_metric"] == 0.3 and best.step == 4

    manager.save_latest(model, opt, step=5)
    assert manager.latest_path() == tmp_path / "ckpts" / "latest.safetensors"
    manager.save_named("stage1", model, step=5, extra={"stage": 1})
    assert load_checkpoint(tmp_path / "ckpts" / "stage1.safetensors").meta["extra"] == {"stage": 1}
    with pytest.raises(ValueError):
        manager.save_named("../escape", model)

    again = CheckpointManager(tmp_path / "ckpts")  # a restarted run remembers the best so far
    assert again.best_metric == 0.3
    assert not again.save_best(0.4, model, step=6)
    assert again.save_best(0.1, model, step=7) and load_checkpoint(again.best_path()).step == 7


# ---------------------------------------------------------------- loop utils


@needs_torch
def test_cosine_with_warmup_endpoints_and_monotonicity():
    base, warm, total = 1e-3, 10, 110
    lrs = [cosine_with_warmup(s, warm, total, base, min_lr_ratio=0.1) for s in range(total + 20)]
    assert lrs[0] == 0.0
    assert lrs[5] == pytest.approx(base / 2)
    assert lrs[warm] == pytest.approx(base)
    assert lrs[60] == pytest.approx((base + 0.1 * base) / 2)  # halfway down the cosine
    assert lrs[total] == pytest.approx(0.1 * base) and lrs[-1] == pytest.approx(0.1 * base)
    assert all(a < b for a, b in zip(lrs[:warm], lrs[1 : warm + 1], strict=True))
    assert all(a >= b for a, b in zip(lrs[warm:-1], lrs[warm + 1 :], strict=True))
    assert cosine_with_warmup(0, 0, 10, 1.0) == 1.0
    with pytest.raises(ValueError):
        cosine_with_warmup(0, 20, 10, 1.0)


@needs_torch
def test_set_lr_clip_and_seed():
    model, opt = make_model(0)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr_scale": 0.5})
    set_lr(opt, 0.2)
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.1]

    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0)
    norm = clip_gradients(model, max_norm=1.0)
    n_params = sum(p.numel() for p in model.parameters())
    assert norm == pytest.approx(10.0 * math.sqrt(n_params), rel=1e-5)
    assert clip_gradients(model, None) == pytest.approx(1.0, rel=1e-4)

    seed_everything(3)
    a = (torch.rand(2), np.random.rand(), random.random())  # noqa: NPY002
    seed_everything(3)
    b = (torch.rand(2), np.random.rand(), random.random())  # noqa: NPY002
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


@needs_torch
def test_non_finite_guard_skips_and_gives_up():
    model, _ = make_model(0)
    guard = NonFiniteGuard(max_bad_steps=2)

    def backward(scale: float):
        model.zero_grad()
        loss = model(torch.ones(1, 4)).sum() * scale
        loss.backward()
        return loss

    assert guard.check(backward(1.0), model)
    assert not guard.check(torch.tensor(float("nan")), model)
    assert guard.last_reason == "loss is nan"
    backward(1.0)
    model[3].weight.grad[0, 0] = float("inf")
    assert not grads_finite(model)
    assert not guard.check(torch.tensor(1.0), model)  # finite loss, infinite gradient
    assert guard.last_reason == "non-finite gradient in 3.weight"
    assert guard.consecutive_bad == 2 and guard.bad_steps_total == 2
    assert guard.check(backward(1.0), model)  # a good step resets the run of bad ones
    assert guard.consecutive_bad == 0 and guard.bad_steps_total == 2
    assert not guard.check(float("inf"), model)
    assert not guard.check(float("nan"), model)
    with pytest.raises(TooManyBadSteps, match="3 consecutive steps"):
        guard.check(float("nan"), model)
    assert guard.bad_steps_total == 5
    resumed = NonFiniteGuard(2)
    resumed.load_state_dict(guard.state_dict())
    assert resumed.bad_steps_total == 5


@needs_torch
def test_progress_bar_resumes_at_initial():
    out = io.StringIO()
    bar = progress_bar(100, initial=40, desc="train", file=out, mininterval=0)
    assert bar.total == 100 and bar.n == 40
    bar.update(5)
    text = str(bar)
    bar.close()
    assert text.startswith("train:") and "45/100" in text
    assert re.search(r"\[\d\d:\d\d<\S+, .*(step/s|s/step)\]", text), text  # elapsed<ETA, rate


# ---------------------------------------------------------------- metrics


@needs_torch
def test_metric_logger_writes_json_lines(tmp_path):
    with MetricLogger(tmp_path, tensorboard=False) as log:
        log.log(1, loss=torch.tensor(0.5), lr=np.float32(0.25), stage="s1")
        log.log(2, loss=float("nan"), ok=True)
        # flushed at once: readable before close
        assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"step": 1, "loss": 0.5, "lr": 0.25, "stage": "s1"}
    assert json.loads(lines[1]) == {"step": 2, "loss": None, "ok": True}
    with MetricLogger(tmp_path, tensorboard=False) as log, pytest.raises(TypeError, match="'loss'"):
        log.log(3, loss=[1, 2])


@needs_torch
def test_metric_logger_resume_removes_later_steps(tmp_path):
    with MetricLogger(tmp_path, tensorboard=False) as log:
        for step in range(1, 11):
            log.log(step, loss=1.0 / step)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 11, "lo')  # killed mid-line
    with MetricLogger(tmp_path, tensorboard=False, resume_step=6) as log:
        assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
        for step in range(7, 9):
            log.log(step, loss=0.0)
    steps = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8]
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 9, "lo')  # killed mid-line again; a fresh (not resumed) run appends after it
    with MetricLogger(tmp_path, tensorboard=False) as log:
        log.log(9, loss=1.0)
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    with MetricLogger(tmp_path, tensorboard=False, resume_step=-1):
        pass
    assert read_metrics(tmp_path / "metrics.jsonl") == []


@needs_tensorboard
def test_metric_logger_writes_tensorboard_and_purges_on_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with MetricLogger(tmp_path) as log:
        for step in range(1, 6):
            log.log(step, loss=float(step))
    with MetricLogger(tmp_path, resume_step=3) as log:
        for step in range(4, 6):
            log.log(step, loss=10.0 * step)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    events = [(e.step, e.value) for e in acc.Scalars("loss")]
    assert events == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0)]


@needs_torch
@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_metric_logger_names_missing_wandb(tmp_path):
    with pytest.raises(ImportError, match="needs the `wandb` package"):
        MetricLogger(tmp_path, tensorboard=False, wandb_project="p")
