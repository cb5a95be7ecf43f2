"""Ramp scenarios: bodies rolling, sliding and bouncing down static slopes, funnels and pegs.

Each function takes (difficulty 1-5, numpy Generator) and returns a spec (see spec.py). Its
docstring's first sentence says what happens and its 'Difficulty:' paragraph says what scales;
both feed docs/SCENARIOS.md.

A body resting on a slope touches it exactly: its centre lies on the surface's normal, its own
half thickness (plus the segment's radius) away from the surface line.
"""

from __future__ import annotations

import math

import numpy as np

from physworld.worlds.spec import (
    HEIGHT,
    WIDTH,
    arena,
    box,
    circle,
    new_spec,
    place,
    segment,
    static_circle,
    static_poly,
)


def ramp_roll(difficulty: int, rng: np.random.Generator) -> dict:
    """Solid discs and hollow cylinders start on an inclined wedge and roll down it onto the floor;
    the hollow ones, with more of their mass at the rim, roll down more slowly.

    Difficulty: 2 to 6 rollers (one more per level) on a slope that steepens from 15-20 to 35-40
    degrees; level 1 starts at rest, higher levels push all rollers off together at up to 30 px/s
    per level above the first.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.7, elasticity=0.3)
    theta = math.radians(float(rng.uniform(15, 20)) + 5 * (difficulty - 1))
    top = float(rng.uniform(330, 420))
    run = min(top / math.tan(theta), 560.0)
    top = run * math.tan(theta)
    side = 1.0 if rng.random() < 0.5 else -1.0  # +1: the ramp rises against the left wall
    wall_x = 0.0 if side > 0 else WIDTH
    spec["statics"].append(
        static_poly([(wall_x, 0), (wall_x + side * run, 0), (wall_x, top)], friction=0.8, elasticity=0.2)
    )
    down = (side * math.cos(theta), -math.sin(theta))  # unit vector down the slope
    normal = (side * math.sin(theta), math.cos(theta))  # unit outward normal of the slope
    n = 1 + difficulty
    # One push for all, so that no roller starts out catching up with the one ahead.
    speed = float(rng.uniform(0, 30 * (difficulty - 1)))
    u = 10.0  # distance along the slope from the top corner
    for _ in range(n):
        r = float(rng.uniform(12, 20))
        mass = float(rng.uniform(1.0, 2.0))
        u += r + float(rng.uniform(8, 30))
        x = wall_x + u * down[0] + r * normal[0]
        y = top + u * down[1] + r * normal[1]
        hollow = rng.random() < 0.5  # a thin-walled tube, which rolls more slowly than a disc
        body = circle(
            (x, y),
            r,
            mass=mass,
            velocity=(speed * down[0], speed * down[1]),
            angular_velocity=-side * speed / r,
            friction=0.8,
            elasticity=0.2,
            inner_radius=0.85 * r if hollow else 0.0,
        )
        spec["bodies"].append(body)
        u += r
    spec["description"] = (
        f"Ramp roll: {n} discs and tubes roll down a {math.degrees(theta):.0f} degree slope."
    )
    return spec


def ski_jump(difficulty: int, rng: np.random.Generator) -> dict:
    """A low-friction block slides down a straight in-run, through a curved transition and off an
    upturned lip, flies through the air and lands on the floor beyond.

    Difficulty: 1, 1, 2, 2, 3 skiers (levels 1-5) starting one behind another, pushed off at 0 to
    200 px/s (50 px/s more per level); the lip's take-off angle is 8-25 degrees at every level.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.4, elasticity=0.1)
    seg_r = 4.0
    beta = math.radians(float(rng.uniform(35, 45)))  # in-run slope
    gamma = math.radians(float(rng.uniform(8, 25)))  # take-off angle at the lip
    radius = float(rng.uniform(120, 170))
    n = (difficulty + 1) // 2
    sizes = [
        (float(rng.uniform(22, 30)), float(rng.uniform(10, 14)), float(rng.uniform(15, 30))) for _ in range(n)
    ]
    need = 12 + sum(w + gap for w, _, gap in sizes)  # in-run length the skiers take up
    # Far enough right that the in-run below the arc's foot is long enough for every skier.
    lip_x = max(
        float(rng.uniform(330, 380)), 40 + radius * (math.sin(gamma) + math.sin(beta)) + need * math.cos(beta)
    )
    lip = (lip_x, float(rng.uniform(110, 160)))
    # A concave-up arc whose tangent turns from -beta to +gamma: p(tau) = c + R (sin tau, -cos tau).
    c = (lip[0] - radius * math.sin(gamma), lip[1] + radius * math.cos(gamma))
    taus = np.linspace(-beta, gamma, 14)
    arc = [(c[0] + radius * math.sin(float(t)), c[1] - radius * math.cos(float(t))) for t in taus]
    foot = arc[0]
    # The straight in-run rises from the arc's foot towards the top left.
    length = min((foot[0] - 30) / math.cos(beta), (HEIGHT - 100 - foot[1]) / math.sin(beta))
    start = (foot[0] - length * math.cos(beta), foot[1] + length * math.sin(beta))
    profile = [start, *arc]
    for a, b in zip(profile, profile[1:], strict=False):
        spec["statics"].append(segment(a, b, seg_r, friction=0.2, elasticity=0.05))
        # Fill the hill under the surface (convex trapezoids), so nothing slides in beneath it.
        spec["statics"].append(
            static_poly([(a[0], 0), (b[0], 0), (b[0], b[1]), (a[0], a[1])], friction=0.4, elasticity=0.1)
        )
    speed = 50.0 * (difficulty - 1)
    down = (math.cos(beta), -math.sin(beta))
    normal = (math.sin(beta), math.cos(beta))
    u = 12.0
    for w, h, gap in sizes:
        u += w / 2
        # Flat on the in-run: centre half a block (plus the segment's radius) off the surface line.
        x = start[0] + u * down[0] + (seg_r + h / 2) * normal[0]
        y = start[1] + u * down[1] + (seg_r + h / 2) * normal[1]
        spec["bodies"].append(
            box(
                (x, y),
                w,
                h,
                mass=1.0,
                angle=-beta,
                velocity=(speed * down[0], speed * down[1]),
                friction=0.1,
                elasticity=0.1,
            )
        )
        u += w / 2 + gap
    spec["description"] = (
        f"Ski jump: {n} block(s) slide down a curved ramp and fly off a {math.degrees(gamma):.0f} degree lip."
    )
    return spec


def funnel(difficulty: int, rng: np.random.Generator) -> dict:
    """Balls dropped above a V-shaped funnel of two static walls roll down its sides, crowd at the
    neck and pour through the opening onto the floor below.

    Difficulty: 10 to 50 balls (10 more per level) and a neck that narrows from about 6 to 3.6
    ball diameters, so the flow jams more at higher levels.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.5, elasticity=0.3)
    r_max = 10.0
    neck = (6.0 - 0.6 * (difficulty - 1)) * 2 * r_max
    cx = float(rng.uniform(340, 460))
    y_neck = float(rng.uniform(180, 240))
    y_rim = float(rng.uniform(440, 460))
    spec["statics"].append(segment((0, y_rim), (cx - neck / 2, y_neck), friction=0.3, elasticity=0.3))
    spec["statics"].append(segment((WIDTH, y_rim), (cx + neck / 2, y_neck), friction=0.3, elasticity=0.3))
    n = 10 * difficulty
    balls: list[dict] = []
    for _ in range(n):
        r = float(rng.uniform(7, r_max))
        mass = r * r / 100

        def make(pos, r=r, mass=mass):
            return circle(pos, r, mass=mass, friction=0.3, elasticity=0.3)

        # Above the rim: the walls rise to y_rim + their radius at the world's sides.
        body = place(rng, make, balls, (r + 2, WIDTH - r - 2), (y_rim + 5 + r + 3, HEIGHT - r - 2))
        if body is not None:
            balls.append(body)
    spec["bodies"] = balls
    spec["description"] = f"Funnel: {len(balls)} balls pour through a funnel {neck:.0f} px wide at the neck."
    return spec


def plinko(difficulty: int, rng: np.random.Generator) -> dict:
    """Balls dropped from the top bounce down through a staggered grid of static pegs and come to rest
    in bins along the floor.

    Difficulty: 4 to 20 balls (4 more per level) through 6 to 10 rows of pegs (one more per level),
    dropped over a band that widens by 30 px per level with sideways speeds up to 15 px/s per level.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.4, elasticity=0.4)
    rows = 5 + difficulty
    pitch = float(rng.uniform(48, 56))
    peg_r = float(rng.uniform(3.5, 5.0))
    y_top, y_bottom = float(rng.uniform(440, 470)), float(rng.uniform(150, 170))
    dy = (y_top - y_bottom) / (rows - 1)
    x_off = float(rng.uniform(0, pitch))
    for j in range(rows):
        y = y_top - j * dy
        x = x_off + (0.5 * pitch if j % 2 else 0.0)
        while x < WIDTH - 20:
            if x > 20:
                spec["statics"].append(static_circle((x, y), peg_r, friction=0.1, elasticity=0.4))
            x += pitch
    bin_h = 90.0
    x = x_off + 0.25 * pitch
    while x < WIDTH - 10:
        if x > 10:
            spec["statics"].append(segment((x, 0), (x, bin_h), 3.0, friction=0.4, elasticity=0.3))
        x += pitch
    n = 4 * difficulty
    half = 90.0 + 30 * difficulty
    cx = float(rng.uniform(WIDTH / 2 - 80, WIDTH / 2 + 80))
    balls: list[dict] = []
    for _ in range(n):
        r = float(rng.uniform(7, 9))
        vx = float(rng.uniform(-15, 15)) * difficulty

        def make(pos, r=r, vx=vx):
            return circle(pos, r, mass=0.5, velocity=(vx, 0), friction=0.1, elasticity=0.4)

        body = place(rng, make, balls, (cx - half, cx + half), (y_top + peg_r + r + 8, HEIGHT - r - 2))
        if body is not None:
            balls.append(body)
    spec["bodies"] = balls
    spec["description"] = f"Plinko: {len(balls)} balls bounce through {rows} rows of pegs into bins."
    return spec


def marble_run(difficulty: int, rng: np.random.Generator) -> dict:
    """Marbles roll down a zig-zag of inclined static tracks between two side rails, dropping off the
    low end of each track onto the next one below and turning back on every track.

    Difficulty: 2 to 6 marbles (one more per level) on tracks that steepen from 18-22 to 26-30 degrees,
    started down the top track at up to 40 px/s per level above the first.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.6, elasticity=0.3)
    seg_r = 3.0
    r_max = 10.0
    width = float(rng.uniform(200, 260))
    x_left = float(rng.uniform(40, WIDTH - 40 - width))
    x_right = x_left + width
    theta = math.radians(float(rng.uniform(18, 22)) + 2 * (difficulty - 1))
    gap = 2 * r_max + 2 * seg_r + float(rng.uniform(12, 20))  # where a marble drops to the next track
    clearance = 2 * r_max + 2 * seg_r + float(rng.uniform(14, 22))  # between a track's low end and the next
    drop = (width - gap) * math.tan(theta)
    y_high = HEIGHT - 60.0
    tracks = []
    while y_high - drop >= 40 and len(tracks) < 5:
        tracks.append((y_high, y_high - drop))
        y_high = y_high - drop - clearance
    for k, (hi, lo) in enumerate(tracks):
        if k % 2 == 0:  # rising against the left rail, falling to the right
            a, b = (x_left, hi), (x_right - gap, lo)
        else:
            a, b = (x_right, hi), (x_left + gap, lo)
        spec["statics"].append(segment(a, b, seg_r, friction=0.8, elasticity=0.2))
    rail_top = tracks[0][0] + 2 * r_max + 20
    spec["statics"].append(
        segment((x_left - seg_r, 0), (x_left - seg_r, rail_top), seg_r, friction=0.5, elasticity=0.3)
    )
    spec["statics"].append(
        segment((x_right + seg_r, 0), (x_right + seg_r, rail_top), seg_r, friction=0.5, elasticity=0.3)
    )
    down = (math.cos(theta), -math.sin(theta))
    normal = (math.sin(theta), math.cos(theta))
    n = 1 + difficulty
    # One push for all. Six marbles with their gaps take at most 148 px of the top track, which is
    # at least (200 - 46) / cos(30 deg) = 178 px long, so every marble starts on it.
    speed = float(rng.uniform(0, 40 * (difficulty - 1)))
    u = 4.0
    for _ in range(n):
        r = float(rng.uniform(7, r_max))
        u += r + float(rng.uniform(1, 4))
        x = x_left + u * down[0] + (seg_r + r) * normal[0]
        y = tracks[0][0] + u * down[1] + (seg_r + r) * normal[1]
        spec["bodies"].append(
            circle(
                (x, y),
                r,
                mass=r * r / 100,
                velocity=(speed * down[0], speed * down[1]),
                angular_velocity=-speed / r,
                friction=0.6,
                elasticity=0.2,
            )
        )
        u += r
    spec["description"] = f"Marble run: {n} marbles roll down a zig-zag of {len(tracks)} tracks."
    return spec


SCENARIOS = {
    "ramp_roll": ramp_roll,
    "ski_jump": ski_jump,
    "funnel": funnel,
    "plinko": plinko,
    "marble_run": marble_run,
}
