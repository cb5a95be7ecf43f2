"""Physical plausibility checks on specs and trajectories, shared by tests and `physworld validate`.

The 2D functions hand a 3D spec (world.dims == 3) to their `_3d` versions below, which measure in
metres against the world's bounds."""

from __future__ import annotations

import functools
import json

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
    if _is_3d(spec):
        return spawn_problems_3d(spec, None if tolerance == PENETRATION_TOLERANCE else tolerance)
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
    if _is_3d(spec):
        return escaped_bodies_3d(spec, states, margin)
    w, h = spec["world"]["width"], spec["world"]["height"]
    x, y = states[..., 0], states[..., 1]
    out = (x < -margin) | (x > w + margin) | (y < -margin) | (y > h + margin)
    found = []
    for body in np.flatnonzero(out.any(axis=0)):
        found.append((int(np.argmax(out[:, body])), int(body)))
    return found


def kinetic_energy(spec: dict, states: np.ndarray) -> np.ndarray:
    """Total kinetic energy per frame of the dynamic bodies, [frames]."""
    if _is_3d(spec):
        return kinetic_energy_3d(spec, states)
    dyn = np.array([not b["kinematic"] for b in spec["bodies"]])
    m = np.array([b["mass"] for b in spec["bodies"]])[dyn]
    inertia = np.array([b["moment"] for b in spec["bodies"]])[dyn]
    s = states[:, dyn].astype(np.float64)
    return 0.5 * (m * (s[..., 3] ** 2 + s[..., 4] ** 2) + inertia * s[..., 5] ** 2).sum(-1)


def total_energy(spec: dict, states: np.ndarray) -> np.ndarray:
    """Kinetic plus potential energy per frame [frames]: uniform gravity and the spec's attraction
    field (softened like the engine's force). Wind and kinematic bodies do work, so scenes with
    them do not conserve this."""
    if _is_3d(spec):
        return total_energy_3d(spec, states)
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
    Non-finite states (a diverged prediction) count as infinitely deep. 3D specs: metres, [N, 13]."""
    if _is_3d(spec):
        return penetration_depths_3d(spec, state)
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


# ---------------------------------------------------------------- 3D (PyBullet) scenes


def _is_3d(spec: dict) -> bool:
    return spec.get("world", {}).get("dims", 2) == 3


def _pose_world(spec: dict, state: np.ndarray | None = None):
    """A fresh PyBullet world of the spec, its bodies moved to `state` [N, 13] if given, with
    collision detection run; returns (p, client, body_ids, static_ids)."""
    from physworld.worlds.bullet import build_world, connect

    p, client = connect(spec["world"])
    body_ids, static_ids = build_world(p, client, spec)
    if state is not None:
        for uid, s in zip(body_ids, state, strict=True):
            p.resetBasePositionAndOrientation(uid, [float(v) for v in s[0:3]], [float(v) for v in s[3:7]],
                                              physicsClientId=client)  # fmt: skip
    p.performCollisionDetection(physicsClientId=client)
    return p, client, body_ids, static_ids


def _deepest_overlaps_3d(spec: dict, state: np.ndarray | None) -> dict[tuple[int, int], float]:
    """Deepest overlap (m) per colliding pair (static geometry is -1), jointed pairs skipped."""
    p, client, body_ids, static_ids = _pose_world(spec, state)
    try:
        index = {uid: k for k, uid in enumerate(body_ids)}
        index.update((uid, -1) for uid in static_ids)
        skip = _jointed_pairs(spec)
        deepest: dict[tuple[int, int], float] = {}
        for point in p.getContactPoints(physicsClientId=client):
            a, b = sorted((index[point[1]], index[point[2]]))
            if (a, b) in skip:
                continue
            deepest[a, b] = max(deepest.get((a, b), 0.0), -point[8])
        return deepest
    finally:
        p.disconnect(physicsClientId=client)


def spawn_problems_3d(spec: dict, tolerance: float | None = None) -> list[str]:
    """spawn_problems for a 3D spec: overlaps deeper than `tolerance` m (spec3d's default) and
    bodies whose centre starts outside the world's bounds."""
    from physworld.worlds.spec3d import PENETRATION_TOLERANCE as TOL_3D

    tolerance = TOL_3D if tolerance is None else tolerance
    problems = []
    lo, hi = spec["world"]["bounds"]["min"], spec["world"]["bounds"]["max"]
    for i, b in enumerate(spec["bodies"]):
        if any(not lo[k] <= b["position"][k] <= hi[k] for k in range(3)):
            problems.append(f"body {i} ({b['shape']} at {b['position']}) is outside the world's bounds")
    for (a, b), depth in sorted(_deepest_overlaps_3d(spec, None).items()):
        if depth > tolerance:
            what = "static geometry" if a == -1 else f"body {a}"
            problems.append(f"body {b} overlaps {what} by {depth:.3f} m at spawn")
    return problems


def escaped_bodies_3d(spec: dict, states: np.ndarray, margin: float = 0.0) -> list[tuple[int, int]]:
    """(frame, body) of the first frame each body's centre is more than `margin` m outside the bounds."""
    lo = np.asarray(spec["world"]["bounds"]["min"]) - margin
    hi = np.asarray(spec["world"]["bounds"]["max"]) + margin
    pos = states[..., 0:3]
    out = ((pos < lo) | (pos > hi) | ~np.isfinite(pos)).any(-1)  # [frames, bodies]
    return [(int(np.argmax(out[:, body])), int(body)) for body in np.flatnonzero(out.any(axis=0))]


def penetration_depths_3d(spec: dict, state: np.ndarray) -> tuple[float, float]:
    """Deepest overlap (m) between two bodies, and between a body and static geometry, at one
    frame's state [N, 13]; non-finite states count as infinitely deep."""
    if not np.isfinite(state[:, :7]).all():
        return float("inf"), float("inf")
    deepest = [0.0, 0.0]
    for (a, _), depth in _deepest_overlaps_3d(spec, state).items():
        k = 1 if a == -1 else 0
        deepest[k] = max(deepest[k], depth)
    return deepest[0], deepest[1]


def penetration_depths_3d_frames(spec: dict, states: np.ndarray) -> np.ndarray:
    """penetration_depths_3d of every frame of states [F, N, 13] at once, float64 [F, 2] (between
    bodies, against static geometry; inf for a non-finite frame): one PyBullet world for the whole
    trajectory, with fresh closest points per pair and frame (getClosestPoints; no contact cache
    carried from one pose to the next), which saves building a world per frame."""
    p, client, body_ids, static_ids = _pose_world(spec)
    try:
        skip = _jointed_pairs(spec)
        n = len(body_ids)
        pairs = [
            (0, body_ids[a], body_ids[b]) for a in range(n) for b in range(a + 1, n) if (a, b) not in skip
        ]
        pairs += [(1, sid, body_ids[b]) for sid in static_ids for b in range(n)]
        out = np.zeros((len(states), 2))
        for f, state in enumerate(states):
            if not np.isfinite(state[:, :7]).all():
                out[f] = np.inf
                continue
            for uid, s in zip(body_ids, state, strict=True):
                p.resetBasePositionAndOrientation(uid, [float(v) for v in s[0:3]], [float(v) for v in s[3:7]],
                                                  physicsClientId=client)  # fmt: skip
            for k, ua, ub in pairs:
                for point in p.getClosestPoints(ua, ub, 0.0, physicsClientId=client):
                    out[f, k] = max(out[f, k], -point[8])
        return out
    finally:
        p.disconnect(physicsClientId=client)


def principal_inertia_3d(spec: dict) -> np.ndarray:
    """Each body's principal moments of inertia [N, 3] (kg m^2, about its own axes), as PyBullet
    computes them from its shape and mass. Cached by the spec's content: an evaluation asks for the
    same scene's once per method, and each answer costs a PyBullet world."""
    return _principal_inertia_cached(json.dumps(spec, sort_keys=True)).copy()


@functools.lru_cache(maxsize=64)
def _principal_inertia_cached(spec_json: str) -> np.ndarray:
    spec = json.loads(spec_json)
    p, client, body_ids, _ = _pose_world(spec)
    try:
        return np.array([p.getDynamicsInfo(uid, -1, physicsClientId=client)[2] for uid in body_ids]).reshape(
            -1, 3
        )
    finally:
        p.disconnect(physicsClientId=client)


def _rotate_to_body(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """World-frame vectors v [..., 3] in the frames of unit quaternions q [..., 4] (xyzw)."""
    u, w = -q[..., 0:3], q[..., 3:4]  # the inverse rotation
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def kinetic_energy_3d(spec: dict, states: np.ndarray) -> np.ndarray:
    """Total kinetic energy per frame [frames]: translational plus rotational about principal axes."""
    m = np.array([b["mass"] for b in spec["bodies"]])
    inertia = principal_inertia_3d(spec)
    s = states.astype(np.float64)
    omega_body = _rotate_to_body(s[..., 3:7], s[..., 10:13])
    return 0.5 * ((m * (s[..., 7:10] ** 2).sum(-1)) + (inertia * omega_body**2).sum(-1)).sum(-1)


def total_energy_3d(spec: dict, states: np.ndarray) -> np.ndarray:
    """Kinetic plus gravitational potential energy per frame [frames]."""
    m = np.array([b["mass"] for b in spec["bodies"]])
    g = np.asarray(spec["world"]["gravity"])
    s = states.astype(np.float64)
    return kinetic_energy_3d(spec, states) - (m * (s[..., 0:3] @ g)).sum(-1)
