"""Physical plausibility checks on specs and trajectories, shared by tests and `physworld validate`."""

from __future__ import annotations

import numpy as np

from physworld.worlds.engine import build_space
from physworld.worlds.spec import PENETRATION_TOLERANCE


def _jointed_pairs(spec: dict) -> set[tuple[int, int]]:
    """Body pairs a joint keeps from colliding; joints to the static world (-1) do not (see engine)."""
    return {tuple(sorted((c["a"], c["b"]))) for c in spec["constraints"] if -1 not in (c["a"], c["b"])}


def spawn_problems(spec: dict, tolerance: float = PENETRATION_TOLERANCE) -> list[str]:
    """Overlaps and out-of-world placements at spawn, as readable strings (empty if none).

    Two shapes overlap when they penetrate deeper than `tolerance` px. Pairs that cannot collide
    (a shared nonzero group, or a joint between them) are allowed to overlap: that is how hinges
    and chains are built.
    """
    problems = []
    space, bodies = build_space(spec)
    index = {b: i for i, b in enumerate(bodies)}
    skip = _jointed_pairs(spec)
    w, h = spec["world"]["width"], spec["world"]["height"]
    for i, b in enumerate(spec["bodies"]):
        x, y = b["position"]
        shape = next(iter(bodies[i].shapes))
        bb = shape.cache_bb()
        if (
            bb.left < -tolerance
            or bb.bottom < -tolerance
            or bb.right > w + tolerance
            or bb.top > h + tolerance
        ):
            problems.append(f"body {i} ({b['shape']} at {x:.1f}, {y:.1f}) is outside the {w:g} x {h:g} world")
        for hit in space.shape_query(shape):
            other = hit.shape.body
            j = index.get(other, -1)
            if j == i or (j != -1 and j < i):
                continue  # each body pair once
            if tuple(sorted((i, j))) in skip:
                continue
            depth = -min((p.distance for p in hit.contact_point_set.points), default=0.0)
            if depth > tolerance:
                what = "the static world" if j == -1 else f"body {j}"
                problems.append(f"body {i} overlaps {what} by {depth:.1f} px at spawn")
    return problems


def escaped_bodies(spec: dict, states: np.ndarray, margin: float = 0.0) -> list[tuple[int, int]]:
    """(frame, body) of the first frame each body's centre is more than `margin` px outside the world."""
    w, h = spec["world"]["width"], spec["world"]["height"]
    x, y = states[..., 0], states[..., 1]
    out = (x < -margin) | (x > w + margin) | (y < -margin) | (y > h + margin)
    found = []
    for body in np.flatnonzero(out.any(axis=0)):
        found.append((int(np.argmax(out[:, body])), int(body)))
    return found


def kinetic_energy(spec: dict, states: np.ndarray) -> np.ndarray:
    """Total kinetic energy per frame of the dynamic bodies, [frames]."""
    dyn = np.array([not b["kinematic"] for b in spec["bodies"]])
    m = np.array([b["mass"] for b in spec["bodies"]])[dyn]
    inertia = np.array([b["moment"] for b in spec["bodies"]])[dyn]
    s = states[:, dyn].astype(np.float64)
    return 0.5 * (m * (s[..., 3] ** 2 + s[..., 4] ** 2) + inertia * s[..., 5] ** 2).sum(-1)


def total_energy(spec: dict, states: np.ndarray) -> np.ndarray:
    """Kinetic plus potential energy per frame [frames]: uniform gravity and the spec's attraction
    field (softened like the engine's force). Wind and kinematic bodies do work, so scenes with
    them do not conserve this."""
    dyn = np.array([not b["kinematic"] for b in spec["bodies"]])
    m = np.array([b["mass"] for b in spec["bodies"]])[dyn]
    s = states[:, dyn].astype(np.float64)
    pos = s[..., 0:2]
    gx, gy = spec["world"]["gravity"]
    energy = kinetic_energy(spec, states) - (m * (gx * pos[..., 0] + gy * pos[..., 1])).sum(-1)
    att = (spec.get("fields") or {}).get("attraction")
    if att:
        g, eps2 = att["G"], att.get("softening", 1.0) ** 2
        if att.get("between_bodies", True) and len(m) > 1:
            d = pos[:, None, :, :] - pos[:, :, None, :]
            inv_r = 1.0 / np.sqrt((d * d).sum(-1) + eps2)  # [frames, N, N]
            iu = np.triu_indices(len(m), 1)
            energy -= g * (np.outer(m, m)[iu] * inv_r[:, iu[0], iu[1]]).sum(-1)
        for well in att.get("wells", ()):
            d = pos - np.asarray(well["position"])
            energy -= g * well["mass"] * (m / np.sqrt((d * d).sum(-1) + eps2)).sum(-1)
    return energy


def penetration_depths(spec: dict, state: np.ndarray) -> tuple[float, float]:
    """Deepest overlap (px) between two bodies, and between a body and static geometry, at one
    frame's state [N, 6] (pairs that may not collide, like a hinge's parts, are skipped).
    Non-finite states (a diverged prediction) count as infinitely deep."""
    if not np.isfinite(state[:, :3]).all():
        return float("inf"), float("inf")
    sp = dict(
        spec,
        bodies=[
            dict(b, position=[float(s[0]), float(s[1])], angle=float(s[2]))
            for b, s in zip(spec["bodies"], state, strict=True)
        ],
    )
    space, bodies = build_space(sp)
    index = {b: i for i, b in enumerate(bodies)}
    skip = _jointed_pairs(spec)
    deepest = [0.0, 0.0]  # body-body, body-static
    for i, body in enumerate(bodies):
        for hit in space.shape_query(next(iter(body.shapes))):
            j = index.get(hit.shape.body, -1)
            if j == i or tuple(sorted((i, j))) in skip:
                continue
            depth = -min((p.distance for p in hit.contact_point_set.points), default=0.0)
            k = 1 if j == -1 else 0
            deepest[k] = max(deepest[k], depth)
    return deepest[0], deepest[1]


def max_penetration(spec: dict, state: np.ndarray) -> float:
    """Deepest overlap (px) between any two shapes that may collide, at one frame's state [N, 6]."""
    return max(penetration_depths(spec, state))
