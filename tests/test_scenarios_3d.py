"""Every registered 3D scenario builds, steps and is plausible at every difficulty; the 3D engine is
deterministic in and across processes; 3D datasets go through generate, the store and validate."""

from __future__ import annotations

import json
import multiprocessing as mp

import numpy as np
import pytest

pytest.importorskip("pybullet")

from physworld.data.generate import GenerateConfig, generate  # noqa: E402
from physworld.data.store import Dataset, StoreError  # noqa: E402
from physworld.data.validate import validate  # noqa: E402
from physworld.data.windows import prepare  # noqa: E402
from physworld.worlds.bullet import STATE_FIELDS_3D, simulate  # noqa: E402
from physworld.worlds.checks import escaped_bodies, spawn_problems  # noqa: E402
from physworld.worlds.registry import (  # noqa: E402
    DIFFICULTIES,
    HELDOUT,
    HELDOUT_3D,
    SCENARIOS,
    SCENARIOS_3D,
    make_spec,
    resolve_types,
)
from physworld.worlds.spec3d import COLORS, MATERIALS  # noqa: E402

SEEDS = (0, 1)
FRAMES = 72  # 3 s at 24 fps: short, to keep the suite fast


@pytest.mark.parametrize("scenario_type", list(SCENARIOS_3D))
def test_builds_steps_and_stays_plausible(scenario_type):
    for difficulty in DIFFICULTIES:
        for seed in SEEDS:
            spec = make_spec(scenario_type, difficulty, seed)
            where = f"{scenario_type} d{difficulty} seed {seed}"
            json.dumps(spec, allow_nan=False)  # specs are stored as JSON
            assert spec["world"]["dims"] == 3
            assert spec["bodies"] and spec["description"], where
            for b in spec["bodies"]:
                assert b["color"] in COLORS and b["material"] in MATERIALS, where
                assert 0.0 <= b["effective_restitution"] <= 1.1, where
            assert set(spec["camera"]) == {"position", "target", "up", "fov", "near", "far"}
            assert _in_view(spec["camera"], [b["position"] for b in spec["bodies"]]), f"{where}: off camera"
            assert not spawn_problems(spec), f"{where}: {spawn_problems(spec)}"
            states = simulate(spec, FRAMES)["states"]
            assert states.shape == (FRAMES + 1, len(spec["bodies"]), len(STATE_FIELDS_3D))
            assert np.isfinite(states).all(), f"{where}: non-finite state"
            np.testing.assert_allclose(np.linalg.norm(states[..., 3:7], axis=-1), 1.0, atol=1e-5)
            if spec["expect"]["contained"]:
                assert not escaped_bodies(spec, states, margin=0.05), f"{where}: (frame, body) left the world"


@pytest.mark.parametrize("scenario_type", list(SCENARIOS_3D))
def test_same_seed_same_scene_bit_for_bit(scenario_type):
    a = simulate(make_spec(scenario_type, 3, 7), 36)
    b = simulate(make_spec(scenario_type, 3, 7), 36)
    assert a["states"].tobytes() == b["states"].tobytes()
    assert all(np.array_equal(a["events"][k], b["events"][k]) for k in a["events"])
    # Simulating further extends the same trajectory (what predictive questions rely on).
    longer = simulate(make_spec(scenario_type, 3, 7), 48)
    assert longer["states"][:37].tobytes() == a["states"].tobytes()
    early = longer["events"]["frame"] <= 36
    assert all(np.array_equal(longer["events"][k][early], a["events"][k]) for k in a["events"])
    assert make_spec(scenario_type, 3, 7) != make_spec(scenario_type, 3, 8), "seed must matter"


def _run_in_child(args):
    scenario_type, seed = args
    run = simulate(make_spec(scenario_type, 4, seed), 36)
    return run["states"].tobytes(), {k: v.tobytes() for k, v in run["events"].items()}


def test_identical_bytes_in_a_worker_process():
    """A scene simulated in a fresh worker process (after this one has run other scenes) gives the
    same bytes: nothing leaks between PyBullet clients or processes."""
    jobs = [(t, 11) for t in SCENARIOS_3D]
    simulate(make_spec(next(iter(SCENARIOS_3D)), 5, 3), 10)  # leave state behind, if any could leak
    here = [_run_in_child(j) for j in jobs]
    ctx = mp.get_context("spawn")  # a clean interpreter: the strongest test
    with ctx.Pool(1) as pool:
        there = pool.map(_run_in_child, jobs)
    assert here == there


def _in_view(camera: dict, points) -> bool:
    """Whether every point lies inside the camera's square view (pinhole, vertical fov)."""
    pos, target, up = (np.asarray(camera[k], dtype=np.float64) for k in ("position", "target", "up"))
    forward = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    d = np.asarray(points, dtype=np.float64) - pos
    depth = d @ forward
    half = np.tan(np.radians(camera["fov"]) / 2) * depth
    return bool(
        (depth > camera["near"]).all()
        and (np.abs(d @ right) <= half).all()
        and (np.abs(d @ true_up) <= half).all()
    )


def _complexity(spec):
    speeds = [
        np.linalg.norm(b["velocity"]) + np.linalg.norm(b["angular_velocity"]) * 0.1 for b in spec["bodies"]
    ]
    return len(spec["bodies"]) + len(spec["constraints"]), float(np.mean(speeds))


@pytest.mark.parametrize("scenario_type", list(SCENARIOS_3D))
def test_difficulty_scales_monotonically(scenario_type):
    """As in 2D: mean object count never falls with difficulty, and level 5 exceeds level 1 in
    count or speed, averaged over seeds."""
    counts, speeds = [], []
    for difficulty in DIFFICULTIES:
        stats = [_complexity(make_spec(scenario_type, difficulty, seed)) for seed in range(6)]
        counts.append(np.mean([s[0] for s in stats]))
        speeds.append(np.mean([s[1] for s in stats]))
    assert all(b >= a for a, b in zip(counts, counts[1:], strict=False)), f"object counts {counts}"
    assert counts[-1] > counts[0] or speeds[-1] > speeds[0], f"counts {counts}, speeds {speeds}"


def test_type_selectors_keep_2d_and_3d_apart():
    assert resolve_types(["all"]) == list(SCENARIOS)  # unchanged: the 2D set
    assert resolve_types(["3d"]) == list(SCENARIOS_3D)
    assert resolve_types(["heldout3d"]) == list(HELDOUT_3D)
    assert set(resolve_types(["seen3d"])) == set(SCENARIOS_3D) - set(HELDOUT_3D)
    assert not set(SCENARIOS) & set(SCENARIOS_3D)
    assert all(t.removesuffix("_3d") in HELDOUT for t in HELDOUT_3D)
    with pytest.raises(ValueError, match="mixes 2D types"):
        GenerateConfig(scenario_types=("movi_a", "billiards"))


def test_generate_store_and_validate_3d(tmp_path):
    """3D datasets: same layout, manifest says dims 3, bytes independent of the worker count,
    Dataset.scene gives [frames + 1, bodies, 13], validate decodes them and re-simulates."""
    config = GenerateConfig(
        scenario_types=("3d",), num_scenes_per_type=2, frames_per_scene=12, scenes_per_shard=3
    )
    one = generate(config, tmp_path / "w1", num_workers=1, progress=False)
    two = generate(config, tmp_path / "w2", num_workers=2, progress=False)
    assert one["dims"] == 3 and one["state_fields"] == list(STATE_FIELDS_3D)
    assert [s["sha256"] for s in one["shards"]] == [s["sha256"] for s in two["shards"]]
    ds = Dataset(tmp_path / "w1")
    assert ds.dims == 3 and len(ds) == 2 * len(SCENARIOS_3D)
    rec = ds.scene(1)
    fresh = simulate(make_spec(rec["scenario_type"], rec["difficulty"], rec["seed"]), 12)
    assert rec["states"].shape == fresh["states"].shape and rec["states"].shape[-1] == 13
    assert rec["states"].tobytes() == fresh["states"].tobytes()
    report = validate(tmp_path / "w1", check_physics=True, resimulate="all")
    assert report.ok, [f.message for f in report.findings]
    assert report.num_scenes == len(ds)
    with pytest.raises(StoreError, match="holds 3D scenes"):  # the 2D window view says so, not crashes
        prepare(tmp_path / "w1", tmp_path / "windows")
    with pytest.raises(ValueError, match="jsonl holds 2D scenes only"):
        generate(config, tmp_path / "jsonl", progress=False, fmt="jsonl")
