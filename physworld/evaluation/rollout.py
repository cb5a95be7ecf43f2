"""Autoregressive rollouts: a learned model, the analytic baselines and the chaos floor.

Every method predicts frames C .. C+R-1 of a scene from its first C (context) frames. A method is
a function `(history [k, N, 6] per scene ...) -> accelerations`, integrated with the same rule the
learned simulator uses (`models.physics_expert.integrate`), so baselines and models differ only in
the accelerations they predict. Kinematic (scripted) bodies follow their ground truth in every
method: their motion is an input to the scene, not something to predict.
"""

from __future__ import annotations

import copy

import numpy as np

from physworld.models.physics_expert import model_rollouts  # noqa: F401  (the PhysicsExpert's rollout)
from physworld.models.rollout_utils import integrate_np, kinematic_mask, text_rollouts  # noqa: F401
from physworld.worlds.engine import simulate

BASELINES = ("constant_position", "constant_velocity", "ballistic")


def baseline_rollout(method: str, spec: dict, truth: np.ndarray, context: int, rollout: int) -> np.ndarray:
    """Predicted states [context + rollout, N, 6] of an analytic baseline; the first `context` are truth.

    constant_position: nothing moves. constant_velocity: every body keeps its last velocity.
    ballistic: constant velocity plus the world's gravity (angular velocity constant).
    """
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; expected one of {BASELINES}")
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


def chaos_floor_rollout(spec: dict, context: int, rollout: int, epsilon: float, seed: int) -> np.ndarray:
    """The simulator itself from an initial state nudged by `epsilon` px (each dynamic body moved in
    a random direction): its divergence from the stored trajectory is what no model can beat."""
    rng = np.random.default_rng(seed)
    perturbed = copy.deepcopy(spec)
    for body in perturbed["bodies"]:
        if not body.get("kinematic"):
            angle = rng.uniform(0, 2 * np.pi)
            body["position"] = [
                body["position"][0] + epsilon * np.cos(angle),
                body["position"][1] + epsilon * np.sin(angle),
            ]
    return simulate(perturbed, context + rollout - 1)["states"]
