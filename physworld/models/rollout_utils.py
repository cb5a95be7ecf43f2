"""Pieces every trajectory family's rollout shares (physworld/evaluation/families.py).

Kinematic (scripted) bodies follow their ground truth in every rollout: their motion is an input to
the scene, not something to predict. `integrate_np` is the learned simulator's integration rule on
numpy states (the baselines and the text rollouts' fallback use it). `text_rollouts` is the loop of
the families that write frames as text (the GPT, the LoRA LM): prompt, generate, parse, feed back.
"""

from __future__ import annotations

import numpy as np
import torch

from physworld.data.windows import integrate


def kinematic_mask(spec: dict) -> np.ndarray:
    return np.array([bool(b.get("kinematic")) for b in spec["bodies"]])


def integrate_np(state: np.ndarray, accel: np.ndarray, spec: dict) -> np.ndarray:
    n = len(state)
    w = spec["world"]
    out = integrate(
        torch.from_numpy(state.astype(np.float32)),
        torch.from_numpy(accel.astype(np.float32)),
        torch.full((n,), w["dt"], dtype=torch.float32),
        torch.full((n,), w["substeps"], dtype=torch.int64),
    )
    return out.numpy()


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
            fallback = integrate_np(p[t], np.zeros((p.shape[1], 3), np.float32), s["spec"])
            bad = ~np.isfinite(parsed.states).all(axis=1)
            nxt = np.where(bad[:, None], fallback, parsed.states).astype(np.float32)
            failures[i] += int((bad & ~kin[i]).any())
            nxt[kin[i]] = s["states"][t + 1, kin[i]]
            p[t + 1] = nxt
    return preds, failures


def text_predictor(generate, prompt_fits, info: dict):
    """The trajectory-family contract for a model that writes frames as text: (rollout, info), where
    rollout feeds `generate` through text_rollouts with the format and context the run trained on."""

    def rollout(scenes, context_frames, rollout_frames):
        return text_rollouts(
            generate,
            scenes,
            context_frames,
            rollout_frames,
            fmt=info["fmt"],
            context_frames=info["context_frames"],
            prompt_fits=prompt_fits,
        )

    return rollout, info
