"""Constraint scenarios: bodies held by pins, hinges and limits.

Each function takes (difficulty 1-5, numpy Generator) and returns a spec (see spec.py). Its
docstring's first sentence says what happens and its 'Difficulty:' paragraph says what scales;
both feed docs/SCENARIOS.md.

The engine builds every joint with collide_bodies=False, and a joint to the static world (body
index -1) therefore stops that body colliding with any static geometry: floor and walls included.
Every body pinned to the world here is laid out so that its reach stays clear of the arena, and
the seesaw's plank is stopped at the floor by a rotary limit instead of by contact.
"""

from __future__ import annotations

import math

from physworld.worlds.spec import (
    DEFAULT_SUBSTEPS,
    HEIGHT,
    WIDTH,
    arena,
    box,
    circle,
    new_spec,
    pin,
    pivot,
    place,
    rotary_limit,
    segment,
    static_poly,
)


def newtons_cradle(difficulty, rng):
    """A row of touching steel balls hangs from pins below a bar; end balls are pulled out and released.

    Each ball hangs on a pin from its own pivot directly above it, neighbours 0.1 px apart, with
    elasticity 1 and no friction, so the swing passes along the row to the far end. Difficulty: 4 to 8
    balls (one more per level); one ball is pulled out at levels 1-2, two at levels 3-4, and two on the
    left plus one on the right at level 5; the pull-back angle rises from 15-25 to 39-49 degrees.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.5, elasticity=0.5)
    # Pins do no work and the balls collide elastically without friction: energy drifts < 0.1%.
    spec["expect"]["conserves_energy"] = True
    n = 3 + difficulty
    r = float(rng.uniform(16, 22))
    gap = 0.1  # px between neighbours at rest: touching for the eye, no overlap for the solver
    length = float(rng.uniform(180, 240))
    bar_y = float(rng.uniform(500, 540))
    pitch = 2 * r + gap
    x0 = WIDTH / 2 - (n - 1) * pitch / 2 + float(rng.uniform(-20, 20))
    # The bar the strings hang from; the balls are jointed to the world, so they never touch it.
    spec["statics"].append(segment((x0 - r - 20, bar_y + 8), (x0 + (n - 1) * pitch + r + 20, bar_y + 8), 4.0))
    pulled_left = 1 if difficulty <= 2 else 2
    pulled_right = 1 if difficulty == 5 else 0
    theta = math.radians(float(rng.uniform(15, 25)) + 6.0 * (difficulty - 1))
    mass = float(rng.uniform(1.0, 2.0))
    for i in range(n):
        px = x0 + i * pitch
        angle = 0.0
        if i < pulled_left:
            angle = -theta  # swung out to the left
        elif i >= n - pulled_right:
            angle = theta
        # Pulled balls of one end move together, so they stay touching.
        pos = (px + length * math.sin(angle), bar_y - length * math.cos(angle))
        spec["bodies"].append(circle(pos, r, mass=mass, friction=0.0, elasticity=1.0))
        spec["constraints"].append(pin(-1, i, (px, bar_y), (0, 0)))
    spec["description"] = (
        f"Newton's cradle: {n} balls, {pulled_left + pulled_right} pulled out by "
        f"{math.degrees(theta):.0f} degrees and released."
    )
    return spec


def _pendulum_reach(lengths, theta0, r):
    """Half-width and height above the pivot that a pendulum's bodies can reach.

    A simple pendulum released from rest stays within its release amplitude; a compound one can
    swing anywhere within its total length.
    """
    if len(lengths) == 1:
        return lengths[0] * math.sin(theta0) + r, 0.0
    total = sum(lengths)
    return total + r, total + r


def pendulum(difficulty, rng):
    """Bobs on pin joints swing under gravity from real pivots after release from an angle.

    Level 1 is a single small-angle pendulum (4-8 degrees) whose period is 2*pi*sqrt(L/g). The
    pendulums hang in parallel planes (one shared collision group) so they pass without touching.
    Difficulty: one pendulum per level (1 to 5); from level 3 one is a double pendulum and at level 5
    another is a triple; release angles rise from 4-8 degrees (level 1) to 20-30 (level 2) and 50-60
    degrees (level 5).
    """
    spec = new_spec("")
    spec["statics"] = arena()
    # Simple pendulums keep their energy to within 0.1% over 600 frames; chaotic compound ones
    # drift by up to about 1% there, so only levels 1-2 claim it.
    spec["expect"]["conserves_energy"] = difficulty <= 2
    # Links per pendulum: 1 is a simple pendulum, 2 a double, 3 a triple.
    kinds = {1: [1], 2: [1, 1], 3: [1, 1, 2], 4: [1, 1, 2, 1], 5: [1, 1, 2, 1, 3]}[difficulty]
    for kind in kinds:
        r = float(rng.uniform(9, 15))
        if kind == 1:
            lengths = [float(rng.uniform(140, 320))]
        else:
            lengths = [float(rng.uniform(60, 200 / kind + 20)) for _ in range(kind)]
        if difficulty == 1:
            theta0 = math.radians(float(rng.uniform(4, 8)))
        else:
            theta0 = math.radians(float(rng.uniform(10, 20)) + 10.0 * (difficulty - 1))
        half_w, up = _pendulum_reach(lengths, theta0, r)
        total = sum(lengths)
        # Pivot: high enough that the bobs clear the floor, low enough that they clear the ceiling
        # (the length ranges above leave room for both).
        py = float(rng.uniform(total + r + 10, min(560.0, HEIGHT - 10 - up)))
        px = float(rng.uniform(half_w + 5, WIDTH - half_w - 5))
        sign = 1.0 if rng.random() < 0.5 else -1.0
        prev = -1
        x, y = px, py
        for k, length in enumerate(lengths):
            # Each lower link gets its own angle, so compound pendulums start bent.
            angle = sign * theta0 if k == 0 else sign * theta0 + float(rng.uniform(-0.5, 0.5))
            x, y = x + length * math.sin(angle), y - length * math.cos(angle)
            spec["bodies"].append(
                circle((x, y), r, mass=float(rng.uniform(1, 3)), friction=0.3, elasticity=0.5, group=1)
            )
            i = len(spec["bodies"]) - 1
            if prev == -1:
                spec["constraints"].append(pin(-1, i, (px, py), (0, 0)))
            else:
                spec["constraints"].append(pin(prev, i, (0, 0), (0, 0)))
            prev = i
    names = {1: "simple", 2: "double", 3: "triple"}
    spec["description"] = (
        "Pendulum: " + ", ".join(f"a {names[k]} pendulum" for k in kinds) + " released from an angle."
    )
    return spec


def wrecking_ball(difficulty, rng):
    """A heavy ball on a pin or chain swings down from an angle and smashes a wall of stacked blocks.

    Difficulty: the wall grows from 1 column of 4 blocks to 3 columns of 6 (4, 5, 10, 12, 18 blocks);
    the ball hangs on a single rod at levels 1-2 and on a chain of 2 to 4 pinned links above that; the
    release angle rises from 24-29 to 40-45 degrees (impact speed from about 280 to 520 px/s).
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.7, elasticity=0.2)
    px, py = float(rng.uniform(380, 420)), float(rng.uniform(555, 575))
    big_r = float(rng.uniform(22, 28))
    bottom = float(rng.uniform(85, 105))  # height of the ball's centre at the bottom of its swing
    length = py - bottom
    # Keep the whole swing inside the world: the ball, jointed to the world, cannot touch the walls.
    max_theta = math.asin((px - big_r - 15) / length)
    theta = min(math.radians(float(rng.uniform(20, 25)) + 4.0 * difficulty), max_theta)
    n_links = 0 if difficulty <= 2 else difficulty - 1
    # Chain beads sit evenly along the rod; each is pinned to the one above, the top one to the pivot.
    seg_len = length / (n_links + 1)
    prev = -1
    for k in range(n_links + 1):
        d = seg_len * (k + 1)
        pos = (px - d * math.sin(theta), py - d * math.cos(theta))
        if k < n_links:
            body = circle(pos, 4.0, mass=2.0, friction=0.3, elasticity=0.2, group=1)
        else:
            body = circle(pos, big_r, mass=40.0, friction=0.4, elasticity=0.2, group=1)
        spec["bodies"].append(body)
        i = len(spec["bodies"]) - 1
        spec["constraints"].append(pin(-1, i, (px, py), (0, 0)) if prev == -1 else pin(prev, i))
        prev = i
    # The wall: columns of blocks resting exactly on each other and on the floor, just right of
    # the bottom of the swing, so the ball strikes near full speed.
    cols = [1, 1, 2, 2, 3][difficulty - 1]
    rows = [4, 5, 5, 6, 6][difficulty - 1]
    bw, bh = float(rng.uniform(28, 36)), float(rng.uniform(28, 34))
    x_left = px + big_r + float(rng.uniform(5, 25))
    for c in range(cols):
        cx = x_left + bw / 2 + c * (bw + 0.5)
        for row in range(rows):
            spec["bodies"].append(
                box((cx, bh / 2 + row * bh), bw, bh, mass=1.5, friction=0.7, elasticity=0.1)
            )
    hung = "a rod" if n_links == 0 else f"a chain of {n_links} links"
    spec["description"] = f"Wrecking ball: a heavy ball on {hung} swings into a wall of {cols * rows} blocks."
    return spec


def _link_chain(spec, points, width, height, group, mass):
    """Boxes joined end to end by pivot joints along the joint positions `points`; their indices."""
    indices = []
    for (ax, ay), (bx, by) in zip(points, points[1:], strict=False):
        pos = ((ax + bx) / 2, (ay + by) / 2)
        angle = math.atan2(by - ay, bx - ax)
        spec["bodies"].append(
            box(pos, width, height, mass=mass, angle=angle, friction=0.6, elasticity=0.1, group=group)
        )
        i = len(spec["bodies"]) - 1
        if indices:
            spec["constraints"].append(pivot(indices[-1], i, (width / 2, 0), (-width / 2, 0)))
        indices.append(i)
    return indices


def chain(difficulty, rng):
    """A chain of links joined by pivot joints falls from near horizontal and swings from one end.

    Links of one chain share a collision group, so neighbours overlap at their hinges without
    colliding. Difficulty: the hanging chain grows from 6 to 14 links (2 per level) and from 140 to
    220 px; from level 3 a second chain (10 to 14 links) is draped between two pivots and 1 to 3 balls
    drop onto it.
    """
    # Twice the default substeps: a falling chain whips its tip fast, and the finer step keeps every
    # hinge's two anchors within about a pixel of each other.
    spec = new_spec("", substeps=2 * DEFAULT_SUBSTEPS)
    spec["statics"] = arena(friction=0.7, elasticity=0.3)
    n = 4 + 2 * difficulty
    total = 120.0 + 20.0 * difficulty
    link = total / n
    link_h = 6.0
    if difficulty <= 2:
        px = float(rng.uniform(300, WIDTH - total - 60))
    else:
        px = float(rng.uniform(total + 10, total + 30))
    py = float(rng.uniform(500, 560))
    angle = -math.radians(float(rng.uniform(0, 20)))  # released from horizontal or a little below
    points = [(px + k * link * math.cos(angle), py + k * link * math.sin(angle)) for k in range(n + 1)]
    hanging = _link_chain(spec, points, link, link_h, group=1, mass=0.3)
    spec["constraints"].append(pivot(-1, hanging[0], points[0], (-link / 2, 0)))
    desc = f"Chain: {n} links swing down from a pivot"
    if difficulty >= 3:
        # A second chain hangs between two pivots on a circular arc, right of the first chain's reach.
        m = 2 * difficulty + 4
        half = math.radians(float(rng.uniform(50, 65)))
        left_min = px + total + 30
        span_max = WIDTH - 20 - left_min
        link_d = float(rng.uniform(22, 26))
        step = 2 * half / m
        radius = link_d / (2 * math.sin(step / 2))
        span = 2 * radius * math.sin(half)
        if span > span_max:  # shorten the links until the arc fits
            link_d *= span_max / span
            radius *= span_max / span
            span = span_max
        ax = float(rng.uniform(left_min, WIDTH - 20 - span))
        ay = float(rng.uniform(430, 480))
        cx, cy = ax + span / 2, ay + radius * math.cos(half)
        arc = [
            (cx + radius * math.sin(-half + k * step), cy - radius * math.cos(-half + k * step))
            for k in range(m + 1)
        ]
        draped = _link_chain(spec, arc, link_d, link_h, group=2, mass=0.3)
        spec["constraints"].append(pivot(-1, draped[0], arc[0], (-link_d / 2, 0)))
        spec["constraints"].append(pivot(-1, draped[-1], arc[-1], (link_d / 2, 0)))
        chain_bodies = list(spec["bodies"])
        balls: list[dict] = []
        sag = cy - radius  # lowest point of the arc
        for _ in range(difficulty - 2):
            br = float(rng.uniform(9, 13))

            def make(pos, br=br):
                return circle(pos, br, mass=float(rng.uniform(0.5, 1.5)), friction=0.5, elasticity=0.3)

            ball = place(
                rng,
                make,
                chain_bodies + balls,
                (cx - span / 4, cx + span / 4),
                (max(ay, sag + 60), HEIGHT - 20),
            )
            if ball is not None:
                balls.append(ball)
        spec["bodies"].extend(balls)
        desc += f"; {m} links draped between two pivots catch {len(balls)} falling ball(s)"
    spec["description"] = desc + "."
    return spec


def seesaw(difficulty, rng):
    """Weights drop onto a plank balanced on a hinge over a triangular fulcrum and tip it.

    The plank pivots about the fulcrum's apex and a rotary limit stops it where its end meets the
    floor. Difficulty: 1 to 5 dropped weights (one per level), from up to 100 to 300 px above the
    plank; from level 3 a light ball rests on the plank and is flung when the heavier side lands.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.7, elasticity=0.3)
    fx = float(rng.uniform(340, 460))
    fh = float(rng.uniform(50, 75))
    half = float(rng.uniform(150, 210))
    ph = 12.0
    spec["statics"].append(static_poly([(fx - 35, 0), (fx + 35, 0), (fx, fh)]))
    # The hinge is 1 px above the apex, so the plank never rests on the fulcrum's tip.
    hinge_y = fh + 1.0
    plank = box(
        (fx, hinge_y + ph / 2), 2 * half, ph, mass=float(rng.uniform(2, 4)), friction=0.8, elasticity=0.1
    )
    spec["bodies"].append(plank)
    spec["constraints"].append(pivot(-1, 0, (fx, hinge_y), (0, -ph / 2)))
    # Jointed to the world, the plank ignores the floor; the limit stops its end on the floor instead.
    tilt = math.asin((hinge_y - 0.5) / half)
    spec["constraints"].append(rotary_limit(-1, 0, -tilt, tilt))
    top = hinge_y + ph
    placed: list[dict] = [plank]
    ball_side = 1.0 if rng.random() < 0.5 else -1.0
    if difficulty >= 3:
        br = float(rng.uniform(9, 12))
        x = fx + ball_side * (half - br - float(rng.uniform(2, 20)))
        placed.append(circle((x, top + br), br, mass=0.4, friction=0.8, elasticity=0.3))
    # The first weight lands on the far side from the (resting, from level 3) ball, to fling it.
    first_side = -ball_side
    for k in range(difficulty):
        side = first_side if k % 2 == 0 else -first_side
        w, h = float(rng.uniform(22, 34)), float(rng.uniform(20, 30))
        mass = float(rng.uniform(1.5, 4.0))
        x_lo, x_hi = sorted((fx + side * half * 0.35, fx + side * (half - w / 2)))

        def make(pos, w=w, h=h, mass=mass):
            return box(pos, w, h, mass=mass, friction=0.8, elasticity=0.1)

        y_lo = top + h / 2 + 10
        # Clear of the other weights and the ball (bounding circles); above the plank by construction.
        body = place(
            rng, make, placed[1:], (x_lo, x_hi), (y_lo, min(y_lo + 50 * difficulty + 50, HEIGHT - 40))
        )
        if body is not None:
            placed.append(body)
    spec["bodies"] = placed
    n_weights = len(placed) - 1 - (difficulty >= 3)
    ball = " and a resting ball" if difficulty >= 3 else ""
    spec["description"] = (
        f"Seesaw: {n_weights} weight(s) dropped on a {2 * half:.0f} px plank{ball} over a fulcrum."
    )
    return spec


SCENARIOS = {
    "newtons_cradle": newtons_cradle,
    "pendulum": pendulum,
    "wrecking_ball": wrecking_ball,
    "chain": chain,
    "seesaw": seesaw,
}
