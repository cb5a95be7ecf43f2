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
import torch

from physworld.data import windows
from physworld.models.physics_expert import integrate
from physworld.worlds.engine import simulate

BASELINES = ("constant_position", "constant_velocity", "ballistic")


def kinematic_mask(spec: dict) -> np.ndarray:
    return np.array([bool(b.get("kinematic")) for b in spec["bodies"]])


def _integrate_np(state: np.ndarray, accel: np.ndarray, spec: dict) -> np.ndarray:
    n = len(state)
    w = spec["world"]
    out = integrate(
        torch.from_numpy(state.astype(np.float32)),
        torch.from_numpy(accel.astype(np.float32)),
        torch.full((n,), w["dt"], dtype=torch.float32),
        torch.full((n,), w["substeps"], dtype=torch.int64),
    )
    return out.numpy()


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
            nxt = _integrate_np(pred[t], accel, spec)
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


@torch.no_grad()
def model_rollouts(
    model, scenes: list[dict], context: int, rollout: int, batch_size: int = 64
) -> list[np.ndarray]:
    """Roll a PhysicsExpert out on many scenes at once: each step is one batched forward pass over
    every scene, fed the model's own previous predictions (positions, angles and velocities)."""
    k = model.config.history
    if context < 1:
        raise ValueError("--context-frames must be at least 1")
    model.eval()
    preds = []
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start : start + batch_size]
        pred = [np.empty((context + rollout, *s["states"].shape[1:]), dtype=np.float32) for s in chunk]
        for p, s in zip(pred, chunk, strict=True):
            p[:context] = s["states"][:context]
        kin = [kinematic_mask(s["spec"]) for s in chunk]
        for t in range(context - 1, context + rollout - 1):
            samples = []
            for p, s in zip(pred, chunk, strict=True):
                # The last k frames, repeating the first when the context is shorter than the history.
                idx = np.clip(np.arange(t - k + 1, t + 1), 0, None)
                samples.append(windows.graph_from_scene(s["spec"], p[idx]))
            batch = windows.collate_graphs(samples)
            accel = model.accelerations(batch)
            state = batch["history"][:, -1]
            nxt = integrate(
                state, accel, batch["dt"][batch["batch"]], batch["substeps"][batch["batch"]]
            ).numpy()
            offset = 0
            for p, s, km in zip(pred, chunk, kin, strict=True):
                n = p.shape[1]
                p[t + 1] = nxt[offset : offset + n]
                p[t + 1, km] = s["states"][t + 1, km]
                offset += n
        preds.extend(pred)
    return preds


def text_rollouts(
    generate_text,
    scenes: list[dict],
    context: int,
    rollout: int,
    fmt: str = "compact",
    context_frames: int | None = None,
    prompt_fits=None,
) -> tuple[list[np.ndarray], list[int]]:
    """Roll a language model out through the text codec: each step writes the prompt from the
    (predicted) frames, the model writes the next frame, the parser reads it and its positions and
    velocities are fed back. `generate_text(prompts, max_new_tokens) -> texts` is batched over
    scenes; the token budget per scene is twice the length of a true frame's text.

    `prompt_fits(prompt, completion) -> bool` says whether a prompt and a completion of the given
    text fit the model's sequence length, counted as its training counted them. A prompt that does
    not fit loses context frames from the front, down to one, as the training examples did (with the
    last frame's text standing in for the completion): cropping tokens from the front instead would
    cut off the scene description the model always saw.

    What the parser cannot read (a missing body, a garbled number) is a parse failure: it is
    counted per scene, and that body's state advances at constant velocity so the rollout goes on.
    Returns (predictions [context + rollout, N, 6] per scene, parse failures per scene).
    """
    from physworld.data import text

    c = context_frames or context
    preds, failures = [], [0] * len(scenes)
    for s in scenes:
        p = np.empty((context + rollout, *s["states"].shape[1:]), dtype=np.float32)
        p[:context] = s["states"][:context]
        preds.append(p)
    kin = [kinematic_mask(s["spec"]) for s in scenes]
    budget = [2 * len(text.frame_text(s["states"][0], fmt, spec=s["spec"])) + 8 for s in scenes]

    def prompt(spec: dict, p: np.ndarray, t: int) -> str:
        completion = text.frame_text(p[t], fmt, spec=spec) if prompt_fits is not None else ""
        for frames in range(min(c, t + 1), 0, -1):
            candidate = text.rollout_prompt(spec, p[t - frames + 1 : t + 1], fmt=fmt)
            if frames == 1 or prompt_fits is None or prompt_fits(candidate, completion):
                return candidate

    for t in range(context - 1, context + rollout - 1):
        prompts = [prompt(s["spec"], p, t) for s, p in zip(scenes, preds, strict=True)]
        outputs = generate_text(prompts, budget)
        for i, (s, p, out) in enumerate(zip(scenes, preds, outputs, strict=True)):
            parsed = text.parse_frame(out, p.shape[1], fmt=fmt)
            fallback = _integrate_np(p[t], np.zeros((p.shape[1], 3), np.float32), s["spec"])
            bad = ~np.isfinite(parsed.states).all(axis=1)
            nxt = np.where(bad[:, None], fallback, parsed.states).astype(np.float32)
            failures[i] += int((bad & ~kin[i]).any())
            nxt[kin[i]] = s["states"][t + 1, kin[i]]
            p[t + 1] = nxt
    return preds, failures
