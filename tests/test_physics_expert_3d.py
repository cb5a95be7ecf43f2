"""The 3D learned simulator (models/physics_expert_3d.py), its data view (data/windows3d.py and the
3D path of data/windows.py) and the 3D baselines: closed-form checks against PyBullet, invariances,
training noise, a learning step, resume, and refusals of the wrong dimension.

(tests/test_families.py trains the tiny preset and runs `evaluate` and `report` on 3D datasets.)
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("pybullet")

from physworld.cli import main  # noqa: E402
from physworld.data import windows  # noqa: E402
from physworld.data.generate import GenerateConfig, generate  # noqa: E402
from physworld.data.store import Dataset, StoreError  # noqa: E402
from physworld.data.windows3d import geodesic_angle_np, integrate_3d  # noqa: E402
from physworld.evaluation.metrics import scene_metrics  # noqa: E402
from physworld.evaluation.rollout import baseline_rollout, chaos_floor_rollout  # noqa: E402
from physworld.models.physics_expert_3d import (  # noqa: E402
    PhysicsExpert3D,
    PhysicsExpert3DConfig,
    model_rollouts,
)
from physworld.worlds import spec3d  # noqa: E402
from physworld.worlds.bullet import simulate  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data3d(tmp_path_factory):
    """A few 3D scenes with joints (pendulum_3d), a floor only (movi_a) and a static ramp (ramp_roll_3d)."""
    root = tmp_path_factory.mktemp("pe3d")
    generate(
        GenerateConfig(
            scenario_types=("pendulum_3d", "movi_a", "ramp_roll_3d"),
            num_scenes_per_type=1,
            frames_per_scene=16,
            difficulty_range=(2, 2),
        ),
        root / "train",
        progress=False,
    )
    return root


@pytest.fixture(scope="module")
def model(data3d):
    prepared = windows.prepare(data3d / "train", progress=False, dims=3)
    torch.manual_seed(0)
    return PhysicsExpert3D(
        PhysicsExpert3DConfig(history=3, hidden=16, message_passing_steps=2), windows.load_stats(prepared)
    )


def free_spec(**kw) -> dict:
    spec = spec3d.new_spec("free flight")
    spec["bodies"].append(spec3d.box((0.0, 0.0, 5.0), (0.3, 0.5, 0.2), **kw))
    return spec


# ---------------------------------------------------------------- the integrator


def test_integrator_reproduces_pybullet_free_flight():
    """A spinning box in free fall: the true accelerations, integrated, give PyBullet's next states."""
    spec = free_spec(velocity=(1.0, 0.5, 2.0), angular_velocity=(0.4, -1.0, 3.0))
    states = simulate(spec, 8)["states"].astype(np.float64)
    w = spec["world"]
    for t in range(8):
        accel = np.zeros((1, 6))
        accel[:, 0:3] = (states[t + 1, :, 7:10] - states[t, :, 7:10]) / w["dt"]
        accel[:, 3:6] = (states[t + 1, :, 10:13] - states[t, :, 10:13]) / w["dt"]
        nxt = integrate_3d(states[t], accel, w["dt"], w["substeps"])
        np.testing.assert_allclose(nxt[:, 0:3], states[t + 1, :, 0:3], atol=2e-6)
        assert geodesic_angle_np(nxt[:, 3:7], states[t + 1, :, 3:7]).max() < 1e-4
        np.testing.assert_allclose(nxt[:, 7:], states[t + 1, :, 7:], atol=1e-5)


def test_free_fall_matches_the_ballistic_formula():
    """Gravity only, n frames of K substeps of h: z = z0 + vz0 N h + g h^2 N (N + 1) / 2 (N = n K,
    semi-implicit Euler), which is the continuous z0 + vz0 T + g T^2 / 2 plus g T h / 2."""
    dt, substeps, g = 1 / 24, 10, -9.81
    state = np.zeros((1, 13))
    state[0, 2], state[0, 6], state[0, 9] = 3.0, 1.0, 1.5
    accel = np.array([[0.0, 0.0, g, 0.0, 0.0, 0.0]])
    for _ in range(24):
        state = integrate_3d(state, accel, dt, substeps).astype(np.float64)
    h, n = dt / substeps, 24 * substeps
    assert state[0, 2] == pytest.approx(3.0 + 1.5 * n * h + g * h * h * n * (n + 1) / 2, abs=1e-5)
    assert state[0, 2] == pytest.approx(3.0 + 1.5 + g / 2 + g * h / 2, abs=1e-5)  # T = 1 s
    assert state[0, 9] == pytest.approx(1.5 + g, abs=1e-5)


def test_quaternion_stays_unit_and_turns_at_the_angular_velocity():
    dt = 1 / 24
    state = np.zeros((2, 13), dtype=np.float32)
    state[:, 6] = 1.0
    state[0, 10:13] = [0.0, 0.0, np.pi]  # half a turn per second about z
    state[1, 10:13] = [7.0, -3.0, 5.0]
    for _ in range(240):
        state = integrate_3d(state, np.zeros((2, 6), np.float32), dt, 10)
        assert np.allclose(np.linalg.norm(state[:, 3:7], axis=-1), 1.0, atol=1e-6)
    # 240 frames at 24 fps are 10 s: five whole turns at pi rad/s, back where it started
    assert geodesic_angle_np(state[0, 3:7], np.array([0, 0, 0, 1.0])) < 1e-3


# ---------------------------------------------------------------- the data view


def test_windows_3d_samples_and_refusals(data3d):
    prepared = windows.prepare(data3d / "train", progress=False, dims=3)
    meta = windows.load_meta(prepared)
    assert meta["dims"] == 3 and len(meta["stats"]["velocity_std"]) == 6
    ds = windows.WindowDataset(prepared, history=3)
    sample = ds[5]
    assert sample["history"].shape[1:] == (3, 13) and sample["target"].shape[1] == 6
    assert sample["body"].shape[1] == 19 and sample["gravity"].shape == (3,)
    np.testing.assert_allclose(
        sample["target"],
        (sample["next"][:, 7:13] - sample["history"][:, -1, 7:13]) / sample["dt"],
        rtol=1e-4,
        atol=1e-4,
    )
    batch = windows.collate_graphs([ds[i] for i in range(len(ds))])
    assert batch["joint_anchor"].shape[1] == 6 and batch["statics"].shape[1] == 17
    with pytest.raises(StoreError, match="holds 3D scenes.*physics-expert-3d"):
        windows.prepare(data3d / "train", progress=False)  # a 2D reader


def test_every_3d_type_prepares_and_steps(tmp_path):
    """Every registered 3D type (joints, ramps, walls, every shape) becomes graphs the model steps."""
    from physworld.worlds.registry import SCENARIOS_3D

    generate(
        GenerateConfig(scenario_types=("3d",), num_scenes_per_type=1, frames_per_scene=6),
        tmp_path / "all",
        progress=False,
    )
    assert main(["prepare", str(tmp_path / "all"), "--quiet"]) == 0  # the CLI prepares a 3D dataset as 3D
    prepared = windows.prepare(tmp_path / "all", progress=False, dims=3)
    ds = windows.WindowDataset(prepared, history=2)
    assert sorted(ds.scenario_types) == sorted(SCENARIOS_3D)
    batch = windows.collate_graphs([ds[i] for i in range(0, len(ds), 4)])
    torch.manual_seed(0)
    net = PhysicsExpert3D(PhysicsExpert3DConfig(history=2, hidden=8, mlp_layers=1, message_passing_steps=1))
    nxt = net.step(batch)
    assert nxt.shape == batch["next"].shape and torch.isfinite(nxt).all()
    assert net.build_graph(batch, torch.eye(3).expand(len(nxt), 3, 3))["num_static"] > 0


# ---------------------------------------------------------------- the model


def _batch(data3d, t=4, shift=(0.0, 0.0), flip=False):
    """One graph per scene at frame t, every position moved by `shift` in x, y (static boxes too),
    quaternions negated when `flip`."""
    samples = []
    for rec in Dataset(data3d / "train").iter_scenes():
        spec, states = copy.deepcopy(rec["spec"]), rec["states"].astype(np.float64).copy()
        states[..., 0:2] += shift
        if flip:
            states[..., 3:7] *= -1
        for s in spec["statics"]:
            if s["kind"] == "box":
                s["position"] = [s["position"][0] + shift[0], s["position"][1] + shift[1], s["position"][2]]
        for c in spec["constraints"]:
            if c["b"] == -1:
                c["anchor_b"] = [c["anchor_b"][0] + shift[0], c["anchor_b"][1] + shift[1], c["anchor_b"][2]]
        samples.append(windows.graph_from_scene(spec, states[t - 2 : t + 1], states[t + 1]))
    return windows.collate_graphs(samples)


def test_translation_and_quaternion_sign_invariance(data3d, model):
    with torch.no_grad():
        base = model.accelerations(_batch(data3d))
        moved = model.accelerations(_batch(data3d, shift=(3.25, -1.5)))
        flipped = model.accelerations(_batch(data3d, flip=True))
    assert base.abs().max() > 0
    torch.testing.assert_close(moved, base, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(flipped, base, atol=1e-5, rtol=1e-5)


def test_model_learns_a_batch_and_rolls_out(data3d):
    prepared = windows.prepare(data3d / "train", progress=False, dims=3)
    torch.manual_seed(1)
    net = PhysicsExpert3D(
        PhysicsExpert3DConfig(history=3, hidden=32, message_passing_steps=2), windows.load_stats(prepared)
    )
    batch = _batch(data3d)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = float(net.loss(batch).detach())
    for _ in range(40):
        optimizer.zero_grad()
        net.loss(batch).backward()
        optimizer.step()
    assert float(net.loss(batch).detach()) < 0.5 * first
    scenes = list(Dataset(data3d / "train").iter_scenes())
    preds = model_rollouts(net, scenes, context=4, rollout=6)
    for s, p in zip(scenes, preds, strict=True):
        assert p.shape == (10, *s["states"].shape[1:])
        np.testing.assert_array_equal(p[:4], s["states"][:4])
        assert np.isfinite(p).all() and np.allclose(np.linalg.norm(p[:, :, 3:7], axis=-1), 1.0, atol=1e-5)


def test_training_noise_keeps_history_consistent_and_target_correct(data3d, model):
    batch = _batch(data3d)
    noisy = model.add_training_noise(batch, 0.5, torch.Generator().manual_seed(0))
    h, hn = batch["history"].double(), noisy["history"].double()
    noise = hn[..., 7:13] - h[..., 7:13]  # [N, k, 6]
    assert noise.abs().max() > 1e-3
    torch.testing.assert_close(hn[:, 0, 0:3], h[:, 0, 0:3])  # the oldest position is untouched
    # the noisy last velocity plus the noisy target * dt is still the clean next velocity
    dt = batch["dt"][batch["batch"]].double()[:, None]
    torch.testing.assert_close(
        hn[:, -1, 7:13] + noisy["target"].double() * dt, batch["next"][:, 7:13].double(), atol=1e-4, rtol=1e-5
    )
    # each frame's position moved by what integrate_3d makes of the extra velocity:
    # dt ((1 - c) n[i] + c n[i + 1]) per frame, c = (K + 1) / (2K)
    k = batch["substeps"][batch["batch"]].double()[:, None]
    c = (k + 1) / (2 * k)
    for i in range(h.shape[1] - 1):
        extra = (hn[:, i + 1, 0:3] - hn[:, i, 0:3]) - (h[:, i + 1, 0:3] - h[:, i, 0:3])
        expected = dt * ((1 - c) * noise[:, i, 0:3] + c * noise[:, i + 1, 0:3])
        torch.testing.assert_close(extra, expected, atol=1e-5, rtol=1e-4)
    # and the quaternions stay unit
    torch.testing.assert_close(hn[..., 3:7].norm(dim=-1), torch.ones_like(hn[..., 0]), atol=1e-6, rtol=0)


# ---------------------------------------------------------------- baselines and metrics


def test_3d_baselines_on_free_flight_and_a_resting_body():
    spec = free_spec(velocity=(1.0, 0.0, 3.0), angular_velocity=(0.0, 0.0, 2.0))
    truth = simulate(spec, 12)["states"]
    ballistic = baseline_rollout("ballistic", spec, truth, 3, 9)
    np.testing.assert_allclose(ballistic[:, :, 0:3], truth[:12, :, 0:3], atol=1e-4)  # nothing to hit
    still = baseline_rollout("constant_position", spec, truth, 3, 9)
    assert (still[3:, :, 0:7] == truth[2, :, 0:7]).all()
    # a box at rest on the floor: ballistic keeps it there (the inelastic floor), never below
    rest = spec3d.new_spec("rest")
    rest["statics"].append(spec3d.floor())
    rest["bodies"].append(spec3d.box((0.0, 0.0, 0.1), (0.4, 0.4, 0.2)))
    truth = simulate(rest, 12)["states"]
    pred = baseline_rollout("ballistic", rest, truth, 3, 9)
    assert np.abs(pred[:, 0, 2] - truth[:12, 0, 2]).max() < 1e-3
    metrics = scene_metrics(rest, truth, pred, 3, [1, 5])
    assert {"position_error_m", "orientation_error_deg", "penetration_m", "energy_drift"} <= set(metrics)
    assert metrics["position_error_m"]["all"] < 1e-3 and metrics["penetration_m"] < 0.01


def test_penetration_of_a_whole_rollout_matches_the_per_frame_check(data3d):
    """The evaluator's one-world penetration check agrees with checks.penetration_depths_3d, which
    builds a fresh PyBullet world per frame."""
    from physworld.worlds.checks import penetration_depths_3d, penetration_depths_3d_frames

    for rec in Dataset(data3d / "train").iter_scenes():
        pred = baseline_rollout("ballistic", rec["spec"], rec["states"], 3, 6)  # sinks into things
        per_frame = np.array([penetration_depths_3d(rec["spec"], f) for f in pred])
        np.testing.assert_allclose(penetration_depths_3d_frames(rec["spec"], pred), per_frame, atol=1e-3)


def test_orientation_error_is_the_geodesic_angle():
    q = np.array([0.0, 0.0, np.sin(0.25), np.cos(0.25)])  # 0.5 rad about z
    assert geodesic_angle_np(q, np.array([0, 0, 0, 1.0])) == pytest.approx(0.5)
    assert geodesic_angle_np(-q, np.array([0, 0, 0, 1.0])) == pytest.approx(0.5)  # sign-free


def test_chaos_floor_3d_starts_within_epsilon(data3d):
    rec = next(Dataset(data3d / "train").iter_scenes())
    states = chaos_floor_rollout(rec["spec"], 3, 5, 1e-5, seed=0)
    assert states.shape == (8, *rec["states"].shape[1:])
    d = np.linalg.norm(states[0, :, 0:3] - rec["states"][0, :, 0:3], axis=-1)
    assert np.all(d <= 1.1e-5) and d.max() > 0


# ---------------------------------------------------------------- the recipe: resume and refusals


def load_checkpoint_step(run) -> int:
    from physworld.training.checkpoint import read_metadata

    return read_metadata(run / "checkpoints" / "latest.safetensors")["extra"]["train_state"]["step"]


def test_recipe_resumes_bit_identically_and_refuses_2d_data(data3d, tmp_path, capsys, monkeypatch):
    """A run stopped after step 5 (its last checkpoint at step 4) and resumed ends with the same
    weights as a run never stopped; a 2D dataset is refused in one line, nothing written."""
    from safetensors.torch import load_file

    from physworld.recipes import physics_expert, physics_expert_3d

    config = "configs/physics_expert_3d/tiny.yaml"
    common = [f"data.train_dir={data3d / 'train'}", "train.save_every=2", "train.max_steps=8"]
    physics_expert_3d.main(config, [*common, f"train.output_dir={tmp_path / 'a'}"], progress=False)

    collate, calls = physics_expert.windows.collate_graphs, [0]

    def stop_at_the_sixth_batch(samples):
        calls[0] += 1
        if calls[0] == 6:
            raise KeyboardInterrupt  # as a kill would: mid-run, after the checkpoint at step 4
        return collate(samples)

    with monkeypatch.context() as m:
        m.setattr(physics_expert.windows, "collate_graphs", stop_at_the_sixth_batch)
        with pytest.raises(KeyboardInterrupt):
            physics_expert_3d.main(config, [*common, f"train.output_dir={tmp_path / 'b'}"], progress=False)
    assert load_checkpoint_step(tmp_path / "b") == 4
    physics_expert_3d.main(config, [*common, f"train.output_dir={tmp_path / 'b'}"], progress=False)
    a = load_file(tmp_path / "a" / "checkpoints" / "latest.safetensors")
    b = load_file(tmp_path / "b" / "checkpoints" / "latest.safetensors")
    weights = [k for k in a if k.startswith("model.")]
    assert weights and all(torch.equal(a[k], b[k]) for k in weights)

    generate(
        GenerateConfig(scenario_types=("pendulum",), num_scenes_per_type=1, frames_per_scene=12),
        tmp_path / "flat",
        progress=False,
    )
    capsys.readouterr()
    out = tmp_path / "c"
    assert (
        main(
            [
                "train",
                "physics-expert-3d",
                "--config",
                config,
                f"data.train_dir={tmp_path / 'flat'}",
                f"train.output_dir={out}",
                "--quiet",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds 2D scenes" in err and "Traceback" not in err
    assert not out.exists()
