"""3D constraint scenes: bobs hanging from ball joints.

Each function takes (difficulty 1-5, numpy Generator) and returns a 3D spec (see spec3d.py). Its
docstring's first sentence says what happens and its 'Difficulty:' paragraph says what scales;
both feed docs/SCENARIOS.md.
"""

from __future__ import annotations

import math

from physworld.worlds.bullet import finish
from physworld.worlds.spec3d import (
    COLORS,
    look_at,
    new_spec,
    point_to_point,
    quat_from_euler,
    quat_multiply,
    sphere,
    static_box,
)
from physworld.worlds.spec3d import floor as floor_plane

BOUNDS = {"min": [-6.0, -6.0, -0.5], "max": [6.0, 6.0, 6.0]}
# m between pivots: at 0.6 m bobs met in 5 of 18 level 3-5 scenes (200 frames); at 1.1 m in 1 of 48
# level 2-5 scenes (240 frames)
SPACING = 1.1


def hang(spec: dict, pivot, length: float, radius: float, angle: float, azimuth: float = 0.0, **kw) -> int:
    """Add a sphere on a rigid massless rod of `length` from a world pivot (a ball joint), pulled
    `angle` rad from the vertical in the vertical plane at `azimuth`; returns its index. The bob is
    turned with the rod, so the joint holds from the first step."""
    d = (math.sin(angle) * math.cos(azimuth), math.sin(angle) * math.sin(azimuth), -math.cos(angle))
    pos = [pivot[k] + length * d[k] for k in range(3)]
    orientation = quat_multiply(quat_from_euler(yaw=azimuth), quat_from_euler(pitch=-angle))
    spec["bodies"].append(sphere(pos, radius, orientation=orientation, **kw))
    i = len(spec["bodies"]) - 1
    spec["constraints"].append(point_to_point(i, -1, (0.0, 0.0, length), pivot))
    return i


def pendulum_3d(difficulty, rng):
    """Metal bobs on rigid rods swing under gravity from ball joints below a bar after release from an
    angle; from level 3 some are also pushed sideways, so they trace ellipses (spherical pendulums).
    Level 1 is a single small-angle pendulum (4-8 degrees) whose period is 2*pi*sqrt(L/g) for a
    point bob.

    Difficulty: one pendulum per level (1 to 5), 1.1 m apart so they seldom touch; release angles
    rise from 4-8 degrees (level 1) to 20-30 (level 2) and 40-60 degrees (levels 4-5); from level 3
    every other bob also gets a sideways speed of 0.3-0.8 m/s.
    """
    spec = new_spec("", camera=look_at((5.5, -5.5, 2.5), (0.0, 0.0, 1.4)), bounds=BOUNDS)
    spec["statics"] = [floor_plane(extent=BOUNDS["max"][0])]
    n = difficulty
    pivot_z = 2.8
    span = SPACING * (n - 1)
    spec["statics"].append(
        static_box((0.0, 0.0, pivot_z + 0.06), (0.3, span + 0.6, 0.06), color="gray", material="metal")
    )
    lo, hi = {1: (4, 8), 2: (20, 30), 3: (30, 45), 4: (40, 60), 5: (40, 60)}[difficulty]
    colors = list(COLORS)
    for k in range(n):
        pivot = (0.0, -span / 2 + SPACING * k, pivot_z)
        length = float(rng.uniform(1.0, 2.0))
        angle = math.radians(float(rng.uniform(lo, hi))) * (1 if rng.integers(2) else -1)
        i = hang(
            spec, pivot, length, 0.08, angle, material="metal", color=colors[int(rng.integers(len(colors)))]
        )
        if difficulty >= 3 and k % 2 == 0:
            side = float(rng.uniform(0.3, 0.8)) * (1 if rng.integers(2) else -1)
            spec["bodies"][i]["velocity"] = [0.0, side, 0.0]
            # The rod turns with the bob: angular velocity (pivot to bob) x velocity / length^2.
            rx, ry, rz = (spec["bodies"][i]["position"][j] - pivot[j] for j in range(3))
            spec["bodies"][i]["angular_velocity"] = [-rz * side / length**2, 0.0, rx * side / length**2]
    spec["description"] = f"Pendulum: {n} bob{'s' if n > 1 else ''} swing{'' if n > 1 else 's'} from a bar."
    return finish(spec)


def newtons_cradle_3d(difficulty, rng):
    """A row of steel balls hangs from ball joints below a bar, neighbours 1 mm apart; end balls are
    pulled out along the row and released, and the swing passes along the row to the far end. After
    the first few exchanges PyBullet, which solves touching balls together, spreads the motion over
    the row, unlike a real cradle.

    Difficulty: 4 to 8 balls (one more per level); one ball is pulled out at levels 1-2, two at
    levels 3-4, and two on the left plus one on the right at level 5; the pull-back angle rises from
    15-25 to 39-49 degrees.
    """
    spec = new_spec("", camera=look_at((0.0, -4.0, 1.8), (0.0, 0.0, 1.4)), bounds=BOUNDS)
    spec["statics"] = [floor_plane(extent=BOUNDS["max"][0])]
    n = 3 + difficulty
    r = 0.1
    gap = 0.001
    length = float(rng.uniform(0.9, 1.1))
    pivot_z = 2.4
    pitch = 2 * r + gap
    span = pitch * (n - 1)
    spec["statics"].append(
        static_box((0.0, 0.0, pivot_z + 0.05), (span + 0.4, 0.1, 0.05), color="gray", material="metal")
    )
    left = 1 if difficulty <= 2 else 2
    right = 1 if difficulty == 5 else 0
    angle = math.radians(float(rng.uniform(15, 25)) + 6 * (difficulty - 1))
    steel = dict(material="metal", color="gray", restitution=1.0, friction=0.0, rolling_friction=0.0,
                 spinning_friction=0.0)  # fmt: skip
    for k in range(n):
        pivot = (-span / 2 + pitch * k, 0.0, pivot_z)
        if k < left:
            a = -angle  # pulled out to the left (towards -x) along the row, the group together
        elif k >= n - right:
            a = angle
        else:
            a = 0.0
        hang(spec, pivot, length, r, a, **steel)
    # Pulled balls share one angle, so on parallel rods they keep their 1 mm gaps.
    spec["description"] = (
        f"Newton's cradle: {left + right} of {n} hanging steel balls are pulled out and released."
    )
    return finish(spec)


SCENARIOS = {"pendulum_3d": pendulum_3d, "newtons_cradle_3d": newtons_cradle_3d}
