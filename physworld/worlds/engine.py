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

from physworld.worlds.spec import body_extent

ENGINE = f"pymunk {pymunk.version} (chipmunk {pymunk.chipmunk_version})"
STATE_FIELDS = ("x", "y", "angle", "vx", "vy", "angular_velocity")
STATIC = -1  # body index of the static world in constraints and contact events

_BODY_FIELDS = (
    pb.BodyFields.POSITION | pb.BodyFields.ANGLE | pb.BodyFields.VELOCITY | pb.BodyFields.ANGULAR_VELOCITY
)
_ARBITER_FIELDS = pb.ArbiterFields.BODY_A_ID | pb.ArbiterFields.BODY_B_ID | pb.ArbiterFields.TOTAL_IMPULSE


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


def _field_forces(
    fields: dict, state: np.ndarray, masses: np.ndarray, sizes: np.ndarray, t: float
) -> np.ndarray:
    """Forces [N, 2] from the spec's fields, given float64 state [N, 6] at time t."""
    pos, vel = state[:, 0:2], state[:, 3:5]
    force = np.zeros_like(pos)
    att = fields.get("attraction")
    if att:
        g, eps2 = att["G"], att.get("softening", 1.0) ** 2
        if att.get("between_bodies", True):
            d = pos[None, :, :] - pos[:, None, :]  # [N, N, 2], from i to j
            r2 = (d * d).sum(-1) + eps2
            inv_r3 = r2**-1.5
            np.fill_diagonal(inv_r3, 0.0)
            force += g * masses[:, None] * ((masses[None, :] * inv_r3)[:, :, None] * d).sum(1)
        for well in att.get("wells", ()):
            d = np.asarray(well["position"]) - pos
            r2 = (d * d).sum(-1) + eps2
            force += (g * well["mass"] * masses * r2**-1.5)[:, None] * d
    wind = fields.get("wind")
    if wind:
        # Linear drag towards the wind's velocity, proportional to the body's size: light, large
        # bodies are carried along faster than heavy, small ones.
        gust = 1.0 + wind.get("gust_amplitude", 0.0) * math.sin(
            2 * math.pi * t / wind.get("gust_period", 1.0)
        )
        rel = np.asarray(wind["velocity"]) * gust - vel
        force += wind["drag"] * sizes[:, None] * rel
    return force


def _apply_controllers(spec: dict, bodies: list[pymunk.Body], state: np.ndarray, t: float) -> None:
    """Set kinematic bodies' velocities for the coming frame from their controllers."""
    for i, b in enumerate(spec["bodies"]):
        ctrl = b.get("controller")
        if not ctrl:
            continue
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
    """
    space, bodies = build_space(spec)
    w = spec["world"]
    n = len(bodies)
    substeps = w["substeps"]
    h = w["dt"] / substeps
    states = np.empty((num_frames + 1, n, 6), dtype=np.float32)
    buf = pb.Buffer()
    states[0] = read_state(space, buf, n)

    index = {body.id: i for i, body in enumerate(bodies)}
    index[space.static_body.id] = STATIC
    began: list[tuple[int, int]] = []

    def on_begin(arbiter, _space, _data):
        a, b = arbiter.bodies
        began.append((index[a.id], index[b.id]))

    space.on_collision(begin=on_begin)
    ev_frame, ev_a, ev_b, ev_imp = [], [], [], []
    arb_buf = pb.Buffer()

    fields = spec.get("fields") or {}
    has_controllers = any(b.get("controller") for b in spec["bodies"])
    if fields:
        masses = np.array([b["mass"] for b in spec["bodies"]], dtype=np.float64)
        sizes = np.array([2.0 * body_extent(b) for b in spec["bodies"]], dtype=np.float64)
        force_buf = pb.Buffer()
        # set_space_bodies walks every body, static ones included, so the buffer covers them all.
        force = np.zeros((len(space.bodies) + 1, 2), dtype=np.float64)
    for f in range(1, num_frames + 1):
        t0 = (f - 1) * w["dt"]
        if has_controllers:
            _apply_controllers(spec, bodies, states[f - 1], t0)
        for s in range(substeps):
            if fields:
                # A Chipmunk step first moves bodies with their current velocity, then applies
                # forces to the velocity; evaluating the field where the bodies are about to be makes
                # that a symplectic drift-kick, so orbits keep their energy instead of gaining it.
                state = read_state(space, buf, n).copy()
                state[:, 0:2] += h * state[:, 3:5]
                force[:n] = _field_forces(fields, state, masses, sizes, t0 + (s + 1) * h)
                force_buf.set_float_buf(force.ravel())
                pb.set_space_bodies(space, pb.BodyFields.FORCE, force_buf)
            space.step(h)
            if began:
                _record_onsets(space, arb_buf, index, began, f, ev_frame, ev_a, ev_b, ev_imp)
        states[f] = read_state(space, buf, n)

    events = {
        "frame": np.asarray(ev_frame, dtype=np.int32),
        "body_a": np.asarray(ev_a, dtype=np.int32),
        "body_b": np.asarray(ev_b, dtype=np.int32),
        "impulse": np.asarray(ev_imp, dtype=np.float32),
    }
    return {"states": states, "events": events}


def _record_onsets(space, arb_buf, index, began, frame, ev_frame, ev_a, ev_b, ev_imp) -> None:
    # Runs only in substeps where a contact began, so its cost scales with events, not with steps.
    arb_buf.clear()
    pb.get_space_arbiters(space, _ARBITER_FIELDS, arb_buf)
    ids = np.frombuffer(arb_buf.int_buf(), dtype=np.uintp).reshape(-1, 2)
    imp = np.frombuffer(arb_buf.float_buf(), dtype=np.float64).reshape(-1, 2)
    impulse = {}
    for (ia, ib), (jx, jy) in zip(ids.tolist(), imp.tolist(), strict=True):
        key = (index.get(ia), index.get(ib))
        impulse[key] = impulse.get(key, 0.0) + math.hypot(jx, jy)
    for a, b in dict.fromkeys(began):  # de-duplicate, keep order: two shapes may begin at once
        j = impulse.get((a, b), impulse.get((b, a), 0.0))
        lo, hi = (a, b) if a <= b else (b, a)
        ev_frame.append(frame)
        ev_a.append(lo)
        ev_b.append(hi)
        ev_imp.append(j)
    began.clear()
