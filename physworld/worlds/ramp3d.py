"""3D ramp scenes: bodies rolling down an inclined plane onto the floor.

Each function takes (difficulty 1-5, numpy Generator) and returns a 3D spec (see spec3d.py). Its
docstring's first sentence says what happens and its 'Difficulty:' paragraph says what scales;
both feed docs/SCENARIOS.md.
"""

from __future__ import annotations

import math

from physworld.worlds.bullet import finish
from physworld.worlds.spec3d import COLORS, cylinder, look_at, new_spec, quat_from_euler, sphere, static_box
from physworld.worlds.spec3d import floor as floor_plane

BOUNDS = {"min": [-8.0, -8.0, -0.5], "max": [8.0, 8.0, 6.0]}


def ramp_roll_3d(difficulty, rng):
    """Balls and cylinders lying on their sides start on an inclined plank and roll down it onto the
    floor and towards a wall; the cylinders, with more of their mass far from their axis, roll down
    more slowly than the balls.

    Difficulty: 2 to 6 rollers (one more per level) on a slope that steepens from 15-20 to 35-40
    degrees; level 1 starts at rest, higher levels push all rollers down the slope at up to 0.3 m/s
    per level above the first.
    """
    spec = new_spec("", camera=look_at((1.5, -11.5, 3.5), (1.5, 0.0, 0.8)), bounds=BOUNDS)
    length, width, thick = 4.0, 2.4, 0.2
    angle = math.radians(float(rng.uniform(15, 20)) + 5 * (difficulty - 1))
    foot_x = 0.5  # where the plank's top surface meets the floor; it descends towards +x
    down = (math.cos(angle), 0.0, -math.sin(angle))
    normal = (math.sin(angle), 0.0, math.cos(angle))
    top_centre = (foot_x - length / 2 * math.cos(angle), 0.0, length / 2 * math.sin(angle))
    centre = [top_centre[k] - normal[k] * thick / 2 for k in range(3)]
    spec["statics"] = [
        floor_plane(extent=BOUNDS["max"][0]),
        static_box(centre, (length, width, thick), orientation=quat_from_euler(pitch=angle), color="gray"),
        static_box((6.0, 0.0, 0.4), (0.3, 6.0, 0.8), color="brown", restitution=0.5),  # the wall
    ]
    n = 1 + difficulty
    push = float(rng.uniform(0.0, 0.3)) * (difficulty - 1)
    lanes = [(-width / 2 + 0.3) + (width - 0.6) * (k + 0.5) / n for k in range(n)]
    colors = list(COLORS)
    for k, lane in enumerate(lanes):
        r = float(rng.uniform(0.12, min(0.2, (width - 0.6) / n / 2 - 0.01)))
        along = float(rng.uniform(0.3, 1.2))  # distance down from the plank's top end
        base = [top_centre[i] + down[i] * (along - length / 2) for i in range(3)]
        base[1] = lane
        pos = [base[i] + normal[i] * (r + 0.002) for i in range(3)]
        kw = dict(material=("rubber", "wood")[k % 2], color=colors[int(rng.integers(len(colors)))],
                  velocity=[push * d for d in down])  # fmt: skip
        if k % 2 == 0:
            spec["bodies"].append(sphere(pos, r, **kw))
        else:
            spec["bodies"].append(cylinder(pos, r, 0.25, orientation=quat_from_euler(roll=math.pi / 2), **kw))
    spec["description"] = (
        f"Ramp roll: {n} balls and cylinders roll down a {math.degrees(angle):.0f} degree plank onto the floor."
    )
    return finish(spec)


SCENARIOS = {"ramp_roll_3d": ramp_roll_3d}
