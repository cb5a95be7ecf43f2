"""Stacking scenarios: blocks resting on one another, standing or coming down.

Each function takes (difficulty 1-5, numpy Generator) and returns a spec (see spec.py). Its
docstring's first sentence says what happens and its 'Difficulty:' paragraph says what scales;
both feed docs/SCENARIOS.md.

Blocks that rest on one another touch exactly: a block on another has its centre at the lower
block's top plus its own half height, so nothing drops into place and nothing overlaps at spawn.
"""

from __future__ import annotations

import math

import numpy as np

from physworld.worlds.spec import (
    GRAVITY,
    HEIGHT,
    WIDTH,
    arena,
    box,
    circle,
    new_spec,
    pivot,
    place,
    static_poly,
)


def _tower_margin(xs: list[float], widths: list[float], heights: list[float]) -> float:
    """Smallest stability margin of a column of blocks: at each contact (the floor included), how far
    the centre of mass of everything above lies inside the contact, as a fraction of its half width.
    Negative means the column tips over at that contact."""
    margin = math.inf
    for k in range(len(xs)):
        lo, hi = xs[k] - widths[k] / 2, xs[k] + widths[k] / 2
        if k:
            lo, hi = max(lo, xs[k - 1] - widths[k - 1] / 2), min(hi, xs[k - 1] + widths[k - 1] / 2)
        masses = [w * h for w, h in zip(widths[k:], heights[k:], strict=True)]
        com = sum(m * x for m, x in zip(masses, xs[k:], strict=True)) / sum(masses)
        half = (hi - lo) / 2
        margin = min(margin, (half - abs(com - (lo + hi) / 2)) / half)
    return margin


def tower(difficulty: int, rng: np.random.Generator) -> dict:
    """A single column of blocks stands on the floor; from level 3 the blocks are stacked off-centre
    in one direction, and from level 4 so far that the tower tips over and falls.

    Difficulty: 3 to 11 blocks (2 more per level). Level 1 is centred, level 2 within 2 px, and both
    stand still; level 3 leans to 40-70% of the lean that would topple it and still stands; levels 4
    and 5 lean 1.2-1.5 and 1.5-2 times that much, so the top of the tower falls.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.7, elasticity=0.1)
    n_blocks = 1 + 2 * difficulty
    heights = [float(rng.uniform(24, 34)) for _ in range(n_blocks)]
    widths = [float(rng.uniform(50, 80)) for _ in range(n_blocks)]
    x0 = float(rng.uniform(250, 550))
    if difficulty <= 2:
        jitter = 2.0 if difficulty == 2 else 0.0
        xs = [x0] + [x0 + float(rng.uniform(-jitter, jitter)) for _ in range(n_blocks - 1)]
    else:
        # Each block steps the same way by a random share of the one below; scale the steps to a
        # chosen multiple of the critical lean, the smallest at which the column tips over.
        direction = 1.0 if rng.random() < 0.5 else -1.0
        steps = [0.0] + [direction * float(rng.uniform(0.3, 1.0)) * widths[k - 1] for k in range(1, n_blocks)]

        def columns(scale):
            return [x0 + scale * sum(steps[: k + 1]) for k in range(n_blocks)]

        lo, hi = 0.0, 0.45  # at 0.45 every block's centre still lies over the block below
        if _tower_margin(columns(hi), widths, heights) > 0:
            critical = hi
        else:
            for _ in range(40):
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if _tower_margin(columns(mid), widths, heights) > 0 else (lo, mid)
            critical = lo
        factor = {3: (0.4, 0.7), 4: (1.2, 1.5), 5: (1.5, 2.0)}[difficulty]
        scale = min(0.45, critical * float(rng.uniform(*factor)))
        xs = columns(scale)
        # Keep the whole tower inside the world.
        left = min(x - w / 2 for x, w in zip(xs, widths, strict=True))
        right = max(x + w / 2 for x, w in zip(xs, widths, strict=True))
        shift = max(0.0, 20 - left) - max(0.0, right - (WIDTH - 20))
        xs = [x + shift for x in xs]
    y = 0.0
    for x, w, h in zip(xs, widths, heights, strict=True):
        spec["bodies"].append(box((x, y + h / 2), w, h, mass=w * h / 1000, friction=0.7, elasticity=0.1))
        y += h
    stands = _tower_margin(xs, widths, heights) > 0
    state = "stands" if difficulty <= 2 else ("leans but stands" if stands else "leans and topples")
    spec["description"] = f"Tower: a column of {n_blocks} blocks {state}."
    return spec


def pyramid(difficulty: int, rng: np.random.Generator) -> dict:
    """Blocks are stacked in a stepped pyramid, each block bridging two below it; from level 3 a ball
    thrown from the side strikes one of the two top rows and knocks blocks off it.

    Difficulty: 2 to 6 rows (3, 6, 10, 15, 21 blocks). Levels 1-2 stand still; levels 3-5 add the
    thrown ball, arriving at 250, 400 and 550 px/s, heavier each level.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.7, elasticity=0.1)
    rows = difficulty + 1
    w, h = float(rng.uniform(36, 46)), float(rng.uniform(18, 26))
    gap = float(rng.uniform(1, 4))
    pitch = w + gap
    base = rows * pitch - gap
    left = float(rng.uniform(60, WIDTH - 60 - base))
    for r in range(rows):
        for k in range(rows - r):
            # Each block of row r sits centred over the gap between two blocks of row r - 1.
            x = left + w / 2 + r * pitch / 2 + k * pitch
            spec["bodies"].append(box((x, r * h + h / 2), w, h, mass=1.0, friction=0.7, elasticity=0.1))
    n_blocks = len(spec["bodies"])
    if difficulty < 3:
        spec["description"] = f"Pyramid: a {rows}-row pyramid of {n_blocks} blocks stands."
        return spec
    r_ball = float(rng.uniform(10, 14))
    target_row = rows - 1 - int(rng.integers(2))
    y = target_row * h + h / 2
    # Throw from the roomier side; the row's outer block is the first thing in the ball's way.
    room_left, room_right = left, WIDTH - left - base
    side = 1.0 if room_left > room_right else -1.0
    edge = left + target_row * pitch / 2 if side > 0 else left + base - target_row * pitch / 2
    dist = float(rng.uniform(80, min(max(room_left, room_right) - 2 * r_ball - 10, 220)))
    speed = 250.0 + 150 * (difficulty - 3)
    flight = dist / speed
    # Thrown up just enough to come back down to the row's height as it arrives.
    spec["bodies"].append(
        circle(
            (edge - side * (dist + r_ball), y),
            r_ball,
            mass=1.0 + difficulty,
            velocity=(side * speed, -0.5 * GRAVITY[1] * flight),
            friction=0.6,
            elasticity=0.3,
        )
    )
    spec["description"] = (
        f"Pyramid: a ball strikes row {target_row + 1} of a {rows}-row pyramid of {n_blocks} blocks."
    )
    return spec


def dominos(difficulty: int, rng: np.random.Generator) -> dict:
    """A row of thin dominos stands upright on the floor; the first is tipped over and the chain falls
    one into the next down to the last.

    Difficulty: 7 to 19 dominos (3 more per level); the first is tipped at 2.5 to 4.5 rad/s.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.6, elasticity=0.1)
    n = 4 + 3 * difficulty
    h = float(rng.uniform(40, 56))
    w = h / 6
    pitch = float(rng.uniform(0.45, 0.6)) * h
    length = (n - 1) * pitch
    direction = 1.0 if rng.random() < 0.5 else -1.0
    # Room for the last domino to fall flat before the wall.
    first = float(rng.uniform(40, WIDTH - 40 - h - length))
    if direction < 0:
        first = WIDTH - first
    spin = 2.0 + 0.5 * difficulty
    for k in range(n):
        x = first + direction * k * pitch
        if k == 0:
            # Rigid rotation about the bottom corner it tips over: that corner does not move.
            vx, vy = spin * h / 2, -spin * w / 2
            spec["bodies"].append(
                box(
                    (x, h / 2),
                    w,
                    h,
                    mass=0.5,
                    velocity=(direction * vx, vy),
                    angular_velocity=-direction * spin,
                    friction=0.6,
                    elasticity=0.1,
                )
            )
        else:
            spec["bodies"].append(box((x, h / 2), w, h, mass=0.5, friction=0.6, elasticity=0.1))
    spec["description"] = f"Dominos: the first of {n} dominos is tipped and the chain falls."
    return spec


_SAFE_LAYERS = ({0, 1, 2}, {0, 1}, {1, 2}, {0, 2}, {1})  # remaining blocks that still hold a layer up


def jenga(difficulty: int, rng: np.random.Generator) -> dict:
    """A Jenga tower seen from the side, alternating layers of three block ends and one long block,
    stands with blocks pulled out of it; from level 3 one more side block near the top is struck
    outwards and slides part of the way out against the friction of the layers around it.

    Difficulty: 7 to 15 layers (2 more per level) with 1 to 5 blocks already pulled. Levels 1-2 pull
    only blocks whose layer still holds the tower up, so it stands; from level 3 a side block in one
    of the top three three-block layers starts sliding out at 200-300 px/s, and at levels 4-5 a pull
    may leave a lone end block under a long one, so the tower above it tips and falls.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.7, elasticity=0.1)
    n_layers = 5 + 2 * difficulty
    t = float(rng.uniform(12, 16))
    length = float(rng.uniform(100, 130))
    small = length / 3
    x_c = float(rng.uniform(150, WIDTH - 150))
    # Even layers show three block ends (left, middle, right); odd layers one long block.
    layers = [set(range(3)) if k % 2 == 0 else {0} for k in range(n_layers)]
    triples = [k for k in range(n_layers) if k % 2 == 0]
    pulls = 0
    while pulls < difficulty:
        k = triples[int(rng.integers(len(triples)))]
        block = int(rng.integers(3))
        if block not in layers[k]:
            continue
        rest = layers[k] - {block}
        if rest in _SAFE_LAYERS or (difficulty >= 4 and rest and rng.random() < 0.5):
            layers[k] = rest
            pulls += 1
    sliding = None
    if difficulty >= 3:
        # A side block struck outwards in one of the top three three-block layers: it starts in
        # place but moving, and friction with the layers around it slows it as it slides out.
        candidates = [(k, b) for k in triples[-3:] for b in (0, 2) if b in layers[k]]
        if candidates:
            sliding = candidates[int(rng.integers(len(candidates)))]
    for k, layer in enumerate(layers):
        y = k * t + t / 2
        if k % 2:
            spec["bodies"].append(box((x_c, y), length, t, mass=1.5, friction=0.6, elasticity=0.05))
            continue
        for b in sorted(layer):
            x = x_c + (b - 1) * small
            velocity = (0.0, 0.0)
            if (k, b) == sliding:
                velocity = ((b - 1) * float(rng.uniform(200, 300)), 0.0)
            spec["bodies"].append(
                box((x, y), small, t, mass=0.5, velocity=velocity, friction=0.6, elasticity=0.05)
            )
    struck = ", and a block near the top is struck out" if sliding else ""
    spec["description"] = f"Jenga: a {n_layers}-layer tower with {difficulty} block(s) pulled{struck}."
    return spec


def _sag_angles(n: int, ratio: float) -> list[float]:
    """Plank angles of a symmetric sag: n links whose horizontal span is `ratio` of their length."""

    def span(alpha):
        return sum(math.cos(alpha * ((i + 0.5) - n / 2) / (n / 2)) for i in range(n)) / n

    lo, hi = 0.0, 1.5
    for _ in range(60):  # bisection: span falls as the sag angle grows
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if span(mid) > ratio else (lo, mid)
    alpha = 0.5 * (lo + hi)
    return [alpha * ((i + 0.5) - n / 2) / (n / 2) for i in range(n)]


def bridge(difficulty: int, rng: np.random.Generator) -> dict:
    """Planks hinged end to end hang in a shallow sag across the gap between two static piers, and
    loads dropped from above (and, from level 3, a ball rolled off a pier) land on the deck.

    Difficulty: 5 to 9 planks (one more per level, each hinge a pivot joint) and 1 to 5 loads; from
    level 3 one load is a ball rolled onto the deck at 100-250 px/s.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.7, elasticity=0.2)
    xl = float(rng.uniform(120, 190))
    xr = WIDTH - float(rng.uniform(120, 190))
    top = float(rng.uniform(180, 260))
    spec["statics"].append(static_poly([(0, 0), (xl, 0), (xl, top), (0, top)], friction=0.7, elasticity=0.2))
    spec["statics"].append(
        static_poly([(xr, 0), (WIDTH, 0), (WIDTH, top), (xr, top)], friction=0.7, elasticity=0.2)
    )
    n = 4 + difficulty
    gap = xr - xl
    slack = float(rng.uniform(0.015, 0.04))
    plank = gap * (1 + slack) / n
    thick = 8.0
    angles = _sag_angles(n, 1 / (1 + slack))
    # Lay the planks end to end from the left pier; the sag is symmetric, so the last ends at the right.
    x, y = xl, top
    for a in angles:
        cx, cy = x + plank / 2 * math.cos(a), y + plank / 2 * math.sin(a)
        spec["bodies"].append(
            box((cx, cy), plank, thick, mass=1.0, angle=a, friction=0.8, elasticity=0.1, group=1)
        )
        x, y = x + plank * math.cos(a), y + plank * math.sin(a)
    spec["constraints"].append(pivot(-1, 0, (xl, top), (-plank / 2, 0)))
    for i in range(n - 1):
        spec["constraints"].append(pivot(i, i + 1, (plank / 2, 0), (-plank / 2, 0)))
    spec["constraints"].append(pivot(n - 1, -1, (plank / 2, 0), (xr, top)))
    planks = list(spec["bodies"])
    loads: list[dict] = []
    n_drops = difficulty
    if difficulty >= 3:
        r = float(rng.uniform(10, 14))
        speed = float(rng.uniform(100, 250))
        side = 1.0 if rng.random() < 0.5 else -1.0
        edge = xl if side > 0 else xr
        # Resting on the pier's top, rolling towards the deck.
        loads.append(
            circle(
                (edge - side * float(rng.uniform(r + 10, 60)), top + r),
                r,
                mass=1.5,
                velocity=(side * speed, 0),
                angular_velocity=-side * speed / r,
                friction=0.7,
                elasticity=0.2,
            )
        )
        n_drops -= 1
    for _ in range(n_drops):
        size = float(rng.uniform(14, 24))
        mass = float(rng.uniform(0.8, 2.0))
        kind = int(rng.integers(2))

        def make(pos, kind=kind, size=size, mass=mass):
            if kind == 0:
                return circle(pos, size / 2, mass=mass, friction=0.7, elasticity=0.2)
            return box(pos, size * 1.4, size, mass=mass, friction=0.7, elasticity=0.1)

        body = place(rng, make, planks + loads, (xl + 30, xr - 30), (top + 40, HEIGHT - 30))
        if body is not None:
            loads.append(body)
    spec["bodies"].extend(loads)
    spec["description"] = f"Bridge: {len(loads)} load(s) land on a {n}-plank hinged bridge."
    return spec


SCENARIOS = {
    "tower": tower,
    "pyramid": pyramid,
    "dominos": dominos,
    "jenga": jenga,
    "bridge": bridge,
}
