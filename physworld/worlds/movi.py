"""MOVi-like 3D scenes (Kubric's MOVi-A and MOVi-B): simple shapes thrown onto a floor.

Each function takes (difficulty 1-5, numpy Generator) and returns a 3D spec (see spec3d.py). Its
docstring's first sentence says what happens and its 'Difficulty:' paragraph says what scales;
both feed docs/SCENARIOS.md.
"""

from __future__ import annotations

import math

from physworld.worlds.bullet import finish
from physworld.worlds.spec3d import (
    COLORS,
    MATERIALS,
    body_extent,
    box,
    capsule,
    cylinder,
    look_at,
    new_spec,
    place,
    random_quat,
    sphere,
)
from physworld.worlds.spec3d import floor as floor_plane

# MOVi-A's CLEVR sizes: a small object is 0.7 m across, a large one 1.4 m.
SIZES = {"small": 0.7, "large": 1.4}
SPAWN = 3.5  # m; centres start within [-SPAWN, SPAWN]^2
BOUNDS = {"min": [-12.0, -12.0, -0.5], "max": [12.0, 12.0, 10.0]}


def _movi_camera(rng) -> dict:
    """MOVi-style camera: on a ring around the scene, 30-50 degrees up, looking at the origin."""
    azimuth = float(rng.uniform(0, 2 * math.pi))
    elevation = math.radians(float(rng.uniform(30, 50)))
    dist = float(rng.uniform(13.0, 15.0))
    pos = (dist * math.cos(elevation) * math.cos(azimuth), dist * math.cos(elevation) * math.sin(azimuth),
           dist * math.sin(elevation))  # fmt: skip
    return look_at(pos, (0.0, 0.0, 0.0))


def _throw(rng, b: dict, max_speed: float) -> dict:
    """Give a body a horizontal velocity towards the centre (with scatter) and a random spin."""
    x, y, _ = b["position"]
    aim = math.atan2(-y, -x) + float(rng.normal(0, 0.6))
    speed = float(rng.uniform(0.3, 1.0)) * max_speed
    b["velocity"] = [speed * math.cos(aim), speed * math.sin(aim), float(rng.uniform(-1, 1))]
    b["angular_velocity"] = [float(v) for v in rng.uniform(-2, 2, 3)]
    return b


def _count(difficulty, rng, lo, hi) -> int:
    """Object count rising with difficulty from lo to hi, a little spread within each level."""
    base = lo + (hi - lo) * (difficulty - 1) / 4
    return int(min(hi, round(base + float(rng.uniform(0, 1)))))


def movi_a(difficulty, rng):
    """MOVi-A: 3 to 10 CLEVR shapes (cube, sphere, cylinder; small or large; rubber or metal, one of
    eight colours) are thrown onto a grey floor from up to 2.5 m high, bounce, tumble and come to
    rest.

    Difficulty: 3-4 objects at level 1 rising to 9-10 at level 5, thrown at up to 1.5 m/s (level 1)
    to 4.5 m/s (level 5) towards the middle with scatter, so more of them collide.
    """
    spec = new_spec("", camera=_movi_camera(rng), bounds=BOUNDS)
    spec["statics"] = [floor_plane(extent=BOUNDS["max"][0])]
    n = _count(difficulty, rng, 3, 9)
    max_speed = 0.75 + 0.75 * difficulty
    bodies: list[dict] = []
    for _ in range(n):
        shape = ("cube", "sphere", "cylinder")[int(rng.integers(3))]
        size = SIZES[("small", "large")[int(rng.integers(2))]]
        material = ("rubber", "metal")[int(rng.integers(2))]
        color = list(COLORS)[int(rng.integers(len(COLORS)))]
        orientation = random_quat(rng) if shape == "cube" else [0.0, 0.0, 0.0, 1.0]
        kw = dict(material=material, color=color, orientation=orientation)

        def make(pos, shape=shape, size=size, kw=kw):
            if shape == "cube":
                return box(pos, (size, size, size), **kw)
            if shape == "sphere":
                return sphere(pos, size / 2, **kw)
            return cylinder(pos, size / 2, size, **kw)

        ext = body_extent(make((0, 0, 0)))
        b = place(rng, make, bodies, (-SPAWN, SPAWN), (-SPAWN, SPAWN), (ext + 0.05, ext + 2.5))
        if b is not None:
            bodies.append(_throw(rng, b, max_speed))
    spec["bodies"] = bodies
    spec["description"] = f"MOVi-A: {len(bodies)} simple objects are thrown onto the floor."
    return finish(spec)


def movi_b(difficulty, rng):
    """MOVi-B: 4 to 10 objects of more shapes and sizes (spheres, boxes and cylinders of any
    proportions, capsules; rubber, metal, wood or plastic; eight colours) are thrown onto a floor
    from up to 2.5 m high, spinning, and collide as they settle.

    Difficulty: 4-5 objects at level 1 rising to 10 at level 5, sizes spread wider (0.5-1.0 m at
    level 1 to 0.3-1.6 m at level 5), thrown at up to 1.5 to 4.5 m/s towards the middle.
    """
    spec = new_spec("", camera=_movi_camera(rng), bounds=BOUNDS)
    spec["statics"] = [floor_plane(extent=BOUNDS["max"][0])]
    n = _count(difficulty, rng, 4, 10)
    max_speed = 0.75 + 0.75 * difficulty
    lo, hi = 0.5 - 0.05 * (difficulty - 1), 1.0 + 0.15 * (difficulty - 1)
    bodies: list[dict] = []
    for _ in range(n):
        shape = ("box", "sphere", "cylinder", "capsule")[int(rng.integers(4))]
        dims = [float(v) for v in rng.uniform(lo, hi, 3)]
        kw = dict(material=list(MATERIALS)[int(rng.integers(len(MATERIALS)))],
                  color=list(COLORS)[int(rng.integers(len(COLORS)))], orientation=random_quat(rng))  # fmt: skip

        def make(pos, shape=shape, dims=dims, kw=kw):
            if shape == "box":
                return box(pos, dims, **kw)
            if shape == "sphere":
                return sphere(pos, dims[0] / 2, **kw)
            if shape == "cylinder":
                return cylinder(pos, dims[0] / 2, dims[1], **kw)
            return capsule(pos, dims[0] / 4, dims[1] * 0.6, **kw)

        ext = body_extent(make((0, 0, 0)))
        b = place(rng, make, bodies, (-SPAWN, SPAWN), (-SPAWN, SPAWN), (ext + 0.05, ext + 2.5))
        if b is not None:
            bodies.append(_throw(rng, b, max_speed))
    spec["bodies"] = bodies
    spec["description"] = (
        f"MOVi-B: {len(bodies)} objects of varied shapes and sizes are thrown onto the floor."
    )
    return finish(spec)


SCENARIOS = {"movi_a": movi_a, "movi_b": movi_b}
