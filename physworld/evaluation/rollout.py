"""Autoregressive rollouts: a learned model, the analytic baselines and the chaos floor.

Every method predicts frames C .. C+R-1 of a scene from its first C (context) frames. A method is
a function `(history [k, N, 6] per scene ...) -> accelerations`, integrated with the same rule the
learned simulator uses (`models.physics_expert.integrate`), so baselines and models differ only in
the accelerations they predict. Kinematic (scripted) bodies follow their ground truth in every
method: their motion is an input to the scene, not something to predict.

3D scenes (states [F, N, 13], metres, z up) take the same baselines through the 3D integrator
(`data.windows3d.integrate_3d`: the quaternion turns by the angular velocity), see baseline_rollout.
"""

from __future__ import annotations

import copy

import numpy as np

from physworld.data.windows3d import integrate_3d
from physworld.models.physics_expert import model_rollouts  # noqa: F401  (the PhysicsExpert's rollout)
from physworld.models.rollout_utils import integrate_np, kinematic_mask, text_rollouts  # noqa: F401
from physworld.worlds.engine import simulate

BASELINES = ("constant_position", "constant_velocity", "ballistic")


def baseline_rollout(method: str, spec: dict, truth: np.ndarray, context: int, rollout: int) -> np.ndarray:
    """Predicted states [context + rollout, N, 6] of an analytic baseline; the first `context` are truth.

    constant_position: nothing moves. constant_velocity: every body keeps its last velocity.
    ballistic: constant velocity plus the world's gravity (angular velocity constant).
    3D scenes: see baseline_rollout_3d.
    """
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; expected one of {BASELINES}")
    if truth.shape[-1] == 13:
        return baseline_rollout_3d(method, spec, truth, context, rollout)
    pred = np.empty((context + rollout, *truth.shape[1:]), dtype=np.float32)
    pred[:context] = truth[:context]
    kin = kinematic_mask(spec)
    n = truth.shape[1]
    accel = np.zeros((n, 3), dtype=np.float32)
    if method == "ballistic":
        accel[:, 0:2] = spec["world"]["gravity"]
    for t in range(context - 1, context + rollout - 1):
        if method == "constant_position":
            nxt = pred[t].copy()
            nxt[:, 3:6] = 0.0
        else:
            nxt = integrate_np(pred[t], accel, spec)
        nxt[kin] = truth[t + 1, kin]
        pred[t + 1] = nxt
    return pred


def baseline_rollout_3d(method: str, spec: dict, truth: np.ndarray, context: int, rollout: int) -> np.ndarray:
    """The baselines on a 3D scene, predicted states [context + rollout, N, 13].

    constant_position: nothing moves or turns. constant_velocity: every body keeps its last linear and
    angular velocity (the orientation turns at that rate). ballistic: constant velocity plus gravity
    (along -z), with the floor as its one contact: a body's centre never sinks below
    min(its height at the last context frame, its bounding radius) above the floor plane z = 0, and
    when it gets there its vertical velocity becomes 0 (a perfectly inelastic floor; a body resting on
    the floor stays put, a falling one lands and stops falling). Every other contact (bodies, ramps,
    walls, joints) is ignored, as in 2D.
    """
    from physworld.worlds.spec3d import body_extent

    pred = np.empty((context + rollout, *truth.shape[1:]), dtype=np.float32)
    pred[:context] = truth[:context]
    kin = kinematic_mask(spec)
    n = truth.shape[1]
    w = spec["world"]
    accel = np.zeros((n, 6), dtype=np.float32)
    has_floor = any(
        s["kind"] == "plane" and list(s["normal"]) == [0.0, 0.0, 1.0] and s["offset"] == 0.0
        for s in spec.get("statics", [])
    )
    if method == "ballistic":
        accel[:, 0:3] = w["gravity"]
    lowest = np.minimum(truth[context - 1, :, 2], [body_extent(b) for b in spec["bodies"]])
    for t in range(context - 1, context + rollout - 1):
        if method == "constant_position":
            nxt = pred[t].copy()
            nxt[:, 7:13] = 0.0
        else:
            nxt = integrate_3d(pred[t], accel, w["dt"], w["substeps"]).astype(np.float32)
            if method == "ballistic" and has_floor:
                landed = nxt[:, 2] < lowest
                nxt[landed, 2] = lowest[landed]
                nxt[landed, 9] = 0.0
        nxt[kin] = truth[t + 1, kin]
        pred[t + 1] = nxt
    return pred


def chaos_floor_rollout(spec: dict, context: int, rollout: int, epsilon: float, seed: int) -> np.ndarray:
    """The simulator itself from an initial state nudged by `epsilon` (px in 2D, m in 3D: each
    dynamic body moved in a random horizontal direction, so no 3D body is pushed into the floor): its
    divergence from the stored trajectory is what no model can beat."""
    rng = np.random.default_rng(seed)
    perturbed = copy.deepcopy(spec)
    for body in perturbed["bodies"]:
        if not body.get("kinematic"):
            angle = rng.uniform(0, 2 * np.pi)
            body["position"] = [
                body["position"][0] + epsilon * np.cos(angle),
                body["position"][1] + epsilon * np.sin(angle),
                *body["position"][2:],
            ]
    return simulate(perturbed, context + rollout - 1)["states"]
