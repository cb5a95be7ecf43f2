"""The engine and the collision scenarios against closed forms: free flight and elastic impacts.

(The pendulum period and two-body orbit checks live beside their categories' tests.)
"""

from __future__ import annotations

import numpy as np
import pytest

from physworld.worlds.checks import kinetic_energy
from physworld.worlds.engine import simulate
from physworld.worlds.registry import make_spec
from physworld.worlds.spec import circle, new_spec

G = 981.0


def free_flight(y0, vx, vy, frames):
    spec = new_spec("test: a ball in empty space")
    spec["expect"]["contained"] = False
    spec["bodies"].append(circle((100.0, y0), 10.0, velocity=(vx, vy)))
    return spec, simulate(spec, frames)["states"][:, 0]


def test_projectile_apex_and_range_match_closed_form():
    y0, speed, theta = 50.0, 600.0, np.radians(50)
    vx, vy = speed * np.cos(theta), speed * np.sin(theta)
    spec, s = free_flight(y0, vx, vy, 120)
    t = np.arange(len(s)) * spec["world"]["dt"]
    h = spec["world"]["dt"] / spec["world"]["substeps"]
    # Each Chipmunk step moves positions with the velocity the previous step left (x += v h), then
    # applies gravity (v += g h). That is exact for x and sits g h t / 2 above the parabola in y:
    # compare with the discrete form to float32 precision...
    n = np.round(t / h)
    y_discrete = y0 + vy * n * h - G * h * h * n * (n - 1) / 2
    assert np.abs(s[:, 1] - y_discrete).max() < 1e-3 * np.abs(s[:, 1]).max()
    np.testing.assert_allclose(s[:, 0], 100.0 + vx * t, rtol=1e-5)
    np.testing.assert_allclose(s[:, 4], vy - G * t, atol=1e-2)
    # ...and with the continuous closed forms to within that lag.
    apex = y0 + vy**2 / (2 * G)
    assert s[:, 1].max() == pytest.approx(apex, abs=1.5)
    t_land = 2 * vy / G
    k = int(np.searchsorted(-s[1:, 1] + y0, 0)) + 1  # first frame back at or below the launch height
    x_land = np.interp(y0, [s[k, 1], s[k - 1, 1]], [s[k, 0], s[k - 1, 0]])
    assert x_land - 100.0 == pytest.approx(vx * t_land, rel=0.01)


def test_projectile_scenario_balls_fly_parabolas_until_first_contact():
    spec = make_spec("projectile", 3, 5)
    run = simulate(spec, 200)
    s, ev = run["states"], run["events"]
    dt = spec["world"]["dt"]
    balls = [i for i, b in enumerate(spec["bodies"]) if b["shape"] == "circle"]
    assert balls
    for i in balls:
        touched = ev["frame"][(ev["body_a"] == i) | (ev["body_b"] == i)]
        first = int(touched.min()) if len(touched) else len(s)
        assert first > 5, "a projectile touched something within 5 frames of launch"
        t = np.arange(first - 1) * dt
        x0, y0 = spec["bodies"][i]["position"]
        vx, vy = spec["bodies"][i]["velocity"]
        np.testing.assert_allclose(s[: first - 1, i, 0], x0 + vx * t, atol=0.05)
        np.testing.assert_allclose(s[: first - 1, i, 1], y0 + vy * t - G * t**2 / 2, atol=1.5)


def test_elastic_collision_obeys_the_1d_formulas():
    m1, m2, u1, u2 = 1.0, 3.0, 150.0, -50.0
    spec = new_spec("test: two elastic discs", gravity=(0, 0))
    spec["expect"]["contained"] = False
    spec["bodies"] = [
        circle((300.0, 300.0), 15, mass=m1, velocity=(u1, 0), friction=0, elasticity=1.0),
        circle((450.0, 300.0), 15, mass=m2, velocity=(u2, 0), friction=0, elasticity=1.0),
    ]
    run = simulate(spec, 120)
    s = run["states"]
    assert len(run["events"]["frame"]) == 1 and run["events"]["impulse"][0] > 0
    v1 = ((m1 - m2) * u1 + 2 * m2 * u2) / (m1 + m2)
    v2 = ((m2 - m1) * u2 + 2 * m1 * u1) / (m1 + m2)
    assert s[-1, 0, 3] == pytest.approx(v1, rel=1e-3)
    assert s[-1, 1, 3] == pytest.approx(v2, rel=1e-3)
    momentum = m1 * s[:, 0, 3:5] + m2 * s[:, 1, 3:5]
    np.testing.assert_allclose(momentum, np.broadcast_to([m1 * u1 + m2 * u2, 0.0], momentum.shape), atol=1e-3)
    ke = kinetic_energy(spec, s)
    np.testing.assert_allclose(ke, ke[0], rtol=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_head_on_level_1_conserves_momentum_and_energy(seed):
    spec = make_spec("head_on", 1, seed)
    assert spec["expect"]["conserves_momentum"] and spec["expect"]["conserves_energy"]
    run = simulate(spec, 200)
    s, ev = run["states"], run["events"]
    assert len(ev["frame"]) >= 1, "the pair never collided"
    assert (ev["body_a"] >= 0).all(), "a disc touched a wall"
    m = np.array([b["mass"] for b in spec["bodies"]])
    p = (m[None, :, None] * s[:, :, 3:5]).sum(1)
    scale = np.abs(m[:, None] * s[0, :, 3:5]).sum()
    assert np.abs(p - p[0]).max() < 1e-5 * scale
    ke = kinetic_energy(spec, s)
    assert np.abs(ke - ke[0]).max() < 1e-4 * ke[0]
