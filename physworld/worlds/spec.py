"""The scene spec: a plain, JSON-serialisable dict that fully describes a world before it runs.

A scenario function returns a spec; the engine turns a spec into a pymunk space and a trajectory.
Keeping the spec a plain dict means it is stored verbatim (as canonical JSON) beside every
trajectory, so any scene can be re-simulated, inspected or edited without physworld's classes.

Conventions (guide 001): an 800 x 600 world, y up, units of pixels (1 px = 1 cm), gravity
(0, -981) px/s^2, 60 recorded frames per second. Angles are radians, counter-clockwise.

    spec = {
      "description": str,
      "world": {"width", "height", "gravity": [gx, gy], "dt", "substeps", "iterations", "damping"},
      "statics": [segment | poly | circle],           # immovable geometry, in world coordinates
      "bodies": [body, ...],                          # dynamic or kinematic, recorded every frame
      "constraints": [constraint, ...],               # joints between bodies (or a body and the world)
      "fields": {"attraction": {...}, "wind": {...}}, # optional force fields
      "expect": {"contained": bool, "conserves_energy": bool, "conserves_momentum": bool},
    }

A body is {"shape": "circle"|"box"|"poly", its dimensions ("radius" | "width","height" | "vertices"
in body coordinates), "mass", "moment", "friction", "elasticity", "position", "angle", "velocity",
"angular_velocity", "kinematic": bool, "group": int, optional "controller"}. Bodies that share a
nonzero group never collide with each other (links of a chain, parts of a rig). Body index -1 in a
constraint means the static world.
"""

from __future__ import annotations

import math

import pymunk

WIDTH = 800.0
HEIGHT = 600.0
GRAVITY = (0.0, -981.0)
FPS = 60
# Chosen by bench/bench_substeps.py (see BENCHMARKS.md): the smallest count at which a resting
# tower stays put and contact penetration stays under PENETRATION_TOLERANCE.
DEFAULT_SUBSTEPS = 8
DEFAULT_ITERATIONS = 10
PENETRATION_TOLERANCE = 2.0  # px; the most two touching shapes may overlap in a generated scene
WALL_RADIUS = 5.0  # px; thick segments keep fast bodies from tunnelling through walls


def world(gravity=GRAVITY, substeps=DEFAULT_SUBSTEPS, iterations=DEFAULT_ITERATIONS, damping=1.0) -> dict:
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "gravity": [float(gravity[0]), float(gravity[1])],
        "dt": 1.0 / FPS,
        "substeps": int(substeps),
        "iterations": int(iterations),
        "damping": float(damping),
    }


def new_spec(description: str, gravity=GRAVITY, **world_kwargs) -> dict:
    return {
        "description": description,
        "world": world(gravity=gravity, **world_kwargs),
        "statics": [],
        "bodies": [],
        "constraints": [],
        "fields": {},
        "expect": {"contained": True, "conserves_energy": False, "conserves_momentum": False},
    }


# ---------------------------------------------------------------- bodies


def _vec(v) -> list[float]:
    return [float(v[0]), float(v[1])]


def _body(
    shape: dict,
    mass,
    moment,
    position,
    angle,
    velocity,
    angular_velocity,
    friction,
    elasticity,
    kinematic,
    group,
) -> dict:
    body = dict(shape)
    body.update(
        mass=float(mass),
        moment=float(moment),
        friction=float(friction),
        elasticity=float(elasticity),
        position=_vec(position),
        angle=float(angle),
        velocity=_vec(velocity),
        angular_velocity=float(angular_velocity),
        kinematic=bool(kinematic),
        group=int(group),
    )
    return body


def circle(
    position,
    radius,
    mass=1.0,
    velocity=(0, 0),
    angle=0.0,
    angular_velocity=0.0,
    friction=0.5,
    elasticity=0.5,
    kinematic=False,
    group=0,
    inner_radius=0.0,
) -> dict:
    """A disc; with inner_radius > 0 its mass sits in a ring (a tube), which only changes its moment."""
    moment = 0.0 if kinematic else pymunk.moment_for_circle(mass, inner_radius, radius)
    return _body(
        {"shape": "circle", "radius": float(radius)},
        0.0 if kinematic else mass,
        moment,
        position,
        angle,
        velocity,
        angular_velocity,
        friction,
        elasticity,
        kinematic,
        group,
    )


def box(
    position,
    width,
    height,
    mass=1.0,
    velocity=(0, 0),
    angle=0.0,
    angular_velocity=0.0,
    friction=0.5,
    elasticity=0.3,
    kinematic=False,
    group=0,
) -> dict:
    moment = 0.0 if kinematic else pymunk.moment_for_box(mass, (width, height))
    return _body(
        {"shape": "box", "width": float(width), "height": float(height)},
        0.0 if kinematic else mass,
        moment,
        position,
        angle,
        velocity,
        angular_velocity,
        friction,
        elasticity,
        kinematic,
        group,
    )


def poly(
    position,
    vertices,
    mass=1.0,
    velocity=(0, 0),
    angle=0.0,
    angular_velocity=0.0,
    friction=0.5,
    elasticity=0.3,
    kinematic=False,
    group=0,
) -> dict:
    """A convex polygon; `vertices` are in body coordinates, centred on the centre of mass."""
    verts = [_vec(v) for v in vertices]
    moment = 0.0 if kinematic else pymunk.moment_for_poly(mass, [tuple(v) for v in verts])
    return _body(
        {"shape": "poly", "vertices": verts},
        0.0 if kinematic else mass,
        moment,
        position,
        angle,
        velocity,
        angular_velocity,
        friction,
        elasticity,
        kinematic,
        group,
    )


def body_extent(body: dict) -> float:
    """Radius of the smallest circle around the body's centre that contains it."""
    if body["shape"] == "circle":
        return body["radius"]
    if body["shape"] == "box":
        return 0.5 * math.hypot(body["width"], body["height"])
    return max(math.hypot(x, y) for x, y in body["vertices"])


# ---------------------------------------------------------------- static geometry


def segment(a, b, radius=WALL_RADIUS, friction=0.7, elasticity=0.5, surface_velocity=(0, 0)) -> dict:
    return {
        "kind": "segment",
        "a": _vec(a),
        "b": _vec(b),
        "radius": float(radius),
        "friction": float(friction),
        "elasticity": float(elasticity),
        "surface_velocity": _vec(surface_velocity),
    }


def static_poly(vertices, friction=0.7, elasticity=0.4) -> dict:
    return {
        "kind": "poly",
        "vertices": [_vec(v) for v in vertices],
        "friction": float(friction),
        "elasticity": float(elasticity),
    }


def static_circle(center, radius, friction=0.5, elasticity=0.6) -> dict:
    return {
        "kind": "circle",
        "center": _vec(center),
        "radius": float(radius),
        "friction": float(friction),
        "elasticity": float(elasticity),
    }


def arena(ground=True, walls=True, ceiling=True, friction=0.7, elasticity=0.5, floor_y=0.0) -> list[dict]:
    """Segments along the world's edges, their inner faces flush with the edges (floor at floor_y)."""
    r = WALL_RADIUS
    out = []
    if ground:
        out.append(segment((0, floor_y - r), (WIDTH, floor_y - r), r, friction, elasticity))
    if walls:
        out.append(segment((-r, 0), (-r, HEIGHT), r, friction, elasticity))
        out.append(segment((WIDTH + r, 0), (WIDTH + r, HEIGHT), r, friction, elasticity))
    if ceiling:
        out.append(segment((0, HEIGHT + r), (WIDTH, HEIGHT + r), r, friction, elasticity))
    return out


# ---------------------------------------------------------------- constraints


def pin(a: int, b: int, anchor_a=(0, 0), anchor_b=(0, 0)) -> dict:
    """Keeps the distance between two anchors fixed (a rigid rod). Index -1 is the static world."""
    return {"kind": "pin", "a": int(a), "b": int(b), "anchor_a": _vec(anchor_a), "anchor_b": _vec(anchor_b)}


def pivot(a: int, b: int, anchor_a, anchor_b) -> dict:
    """Makes two anchors coincide (a hinge)."""
    return {"kind": "pivot", "a": int(a), "b": int(b), "anchor_a": _vec(anchor_a), "anchor_b": _vec(anchor_b)}


def slide(a: int, b: int, anchor_a, anchor_b, min_length, max_length) -> dict:
    """A rope or telescope: the anchors' distance stays within [min_length, max_length]."""
    return {
        "kind": "slide",
        "a": int(a),
        "b": int(b),
        "anchor_a": _vec(anchor_a),
        "anchor_b": _vec(anchor_b),
        "min": float(min_length),
        "max": float(max_length),
    }


def spring(a: int, b: int, anchor_a, anchor_b, rest_length, stiffness, damping) -> dict:
    return {
        "kind": "spring",
        "a": int(a),
        "b": int(b),
        "anchor_a": _vec(anchor_a),
        "anchor_b": _vec(anchor_b),
        "rest_length": float(rest_length),
        "stiffness": float(stiffness),
        "damping": float(damping),
    }


def motor(a: int, b: int, rate, max_force=None) -> dict:
    """Drives the relative angular velocity of b with respect to a to `rate` rad/s; max_force None
    means unlimited (JSON has no infinity)."""
    return {
        "kind": "motor",
        "a": int(a),
        "b": int(b),
        "rate": float(rate),
        "max_force": None if max_force is None else float(max_force),
    }


def rotary_limit(a: int, b: int, min_angle, max_angle) -> dict:
    return {
        "kind": "rotary_limit",
        "a": int(a),
        "b": int(b),
        "min": float(min_angle),
        "max": float(max_angle),
    }


# ---------------------------------------------------------------- placement


def overlaps(body: dict, others: list[dict], margin: float = 0.0) -> bool:
    """Conservative overlap test by bounding circles: True if `body` might touch any of `others`."""
    x, y = body["position"]
    r = body_extent(body)
    for o in others:
        ox, oy = o["position"]
        if math.hypot(x - ox, y - oy) < r + body_extent(o) + margin:
            return True
    return False


def place(rng, make, others: list[dict], x_range, y_range, tries: int = 200, margin: float = 1.0):
    """Sample positions until `make((x, y))` returns a body clear of `others`; None if none fits.

    Rejection sampling with a bounded number of tries, so a crowded scene degrades to fewer bodies
    instead of overlapping ones.
    """
    for _ in range(tries):
        pos = (float(rng.uniform(*x_range)), float(rng.uniform(*y_range)))
        body = make(pos)
        if not overlaps(body, others, margin):
            return body
    return None
