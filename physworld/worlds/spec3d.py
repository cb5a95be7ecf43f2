"""The 3D scene spec: a plain, JSON-serialisable dict, like the 2D one (spec.py), for PyBullet.

Conventions (Kubric MOVi): metres, seconds, radians; z up; gravity (0, 0, -9.81) m/s^2; 24 recorded
frames per second; the floor is the plane z = 0. Quaternions are (x, y, z, w), PyBullet's order.

    spec = {
      "description": str,
      "world": {"dims": 3, "gravity": [gx, gy, gz], "dt", "substeps", "solver_iterations",
                "bounds": {"min": [x, y, z], "max": [x, y, z]}},   # a body centre outside has escaped
      "statics": [plane | box],                  # immovable geometry, in world coordinates
      "bodies": [body, ...],                     # dynamic, recorded every frame
      "constraints": [point_to_point, ...],      # joints between bodies, or a body and the world (-1)
      "camera": {"position", "target", "up", "fov", "near", "far"},   # fov: vertical, degrees
      "expect": {"contained": bool, "conserves_energy": bool, "conserves_momentum": bool},
    }

A body is {"shape": "sphere" | "box" | "cylinder" | "capsule", its size ("radius" | "size": [lx, ly,
lz] full edge lengths | "radius", "height" along the body's z axis), "mass", "material", "color",
"friction", "restitution", "effective_restitution", "rolling_friction", "spinning_friction",
"linear_damping", "angular_damping", "position": [3], "orientation": [qx, qy, qz, qw], "velocity":
[3], "angular_velocity": [3] (world frame, rad/s)}. "restitution" is what PyBullet is given;
PyBullet multiplies it by the restitution of whatever the body hits, and its solver adds its own
losses, so "effective_restitution" is the coefficient actually measured by dropping a ball of the
body's restitution onto this scene's floor (bounce height = effective_restitution^2 x drop height,
averaged over drops from 0.25 to 2 m; PyBullet's bounces vary a few percent with impact speed).

A static is {"kind": "plane", "normal", "offset", "extent"} (infinite for physics; `extent` is the
half size a renderer should draw) or {"kind": "box", "size", "position", "orientation"}, each with
"friction", "restitution", "rolling_friction", "spinning_friction", "color", "material".

A point_to_point constraint {"kind": "point_to_point", "a", "b", "anchor_a", "anchor_b"} makes a
point fixed in body a (anchor_a, in a's frame) coincide with one fixed in b (in b's frame, or in
world coordinates when b is -1): a ball joint, so a bob on one is a rigid pendulum.
"""

from __future__ import annotations

import math

DIMS = 3
GRAVITY = (0.0, 0.0, -9.81)
FPS = 24  # MOVi's frame rate
# Measured by bench/bench_substeps_3d.py (see BENCHMARKS.md): 240 Hz physics, PyBullet's own and
# MOVi's step; resting stacks stay within 2 mm and contacts within about 5 mm at 24 fps.
DEFAULT_SUBSTEPS = 10
# PyBullet's default is 50; at 50 a leaning tower that should stand creeps 6 cm in 8 s, at 100 it
# creeps 1.4 cm for 1.6x the stepping time (bench/bench_substeps_3d.py).
DEFAULT_SOLVER_ITERATIONS = 100
PENETRATION_TOLERANCE = 0.01  # m; the most two shapes may overlap at spawn in a generated scene
BOUNDS = {"min": [-6.0, -6.0, -0.5], "max": [6.0, 6.0, 8.0]}

# CLEVR's eight colours (what MOVi-A uses), as sRGB 0-255; renderers look the name up here.
COLORS = {
    "gray": [87, 87, 87],
    "red": [173, 35, 35],
    "blue": [42, 75, 215],
    "green": [29, 105, 20],
    "brown": [129, 74, 25],
    "purple": [129, 38, 192],
    "cyan": [41, 208, 208],
    "yellow": [255, 238, 51],
}
# Materials as users name them: density, friction, restitution (what PyBullet is given) and rolling
# friction per metre of radius (a rolling-resistance coefficient; a body's rolling and spinning
# friction, in m, is this times its size). Rubber and metal are MOVi-A's, densities included:
# Kubric's densities are 1.1 and 2.7 per cubic metre, a scale rather than real kg/m^3 (rubber is
# 1100). Rigid-body motion depends only on mass ratios, and PyBullet's rolling-friction limit stops
# working for bodies heavier than about 20 kg, so physworld keeps Kubric's light masses.
MATERIALS = {
    "rubber": {"density": 1.1, "friction": 0.8, "restitution": 0.7, "rolling_resistance": 0.15},
    "metal": {"density": 2.7, "friction": 0.4, "restitution": 0.3, "rolling_resistance": 0.1},
    "wood": {"density": 0.6, "friction": 0.6, "restitution": 0.45, "rolling_resistance": 0.15},
    "plastic": {"density": 0.95, "friction": 0.5, "restitution": 0.55, "rolling_resistance": 0.12},
}
FLOOR = {"friction": 1.0, "restitution": 1.0, "rolling_friction": 0.0, "spinning_friction": 0.0}


def world(
    gravity=GRAVITY, substeps=DEFAULT_SUBSTEPS, solver_iterations=DEFAULT_SOLVER_ITERATIONS, bounds=None
) -> dict:
    b = bounds or BOUNDS
    return {
        "dims": DIMS,
        "gravity": _vec3(gravity),
        "dt": 1.0 / FPS,
        "substeps": int(substeps),
        "solver_iterations": int(solver_iterations),
        "bounds": {"min": _vec3(b["min"]), "max": _vec3(b["max"])},
    }


def new_spec(description: str, gravity=GRAVITY, camera=None, **world_kwargs) -> dict:
    return {
        "description": description,
        "world": world(gravity=gravity, **world_kwargs),
        "statics": [],
        "bodies": [],
        "constraints": [],
        "camera": camera or look_at((0.0, -9.0, 6.0), (0.0, 0.0, 0.5)),
        "expect": {"contained": True, "conserves_energy": False, "conserves_momentum": False},
    }


def is_3d(spec: dict) -> bool:
    return spec.get("world", {}).get("dims", 2) == 3


def _vec3(v) -> list[float]:
    return [float(v[0]), float(v[1]), float(v[2])]


def quat_from_euler(roll=0.0, pitch=0.0, yaw=0.0) -> list[float]:
    """(x, y, z, w) of the rotation roll about x, then pitch about y, then yaw about z (extrinsic),
    the same convention as pybullet.getQuaternionFromEuler."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return [
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
        cr * cp * cy + sr * sp * sy,
    ]


def quat_multiply(a, b) -> list[float]:
    """The rotation b then a (Hamilton product a * b), quaternions (x, y, z, w)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return [
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ]


def random_quat(rng) -> list[float]:
    """A uniformly random rotation (Shoemake's method)."""
    u1, u2, u3 = (float(v) for v in rng.uniform(0, 1, 3))
    a, b = math.sqrt(1 - u1), math.sqrt(u1)
    return [a * math.sin(2 * math.pi * u2), a * math.cos(2 * math.pi * u2), b * math.sin(2 * math.pi * u3),
            b * math.cos(2 * math.pi * u3)]  # fmt: skip


def look_at(position, target, up=(0.0, 0.0, 1.0), fov=49.1, near=0.1, far=50.0) -> dict:
    """A pinhole camera at `position` looking at `target`. fov is the vertical field of view in
    degrees; the default is MOVi's (a 35 mm lens on a 32 mm sensor, square images)."""
    return {
        "position": _vec3(position),
        "target": _vec3(target),
        "up": _vec3(up),
        "fov": float(fov),
        "near": float(near),
        "far": float(far),
    }


# ---------------------------------------------------------------- bodies


def shape_volume(body: dict) -> float:
    s = body["shape"]
    if s == "sphere":
        return 4.0 / 3.0 * math.pi * body["radius"] ** 3
    if s == "box":
        lx, ly, lz = body["size"]
        return lx * ly * lz
    if s == "cylinder":
        return math.pi * body["radius"] ** 2 * body["height"]
    if s == "capsule":
        r = body["radius"]
        return math.pi * r * r * body["height"] + 4.0 / 3.0 * math.pi * r**3
    raise ValueError(f"unknown shape {s!r}")


def body_extent(body: dict) -> float:
    """Radius of the smallest sphere around the body's centre that contains it."""
    s = body["shape"]
    if s == "sphere":
        return body["radius"]
    if s == "box":
        return 0.5 * math.sqrt(sum(v * v for v in body["size"]))
    if s == "cylinder":
        return math.hypot(body["radius"], 0.5 * body["height"])
    return body["radius"] + 0.5 * body["height"]  # capsule: height is the cylinder part


def _roll_radius(body: dict) -> float:
    """The radius a body rolls on: its radius, or half a box's shortest edge."""
    return body["radius"] if "radius" in body else 0.5 * min(body["size"])


def half_height(body: dict) -> float:
    """Half the body's extent along its own z axis: how high its centre sits when resting upright."""
    s = body["shape"]
    if s == "sphere":
        return body["radius"]
    if s == "box":
        return 0.5 * body["size"][2]
    if s == "cylinder":
        return 0.5 * body["height"]
    return body["radius"] + 0.5 * body["height"]


def body(
    shape: dict,
    position,
    material: str = "rubber",
    color: str = "gray",
    mass: float | None = None,
    orientation=(0.0, 0.0, 0.0, 1.0),
    velocity=(0.0, 0.0, 0.0),
    angular_velocity=(0.0, 0.0, 0.0),
    friction: float | None = None,
    restitution: float | None = None,
    rolling_friction: float | None = None,
    spinning_friction: float | None = None,
    linear_damping: float = 0.0,
    angular_damping: float = 0.0,
) -> dict:
    """A dynamic body of a named material (mass from its density unless given; friction,
    restitution and rolling friction from the material unless given). `effective_restitution` is filled in by the
    engine's measurement when the scenario finishes the spec (see finish())."""
    if material not in MATERIALS:
        raise ValueError(f"unknown material {material!r}; expected one of {', '.join(MATERIALS)}")
    if color not in COLORS:
        raise ValueError(f"unknown colour {color!r}; expected one of {', '.join(COLORS)}")
    m = MATERIALS[material]
    b = dict(shape)
    b.update(
        material=material,
        color=color,
        friction=float(m["friction"] if friction is None else friction),
        restitution=float(m["restitution"] if restitution is None else restitution),
        rolling_friction=float(
            m["rolling_resistance"] * _roll_radius(b) if rolling_friction is None else rolling_friction
        ),
        spinning_friction=float(
            m["rolling_resistance"] * _roll_radius(b) if spinning_friction is None else spinning_friction
        ),
        linear_damping=float(linear_damping),
        angular_damping=float(angular_damping),
        position=_vec3(position),
        orientation=[float(v) for v in orientation],
        velocity=_vec3(velocity),
        angular_velocity=_vec3(angular_velocity),
    )
    b["mass"] = float(m["density"] * shape_volume(b) if mass is None else mass)
    return b


def sphere(position, radius, **kw) -> dict:
    return body({"shape": "sphere", "radius": float(radius)}, position, **kw)


def box(position, size, **kw) -> dict:
    """A cuboid of full edge lengths size = (lx, ly, lz)."""
    return body({"shape": "box", "size": _vec3(size)}, position, **kw)


def cylinder(position, radius, height, **kw) -> dict:
    """A cylinder whose axis is the body's z axis."""
    return body({"shape": "cylinder", "radius": float(radius), "height": float(height)}, position, **kw)


def capsule(position, radius, height, **kw) -> dict:
    """A cylinder of `height` along the body's z axis capped by two hemispheres of `radius`."""
    return body({"shape": "capsule", "radius": float(radius), "height": float(height)}, position, **kw)


# ---------------------------------------------------------------- static geometry


def floor(extent=6.0, color="gray", material="floor", **surface) -> dict:
    """The plane z = 0 (infinite for physics; `extent` is the half size a renderer draws)."""
    s = dict(FLOOR, **surface)
    return {
        "kind": "plane",
        "normal": [0.0, 0.0, 1.0],
        "offset": 0.0,
        "extent": float(extent),
        "color": color,
        "material": material,
        **{k: float(v) for k, v in s.items()},
    }


def static_box(
    position, size, orientation=(0.0, 0.0, 0.0, 1.0), color="gray", material="wood", **surface
) -> dict:
    """An immovable cuboid (a ramp, wall, table edge or support bar)."""
    s = dict(FLOOR, **surface)
    return {
        "kind": "box",
        "size": _vec3(size),
        "position": _vec3(position),
        "orientation": [float(v) for v in orientation],
        "color": color,
        "material": material,
        **{k: float(v) for k, v in s.items()},
    }


# ---------------------------------------------------------------- constraints


def point_to_point(a: int, b: int, anchor_a, anchor_b) -> dict:
    """A ball joint: anchor_a (in body a's frame) stays on anchor_b (in b's frame; world if b = -1)."""
    return {"kind": "point_to_point", "a": int(a), "b": int(b), "anchor_a": _vec3(anchor_a),
            "anchor_b": _vec3(anchor_b)}  # fmt: skip


# ---------------------------------------------------------------- placement


def overlaps(candidate: dict, others: list[dict], margin: float = 0.0) -> bool:
    """Conservative overlap test by bounding spheres: True if `candidate` might touch any of `others`."""
    r = body_extent(candidate)
    x, y, z = candidate["position"]
    for o in others:
        ox, oy, oz = o["position"]
        if math.sqrt((x - ox) ** 2 + (y - oy) ** 2 + (z - oz) ** 2) < r + body_extent(o) + margin:
            return True
    return False


def place(rng, make, others: list[dict], x_range, y_range, z_range, tries: int = 200, margin: float = 0.01):
    """Sample positions until `make((x, y, z))` returns a body clear of `others`; None if none fits."""
    for _ in range(tries):
        pos = (float(rng.uniform(*x_range)), float(rng.uniform(*y_range)), float(rng.uniform(*z_range)))
        candidate = make(pos)
        if not overlaps(candidate, others, margin):
            return candidate
    return None
