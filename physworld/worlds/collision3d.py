"""3D collision scenes: balls meeting at speed on a table.

Each function takes (difficulty 1-5, numpy Generator) and returns a 3D spec (see spec3d.py). Its
docstring's first sentence says what happens and its 'Difficulty:' paragraph says what scales;
both feed docs/SCENARIOS.md.
"""

from __future__ import annotations

import math

from physworld.worlds.bullet import finish
from physworld.worlds.spec3d import floor as floor_plane
from physworld.worlds.spec3d import look_at, new_spec, sphere, static_box

TABLE = (2.54, 1.27)  # m, a 9-foot pool table's playing surface
BALL_RADIUS = 0.028575  # m, a regulation pool ball (57.15 mm)
BALL_MASS = 0.17  # kg
RACK_COLORS = ("yellow", "blue", "red", "purple", "brown", "green", "cyan", "gray")


def billiards_3d(difficulty, rng):
    """A cue ball is struck into a triangular rack of pool balls on a cloth-covered table with four
    cushions; the balls slide, start rolling, scatter and rebound off the cushions.

    Difficulty: the rack grows from 1 to 5 rows (1, 3, 6, 10, 15 balls) and the cue speed rises from
    about 1.5 to 4.5 m/s, with a wider aiming error.
    """
    lx, ly = TABLE
    r = BALL_RADIUS
    bounds = {"min": [-lx / 2 - 0.3, -ly / 2 - 0.3, -0.1], "max": [lx / 2 + 0.3, ly / 2 + 0.3, 1.0]}
    spec = new_spec("", camera=look_at((-2.2, -1.6, 1.9), (0.15, 0.0, 0.0)), bounds=bounds)
    # The cloth: a floor of its own friction; balls get a small rolling resistance (phenolic on baize).
    spec["statics"] = [floor_plane(extent=lx / 2 + 0.2, color="green", material="cloth", friction=0.2)]
    t, h = 0.1, 0.045  # cushion thickness and height (above the ball's centre, below its top... about)
    for sx, sy, size in (
        (0.0, ly / 2 + t / 2, (lx + 2 * t, t, h)),
        (0.0, -ly / 2 - t / 2, (lx + 2 * t, t, h)),
        (lx / 2 + t / 2, 0.0, (t, ly, h)),
        (-lx / 2 - t / 2, 0.0, (t, ly, h)),
    ):
        spec["statics"].append(
            static_box(
                (sx, sy, h / 2), size, color="brown", material="cushion", friction=0.2, restitution=0.85
            )
        )
    ball = dict(material="plastic", restitution=0.95, friction=0.2, rolling_friction=0.01 * r, spinning_friction=0.01 * r,
                mass=BALL_MASS)  # fmt: skip
    apex_x = float(rng.uniform(0.3, 0.5))
    cy = float(rng.uniform(-0.1, 0.1))
    gap = 2 * r + 0.0005
    k = 0
    for row in range(difficulty):
        for j in range(row + 1):
            x = apex_x + row * gap * math.sqrt(3) / 2
            y = cy + (j - row / 2) * gap
            spec["bodies"].append(sphere((x, y, r), r, color=RACK_COLORS[k % len(RACK_COLORS)], **ball))
            k += 1
    speed = float(rng.uniform(0.75, 1.5)) + 0.6 * difficulty
    cue = (float(rng.uniform(-0.9, -0.6)), cy + float(rng.uniform(-0.1, 0.1)))
    aim = math.atan2(cy - cue[1], apex_x - cue[0]) + float(rng.normal(0, 0.005 * difficulty))
    cue_ball = sphere((cue[0], cue[1], r), r, color="gray", **ball)
    cue_ball["velocity"] = [speed * math.cos(aim), speed * math.sin(aim), 0.0]
    spec["bodies"].append(cue_ball)
    spec["description"] = f"Billiards: a cue ball strikes a rack of {k} balls on a table."
    return finish(spec)


SCENARIOS = {"billiards_3d": billiards_3d}
