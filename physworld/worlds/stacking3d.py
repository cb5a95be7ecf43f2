"""3D stacking scenes: towers of blocks and rows of dominos on a floor.

Each function takes (difficulty 1-5, numpy Generator) and returns a 3D spec (see spec3d.py). Its
docstring's first sentence says what happens and its 'Difficulty:' paragraph says what scales;
both feed docs/SCENARIOS.md.
"""

from __future__ import annotations

import math

from physworld.worlds.bullet import finish
from physworld.worlds.spec3d import COLORS, box, look_at, new_spec, quat_from_euler
from physworld.worlds.spec3d import floor as floor_plane

BOUNDS = {"min": [-8.0, -8.0, -0.5], "max": [8.0, 8.0, 8.0]}


def tower_3d(difficulty, rng):
    """A single column of wooden cubes stands on the floor; from level 3 each block is set off-centre
    from the one below in one direction, and from level 4 so far that the top of the tower falls.

    Difficulty: 3 to 11 blocks (2 more per level). Level 1 is centred, level 2 within 5 mm, and both
    stand still; level 3 leans to 40-70% of the lean that would topple it (a step of s/n per block
    for n blocks of size s) and still stands; levels 4 and 5 lean 1.2-1.5 and 1.5-2 times that much.
    """
    n = 1 + 2 * difficulty
    s = float(rng.uniform(0.35, 0.45))
    # The camera backs off with the tower's height so the whole tower, and where it falls, is in view.
    yaw, tall = float(rng.uniform(0, 2 * math.pi)), n * s
    dist = 2.4 * tall + 3.0
    camera = look_at((dist * math.cos(yaw), dist * math.sin(yaw), 0.6 * tall + 0.5), (0.0, 0.0, 0.4 * tall))
    spec = new_spec("", camera=camera, bounds=BOUNDS)
    spec["statics"] = [floor_plane(extent=BOUNDS["max"][0])]
    critical = s / n
    lean = {1: 0.0, 2: 0.0, 3: rng.uniform(0.4, 0.7), 4: rng.uniform(1.2, 1.5), 5: rng.uniform(1.5, 2.0)}[
        difficulty
    ]
    step = float(lean) * critical
    direction = float(rng.uniform(0, 2 * math.pi))
    colors = list(COLORS)
    x = y = 0.0
    for k in range(n):
        if difficulty == 2:
            x, y = float(rng.uniform(-0.005, 0.005)), float(rng.uniform(-0.005, 0.005))
        elif k:
            x, y = x + step * math.cos(direction), y + step * math.sin(direction)
        spec["bodies"].append(
            box(
                (x, y, s / 2 + k * s),
                (s, s, s),
                material="wood",
                color=colors[int(rng.integers(len(colors)))],
            )
        )
    topples = "its top falls" if difficulty >= 4 else "it stands"
    spec["description"] = f"Tower: {n} wooden cubes stacked in a column; {topples}."
    return finish(spec)


def dominos_3d(difficulty, rng):
    """A row of thin wooden dominos stands upright on the floor; the first is tipped over and the chain
    falls one into the next down to the last; at levels 4-5 the row curves.

    Difficulty: 7 to 19 dominos (3 more per level); the first is tipped at 2 to 4 rad/s; the row is
    straight at levels 1-3 and bends through 45-90 degrees at levels 4-5.
    """
    n = 4 + 3 * difficulty
    thick, width, height = 0.06, 0.3, 0.6
    gap = float(rng.uniform(0.3, 0.36))  # centre to centre, about half the height: each hits the next
    bend = math.radians(float(rng.uniform(45, 90))) if difficulty >= 4 else 0.0
    bend *= 1 if rng.integers(2) else -1
    heading = float(rng.uniform(0, 2 * math.pi))
    # Positions along a path whose heading turns uniformly by `bend`, centred on the origin.
    xs, ys, yaws = [0.0], [0.0], [heading]
    for k in range(1, n):
        yaws.append(heading + bend * k / (n - 1))
        mid = 0.5 * (yaws[-1] + yaws[-2])
        xs.append(xs[-1] + gap * math.cos(mid))
        ys.append(ys[-1] + gap * math.sin(mid))
    cx, cy = sum(xs) / n, sum(ys) / n
    # The bodies are centred on the origin; the camera looks at it from the side of the row's mean
    # heading, far enough back to see the whole row.
    cam_dir = heading + bend / 2 - math.pi / 2
    dist = 1.2 * gap * n + 2.5
    camera = look_at((dist * math.cos(cam_dir), dist * math.sin(cam_dir), 0.5 * dist), (0.0, 0.0, 0.3))
    spec = new_spec("", camera=camera, bounds=BOUNDS)
    spec["statics"] = [floor_plane(extent=BOUNDS["max"][0])]
    push = 1.5 + 0.5 * difficulty
    colors = list(COLORS)
    for k in range(n):
        b = box(
            (xs[k] - cx, ys[k] - cy, height / 2),
            (thick, width, height),
            material="wood",
            color=colors[k % len(colors)],
            orientation=quat_from_euler(yaw=yaws[k]),
        )
        if k == 0:
            # Tip the first domino forwards about its own y axis (the row runs along its x axis);
            # the angular velocity is in the world frame.
            axis = (-math.sin(yaws[0]), math.cos(yaws[0]), 0.0)
            b["angular_velocity"] = [push * a for a in axis]
            b["velocity"] = [
                push * height / 2 * math.cos(yaws[0]),
                push * height / 2 * math.sin(yaws[0]),
                0.0,
            ]
        spec["bodies"].append(b)
    shape = "curved" if bend else "straight"
    spec["description"] = f"Dominos: the first of {n} dominos in a {shape} row is tipped and the row falls."
    return finish(spec)


SCENARIOS = {"tower_3d": tower_3d, "dominos_3d": dominos_3d}
