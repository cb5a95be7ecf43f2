"""The stacking and ramp scenarios do what their names promise: towers stand or fall as built,
dominos topple in a chain, bridges hold together, and bodies roll, slide, fly and fall as they should."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from physworld.worlds import ramp, stacking
from physworld.worlds.engine import simulate
from physworld.worlds.registry import DIFFICULTIES

FRAMES = 200
G = 981.0
DT = 1.0 / 60


def _spec(fn, difficulty, seed):
    return fn(difficulty, np.random.default_rng(seed))


def _run(spec, frames=FRAMES):
    return simulate(spec, frames)["states"].astype(np.float64)


def _world_point(state, anchor):
    """World position of a body-local anchor, given the body's (x, y, angle, ...) [..., 6]."""
    x, y, a = state[..., 0], state[..., 1], state[..., 2]
    c, s = np.cos(a), np.sin(a)
    return np.stack([x + c * anchor[0] - s * anchor[1], y + s * anchor[0] + c * anchor[1]], axis=-1)


# ---------------------------------------------------------------- both modules


def test_scenario_order_and_docstrings():
    assert list(stacking.SCENARIOS) == ["tower", "pyramid", "dominos", "jenga", "bridge"]
    assert list(ramp.SCENARIOS) == ["ramp_roll", "ski_jump", "funnel", "plinko", "marble_run"]
    for name, fn in {**stacking.SCENARIOS, **ramp.SCENARIOS}.items():
        doc = " ".join((fn.__doc__ or "").split())
        head, _, tail = doc.partition("Difficulty:")
        assert head.strip() and tail.strip(), f"{name}: needs a summary and a 'Difficulty:' paragraph"


@pytest.mark.parametrize("name", [*stacking.SCENARIOS, *ramp.SCENARIOS])
def test_spec_ignores_global_random_state(name):
    fn = {**stacking.SCENARIOS, **ramp.SCENARIOS}[name]
    specs = []
    for global_seed in (1, 2):
        np.random.seed(global_seed)  # noqa: NPY002 - checking that the global state is NOT used
        random.seed(global_seed)
        specs.append(_spec(fn, 4, 11))
    assert specs[0] == specs[1]


@pytest.mark.parametrize("name", ["tower", "pyramid", "jenga"])
def test_stacked_blocks_touch_exactly(name):
    """Every block rests on the floor or on a block below it: no gap to drop through, no overlap."""
    fn = stacking.SCENARIOS[name]
    for difficulty in DIFFICULTIES:
        for seed in range(4):
            blocks = [b for b in _spec(fn, difficulty, seed)["bodies"] if b["shape"] == "box"]
            for b in blocks:
                x, y = b["position"]
                bottom = y - b["height"] / 2
                if abs(bottom) < 1e-9:
                    continue
                below = [
                    o
                    for o in blocks
                    if abs(o["position"][1] + o["height"] / 2 - bottom) < 1e-9
                    and abs(o["position"][0] - x) < (o["width"] + b["width"]) / 2
                ]
                assert below, (
                    f"{name} d{difficulty} seed {seed}: block at ({x:.1f}, {y:.1f}) rests on nothing"
                )


# ---------------------------------------------------------------- stacking


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_low_level_tower_stands(difficulty):
    for seed in range(5):
        states = _run(_spec(stacking.tower, difficulty, seed))
        top = states[:, -1]
        drift = np.hypot(top[:, 0] - top[0, 0], top[:, 1] - top[0, 1]).max()
        assert drift < 2.0, f"d{difficulty} seed {seed}: top block drifted {drift:.2f} px"
        assert np.abs(states[:, :, 2]).max() < 0.02, f"d{difficulty} seed {seed}: blocks rotated"


@pytest.mark.parametrize("difficulty", [4, 5])
def test_leaning_tower_topples(difficulty):
    for seed in range(5):
        spec = _spec(stacking.tower, difficulty, seed)
        states = _run(spec)
        fall = states[0, -1, 1] - states[-1, -1, 1]
        assert fall > 50, f"d{difficulty} seed {seed}: top block only fell {fall:.1f} px"
        assert "topples" in spec["description"]


def test_pyramid_without_ball_stands():
    for difficulty in (1, 2):
        for seed in range(4):
            states = _run(_spec(stacking.pyramid, difficulty, seed))
            drift = np.hypot(states[:, :, 0] - states[0, :, 0], states[:, :, 1] - states[0, :, 1]).max()
            assert drift < 2.0, f"d{difficulty} seed {seed}: a block drifted {drift:.2f} px"


def test_pyramid_thrown_ball_knocks_blocks_off():
    for seed in range(4):
        spec = _spec(stacking.pyramid, 5, seed)
        states = _run(spec)
        blocks = states[:, :-1]
        moved = np.hypot(blocks[-1, :, 0] - blocks[0, :, 0], blocks[-1, :, 1] - blocks[0, :, 1])
        assert moved.max() > 20.0, f"seed {seed}: the thrown ball knocked no block off"


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_domino_push_topples_the_last_domino(difficulty):
    for seed in range(3):
        spec = _spec(stacking.dominos, difficulty, seed)
        assert all(b["angular_velocity"] == 0 for b in spec["bodies"][1:]), "only the first is pushed"
        states = _run(spec)
        turn = np.abs(states[:, -1, 2] - states[0, -1, 2]).max()
        assert turn > 0.5, f"d{difficulty} seed {seed}: last domino turned only {turn:.2f} rad"
        # Every domino ends up lying down, and all fall the same way as the first.
        assert np.all(np.abs(states[-1, :, 2]) > 1.0)
        assert np.all(np.sign(states[-1, :, 2]) == np.sign(states[-1, 0, 2]))


def test_jenga_low_levels_stand():
    for difficulty in (1, 2):
        for seed in range(4):
            states = _run(_spec(stacking.jenga, difficulty, seed))
            drift = np.hypot(states[:, :, 0] - states[0, :, 0], states[:, :, 1] - states[0, :, 1]).max()
            assert drift < 2.0, f"d{difficulty} seed {seed}: a block drifted {drift:.2f} px"


def test_jenga_pulled_block_slides_out():
    for seed in range(4):
        spec = _spec(stacking.jenga, 3, seed)
        moving = [i for i, b in enumerate(spec["bodies"]) if b["velocity"][0] != 0]
        assert len(moving) == 1
        i = moving[0]
        states = _run(spec, 60)
        outward = np.sign(spec["bodies"][i]["velocity"][0]) * (states[-1, i, 0] - states[0, i, 0])
        assert outward > 3.0, f"seed {seed}: the struck block moved {outward:.1f} px outwards"


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_bridge_planks_stay_connected(difficulty):
    for seed in range(3):
        spec = _spec(stacking.bridge, difficulty, seed)
        assert all(c["kind"] == "pivot" for c in spec["constraints"])
        states = _run(spec)
        for c in spec["constraints"]:
            ends = []
            for body, anchor in ((c["a"], c["anchor_a"]), (c["b"], c["anchor_b"])):
                ends.append(np.asarray(anchor) if body == -1 else _world_point(states[:, body], anchor))
            gap = np.hypot(*(ends[0] - ends[1]).T).max()
            assert gap < 2.0, f"d{difficulty} seed {seed}: a hinge opened by {gap:.2f} px"


def test_bridge_joints_coincide_at_spawn_and_loads_stay_on_deck():
    for difficulty in DIFFICULTIES:
        for seed in range(3):
            spec = _spec(stacking.bridge, difficulty, seed)
            initial = np.array([[*b["position"], b["angle"]] for b in spec["bodies"]])
            for c in spec["constraints"]:
                ends = [
                    np.asarray(anchor) if body == -1 else _world_point(initial[body], anchor)
                    for body, anchor in ((c["a"], c["anchor_a"]), (c["b"], c["anchor_b"]))
                ]
                assert np.hypot(*(ends[0] - ends[1])) < 1e-6
            n_planks = len(spec["constraints"]) - 1
            pier_top = max(v[1] for v in spec["statics"][-1]["vertices"])
            states = _run(spec)
            loads_y = states[-1, n_planks:, 1]
            assert loads_y.min() > pier_top / 2, f"d{difficulty} seed {seed}: a load fell off the deck"


# ---------------------------------------------------------------- ramp


def _ramp_direction(spec):
    ramp_poly = spec["statics"][-1]["vertices"]
    return math.copysign(1.0, ramp_poly[1][0] - ramp_poly[0][0])


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_ramp_roll_bodies_roll_down_slope(difficulty):
    for seed in range(4):
        spec = _spec(ramp.ramp_roll, difficulty, seed)
        side = _ramp_direction(spec)
        states = _run(spec, 20)
        dx = side * (states[-1, :, 0] - states[0, :, 0])
        dy = states[-1, :, 1] - states[0, :, 1]
        assert np.all(dx > 3.0) and np.all(dy < -1.0), f"d{difficulty} seed {seed}: dx {dx}, dy {dy}"
        assert np.all(side * states[-1, :, 3] > 0), "every roller moves down-slope"
        assert np.all(side * states[-1, :, 5] < 0), "and spins the way it rolls"


def test_ramp_roll_acceleration_matches_rolling_without_slipping():
    """a = g sin(theta) / (1 + I / (m r^2)): discs (I = m r^2 / 2) beat tubes down the slope."""
    kinds = set()
    for seed in range(6):
        spec = _spec(ramp.ramp_roll, 1, seed)
        verts = spec["statics"][-1]["vertices"]
        theta = math.atan2(verts[2][1], abs(verts[1][0] - verts[0][0]))
        frames = 6
        states = _run(spec, frames)
        for i, b in enumerate(spec["bodies"]):
            k = b["moment"] / (b["mass"] * b["radius"] ** 2)
            kinds.add(round(k, 2))
            expected = G * math.sin(theta) / (1 + k)
            measured = math.hypot(states[-1, i, 3], states[-1, i, 4]) / (frames * DT)
            assert measured == pytest.approx(expected, rel=0.05), f"seed {seed} body {i} (k={k:.2f})"
    assert len(kinds) == 2, "both solid discs and hollow tubes appear"


def _ski_profile(spec):
    return [s for s in spec["statics"][4:] if s["kind"] == "segment"]


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_ski_jump_flies_off_the_lip(difficulty):
    for seed in range(3):
        spec = _spec(ramp.ski_jump, difficulty, seed)
        lip = _ski_profile(spec)[-1]["b"]
        states = _run(spec)
        for i, _ in enumerate(spec["bodies"]):
            x, y, vy = states[:, i, 0], states[:, i, 1], states[:, i, 4]
            flying = (x > lip[0] + 30) & (y > 40)
            assert flying.sum() >= 10, f"d{difficulty} seed {seed} skier {i}: never airborne past the lip"
            f = np.flatnonzero(flying)
            f = f[f + 1 < len(vy)]
            f = f[flying[f + 1]]
            accel = (vy[f + 1] - vy[f]) / DT
            # In flight only gravity acts.
            assert np.median(accel) == pytest.approx(-G, rel=0.03)
            assert x.max() > lip[0] + 150, f"d{difficulty} seed {seed} skier {i}: short jump"


def test_ski_jump_skiers_start_on_the_in_run():
    for difficulty in DIFFICULTIES:
        for seed in range(5):
            spec = _spec(ramp.ski_jump, difficulty, seed)
            a, b = _ski_profile(spec)[0]["a"], _ski_profile(spec)[0]["b"]
            slope = math.atan2(b[1] - a[1], b[0] - a[0])
            for body in spec["bodies"]:
                assert body["angle"] == pytest.approx(slope)
                # The centre projects onto the straight in-run, not beyond it.
                t = (
                    (body["position"][0] - a[0]) * (b[0] - a[0])
                    + (body["position"][1] - a[1]) * (b[1] - a[1])
                ) / ((b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2)
                assert 0 < t < 1


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_funnel_balls_pour_through_the_neck(difficulty):
    for seed in range(3):
        spec = _spec(ramp.funnel, difficulty, seed)
        walls = spec["statics"][-2:]
        neck_y = max(walls[0]["b"][1], walls[1]["b"][1])
        rim_y = min(walls[0]["a"][1], walls[1]["a"][1])
        assert len(spec["bodies"]) >= 9 * difficulty, "place() found room for (nearly) every ball"
        assert all(b["position"][1] - b["radius"] > rim_y for b in spec["bodies"]), (
            "balls start above the rim"
        )
        states = _run(spec)
        below = (states[-1, :, 1] < neck_y).mean()
        assert below > 0.9, f"d{difficulty} seed {seed}: only {below:.0%} of balls came through"


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_plinko_balls_pass_below_the_pegs(difficulty):
    for seed in range(3):
        spec = _spec(ramp.plinko, difficulty, seed)
        pegs = [s for s in spec["statics"] if s["kind"] == "circle"]
        top = max(p["center"][1] + p["radius"] for p in pegs)
        bottom = min(p["center"][1] - p["radius"] for p in pegs)
        assert all(b["position"][1] - b["radius"] > top for b in spec["bodies"]), "balls start above the pegs"
        states = _run(spec, 400)
        below = states[:, :, 1] < bottom
        assert below[FRAMES].mean() >= 0.5, f"d{difficulty} seed {seed}: most balls still among the pegs"
        assert below.any(axis=0).all(), f"d{difficulty} seed {seed}: a ball never got through the pegs"
        # Once below the pegs, a ball stays in the bins.
        assert (states[-1, :, 1] < bottom).all()


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_marble_run_marbles_descend_the_zig_zag(difficulty):
    for seed in range(3):
        spec = _spec(ramp.marble_run, difficulty, seed)
        tracks = [s for s in spec["statics"][4:] if s["kind"] == "segment" and s["a"][1] != 0]
        assert len(tracks) >= 3
        # The tracks alternate direction: each falls the opposite way to the one above it.
        runs = [math.copysign(1, t["b"][0] - t["a"][0]) for t in tracks]
        assert all(r1 == -r2 for r1, r2 in zip(runs, runs[1:], strict=False))
        states = _run(spec)
        first_low = tracks[0]["b"][1]
        assert (states[-1, :, 1] < first_low).all(), (
            f"d{difficulty} seed {seed}: a marble stayed on the top track"
        )


def test_marble_run_marbles_start_on_the_top_track():
    for difficulty in DIFFICULTIES:
        for seed in range(5):
            spec = _spec(ramp.marble_run, difficulty, seed)
            track = spec["statics"][4]
            (ax, ay), (bx, by) = track["a"], track["b"]
            length = math.hypot(bx - ax, by - ay)
            for m in spec["bodies"]:
                px, py = m["position"][0] - ax, m["position"][1] - ay
                along = (px * (bx - ax) + py * (by - ay)) / length
                off = (px * -(by - ay) + py * (bx - ax)) / length  # signed distance above the track
                assert m["radius"] < along < length - m["radius"], "the marble sits within the track's ends"
                assert off == pytest.approx(m["radius"] + track["radius"]), "and touches the track"
