"""Turn a scene spec into a pymunk space and run it, recording every frame.

The hot loop is `space.step` in C. Everything we add per frame is O(1) Python calls: one batch read
of all bodies (pymunk.batch) instead of one attribute at a time, contact onsets from a `begin`
callback (rare) instead of scanning every arbiter every substep, and numpy for force fields.
"""

from __future__ import annotations

import math

import numpy as np
import pymunk
import pymunk.batch as pb
from pymunk._chipmunk import lib as _chipmunk

from physworld.worlds.spec import body_extent

ENGINE = f"pymunk {pymunk.version} (chipmunk {pymunk.chipmunk_version})"
STATE_FIELDS = ("x", "y", "angle", "vx", "vy", "angular_velocity")
STATIC = -1  # body index of the static world in constraints and contact events

_BODY_FIELDS = (
    pb.BodyFields.POSITION | pb.BodyFields.ANGLE | pb.BodyFields.VELOCITY | pb.BodyFields.ANGULAR_VELOCITY
)


class SpecError(ValueError):
    """A scene spec that cannot be built; the message names the offending field."""


def _static_shape(space: pymunk.Space, s: dict, where: str) -> pymunk.Shape:
    body = space.static_body
    kind = s.get("kind")
    if kind == "segment":
        shape = pymunk.Segment(body, tuple(s["a"]), tuple(s["b"]), s["radius"])
        shape.surface_velocity = tuple(s.get("surface_velocity", (0.0, 0.0)))
    elif kind == "poly":
        shape = pymunk.Poly(body, [tuple(v) for v in s["vertices"]])
    elif kind == "circle":
        shape = pymunk.Circle(body, s["radius"], tuple(s["center"]))
    else:
        raise SpecError(f"{where}.kind: unknown static kind {kind!r}; expected segment, poly or circle")
    shape.friction = s["friction"]
    shape.elasticity = s["elasticity"]
    return shape


def _body(b: dict, where: str) -> tuple[pymunk.Body, pymunk.Shape]:
    if b.get("kinematic"):
        body = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
    else:
        if not (b["mass"] > 0 and b["moment"] > 0):
            raise SpecError(f"{where}: mass and moment must be positive for a dynamic body")
        body = pymunk.Body(b["mass"], b["moment"])
    shape_kind = b.get("shape")
    if shape_kind == "circle":
        shape = pymunk.Circle(body, b["radius"])
    elif shape_kind == "box":
        shape = pymunk.Poly.create_box(body, (b["width"], b["height"]))
    elif shape_kind == "poly":
        shape = pymunk.Poly(body, [tuple(v) for v in b["vertices"]])
    else:
        raise SpecError(f"{where}.shape: unknown shape {shape_kind!r}; expected circle, box or poly")
    body.position = tuple(b["position"])
    body.angle = b["angle"]
    body.velocity = tuple(b["velocity"])
    body.angular_velocity = b["angular_velocity"]
    shape.friction = b["friction"]
    shape.elasticity = b["elasticity"]
    if b.get("group"):
        shape.filter = pymunk.ShapeFilter(group=b["group"])
    return body, shape


def _constraint(c: dict, bodies: list[pymunk.Body], static: pymunk.Body, where: str) -> pymunk.Constraint:
    def get(i):
        if i == STATIC:
            return static
        if not 0 <= i < len(bodies):
            raise SpecError(f"{where}: body index {i} out of range (scene has {len(bodies)} bodies)")
        return bodies[i]

    a, b = get(c["a"]), get(c["b"])
    kind = c.get("kind")
    if kind == "pin":
        joint = pymunk.PinJoint(a, b, tuple(c["anchor_a"]), tuple(c["anchor_b"]))
    elif kind == "pivot":
        joint = pymunk.PivotJoint(a, b, tuple(c["anchor_a"]), tuple(c["anchor_b"]))
    elif kind == "slide":
        joint = pymunk.SlideJoint(a, b, tuple(c["anchor_a"]), tuple(c["anchor_b"]), c["min"], c["max"])
    elif kind == "spring":
        joint = pymunk.DampedSpring(
            a, b, tuple(c["anchor_a"]), tuple(c["anchor_b"]), c["rest_length"], c["stiffness"], c["damping"]
        )
    elif kind == "motor":
        joint = pymunk.SimpleMotor(a, b, c["rate"])
        if c.get("max_force") is not None:
            joint.max_force = c["max_force"]
    elif kind == "rotary_limit":
        joint = pymunk.RotaryLimitJoint(a, b, c["min"], c["max"])
    else:
        raise SpecError(
            f"{where}.kind: unknown constraint {kind!r}; expected pin, pivot, slide, spring, "
            "motor or rotary_limit"
        )
    # Jointed bodies do not collide with each other (a hinge's parts overlap), but a body jointed to
    # the world must still collide with the floor and walls, which are the same static body.
    joint.collide_bodies = STATIC in (c["a"], c["b"])
    return joint


def build_space(spec: dict) -> tuple[pymunk.Space, list[pymunk.Body]]:
    """Build the pymunk space of a spec. Bodies are added in spec order, which is the order
    pymunk.batch reports them in (we never remove bodies and never let them sleep)."""
    w = spec["world"]
    space = pymunk.Space()
    space.gravity = tuple(w["gravity"])
    space.iterations = w["iterations"]
    space.damping = w["damping"]
    for i, s in enumerate(spec["statics"]):
        space.add(_static_shape(space, s, f"statics[{i}]"))
    bodies = []
    for i, b in enumerate(spec["bodies"]):
        body, shape = _body(b, f"bodies[{i}]")
        space.add(body, shape)
        bodies.append(body)
    for i, c in enumerate(spec["constraints"]):
        space.add(_constraint(c, bodies, space.static_body, f"constraints[{i}]"))
    return space, bodies


# ---------------------------------------------------------------- force fields and controllers


def field_force_function(spec: dict):
    """A function (state float64 [N, 6], t) -> forces [N, 2] for the spec's fields, or None.

    Constants are computed once here because the function runs every substep: with the few
    bodies of a gravity scene, numpy call overhead is most of the cost.
    """
    fields = spec.get("fields") or {}
    if not fields:
        return None
    masses = np.array([b["mass"] for b in spec["bodies"]], dtype=np.float64)  # kinematic: 0, so no force
    att, wind = fields.get("attraction"), fields.get("wind")
    if att:
        g, eps2 = float(att["G"]), float(att.get("softening", 1.0)) ** 2
        pair_gm = g * np.outer(masses, masses) if att.get("between_bodies", True) else None
        wells = att.get("wells") or []
        well_pos = np.array([w["position"] for w in wells], dtype=np.float64).reshape(-1, 2)
        well_gm = g * np.outer(masses, [w["mass"] for w in wells])  # [N, K]
    if wind:
        drag = wind["drag"] * np.array([2.0 * body_extent(b) for b in spec["bodies"]])[:, None]
        wind_v = np.asarray(wind["velocity"], dtype=np.float64)
        gust_amp, gust_period = wind.get("gust_amplitude", 0.0), wind.get("gust_period", 1.0)

    def forces(state: np.ndarray, t: float) -> np.ndarray:
        pos = state[:, 0:2]
        force = np.zeros_like(pos)
        if att:
            if pair_gm is not None:
                d = pos[None, :, :] - pos[:, None, :]  # [N, N, 2], from i to j; d_ii = 0 adds nothing
                w = pair_gm * (np.einsum("ijk,ijk->ij", d, d) + eps2) ** -1.5
                force += np.einsum("ij,ijk->ik", w, d)
            if len(well_pos):
                d = well_pos[None, :, :] - pos[:, None, :]  # [N, K, 2]
                w = well_gm * (np.einsum("ijk,ijk->ij", d, d) + eps2) ** -1.5
                force += np.einsum("ij,ijk->ik", w, d)
        if wind:
            # Linear drag towards the wind's velocity, proportional to the body's size: light, large
            # bodies are carried along faster than heavy, small ones.
            gust = 1.0 + gust_amp * math.sin(2 * math.pi * t / gust_period)
            force += drag * (wind_v * gust - state[:, 3:5])
        return force

    return forces


def _apply_controllers(controlled: list, bodies: list[pymunk.Body], state: np.ndarray, t: float) -> None:
    """Set kinematic bodies' velocities for the coming frame from their controllers [(index, controller)]."""
    for i, ctrl in controlled:
        kind, axis = ctrl["kind"], ctrl.get("axis", "y")
        if kind == "oscillate":
            # Velocity of a sinusoid, so the position follows center + amplitude * sin(...) exactly
            # up to integration error.
            omega = 2 * math.pi / ctrl["period"]
            speed = ctrl["amplitude"] * omega * math.cos(omega * t + ctrl.get("phase", 0.0))
        elif kind == "track":
            # Follow, along one axis and at a bounded speed, the target that will reach this body
            # first (pong paddles); with none approaching, return to the middle of the range.
            k = 0 if axis == "x" else 1
            other = 1 - k
            lo, hi = ctrl["min"], ctrl["max"]
            goal, soonest = 0.5 * (lo + hi), math.inf
            for j in ctrl["targets"]:
                gap, closing = state[i, other] - state[j, other], state[j, 3 + other]
                if gap * closing > 0 and gap / closing < soonest:
                    goal, soonest = state[j, k], gap / closing
            goal = min(max(goal, lo), hi)
            speed = float(
                np.clip((goal - state[i, k]) * ctrl.get("gain", 10.0), -ctrl["max_speed"], ctrl["max_speed"])
            )
        else:
            raise SpecError(
                f"bodies[{i}].controller.kind: unknown controller {kind!r}; expected oscillate or track"
            )
        body = bodies[i]
        if axis == "x":
            body.velocity = (speed, 0.0)
        elif axis == "y":
            body.velocity = (0.0, speed)
        elif axis == "angle":
            body.angular_velocity = speed
        else:
            raise SpecError(f"bodies[{i}].controller.axis: {axis!r}; expected x, y or angle")


# ---------------------------------------------------------------- simulation


def read_state(space: pymunk.Space, buf: pb.Buffer, n: int) -> np.ndarray:
    """The first n bodies' (x, y, angle, vx, vy, angular_velocity) as float64 [n, 6], in one C call.

    pymunk reports dynamic and kinematic bodies in the order they were added, then static ones
    (the space's static body once shapes are attached to it), which we drop.
    """
    buf.clear()
    pb.get_space_bodies(space, _BODY_FIELDS, buf)
    return np.frombuffer(buf.float_buf(), dtype=np.float64)[: n * 6].reshape(n, 6)


def simulate(spec: dict, num_frames: int) -> dict:
    """Run a spec for `num_frames` frames after the initial one.

    Returns {"states": float32 [num_frames + 1, bodies, 6] (initial frame first),
             "events": {"frame", "body_a", "body_b", "impulse"}} where events are contact onsets:
    the frame in which two bodies (or a body and the static world, index -1) begin touching,
    and the magnitude of the impulse between them in the substep the contact began (N*s, px units).
    A 3D spec (world.dims == 3) runs on PyBullet instead (worlds/bullet.py: states [.., 13]).
    """
    if spec["world"].get("dims", 2) == 3:
        from physworld.worlds.bullet import simulate as simulate_3d

        return simulate_3d(spec, num_frames)
    space, bodies = build_space(spec)
    w = spec["world"]
    n = len(bodies)
    substeps = w["substeps"]
    h = w["dt"] / substeps
    states = np.empty((num_frames + 1, n, 6), dtype=np.float32)
    buf = pb.Buffer()
    states[0] = read_state(space, buf, n)

    # Contact onsets: a `begin` callback (Python, but only when a contact starts) names the pair and
    # keeps its arbiter, whose impulse is read once the substep's solver has run. Arbiters live in
    # the space's cache for several steps after a contact ends, so the pointer is valid then.
    shape_index = {shape: i for i, body in enumerate(bodies) for shape in body.shapes}
    shape_index.update((shape, STATIC) for shape in space.static_body.shapes)
    began: list = []

    def on_begin(arbiter, _space, _data):
        a, b = arbiter.shapes
        began.append((shape_index[a], shape_index[b], arbiter._arbiter))

    space.on_collision(begin=on_begin)
    ev_frame, ev_a, ev_b, ev_imp = [], [], [], []

    field_forces = field_force_function(spec)
    controlled = [(i, b["controller"]) for i, b in enumerate(spec["bodies"]) if b.get("controller")]
    if field_forces:
        # Fields act as two half kicks per frame around the frame's substeps (Strang splitting; for
        # a scene with only attraction it is the symplectic leapfrog, so orbits keep their energy).
        # Per substep would cost a numpy evaluation every step for the same accuracy.
        inv_mass = np.array([0.0 if b["kinematic"] else 1.0 / b["mass"] for b in spec["bodies"]])[:, None]
        half_dt = 0.5 * w["dt"]
        # set_space_bodies walks every body, the static one included, so the buffer covers them all;
        # cffi keeps pointing at `velocity`, which is filled in place.
        velocity = np.zeros((len(space.bodies) + 1, 2), dtype=np.float64)
        velocity_buf = pb.Buffer()
        velocity_buf.set_float_buf(velocity.reshape(-1))

        def kick(t):
            state = read_state(space, buf, n).copy()
            velocity[:n] = state[:, 3:5] + field_forces(state, t) * inv_mass * half_dt
            pb.set_space_bodies(space, pb.BodyFields.VELOCITY, velocity_buf)

    for f in range(1, num_frames + 1):
        t0 = (f - 1) * w["dt"]
        if controlled:
            _apply_controllers(controlled, bodies, states[f - 1], t0)
        if field_forces:
            kick(t0)
        for _ in range(substeps):
            space.step(h)
            if began:
                _record_onsets(began, f, ev_frame, ev_a, ev_b, ev_imp)
        if field_forces:
            kick(t0 + w["dt"])
        states[f] = read_state(space, buf, n)

    events = {
        "frame": np.asarray(ev_frame, dtype=np.int32),
        "body_a": np.asarray(ev_a, dtype=np.int32),
        "body_b": np.asarray(ev_b, dtype=np.int32),
        "impulse": np.asarray(ev_imp, dtype=np.float32),
    }
    return {"states": states, "events": events}


def _record_onsets(began: list, frame: int, ev_frame, ev_a, ev_b, ev_imp) -> None:
    # One event per body pair per substep: a body may begin touching two static shapes at once.
    impulse: dict[tuple[int, int], float] = {}
    for a, b, arbiter in began:
        j = _chipmunk.cpArbiterTotalImpulse(arbiter)
        key = (a, b) if a <= b else (b, a)
        impulse[key] = impulse.get(key, 0.0) + math.hypot(j.x, j.y)
    for (a, b), j in impulse.items():
        ev_frame.append(frame)
        ev_a.append(a)
        ev_b.append(b)
        ev_imp.append(j)
    began.clear()
