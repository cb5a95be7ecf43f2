"""Turn a 3D scene spec (spec3d.py) into a PyBullet world and run it, recording every frame.

Deterministic by construction: every scene gets a fresh DIRECT (headless) physics client, so no
state survives from an earlier scene or another process; the timestep, solver iterations and
the order bodies are created in come from the spec alone; overlapping pairs are processed in a
deterministic order; bodies never sleep. The same spec gives the same bytes in any process.

Bodies are plain rigid bodies (maximal coordinates), as in Kubric's MOVi. PyBullet's hot loop is
stepSimulation in C++; per frame we add two state queries per body and, per substep, one
getContactPoints call for contact onsets.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from importlib import metadata

import numpy as np

from physworld.worlds.spec3d import FLOOR

STATE_FIELDS_3D = ("x", "y", "z", "qx", "qy", "qz", "qw", "vx", "vy", "vz", "wx", "wy", "wz")
STATIC = -1  # body index of static geometry in constraints and contact events
# Contact onset hysteresis (m): a pair begins touching when its closest points come within
# TOUCH_DISTANCE, and only counts as separated again beyond RELEASE_DISTANCE, so a resting
# contact whose distance jitters around zero is one onset, not one per substep.
TOUCH_DISTANCE = 1e-3
RELEASE_DISTANCE = 5e-3
# Contacts are solved only once shapes touch. PyBullet's default also solves "speculative" contacts
# up to 2 cm apart, which makes a bounce depend on where the last step before impact happened to
# stop: a 0.7 ball dropped from 0.5 m bounced like 0.58, from 1 m like 0.71. With 0 (and split
# impulse, below) it bounces like 0.695-0.701 from any height (tests/test_physics_analytic_3d.py).
CONTACT_PROCESSING_THRESHOLD = 0.0
# m; effective restitution is the mean over drops from these heights (impact speeds 2.2-6.3 m/s)
RESTITUTION_DROP_HEIGHTS = (0.25, 0.5, 1.0, 2.0)


class SpecError(ValueError):
    """A 3D scene spec that cannot be built; the message names the offending field."""


def pybullet_module():
    """Import pybullet, or say which extra installs it."""
    try:
        pybullet = _import_quietly()
    except ImportError as e:
        raise ModuleNotFoundError(
            "3D scenes need pybullet: pip install 'physworld[sim3d]' (or pip install pybullet==3.2.7)"
        ) from e
    return pybullet


@functools.lru_cache(maxsize=1)
def _import_quietly():
    """pybullet prints its build time from C when imported; keep that out of our output."""
    import ctypes

    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with open(os.devnull, "wb") as devnull:
            for fd in saved:
                os.dup2(devnull.fileno(), fd)
            import pybullet

            libc.fflush(None)  # C stdio may buffer the message
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
    return pybullet


def engine_name() -> str:
    try:
        return f"pybullet {metadata.version('pybullet')}"
    except metadata.PackageNotFoundError:
        return "pybullet (not installed)"


ENGINE_3D = engine_name()


# ---------------------------------------------------------------- building


def connect(spec_world: dict):
    """A fresh headless client with the spec's fixed step and solver settings; returns (p, client)."""
    p = pybullet_module()
    client = p.connect(p.DIRECT)
    p.setPhysicsEngineParameter(
        fixedTimeStep=spec_world["dt"] / spec_world["substeps"],
        numSubSteps=0,
        numSolverIterations=spec_world["solver_iterations"],
        deterministicOverlappingPairs=1,
        # Push overlapping shapes apart by moving them, never by adding velocity (split impulse for
        # every penetration): Bullet's default pushes shallow overlaps apart with velocity, which
        # made a head-on elastic collision gain 16% energy and bounces up to 7% too high.
        useSplitImpulse=1,
        splitImpulsePenetrationThreshold=0.0,
        physicsClientId=client,
    )
    p.setGravity(*spec_world["gravity"], physicsClientId=client)
    return p, client


def _collision_shape(p, client, s: dict, where: str) -> int:
    kind = s.get("shape", s.get("kind"))
    if kind == "sphere":
        return p.createCollisionShape(p.GEOM_SPHERE, radius=s["radius"], physicsClientId=client)
    if kind == "box":
        half = [0.5 * v for v in s["size"]]
        return p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=client)
    if kind == "cylinder":
        return p.createCollisionShape(
            p.GEOM_CYLINDER, radius=s["radius"], height=s["height"], physicsClientId=client
        )
    if kind == "capsule":
        return p.createCollisionShape(
            p.GEOM_CAPSULE, radius=s["radius"], height=s["height"], physicsClientId=client
        )
    if kind == "plane":
        return p.createCollisionShape(p.GEOM_PLANE, planeNormal=s["normal"], physicsClientId=client)
    raise SpecError(f"{where}: unknown shape {kind!r}; expected sphere, box, cylinder, capsule (or plane)")


def _surface(p, client, uid: int, s: dict) -> None:
    p.changeDynamics(
        uid,
        -1,
        lateralFriction=s["friction"],
        restitution=s["restitution"],
        rollingFriction=s.get("rolling_friction", 0.0),
        spinningFriction=s.get("spinning_friction", 0.0),
        linearDamping=s.get("linear_damping", 0.0),
        angularDamping=s.get("angular_damping", 0.0),
        contactProcessingThreshold=CONTACT_PROCESSING_THRESHOLD,
        physicsClientId=client,
    )


def build_world(p, client, spec: dict) -> tuple[list[int], list[int]]:
    """Create the spec's statics, bodies and constraints in spec order; returns (body ids, static ids)."""
    static_ids = []
    for i, s in enumerate(spec["statics"]):
        shape = _collision_shape(p, client, s, f"statics[{i}]")
        if s["kind"] == "plane":
            n = s["normal"]
            pos, orn = [v * s["offset"] for v in n], [0.0, 0.0, 0.0, 1.0]
        else:
            pos, orn = s["position"], s["orientation"]
        uid = p.createMultiBody(0.0, shape, -1, pos, orn, useMaximalCoordinates=True, physicsClientId=client)
        _surface(p, client, uid, s)
        static_ids.append(uid)
    body_ids = []
    for i, b in enumerate(spec["bodies"]):
        if not b["mass"] > 0:
            raise SpecError(f"bodies[{i}].mass: must be positive, got {b['mass']!r}")
        shape = _collision_shape(p, client, b, f"bodies[{i}].shape")
        uid = p.createMultiBody(
            b["mass"], shape, -1, b["position"], b["orientation"], useMaximalCoordinates=True,
            physicsClientId=client,
        )  # fmt: skip
        _surface(p, client, uid, b)
        p.changeDynamics(uid, -1, activationState=p.ACTIVATION_STATE_DISABLE_SLEEPING, physicsClientId=client)
        p.resetBaseVelocity(uid, b["velocity"], b["angular_velocity"], physicsClientId=client)
        body_ids.append(uid)
    for i, c in enumerate(spec["constraints"]):
        if c.get("kind") != "point_to_point":
            raise SpecError(
                f"constraints[{i}].kind: unknown constraint {c.get('kind')!r}; expected point_to_point"
            )
        for end in ("a", "b"):
            if not (c[end] == STATIC or 0 <= c[end] < len(body_ids)) or (end == "a" and c[end] == STATIC):
                raise SpecError(f"constraints[{i}].{end}: body index {c[end]} out of range")
        if c["b"] == STATIC:
            # PyBullet joins a rigid body to the world only through another body: a massless one
            # without a collision shape at the world anchor (it takes part in no contact).
            child = p.createMultiBody(
                0.0, -1, -1, c["anchor_b"], useMaximalCoordinates=True, physicsClientId=client
            )
            anchor_b = [0.0, 0.0, 0.0]
        else:
            child, anchor_b = body_ids[c["b"]], c["anchor_b"]
        p.createConstraint(
            body_ids[c["a"]], -1, child, -1, p.JOINT_POINT2POINT, [0.0, 0.0, 0.0], c["anchor_a"], anchor_b,
            physicsClientId=client,
        )  # fmt: skip
    return body_ids, static_ids


def read_state(p, client, body_ids: list[int], out: np.ndarray) -> None:
    """Fill out [n, 13] with each body's position, quaternion, linear and angular velocity."""
    for k, uid in enumerate(body_ids):
        pos, orn = p.getBasePositionAndOrientation(uid, physicsClientId=client)
        lin, ang = p.getBaseVelocity(uid, physicsClientId=client)
        out[k, 0:3] = pos
        out[k, 3:7] = orn
        out[k, 7:10] = lin
        out[k, 10:13] = ang


# ---------------------------------------------------------------- simulation


def simulate(spec: dict, num_frames: int) -> dict:
    """Run a 3D spec for `num_frames` frames after the initial one.

    Returns {"states": float32 [num_frames + 1, bodies, 13] (initial frame first; STATE_FIELDS_3D),
             "events": {"frame", "body_a", "body_b", "impulse"}}, the 2D engine's layout: contact
    onsets, the frame in which two bodies (or a body and static geometry, index -1, always body_a)
    begin touching and the normal impulse between them in that substep (N s).
    """
    w = spec["world"]
    p, client = connect(w)
    try:
        body_ids, static_ids = build_world(p, client, spec)
        index = {uid: k for k, uid in enumerate(body_ids)}
        index.update((uid, STATIC) for uid in static_ids)
        n = len(body_ids)
        h = w["dt"] / w["substeps"]
        states = np.empty((num_frames + 1, n, 13), dtype=np.float32)
        scratch = np.empty((n, 13), dtype=np.float64)
        read_state(p, client, body_ids, scratch)
        states[0] = scratch
        touching: set[tuple[int, int]] = set()
        ev_frame, ev_a, ev_b, ev_imp = [], [], [], []
        for f in range(1, num_frames + 1):
            for _ in range(w["substeps"]):
                p.stepSimulation(physicsClientId=client)
                touching = _record_onsets(p, client, index, touching, h, f, ev_frame, ev_a, ev_b, ev_imp)
            read_state(p, client, body_ids, scratch)
            states[f] = scratch
    finally:
        p.disconnect(physicsClientId=client)
    events = {
        "frame": np.asarray(ev_frame, dtype=np.int32),
        "body_a": np.asarray(ev_a, dtype=np.int32),
        "body_b": np.asarray(ev_b, dtype=np.int32),
        "impulse": np.asarray(ev_imp, dtype=np.float32),
    }
    return {"states": states, "events": events}


def _record_onsets(p, client, index, touching, h, frame, ev_frame, ev_a, ev_b, ev_imp) -> set:
    """Update the set of touching pairs after one substep, recording the pairs that just began."""
    closest: dict[tuple[int, int], float] = {}
    impulse: dict[tuple[int, int], float] = {}
    for point in p.getContactPoints(physicsClientId=client):
        a, b = index[point[1]], index[point[2]]
        key = (a, b) if a <= b else (b, a)
        closest[key] = min(closest.get(key, math.inf), point[8])
        impulse[key] = impulse.get(key, 0.0) + point[9] * h  # normalForce is the impulse over the step
    now = set()
    for key in sorted(closest):  # sorted: events in a fixed order whatever order Bullet reports
        d = closest[key]
        if key in touching:
            if d <= RELEASE_DISTANCE:
                now.add(key)
        elif d <= TOUCH_DISTANCE:
            now.add(key)
            ev_frame.append(frame)
            ev_a.append(key[0])
            ev_b.append(key[1])
            ev_imp.append(impulse[key])
    return now


# ---------------------------------------------------------------- materials as users mean them


@functools.lru_cache(maxsize=512)
def measured_restitution(
    restitution: float, floor_surface: tuple, dt: float, substeps: int, solver_iterations: int
) -> float:
    """The restitution a sphere of this requested restitution shows against a floor of
    `floor_surface` (a sorted tuple of (name, value) of the floor's surface fields): the mean over
    drops from RESTITUTION_DROP_HEIGHTS of sqrt(bounce apex / drop height). PyBullet multiplies the
    two surfaces' restitutions and its solver adds effects of its own, so this is what a user sees."""
    return round(float(np.mean([_bounce(restitution, floor_surface, dt, substeps, solver_iterations, h)
                                for h in RESTITUTION_DROP_HEIGHTS])), 4)  # fmt: skip


def _bounce(restitution, surface, dt, substeps, solver_iterations, drop) -> float:
    floor_spec = dict(FLOOR, **dict(surface))
    radius = 0.1
    spec = {
        "world": {"dt": dt, "substeps": substeps, "solver_iterations": solver_iterations,
                  "gravity": [0.0, 0.0, -9.81]},
        "statics": [dict(floor_spec, kind="plane", normal=[0.0, 0.0, 1.0], offset=0.0)],
        "bodies": [{"shape": "sphere", "radius": radius, "mass": 1.0, "friction": 0.5,
                    "restitution": restitution, "position": [0.0, 0.0, radius + drop],
                    "orientation": [0.0, 0.0, 0.0, 1.0], "velocity": [0.0, 0.0, 0.0],
                    "angular_velocity": [0.0, 0.0, 0.0]}],
        "constraints": [],
    }  # fmt: skip
    p, client = connect(spec["world"])
    try:
        (uid,), _ = build_world(p, client, spec)
        h = dt / substeps
        fall_steps = int(math.ceil(math.sqrt(2 * drop / 9.81) / h))
        bounced, apex = False, 0.0
        for _ in range(4 * fall_steps + 100):
            p.stepSimulation(physicsClientId=client)
            z = p.getBasePositionAndOrientation(uid, physicsClientId=client)[0][2] - radius
            vz = p.getBaseVelocity(uid, physicsClientId=client)[0][2]
            if not bounced:
                bounced = vz > 0
            elif vz <= 0:
                break
            if bounced:
                apex = max(apex, z)
    finally:
        p.disconnect(physicsClientId=client)
    return math.sqrt(max(apex, 0.0) / drop)


def floor_surface(spec: dict) -> tuple:
    """The surface of the spec's floor (its first plane; the default floor if it has none)."""
    plane = next((s for s in spec["statics"] if s["kind"] == "plane"), FLOOR)
    return tuple(sorted((k, float(plane[k])) for k in FLOOR))


def finish(spec: dict) -> dict:
    """Record each body's effective restitution against the spec's floor (see measured_restitution);
    scenarios call this last. Returns the spec."""
    w = spec["world"]
    surface = floor_surface(spec)
    for b in spec["bodies"]:
        b["effective_restitution"] = measured_restitution(
            b["restitution"], surface, w["dt"], w["substeps"], w["solver_iterations"]
        )
    return spec
