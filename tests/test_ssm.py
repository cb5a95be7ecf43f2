"""The state-space family: the parallel scan equals the loop (values and gradients), the recurrent step
equals the parallel pass, the gate changes the rollout, the physics terms are right on hand-built cases,
and the recipe trains, resumes bit for bit, survives NaNs and evaluates beside the baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from physworld.cli import main
from physworld.data.generate import GenerateConfig, generate
from physworld.data.store import Dataset
from physworld.evaluation.rollout import baseline_rollout
from physworld.models import ssm
from physworld.recipes import ssm as recipe
from physworld.training.checkpoint import CheckpointError, load_checkpoint
from physworld.training.config import ConfigError, load_config
from physworld.training.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "ssm" / "tiny.yaml"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssm")
    # pendulum: a joint to the world; chain: joints between bodies; billiards: contacts; seesaw: kinematic-free
    # pivots; projectile: free flight
    generate(
        GenerateConfig(
            scenario_types=("pendulum", "billiards", "chain", "projectile"),
            num_scenes_per_type=2,
            frames_per_scene=30,
        ),
        root / "train",
        progress=False,
    )
    generate(
        GenerateConfig(
            scenario_types=("pendulum", "billiards", "pong"),
            num_scenes_per_type=1,
            frames_per_scene=30,
            seed=5,
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
        "train.tensorboard=false",
        *extra,
    ]


def scene_batch(data, frames: int):
    scenes = list(Dataset(data / "val").iter_scenes()) + list(Dataset(data / "train").iter_scenes())[::2]
    scene = ssm.pad_scenes([ssm.scene_arrays(s["spec"]) for s in scenes])
    states = torch.zeros(len(scenes), frames, scene["body"].shape[1], 6)
    for i, s in enumerate(scenes):
        states[i, :, : s["states"].shape[1]] = torch.from_numpy(s["states"][:frames])
    return scenes, scene, states


# ---------------------------------------------------------------- the scan


def _scan_inputs(seed, batch=3, steps=37, channels=5, state=4):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, steps, channels, generator=g)
    delta = torch.nn.functional.softplus(torch.randn(batch, steps, channels, generator=g))
    A = -torch.rand(channels, state, generator=g) * 3
    B = torch.randn(batch, steps, state, generator=g)
    C = torch.randn(batch, steps, state, generator=g)
    D = torch.randn(channels, generator=g)
    h0 = torch.randn(batch, channels, state, generator=g)
    return [x.requires_grad_() for x in (u, delta, A, B, C, D, h0)]


@pytest.mark.parametrize("steps", [1, 2, 37, 64])
def test_parallel_scan_matches_the_loop_forward_and_backward(steps):
    inputs = _scan_inputs(0, steps=steps)
    ref_inputs = [x.detach().clone().requires_grad_() for x in inputs]
    y, h = ssm.selective_scan(*inputs, return_state=True, block_elements=500)  # several row blocks
    y_ref, h_ref = ssm.selective_scan_reference(*ref_inputs, return_state=True)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=1e-5)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    ((y * weights).sum() + h.sum()).backward()
    ((y_ref * weights).sum() + h_ref.sum()).backward()
    for name, a, b in zip(("u", "delta", "A", "B", "C", "D", "h0"), inputs, ref_inputs, strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-5, msg=f"gradient of {name}")


def test_the_scan_is_not_a_constant():
    """Guard against a scan that agrees with the loop because both ignore their inputs."""
    u, delta, A, B, C, D, _ = _scan_inputs(2)
    y = ssm.selective_scan(u, delta, A, B, C, D)
    y2 = ssm.selective_scan(u, delta, A, B.detach() * 2, C, D)
    assert not torch.allclose(y, y2)
    # The state carries information forward: changing the first input changes the last output.
    u2 = u.detach().clone()
    u2[:, 0] += 1.0
    assert not torch.allclose(ssm.selective_scan(u2, delta, A, B, C, D)[:, -1], y[:, -1])


def test_mamba_block_step_matches_parallel():
    torch.manual_seed(0)
    block = ssm.MambaBlock(ssm.SSMConfig(d_model=8, d_state=4, expand=2, d_conv=3))
    x = torch.randn(4, 11, 8)
    parallel = block(x)
    cache = block.init_cache(4)
    steps = []
    for t in range(11):
        out, cache = block.step(x[:, t], cache)
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps, 1), parallel, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- the model


def test_model_step_matches_parallel_on_real_scenes(data):
    """Padded scenes with joints to the world (pendulum), between bodies (chain) and contacts."""
    torch.manual_seed(0)
    scenes, scene, states = scene_batch(data, 12)
    ja, jb = scene["joint_a"], scene["joint_b"]
    assert ((ja < 0) ^ (jb < 0)).any() and ((ja >= 0) & (jb >= 0)).any()  # to the world, and between bodies
    model = ssm.PhysicsSSM(ssm.SSMConfig(d_model=16, heads=2, d_state=4, n_layers=2)).eval()
    with torch.no_grad():
        parallel = model(states, scene)["accel"]
        cache = model.init_cache(scene)
        stepped = []
        for t in range(states.shape[1]):
            accel, cache = model.step(states[:, t], scene, cache)
            stepped.append(accel)
    torch.testing.assert_close(torch.stack(stepped, 1), parallel, atol=1e-4, rtol=1e-4)
    assert parallel.abs().max() > 0
    padding = ~scene["body_mask"]
    assert padding.any() and (parallel[padding[:, None].expand(parallel.shape[:3])] == 0).all()


def test_gate_changes_the_rollout(data):
    """gate 0 is the ballistic baseline exactly; gate 1 is the pure SSM with the same weights; the
    learned gate is neither."""
    torch.manual_seed(0)
    scenes = list(Dataset(data / "train").iter_scenes())
    model = ssm.PhysicsSSM(ssm.SSMConfig(d_model=16, heads=2, d_state=4, gate=True))
    pure = ssm.PhysicsSSM(ssm.SSMConfig(d_model=16, heads=2, d_state=4, gate=False))
    missing, unexpected = pure.load_state_dict(model.state_dict(), strict=False)
    assert (
        not missing and unexpected and all(k.startswith(("gate_proj", "physics_encoder")) for k in unexpected)
    )
    learned = ssm.rollouts(model, scenes, 5, 10)
    model.forced_gate = 0.0
    closed = ssm.rollouts(model, scenes, 5, 10)
    model.forced_gate = 1.0
    opened = ssm.rollouts(model, scenes, 5, 10)
    free = ssm.rollouts(pure, scenes, 5, 10)
    for s, c, o, f in zip(scenes, closed, opened, free, strict=True):
        np.testing.assert_array_equal(c, baseline_rollout("ballistic", s["spec"], s["states"], 5, 10))
        np.testing.assert_allclose(o, f, atol=1e-4)
        assert c.shape == (15, s["states"].shape[1], 6) and c.dtype == np.float32
        np.testing.assert_array_equal(c[:5], s["states"][:5])
    assert any(not np.allclose(c, o) for c, o in zip(closed, opened, strict=True))
    assert any(
        not np.allclose(lg, o) and not np.allclose(lg, c)
        for lg, o, c in zip(learned, opened, closed, strict=True)
    )


# ---------------------------------------------------------------- the physics terms


def test_static_penetration_on_a_hand_built_case():
    # A circle of radius 10 at height 4 above a floor segment y = 0 (radius 0): 6 px deep. A box 20 x 8
    # resting flat at height 4: inscribed radius 4, no penetration. Another circle far away: none.
    statics = torch.tensor([[[-100.0, 0.0, 100.0, 0.0, 0.0, 0.5, 0.5]]]).expand(3, 1, 7)  # [R, S, 7]
    pos = torch.tensor([[[0.0, 4.0]], [[50.0, 4.0]], [[0.0, 300.0]]])  # [R, T, 2]
    body = torch.zeros(3, 11)
    body[0, [ssm.IS_CIRCLE, ssm.RADIUS, ssm.WIDTH, ssm.HEIGHT]] = torch.tensor([1.0, 10.0, 20.0, 20.0])
    body[1, [ssm.IS_BOX, ssm.WIDTH, ssm.HEIGHT]] = torch.tensor([1.0, 20.0, 8.0])
    body[2, [ssm.IS_CIRCLE, ssm.RADIUS, ssm.WIDTH, ssm.HEIGHT]] = torch.tensor([1.0, 10.0, 20.0, 20.0])
    radius = ssm.inscribed_radius(body)
    torch.testing.assert_close(radius, torch.tensor([10.0, 4.0, 10.0]))
    depth = ssm.static_penetration(pos, radius, statics, torch.ones(3, 1, dtype=torch.bool))
    torch.testing.assert_close(depth, torch.tensor([[6.0], [0.0], [0.0]]))
    assert ssm.static_penetration(pos, radius, statics, torch.zeros(3, 1, dtype=torch.bool)).sum() == 0


def test_body_penetration_on_a_hand_built_case():
    # Circles of radius 10 at x = 0 and x = 15 overlap by 5 px; a third at x = 100 touches nothing.
    pos = torch.tensor([[[[0.0, 0.0], [15.0, 0.0], [100.0, 0.0]]]])
    radius = torch.tensor([[10.0, 10.0, 10.0]])
    pairs = ~torch.eye(3, dtype=torch.bool)[None]
    torch.testing.assert_close(ssm.body_penetration(pos, radius, pairs), torch.tensor([[[5.0, 5.0, 0.0]]]))
    pairs[0, 0, 1] = pairs[0, 1, 0] = False  # a jointed pair may overlap
    assert ssm.body_penetration(pos, radius, pairs).sum() == 0


def test_jerk_on_a_hand_built_case():
    accel = torch.zeros(1, 3, 1, 3)
    accel[0, :, 0, 0] = torch.tensor([0.0, 1.0, 3.0])
    accel[0, :, 0, 2] = torch.tensor([0.0, 0.0, -2.0])
    torch.testing.assert_close(ssm.jerk(accel), torch.tensor([[[1.0], [8.0]]]))


def test_loss_adds_the_weighted_physics_terms(data):
    torch.manual_seed(0)
    _, scene, states = scene_batch(data, 9)
    batch = dict(scene, states=states)
    cfg = ssm.SSMConfig(d_model=16, heads=2, d_state=4, penetration_weight=3.0, jerk_weight=0.5)
    model = ssm.PhysicsSSM(cfg)
    total, terms = model.loss(batch, terms=True)
    expected = (
        terms["prediction"]
        + 3.0 * (terms["penetration_static"] + terms["penetration_body"])
        + 0.5 * terms["jerk"]
    )
    torch.testing.assert_close(total, expected)
    assert terms["jerk"] > 0
    # Every body sitting, at rest, on the middle of its scene's first static piece: it penetrates.
    assert scene["static_mask"][:, 0].all()
    sunk = dict(batch, states=states.clone())
    sunk["states"][..., 3:] = 0.0
    sunk["states"][..., :2] = (0.5 * (scene["statics"][:, 0, 0:2] + scene["statics"][:, 0, 2:4]))[
        :, None, None
    ]
    _, sunk_terms = model.loss(sunk, terms=True)
    assert sunk_terms["penetration_static"] > terms["penetration_static"]


# ---------------------------------------------------------------- the recipe and the contract


def test_presets_load_and_bad_keys_are_named():
    for preset in sorted((ROOT / "configs" / "ssm").glob("*.yaml")):
        cfg = load_config(preset, recipe.RecipeConfig)
        assert cfg.model.seq_len >= 1
    with pytest.raises(ConfigError, match="model.d_model"):
        load_config(TINY, recipe.RecipeConfig, ["model.d_model=15"])
    with pytest.raises(ConfigError, match="model.seqlen"):
        load_config(TINY, recipe.RecipeConfig, ["model.seqlen=4"])


def test_trains_evaluates_and_loads_through_the_contract(data, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "ssm", "--quiet", "--config", str(TINY), *tiny(data, out, "train.max_steps=12")])
    assert code == 0
    logged = read_metrics(out / "metrics.jsonl")
    assert any("val_loss" in m for m in logged)
    assert all(k in logged[0] for k in ("loss_prediction", "loss_penetration_static", "loss_jerk"))
    best = out / "checkpoints" / "best.safetensors"
    rollout, info = ssm.load_predictor(best)
    assert info["recipe"] == "ssm" and set(info["train_scenario_types"]) == {
        "pendulum",
        "billiards",
        "chain",
        "projectile",
    }
    assert info["train_dir"] == str(data / "train")
    scenes = list(Dataset(data / "val").iter_scenes())
    preds, failures = rollout(scenes, 4, 6)
    assert failures == [0] * len(scenes)
    for s, p in zip(scenes, preds, strict=True):
        assert p.shape == (10, s["states"].shape[1], 6) and p.dtype == np.float32 and np.isfinite(p).all()
    capsys.readouterr()
    ev = tmp_path / "eval"
    code = main(
        ["evaluate", "--model", "ssm", "--checkpoint", str(best), "--val-dir", str(data / "val"),
         "--output-dir", str(ev), "--context-frames", "4", "--rollout-frames", "6", "--no-render", "--quiet"]
    )  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    assert "seen" in table and "heldout" in table and "model" in table
    import json

    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["model"]["name"] == "ssm"
    assert metrics["dataset"]["heldout_types"] == ["pong"]
    # Another recipe's checkpoint is refused with a clear error.
    with pytest.raises(CheckpointError, match="not a ssm checkpoint"):
        ssm.load_predictor(_foreign_checkpoint(tmp_path, best))


def _foreign_checkpoint(tmp_path, path):
    from physworld.training.checkpoint import save_checkpoint

    ckpt = load_checkpoint(path)
    model = ssm.PhysicsSSM(ssm.SSMConfig(**ckpt.meta["extra"]["model_config"]))
    return save_checkpoint(tmp_path / "other.safetensors", model, extra={"recipe": "physics-expert"})


def test_interrupted_run_resumes_bit_for_bit(data, tmp_path, monkeypatch):
    extra = ("train.max_steps=14", "train.save_every=3", "optim.grad_accum=2", "model.noise_std=0.1",
             "train.curriculum_stages=2", "train.eval_every=5")  # fmt: skip
    ref = tmp_path / "ref"
    recipe.train(load_config(TINY, recipe.RecipeConfig, tiny(data, ref, *extra)), progress=False)

    out = tmp_path / "out"
    calls = {"n": 0}
    original = recipe.clip_gradients

    def crash_at_step_8(model, max_norm):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt  # a kill between checkpoints: steps 7.. are redone
        return original(model, max_norm)

    monkeypatch.setattr(recipe, "clip_gradients", crash_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        recipe.train(load_config(TINY, recipe.RecipeConfig, tiny(data, out, *extra)), progress=False)
    monkeypatch.setattr(recipe, "clip_gradients", original)
    recipe.train(load_config(TINY, recipe.RecipeConfig, tiny(data, out, *extra)), progress=False)
    for name in ("latest", "stage1", "stage2"):
        a = load_checkpoint(ref / "checkpoints" / f"{name}.safetensors").tensors
        b = load_checkpoint(out / "checkpoints" / f"{name}.safetensors").tensors
        assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("model.")), name
    steps = [m["step"] for m in read_metrics(out / "metrics.jsonl") if "loss" in m]
    assert steps == sorted(set(steps))


def test_injected_nan_is_skipped(data, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = recipe.collate_sequences

    def poisoned(samples):
        batch = original(samples)
        calls["n"] += 1
        if calls["n"] in (3, 4):
            batch["states"][:] = float("nan")
        return batch

    monkeypatch.setattr(recipe, "collate_sequences", poisoned)
    out = tmp_path / "nan"
    cfg = load_config(TINY, recipe.RecipeConfig, tiny(data, out, "data.val_dir=null", "train.max_steps=8"))
    assert recipe.train(cfg, progress=False)["steps"] == 8
    assert any(m.get("skipped_nonfinite") == 2 for m in read_metrics(out / "metrics.jsonl"))
    for tensor in load_checkpoint(out / "checkpoints" / "latest.safetensors").tensors.values():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all()
    assert (out / "checkpoints" / "best.safetensors").exists()
