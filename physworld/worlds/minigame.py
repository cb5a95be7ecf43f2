"""Minigame scenarios: the physics of familiar games, with scripted players.

Each function takes (difficulty 1-5, numpy Generator) and returns a spec (see spec.py). Its
docstring's first sentence says what happens and its 'Difficulty:' paragraph says what scales;
both feed docs/SCENARIOS.md.

Players are kinematic bodies driven by the engine's controllers: "oscillate" for flippers, "track"
for paddles that follow the balls.
"""

from __future__ import annotations

import math

from physworld.worlds.spec import (
    GRAVITY,
    HEIGHT,
    WIDTH,
    arena,
    box,
    circle,
    new_spec,
    place,
    poly,
    segment,
    static_circle,
)

G = -GRAVITY[1]


def _aim(start, target, apex_y, g=G):
    """Launch velocity of a ballistic arc from `start` through `target` that peaks at height `apex_y`
    (above both), reaching the target on its way down."""
    vy = math.sqrt(2 * g * (apex_y - start[1]))
    t = vy / g + math.sqrt(2 * (apex_y - target[1]) / g)
    return (target[0] - start[0]) / t, vy


def angry_birds(difficulty, rng):
    """Birds are launched from the left in arcs at a frame of posts and beams sheltering round targets.

    Every block rests exactly on the floor or on the beam below it, each target on the floor or a
    beam. Difficulty: 1 to 3 birds (levels 1-2, 3-4, 5); the structure grows from 1 bay of 1 storey
    to 3 bays of 3 storeys (1x1, 2x1, 2x2, 3x2, 3x3), with a target in every bay and one on top.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.8, elasticity=0.2)
    bays = [1, 2, 2, 3, 3][difficulty - 1]
    storeys = [1, 1, 2, 2, 3][difficulty - 1]
    post_w, beam_h = 12.0, 12.0
    post_h = float(rng.uniform(46, 58))
    span = float(rng.uniform(40, 50))  # clear width inside a bay
    bay_w = span + 2 * post_w
    pig_r = float(rng.uniform(10, min(13, span / 2 - 4, post_h / 2 - 4)))
    x0 = float(rng.uniform(480, WIDTH - 40 - bays * (bay_w + 4)))
    blocks, pigs = [], []
    for s in range(storeys):
        floor_y = s * (post_h + beam_h)
        for b in range(bays):
            left = x0 + b * (bay_w + 4)
            for px in (left + post_w / 2, left + bay_w - post_w / 2):
                blocks.append(
                    box((px, floor_y + post_h / 2), post_w, post_h, mass=0.8, friction=0.8, elasticity=0.1)
                )
            blocks.append(
                box(
                    (left + bay_w / 2, floor_y + post_h + beam_h / 2),
                    bay_w,
                    beam_h,
                    mass=1.2,
                    friction=0.8,
                    elasticity=0.1,
                )
            )
            pigs.append(
                circle((left + bay_w / 2, floor_y + pig_r), pig_r, mass=0.5, friction=0.8, elasticity=0.3)
            )
    top_y = storeys * (post_h + beam_h)
    mid = x0 + (bays // 2) * (bay_w + 4) + bay_w / 2
    pigs.append(circle((mid, top_y + pig_r), pig_r, mass=0.5, friction=0.8, elasticity=0.3))
    n_birds = [1, 1, 2, 2, 3][difficulty - 1]
    birds = []
    for k in range(n_birds):
        r = float(rng.uniform(11, 14))
        start = (70.0 + 35.0 * (k % 2), 90.0 + 45.0 * k)
        # Each bird aims at a random point of the structure's face, its arc peaking 40-160 px above
        # the launch point or the target, whichever is higher.
        target = (x0 + float(rng.uniform(0, 0.5)) * bays * bay_w, float(rng.uniform(0.3, 1.0)) * top_y)
        vx, vy = _aim(start, target, max(start[1], target[1]) + float(rng.uniform(40, 160)))
        birds.append(
            circle(
                start, r, mass=float(rng.uniform(2.5, 4.0)), velocity=(vx, vy), friction=0.6, elasticity=0.3
            )
        )
    spec["bodies"] = birds + blocks + pigs
    spec["description"] = (
        f"Angry birds: {n_birds} bird(s) launched at {len(blocks)} blocks sheltering {len(pigs)} targets."
    )
    return spec


def _flipper(hinge, length, side, rest, amplitude, period, phase, friction=0.6):
    """A kinematic flipper whose body origin is its hinge, so the controller turns it about the hinge.

    side +1 points right from a left hinge, -1 left from a right hinge. It swings from `rest` up by
    2 * amplitude and back, angle(t) = rest + side * amplitude * (1 + sin(2 pi t / period + phase)).
    """
    root, tip = 9.0, 5.0
    verts = [(0, -root), (side * length, -tip), (side * length, tip), (0, root)]
    a0 = rest + side * amplitude * (1 + math.sin(phase))
    omega = 2 * math.pi / period
    body = poly(
        hinge,
        verts,
        angle=a0,
        angular_velocity=side * amplitude * omega * math.cos(phase),
        friction=friction,
        elasticity=0.5,
        kinematic=True,
    )
    body["controller"] = {
        "kind": "oscillate",
        "axis": "angle",
        "amplitude": side * amplitude,
        "period": period,
        "phase": phase,
    }
    return body


def pinball(difficulty, rng):
    """Balls roll down a tilted pinball table, kicked by bumpers and batted back up by two flippers.

    The table is tilted 6-9 degrees, so gravity along it is g*sin(tilt) (about 100-150 px/s^2);
    bumpers are static discs with elasticity 1.5. Difficulty: 1 to 5 balls and 2 to 6 bumpers (one
    more of each per level); launch speeds rise from 100-250 to 100-490 px/s and flippers beat faster
    (period from 0.8-1.0 s to 0.5-0.7 s).
    """
    tilt = math.radians(float(rng.uniform(6, 9)))
    spec = new_spec("", gravity=(0, -G * math.sin(tilt)))
    spec["statics"] = arena(friction=0.3, elasticity=0.4)
    hinge_y = float(rng.uniform(100, 130))
    hinge_gap = float(rng.uniform(260, 300))
    hl, hr = (WIDTH / 2 - hinge_gap / 2, hinge_y), (WIDTH / 2 + hinge_gap / 2, hinge_y)
    rest, amp = -0.5, 0.4  # rad: at rest the flippers point down towards the drain, then swing up 0.8
    # Long enough that their tips leave a drain 55-70 px wide at rest.
    length = (hinge_gap - float(rng.uniform(55, 70))) / (2 * math.cos(rest))
    # Inlane guides from the side walls down to just above each hinge.
    spec["statics"].append(
        segment((0, hinge_y + 140), (hl[0] - 16, hinge_y + 16), 4.0, friction=0.3, elasticity=0.4)
    )
    spec["statics"].append(
        segment((WIDTH, hinge_y + 140), (hr[0] + 16, hinge_y + 16), 4.0, friction=0.3, elasticity=0.4)
    )
    period = float(rng.uniform(0.8, 1.0)) - 0.08 * (difficulty - 1)
    flippers = [
        _flipper(hl, length, 1, rest, amp, period, float(rng.uniform(-math.pi, math.pi))),
        _flipper(hr, length, -1, -rest, amp, period, float(rng.uniform(-math.pi, math.pi))),
    ]
    bumpers: list[dict] = []
    for _ in range(1 + difficulty):
        br = float(rng.uniform(16, 26))
        for _try in range(100):
            c = (float(rng.uniform(110, WIDTH - 110)), float(rng.uniform(280, 500)))
            # Room for a ball to pass between bumpers.
            if all(
                math.hypot(c[0] - o["center"][0], c[1] - o["center"][1]) > br + o["radius"] + 40
                for o in bumpers
            ):
                bumpers.append(static_circle(c, br, friction=0.2, elasticity=1.5))
                break
    spec["statics"] += bumpers
    # Bumpers stand in for bodies in the placement test: same shape, same footprint.
    keep_out = [circle(b["center"], b["radius"] + 4) for b in bumpers]
    balls: list[dict] = []
    for _ in range(difficulty):
        r = float(rng.uniform(9, 11))
        speed = float(rng.uniform(100, 190 + 60 * difficulty))
        heading = float(rng.uniform(0, 2 * math.pi))

        def make(pos, r=r, speed=speed, heading=heading):
            return circle(
                pos,
                r,
                mass=1.0,
                velocity=(speed * math.cos(heading), speed * math.sin(heading)),
                friction=0.3,
                elasticity=0.8,
            )

        ball = place(rng, make, keep_out + balls, (40, WIDTH - 40), (300, HEIGHT - 30))
        if ball is not None:
            balls.append(ball)
    spec["bodies"] = flippers + balls
    spec["description"] = (
        f"Pinball: {len(balls)} ball(s), {len(bumpers)} bumpers and two flippers on a table tilted "
        f"{math.degrees(tilt):.1f} degrees."
    )
    return spec


def basketball(difficulty, rng):
    """Balls are thrown in high arcs at a hoop: a static rim (a disc in front, a bar behind) on a backboard.

    Throws are aimed to drop through the hoop's centre; aim error grows with level. Difficulty: 1 to 5
    balls (one per level), thrown from 250-400 px away at level 1 to 250-650 px at level 5, with a
    speed error (standard deviation) from 0 to 6 percent.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.6, elasticity=0.6)
    ball_r = float(rng.uniform(12, 15))
    board_x = float(rng.uniform(730, 760))
    rim_y = float(rng.uniform(320, 400))
    inner = float(rng.uniform(2.3, 2.7)) * 2 * ball_r  # hoop's clear width
    back = board_x - 20.0
    front = back - inner
    spec["statics"] += [
        segment(
            (board_x, rim_y - 30), (board_x, rim_y + 120), 5.0, friction=0.5, elasticity=0.6
        ),  # backboard
        segment((back, rim_y), (board_x - 5, rim_y), 3.0, friction=0.5, elasticity=0.5),  # rim, back half
        static_circle((front, rim_y), 3.0, friction=0.5, elasticity=0.5),  # rim, front edge
    ]
    hoop = ((front + back) / 2, rim_y)
    noise = 0.015 * (difficulty - 1)
    dist_hi = 400.0 + 62.5 * (difficulty - 1)

    def make(pos):
        return circle(pos, ball_r, mass=0.6, friction=0.6, elasticity=0.7)

    balls: list[dict] = []
    for k in range(difficulty):
        ball = place(rng, make, balls, (hoop[0] - dist_hi, hoop[0] - 250), (ball_r + 30, 200))
        if ball is None:
            continue
        # Apex heights are stratified by throw, which spreads out the times the balls reach the hoop.
        lo, hi = 70.0, min(160.0, HEIGHT - 20 - ball_r - rim_y)
        apex = lo + (hi - lo) * (k + float(rng.uniform(0, 1))) / difficulty
        vx, vy = _aim(ball["position"], hoop, rim_y + apex)
        err = 1.0 + float(rng.normal(0, noise)) if noise else 1.0
        ball["velocity"] = [vx * err, vy * err]
        ball["angular_velocity"] = float(rng.uniform(1, 4))  # backspin
        balls.append(ball)
    spec["bodies"] = balls
    spec["description"] = f"Basketball: {len(balls)} ball(s) thrown at a hoop {rim_y:.0f} px up."
    return spec


def breakout(difficulty, rng):
    """A ball bounces without gravity or losses between walls, rows of heavy bricks and a paddle that tracks it.

    Bricks are dynamic but 10 times the ball's mass and 4 px apart, so they sit still until struck;
    the paddle follows the lowest ball, and a ball it misses bounces off the floor behind it.
    Difficulty: 2 to 6 rows of 8 bricks (one more row per level), 1 to 3 balls (levels 1-2, 3-4, 5),
    ball speed from 300-400 to 500-600 px/s, and the paddle shrinks from 100 to 60 px.
    """
    # Energy is not claimed as conserved: the paddle does work on whatever strikes its ends, and on
    # bricks that drift down onto it.
    spec = new_spec("", gravity=(0, 0))
    spec["statics"] = arena(friction=0.0, elasticity=1.0)
    cols, rows = 8, 1 + difficulty
    gap = 4.0
    bw = (WIDTH - 40 - (cols - 1) * gap) / cols
    bh = 18.0
    top = float(rng.uniform(540, 560))
    bricks = []
    for row in range(rows):
        for c in range(cols):
            x = 20 + bw / 2 + c * (bw + gap)
            y = top - bh / 2 - row * (bh + gap)
            bricks.append(box((x, y), bw, bh, mass=10.0, friction=0.0, elasticity=1.0))
    n_balls = [1, 1, 2, 2, 3][difficulty - 1]
    balls: list[dict] = []
    for _ in range(n_balls):
        speed = float(rng.uniform(300, 400)) + 50 * (difficulty - 1)
        heading = math.radians(float(rng.uniform(30, 150)))  # upwards, towards the bricks

        def make(pos, speed=speed, heading=heading):
            return circle(
                pos,
                8.0,
                mass=1.0,
                velocity=(speed * math.cos(heading), speed * math.sin(heading)),
                friction=0.0,
                elasticity=1.0,
            )

        ball = place(rng, make, balls, (100, WIDTH - 100), (90, 220))
        if ball is not None:
            balls.append(ball)
    pw, ph = 110.0 - 10 * difficulty, 14.0
    paddle = box((float(rng.uniform(250, 550)), 40.0), pw, ph, friction=0.0, elasticity=1.0, kinematic=True)
    paddle["controller"] = {
        "kind": "track",
        "axis": "x",
        "targets": list(range(1, 1 + len(balls))),
        "max_speed": 500.0 + 50 * difficulty,
        "min": pw / 2 + 2,
        "max": WIDTH - pw / 2 - 2,
        "gain": 10.0,
    }
    spec["bodies"] = [paddle] + balls + bricks
    spec["description"] = f"Breakout: {len(balls)} ball(s), {len(bricks)} bricks in {rows} rows and a paddle."
    return spec


def pong(difficulty, rng):
    """Balls bounce without gravity or losses between the top and bottom walls while two paddles return them.

    Each paddle is kinematic and tracks the ball nearest it at up to 1400 px/s; walls behind the
    paddles are a backstop only. All balls share one horizontal speed and start evenly spaced along
    their back-and-forth path, so they reach the paddles in turn; as in arcade multi-ball they share
    a collision group and pass through each other, which keeps that spacing. Difficulty: 1 to 3 balls
    (levels 1-2, 3-4, 5), horizontal speed from 200-250 to 360-410 px/s, and paddles shrink from 110
    to 90 px.
    """
    spec = new_spec("", gravity=(0, 0))
    spec["statics"] = arena(friction=0.0, elasticity=1.0)
    # The paddles slide along their own frictionless faces, so they do no work on the balls.
    spec["expect"]["conserves_energy"] = True
    n_balls = [1, 1, 2, 2, 3][difficulty - 1]
    r = 9.0
    pw, ph = 12.0, 115.0 - 5 * difficulty
    x_left, x_right = 40.0, WIDTH - 40.0
    # A ball's centre runs back and forth between lo and hi: one lap is 2 * (hi - lo) long.
    lo, hi = x_left + pw / 2 + r, x_right - pw / 2 - r
    lap = 2 * (hi - lo)
    spacing = lap / n_balls
    # Arrivals at a paddle come every half lap, so what matters is each ball's phase modulo half a
    # lap: those phases are spaced half_lap / m apart. Offset them so that no ball starts within
    # 180 px of the paddle it is heading for (the paddles start anywhere and need time to get there).
    m = n_balls if n_balls % 2 else n_balls // 2
    offset = float(rng.uniform(0, lap / 2 - 180 - (m - 1) * lap / (2 * m)))
    offset += lap / 2 if rng.random() < 0.5 else 0.0  # serve to the right or to the left
    vx = float(rng.uniform(200, 250)) + 40 * (difficulty - 1)
    balls: list[dict] = []
    for k in range(n_balls):
        phase = (offset + k * spacing) % lap
        x, direction = (lo + phase, 1.0) if phase < lap / 2 else (lo + lap - phase, -1.0)
        slope = math.radians(float(rng.uniform(10, 40))) * (1.0 if rng.random() < 0.5 else -1.0)

        def make(pos, slope=slope, direction=direction):
            return circle(
                pos,
                r,
                mass=1.0,
                velocity=(direction * vx, vx * math.tan(slope)),
                friction=0.0,
                elasticity=1.0,
                group=1,
            )

        ball = place(rng, make, balls, (x, x), (60, HEIGHT - 60), margin=20.0)
        if ball is not None:
            balls.append(ball)
    targets = list(range(2, 2 + len(balls)))
    paddles = []
    for x in (x_left, x_right):
        paddle = box(
            (x, float(rng.uniform(ph, HEIGHT - ph))), pw, ph, friction=0.0, elasticity=1.0, kinematic=True
        )
        paddle["controller"] = {
            "kind": "track",
            "axis": "y",
            "targets": targets,
            "max_speed": 1400.0,
            "min": ph / 2,
            "max": HEIGHT - ph / 2,
            "gain": 12.0,
        }
        paddles.append(paddle)
    spec["bodies"] = paddles + balls
    spec["description"] = f"Pong: two paddles rally {len(balls)} ball(s)."
    return spec


SCENARIOS = {
    "angry_birds": angry_birds,
    "pinball": pinball,
    "basketball": basketball,
    "breakout": breakout,
    "pong": pong,
}
