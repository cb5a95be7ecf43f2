"""The physics each constraint and minigame scenario promises, measured from its simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from physworld.worlds import constraint, minigame
from physworld.worlds.engine import simulate
from physworld.worlds.registry import DIFFICULTIES, make_spec


def _world_anchor(states: np.ndarray, body: int, anchor) -> np.ndarray:
    """World position [frames, 2] of a constraint anchor; body -1 is the static world."""
    if body == -1:
        return np.broadcast_to(np.asarray(anchor, dtype=np.float64), (states.shape[0], 2))
    s = states[:, body].astype(np.float64)
    c, si = np.cos(s[:, 2]), np.sin(s[:, 2])
    return np.stack([s[:, 0] + c * anchor[0] - si * anchor[1], s[:, 1] + si * anchor[0] + c * anchor[1]], -1)


def test_modules_export_their_types_in_order():
    assert list(constraint.SCENARIOS) == ["newtons_cradle", "pendulum", "wrecking_ball", "chain", "seesaw"]
    assert list(minigame.SCENARIOS) == ["angry_birds", "pinball", "basketball", "breakout", "pong"]
    for fn in [*constraint.SCENARIOS.values(), *minigame.SCENARIOS.values()]:
        assert "Difficulty:" in fn.__doc__, fn.__name__


# ---------------------------------------------------------------- pendulum


@pytest.mark.parametrize("seed", range(5))
def test_pendulum_small_angle_period_matches_theory(seed):
    spec = make_spec("pendulum", 1, seed)
    assert len(spec["bodies"]) == 1 and len(spec["constraints"]) == 1
    c = spec["constraints"][0]
    assert c["kind"] == "pin" and c["a"] == -1 and c["b"] == 0 and c["anchor_b"] == [0.0, 0.0]
    (px, py), (bx, by) = c["anchor_a"], spec["bodies"][0]["position"]
    length = math.hypot(bx - px, by - py)
    assert py > by, "the pivot must be above the bob"
    assert math.degrees(math.asin(abs(bx - px) / length)) < 10, "level 1 is a small-angle pendulum"

    states = simulate(spec, 600)["states"].astype(np.float64)
    x = states[:, 0, 0] - px
    # Zero crossings of the bob's horizontal offset, linearly interpolated between frames.
    idx = np.flatnonzero(np.sign(x[:-1]) != np.sign(x[1:]))
    times = (idx + x[idx] / (x[idx] - x[idx + 1])) * spec["world"]["dt"]
    assert len(times) >= 5
    period = 2 * np.mean(np.diff(times))
    g = -spec["world"]["gravity"][1]
    expected = 2 * math.pi * math.sqrt(length / g)
    assert abs(period / expected - 1) < 0.02, f"period {period:.4f} s, theory {expected:.4f} s"


def test_pendulum_bobs_hang_from_real_pivots():
    for difficulty in DIFFICULTIES:
        for seed in range(4):
            spec = make_spec("pendulum", difficulty, seed)
            world_pins = [c for c in spec["constraints"] if c["a"] == -1]
            assert len(world_pins) == len(spec["bodies"]) - sum(c["a"] != -1 for c in spec["constraints"])
            for c in spec["constraints"]:
                assert c["kind"] == "pin"
                if c["a"] == -1:
                    assert c["anchor_a"] != [0.0, 0.0], "pivot at the world origin"
                    assert c["anchor_a"][1] > spec["bodies"][c["b"]]["position"][1]


# ---------------------------------------------------------------- newton's cradle


def test_newtons_cradle_pivots_above_touching_balls():
    for difficulty in DIFFICULTIES:
        for seed in range(4):
            spec = make_spec("newtons_cradle", difficulty, seed)
            balls = spec["bodies"]
            pivots = []
            for i, (ball, c) in enumerate(zip(balls, spec["constraints"], strict=True)):
                assert c["kind"] == "pin" and c["a"] == -1 and c["b"] == i
                assert ball["elasticity"] >= 0.95 and ball["shape"] == "circle"
                (px, py), (bx, by) = c["anchor_a"], ball["position"]
                assert py > by + 100, "each ball hangs well below its own pivot"
                pivots.append((px, py, math.hypot(bx - px, by - py)))
            # At rest each ball would hang straight below its pivot: neighbours touch without overlap.
            for (pa, ya, la), (pb, yb, lb), a, b in zip(pivots, pivots[1:], balls, balls[1:], strict=False):
                assert ya == yb and la == pytest.approx(lb), "one bar, equal strings"
                gap = (pb - pa) - a["radius"] - b["radius"]
                assert 0.0 <= gap <= 0.5, f"neighbours {gap:.2f} px apart at rest"
            pulled = [abs(b["position"][0] - p[0]) > 1 for b, p in zip(balls, pivots, strict=True)]
            assert pulled[0], "an end ball is pulled out"
            assert not all(pulled)


@pytest.mark.parametrize("seed", range(4))
def test_newtons_cradle_passes_swing_to_far_end(seed):
    spec = make_spec("newtons_cradle", 1, seed)
    n = len(spec["bodies"])
    run = simulate(spec, 200)
    x = run["states"][:, :, 0].astype(np.float64)
    dx = x - x[0]
    ev = run["events"]
    first_hit = ev["frame"][(ev["body_a"] == 0) & (ev["body_b"] == 1)]
    assert len(first_hit), "the pulled ball never reached its neighbour"
    impact = int(first_hit[0])
    amplitude = abs(spec["bodies"][0]["position"][0] - spec["constraints"][0]["anchor_a"][0])
    assert np.abs(dx[:impact, n - 1]).max() < 0.5, "the far ball moved before the impact"
    assert dx[impact:, n - 1].max() > 0.8 * amplitude, "the far ball did not swing out"
    assert np.abs(dx[:, 1 : n - 1]).max() < 0.1 * amplitude, "the middle balls should barely move"


# ---------------------------------------------------------------- chain, wrecking ball, seesaw


def test_chain_joint_anchors_stay_together():
    for difficulty in DIFFICULTIES:
        for seed in range(4):
            spec = make_spec("chain", difficulty, seed)
            states = simulate(spec, 200)["states"]
            pivots = [c for c in spec["constraints"] if c["kind"] == "pivot"]
            assert len(pivots) >= 4 + 2 * difficulty
            for c in pivots:
                if c["a"] != -1:
                    ga, gb = spec["bodies"][c["a"]]["group"], spec["bodies"][c["b"]]["group"]
                    assert ga == gb != 0, "links of a chain share a nonzero group"
                gap = _world_anchor(states, c["a"], c["anchor_a"]) - _world_anchor(
                    states, c["b"], c["anchor_b"]
                )
                worst = np.hypot(gap[:, 0], gap[:, 1]).max()
                assert worst < 1.5, f"d{difficulty} seed {seed}: hinge {c} opened by {worst:.2f} px"
            moved = np.abs(states[-1, :, :2] - states[0, :, :2]).max()
            assert moved > 20, "the chain should fall and swing"


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_wrecking_ball_knocks_the_wall_over(difficulty):
    spec = make_spec("wrecking_ball", difficulty, 0)
    states = simulate(spec, 200)["states"]
    is_block = np.array([b["shape"] == "box" for b in spec["bodies"]])
    heavy = max(b["mass"] for b in spec["bodies"])
    assert heavy >= 10 * max(b["mass"] for b, blk in zip(spec["bodies"], is_block, strict=True) if blk)
    shift = np.hypot(*(states[-1, is_block, :2] - states[0, is_block, :2]).T)
    assert (shift > 20).sum() >= 2, "the swing should scatter the wall"


def test_seesaw_tips_to_its_limit():
    for difficulty in DIFFICULTIES:
        spec = make_spec("seesaw", difficulty, 1)
        limit = next(c for c in spec["constraints"] if c["kind"] == "rotary_limit")
        angle = simulate(spec, 200)["states"][:, 0, 2]
        assert angle[0] == 0.0
        assert np.abs(angle).max() > 0.9 * limit["max"], "the plank should tip until its end meets the floor"
        assert np.abs(angle).max() < limit["max"] + 0.02


# ---------------------------------------------------------------- minigames


def test_angry_birds_blocks_and_targets_rest_exactly():
    for difficulty in DIFFICULTIES:
        for seed in range(3):
            spec = make_spec("angry_birds", difficulty, seed)
            resting = [b for b in spec["bodies"] if b["velocity"] == [0.0, 0.0]]
            birds = [b for b in spec["bodies"] if b["velocity"] != [0.0, 0.0]]
            assert birds and all(b["velocity"][0] > 0 and b["position"][0] < 200 for b in birds)
            blocks = [b for b in resting if b["shape"] == "box"]
            targets = [b for b in resting if b["shape"] == "circle"]
            assert len(targets) >= 2
            for b in resting:
                x, y = b["position"]
                half_w = b["width"] / 2 if b["shape"] == "box" else 0.0
                bottom = y - (b["height"] / 2 if b["shape"] == "box" else b["radius"])
                supports = [
                    o
                    for o in blocks
                    if o is not b
                    and abs(o["position"][0] - x) < (o["width"] / 2 + half_w)
                    and o["position"][1] + o["height"] / 2 == pytest.approx(bottom, abs=1e-9)
                ]
                assert bottom == pytest.approx(0.0, abs=1e-9) or supports, f"d{difficulty}: {b} floats"


def test_pinball_flippers_turn_about_their_hinges():
    spec = make_spec("pinball", 3, 0)
    assert 0 < -spec["world"]["gravity"][1] < 0.2 * 981, "a tilted table has reduced gravity"
    flippers = [i for i, b in enumerate(spec["bodies"]) if b.get("controller")]
    assert len(flippers) == 2
    states = simulate(spec, 200)["states"].astype(np.float64)
    for i in flippers:
        b = spec["bodies"][i]
        assert b["kinematic"] and b["controller"]["axis"] == "angle"
        assert np.abs(states[:, i, :2] - states[0, i, :2]).max() < 1e-3, "the hinge stays put"
        amp = abs(b["controller"]["amplitude"])
        swing = states[:, i, 2].max() - states[:, i, 2].min()
        assert swing == pytest.approx(2 * amp, rel=0.05)
    bumpers = [s for s in spec["statics"] if s["kind"] == "circle"]
    assert bumpers and all(s["elasticity"] > 1 for s in bumpers)


@pytest.mark.parametrize("seed", range(5))
def test_basketball_level_1_throw_drops_through_the_hoop(seed):
    spec = make_spec("basketball", 1, seed)
    front = next(s for s in spec["statics"] if s["kind"] == "circle")
    rim = front["center"][1]
    back_x = min(
        s["a"][0] for s in spec["statics"] if s["kind"] == "segment" and s["a"][1] == s["b"][1] == rim
    )
    states = simulate(spec, 200)["states"]
    x, y = states[:, 0, 0], states[:, 0, 1]
    down = np.flatnonzero((y[:-1] >= rim) & (y[1:] < rim))
    assert any(front["center"][0] < x[f] < back_x for f in down), "the throw should drop through the hoop"


def test_breakout_bricks_stay_put_until_hit_and_paddle_tracks():
    for difficulty in DIFFICULTIES:
        spec = make_spec("breakout", difficulty, 2)
        assert spec["world"]["gravity"] == [0.0, 0.0]
        run = simulate(spec, 200)
        states, ev = run["states"], run["events"]
        paddle = spec["bodies"][0]
        assert paddle["kinematic"] and paddle["controller"]["kind"] == "track"
        assert np.ptp(states[:, 0, 0]) > 20, "the paddle should move"
        for i, b in enumerate(spec["bodies"]):
            if b["shape"] != "box" or b["kinematic"]:
                continue
            touched = ev["frame"][(ev["body_a"] == i) | (ev["body_b"] == i)]
            until = int(touched.min()) if len(touched) else len(states)
            assert np.abs(states[:until, i] - states[0, i]).max() == 0.0, f"brick {i} drifted before a hit"


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_pong_paddles_move_and_keep_balls_in_play(difficulty):
    for seed in range(8):
        spec = make_spec("pong", difficulty, seed)
        assert spec["world"]["gravity"] == [0.0, 0.0]
        run = simulate(spec, 200)
        states = run["states"]
        paddles = [i for i, b in enumerate(spec["bodies"]) if b["kinematic"]]
        balls = [i for i, b in enumerate(spec["bodies"]) if not b["kinematic"]]
        assert len(paddles) == 2 and balls
        assert all(spec["bodies"][i]["elasticity"] == 1.0 for i in balls)
        for i in paddles:
            assert spec["bodies"][i]["controller"]["kind"] == "track"
            assert np.ptp(states[:, i, 1]) > 20, "paddles should move"
        # Ball centres stay in front of both paddles' faces: no ball ever gets past a paddle.
        half = spec["bodies"][paddles[0]]["width"] / 2
        left, right = sorted(spec["bodies"][i]["position"][0] for i in paddles)
        x, y = states[:, balls, 0], states[:, balls, 1]
        assert x.min() > left + half and x.max() < right - half, f"seed {seed}: a ball got past a paddle"
        assert y.min() > 0 and y.max() < spec["world"]["height"]
        ev = run["events"]
        assert np.isin(ev["body_a"], paddles).any(), f"seed {seed}: no paddle ever returned a ball"
