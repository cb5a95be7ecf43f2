"""Complex scenarios: many bodies, force fields and chained mechanisms.

Each function takes (difficulty 1-5, numpy Generator) and returns a spec (see spec.py). Its
docstring's first sentence says what happens and its 'Difficulty:' paragraph says what scales;
both feed docs/SCENARIOS.md.

The gravitational scenes (orbit, gravity_well, solar_system) switch world gravity off and use the
spec's attraction field, with initial velocities from Kepler's laws so that bodies orbit for the
whole scene.
"""

from __future__ import annotations

import math

import numpy as np

from physworld.worlds.spec import (
    HEIGHT,
    WALL_RADIUS,
    WIDTH,
    arena,
    body_extent,
    box,
    circle,
    new_spec,
    overlaps,
    place,
    poly,
    segment,
    static_circle,
    static_poly,
)

# ---------------------------------------------------------------- helpers


def _mirror(spec: dict) -> dict:
    """Reflect a spec left-right about the world's vertical centre line, in place."""
    for b in spec["bodies"]:
        b["position"][0] = WIDTH - b["position"][0]
        b["velocity"][0] = -b["velocity"][0]
        b["angle"] = -b["angle"]
        b["angular_velocity"] = -b["angular_velocity"]
        if b["shape"] == "poly":
            b["vertices"] = [[-x, y] for x, y in reversed(b["vertices"])]
    for s in spec["statics"]:
        if s["kind"] == "segment":
            s["a"][0], s["b"][0] = WIDTH - s["a"][0], WIDTH - s["b"][0]
            s["surface_velocity"][0] = -s["surface_velocity"][0]
        elif s["kind"] == "poly":
            s["vertices"] = [[WIDTH - x, y] for x, y in reversed(s["vertices"])]
        else:
            s["center"][0] = WIDTH - s["center"][0]
    if "wind" in spec["fields"]:
        spec["fields"]["wind"]["velocity"][0] = -spec["fields"]["wind"]["velocity"][0]
    for well in spec["fields"].get("attraction", {}).get("wells", ()):
        well["position"][0] = WIDTH - well["position"][0]
    return spec


def _segment_distance(p, a, b) -> float:
    """Distance from point p to the centre line of the segment a-b."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    t = ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy)
    t = min(1.0, max(0.0, t))
    return math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy)


def _clear_of_segments(p, radius: float, statics: list[dict], margin: float = 1.0) -> bool:
    """True if a disc of `radius` at p is clear of every static segment by `margin` px."""
    return all(
        _segment_distance(p, s["a"], s["b"]) >= radius + s["radius"] + margin
        for s in statics
        if s["kind"] == "segment"
    )


def _inside_world(body: dict, margin: float = 1.0) -> bool:
    x, y = body["position"]
    r = body_extent(body)
    return margin + r <= x <= WIDTH - margin - r and margin + r <= y <= HEIGHT - margin - r


def _rock(rng, position, size: float, density: float, **kwargs) -> dict:
    """A convex rock: 5 to 8 points on a random ellipse, re-centred on the polygon's centroid."""
    n = int(rng.integers(5, 9))
    base = 2 * math.pi * np.arange(n) / n
    angles = np.sort(base + rng.uniform(-0.3, 0.3, n) * 2 * math.pi / n)
    ax, ay = size, size * float(rng.uniform(0.6, 1.0))
    pts = [(ax * math.cos(a), ay * math.sin(a)) for a in angles]
    # Centroid and area by the shoelace formula.
    area = cx = cy = 0.0
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        cross = x0 * y1 - x1 * y0
        area += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    area *= 0.5
    cx, cy = cx / (6 * area), cy / (6 * area)
    verts = [(x - cx, y - cy) for x, y in pts]
    return poly(position, verts, mass=density * area, **kwargs)


def _circular_speed(gm: float, r: float, softening: float) -> float:
    """Speed of a circular orbit of radius r about a softened point mass (pull gm r / (r^2+eps^2)^1.5)."""
    return math.sqrt(gm * r * r / (r * r + softening * softening) ** 1.5)


def _zero_momentum(bodies: list[dict]) -> None:
    """Shift all velocities so that the total linear momentum is zero (the system stays put)."""
    m = sum(b["mass"] for b in bodies)
    vx = sum(b["mass"] * b["velocity"][0] for b in bodies) / m
    vy = sum(b["mass"] * b["velocity"][1] for b in bodies) / m
    for b in bodies:
        b["velocity"] = [b["velocity"][0] - vx, b["velocity"][1] - vy]


# ---------------------------------------------------------------- scenarios


def avalanche(difficulty: int, rng: np.random.Generator) -> dict:
    """Rocks, boulders and boxes on a steep hillside slide, roll and tumble down and pile up at its foot.

    Difficulty: 11 to 31 rocks (5 more per level) in a deeper layer, on a slope that steepens from
    about 31 to 43 degrees.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.6, elasticity=0.2)
    slope = math.radians(28 + 3 * difficulty + float(rng.uniform(-2, 2)))
    top = float(rng.uniform(360, 420))
    foot = top / math.tan(slope)
    spec["statics"].append(static_poly([(0, 0), (foot, 0), (0, top)], friction=0.5, elasticity=0.1))
    down = (math.cos(slope), -math.sin(slope))
    normal = (math.sin(slope), math.cos(slope))
    length = math.hypot(top, foot)
    density = 0.004
    bodies: list[dict] = []
    for _ in range(6 + 5 * difficulty):
        kind = int(rng.integers(4))
        size = float(rng.uniform(9, 17))
        angle = float(rng.uniform(0, 2 * math.pi))
        for _ in range(200):
            if kind == 0:
                body = circle(
                    (0, 0), size, mass=density * math.pi * size * size, friction=0.6, elasticity=0.2
                )
            elif kind == 1:
                w, h = 2 * size, size * float(rng.uniform(1.0, 1.8))
                body = box((0, 0), w, h, mass=density * w * h, angle=angle, friction=0.6, elasticity=0.2)
            else:
                body = _rock(rng, (0, 0), size, density, angle=angle, friction=0.6, elasticity=0.2)
            # Sample a spot along the slope and a height above it, clear of the hillside.
            s = float(rng.uniform(40, 0.65 * length))
            lift = body_extent(body) + 1.0 + float(rng.uniform(0, 20 + 20 * difficulty))
            body["position"] = [s * down[0] + lift * normal[0], top + s * down[1] + lift * normal[1]]
            if _inside_world(body, 2.0) and not overlaps(body, bodies, 1.0):
                bodies.append(body)
                break
    spec["bodies"] = bodies
    spec["description"] = (
        f"Avalanche: {len(bodies)} rocks tumble down a {math.degrees(slope):.0f}-degree slope."
    )
    return spec


def conveyor(difficulty: int, rng: np.random.Generator) -> dict:
    """Moving belts drag boxes along by friction and drop them off their ends onto lower belts and the floor.

    Difficulty: 3 to 11 boxes (2 more per level) on 1 belt (levels 1-2), 2 zig-zag belts (3-4) or
    3 (level 5); belt speed rises from about 110 to 230 px/s.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.6, elasticity=0.2)
    tiers = 1 if difficulty <= 2 else 2 if difficulty <= 4 else 3
    speed = 80.0 + 30.0 * difficulty + float(rng.uniform(-15, 15))
    y0 = float(rng.uniform(100, 130))
    gap = float(rng.uniform(135, 150))
    belt_r = 6.0
    # Built running rightwards on even tiers and leftwards on odd ones, each belt's far end over
    # the belt below it; mirrored at random afterwards.
    spans = []
    for k in range(tiers):
        lo, hi = (60.0, 540.0) if k % 2 == 0 else (220.0, 700.0)
        lo, hi = lo + float(rng.uniform(-15, 15)), hi + float(rng.uniform(-15, 15))
        direction = 1.0 if k % 2 == 0 else -1.0
        y = y0 + k * gap
        spec["statics"].append(
            segment(
                (lo, y),
                (hi, y),
                belt_r,
                friction=0.9,
                elasticity=0.1,
                surface_velocity=(direction * speed, 0),
            )
        )
        spans.append((lo, hi, y, direction))
    n_boxes = 1 + 2 * difficulty
    bodies: list[dict] = []
    # Boxes sit at rest on the upstream half of the belts, a few px apart; the top belt gets the
    # first box so every belt's load eventually rains down on the ones below.
    cursor = {k: 0.0 for k in range(tiers)}
    for i in range(n_boxes):
        k = tiers - 1 - (i % tiers)
        lo, hi, y, direction = spans[k]
        w, h = float(rng.uniform(22, 36)), float(rng.uniform(18, 32))
        offset = cursor[k] + float(rng.uniform(6, 24)) + w / 2
        cursor[k] = offset + w / 2
        x = lo + 10 + offset if direction > 0 else hi - 10 - offset
        bodies.append(
            box(
                (x, y + belt_r + h / 2 + 0.5),
                w,
                h,
                mass=float(rng.uniform(1, 3)),
                friction=0.7,
                elasticity=0.1,
            )
        )
    spec["bodies"] = bodies
    spec["description"] = f"Conveyor: {tiers} belt(s) at {speed:.0f} px/s carry {n_boxes} boxes."
    return _mirror(spec) if rng.random() < 0.5 else spec


def hourglass(difficulty: int, rng: np.random.Generator) -> dict:
    """Sand grains pour from an upper funnel through a narrow neck and pile up in the chamber below.

    Difficulty: 25 to 125 grains (25 more per level) and a neck that narrows from about 5 to 3.8
    grain diameters, so the pour takes from under one second to about two and a half.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.3, elasticity=0.1)
    r_max = 5.5
    cx = WIDTH / 2 + float(rng.uniform(-20, 20))
    neck_y = 300.0 + float(rng.uniform(-15, 15))
    neck = 2 * r_max * (5.3 - 0.3 * difficulty + float(rng.uniform(-0.15, 0.15)))  # clear gap, px
    half = float(rng.uniform(150, 170))  # chamber half-width
    rise = float(rng.uniform(140, 160))  # height of each funnel
    r = WALL_RADIUS
    glass = []
    for side in (-1.0, 1.0):
        lip = (cx + side * (neck / 2 + r), neck_y)
        upper = (cx + side * half, neck_y + rise)
        lower = (cx + side * half, neck_y - rise)
        glass += [
            segment(lip, upper, r, friction=0.3, elasticity=0.1),
            segment(upper, (upper[0], HEIGHT), r, friction=0.3, elasticity=0.1),
            segment(lip, lower, r, friction=0.3, elasticity=0.1),
            segment(lower, (lower[0], 0), r, friction=0.3, elasticity=0.1),
        ]
    spec["statics"] += glass
    # Fill the upper chamber from its bottom up on a jittered hexagonal lattice.
    n = 25 * difficulty
    pitch = 2 * r_max + 1.0
    bodies: list[dict] = []
    y = neck_y + 2 * r_max
    row = 0
    while len(bodies) < n and y < HEIGHT - pitch:
        # Inner half-width of the glass at this height (funnel below `rise`, straight walls above).
        inner = neck / 2 + r + min(1.0, (y - neck_y) / rise) * (half - neck / 2 - r)
        x = cx - inner + (pitch / 2 if row % 2 else 0.0)
        while len(bodies) < n and x < cx + inner:
            rad = float(rng.uniform(0.8, 1.0)) * r_max
            slack = (pitch - 2 * rad) / 2 - 0.25
            p = (x + float(rng.uniform(-slack, slack)), y + float(rng.uniform(-slack, slack)))
            if _clear_of_segments(p, rad, glass, 1.0):
                bodies.append(circle(p, rad, mass=0.05 * rad * rad, friction=0.2, elasticity=0.1))
            x += pitch
        y += pitch * math.sqrt(3) / 2
        row += 1
    spec["bodies"] = bodies
    spec["description"] = f"Hourglass: {len(bodies)} grains pour through a {neck:.0f} px neck."
    return spec


def wind(difficulty: int, rng: np.random.Generator) -> dict:
    """A gusting wind sweeps light leaves and balloons downwind as they fall while heavy stones barely move.

    Difficulty: 4 to 12 bodies (2 more per level, 1 to 3 of them heavy), wind speed rising from
    about 140 to 300 px/s and gusts from 10% to 50% of it.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.8, elasticity=0.3)
    # Built blowing rightwards, mirrored at random afterwards.
    speed = 100.0 + 40.0 * difficulty + float(rng.uniform(-15, 15))
    spec["fields"]["wind"] = {
        "velocity": [speed, 0.0],
        "drag": 0.02,
        "gust_amplitude": 0.1 * difficulty,
        "gust_period": float(rng.uniform(0.8, 1.6)),
    }
    n_heavy = 1 + (difficulty - 1) // 2
    n_light = 2 + 2 * difficulty - n_heavy
    bodies: list[dict] = []
    for k in range(n_heavy):
        size = float(rng.uniform(16, 22))
        if k % 2 == 0:  # a stone block resting on the ground

            def make(pos, size=size):
                return box(
                    (pos[0], size / 2 + 0.5),
                    2 * size,
                    size,
                    mass=float(rng.uniform(10, 16)),
                    friction=0.8,
                    elasticity=0.1,
                )
        else:  # a boulder dropped from mid-air (an angular rock: it cannot roll away)

            def make(pos, size=size):
                return _rock(
                    rng,
                    pos,
                    size * 0.8,
                    0.03,
                    angle=float(rng.uniform(0, 2 * math.pi)),
                    friction=0.8,
                    elasticity=0.1,
                )

        body = place(rng, make, bodies, (150, 650), (150, 400))
        if body is not None:
            bodies.append(body)
    for k in range(n_light):
        size = float(rng.uniform(10, 15))
        if k % 2 == 0:  # a balloon

            def make(pos, size=size):
                return circle(pos, size, mass=float(rng.uniform(0.05, 0.15)), friction=0.4, elasticity=0.5)
        else:  # a leaf: a thin plate

            def make(pos, size=size):
                return box(
                    pos,
                    2 * size,
                    0.3 * size,
                    mass=float(rng.uniform(0.05, 0.15)),
                    angle=float(rng.uniform(0, math.pi)),
                    friction=0.6,
                    elasticity=0.2,
                )

        body = place(rng, make, bodies, (40, 360), (200, 560))
        if body is not None:
            bodies.append(body)
    spec["bodies"] = bodies
    spec["description"] = (
        f"Wind: a {speed:.0f} px/s gusting wind blows {n_light} light and {n_heavy} heavy bodies."
    )
    return _mirror(spec) if rng.random() < 0.5 else spec


def orbit(difficulty: int, rng: np.random.Generator) -> dict:
    """Bodies of comparable mass orbit their common centre of mass under mutual gravity alone.

    Difficulty: 2 to 5 bodies. Level 1 is an isolated pair on a circular orbit (energy, momentum
    and angular momentum conserved; about half a turn per scene), level 2 makes the orbit eccentric
    (e 0.2-0.35, mass ratio up to 3), levels 3-5 make the pair a close binary (about 2.5 rad/s)
    circled by 1 to 3 light satellites.
    """
    spec = new_spec("", gravity=(0, 0))
    spec["statics"] = arena(friction=0.5, elasticity=0.5)
    eps = 2.0
    center = (WIDTH / 2 + float(rng.uniform(-20, 20)), HEIGHT / 2 + float(rng.uniform(-8, 8)))
    sense = 1.0 if rng.random() < 0.5 else -1.0  # counter-clockwise or clockwise
    theta = float(rng.uniform(0, 2 * math.pi))
    ratio = float(rng.uniform(1.0, 2.0 if difficulty == 1 else 3.0))
    m1 = float(rng.uniform(4.0, 6.0))
    m2 = m1 / ratio
    rad1, rad2 = 8.0 * math.sqrt(m1), 8.0 * math.sqrt(m2)
    total = m1 + m2
    if difficulty <= 2:
        e = 0.0 if difficulty == 1 else float(rng.uniform(0.2, 0.35))
        apo = float(rng.uniform(210, 250))  # separation at the start, the apoapsis
        a = apo / (1 + e)
        # Mean motion 0.9-1.0 rad/s: about half a circular orbit in 200 frames.
        n = float(rng.uniform(0.9, 1.0))
        g = n * n * a**3 / total
        if e == 0.0:
            v_rel = _circular_speed(g * total, apo, eps)
        else:
            v_rel = math.sqrt(g * total * (1 - e) / apo)  # vis-viva at apoapsis
        sep, satellites = apo, 0
    else:
        sep = float(rng.uniform(60, 68))
        n = float(rng.uniform(2.3, 2.7))
        g = n * n * (sep * sep + eps * eps) ** 1.5 / total
        v_rel = _circular_speed(g * total, sep, eps)
        satellites = difficulty - 2
    c, s = math.cos(theta), math.sin(theta)
    t = (-s * sense, c * sense)  # direction of motion of body 2 relative to body 1
    bodies = [
        circle(
            (center[0] - sep * m2 / total * c, center[1] - sep * m2 / total * s),
            rad1,
            mass=m1,
            velocity=(-v_rel * m2 / total * t[0], -v_rel * m2 / total * t[1]),
            friction=0.5,
            elasticity=0.5,
        ),
        circle(
            (center[0] + sep * m1 / total * c, center[1] + sep * m1 / total * s),
            rad2,
            mass=m2,
            velocity=(v_rel * m1 / total * t[0], v_rel * m1 / total * t[1]),
            friction=0.5,
            elasticity=0.5,
        ),
    ]
    # Light satellites on circular orbits around the binary, at least 3.3 binary separations out
    # (stable circumbinary orbits), at distinct radii and spread around it so that they neither
    # cross paths nor pull on each other much.
    if satellites == 1:
        radii = [float(rng.uniform(3.3 * sep, 255))]
    else:
        radii = np.linspace(3.3 * sep, 262.0, satellites)
    quad = 0.75 * m1 * m2 / total**2  # time-averaged quadrupole of the binary adds to its pull
    phi0 = float(rng.uniform(0, 2 * math.pi))
    for k in range(satellites):
        rr = float(radii[k])
        phi = phi0 + 2 * math.pi * k / satellites + float(rng.uniform(-0.3, 0.3))
        v = _circular_speed(g * total, rr, eps) * math.sqrt(1 + quad * (sep / rr) ** 2)
        ms = float(rng.uniform(0.02, 0.05))
        bodies.append(
            circle(
                (center[0] + rr * math.cos(phi), center[1] + rr * math.sin(phi)),
                6.0,
                mass=ms,
                velocity=(-v * math.sin(phi) * sense, v * math.cos(phi) * sense),
                friction=0.5,
                elasticity=0.5,
            )
        )
    _zero_momentum(bodies)
    spec["bodies"] = bodies
    spec["fields"]["attraction"] = {"G": float(g), "softening": eps, "between_bodies": True, "wells": []}
    # Isolated: nobody touches anything, so linear momentum and energy are conserved at every level.
    spec["expect"]["conserves_momentum"] = True
    spec["expect"]["conserves_energy"] = True
    kinds = {1: "a circular pair", 2: "an eccentric pair"}
    what = kinds.get(difficulty, f"a binary with {satellites} satellite(s)")
    spec["description"] = f"Orbit: {what} orbits under mutual gravity."
    return spec


def particle_explosion(difficulty: int, rng: np.random.Generator) -> dict:
    """A tight ball of small particles bursts outwards from a point; the sparks then fall and bounce about.

    Difficulty: 20 to 100 particles (20 more per level) and a burst speed rising from about 380 to
    700 px/s at the rim.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.4, elasticity=0.6)
    n = 20 * difficulty
    r_max = 4.5
    pitch = 2 * r_max + 1.0
    center = (float(rng.uniform(300, 500)), float(rng.uniform(240, 360)))
    # The n hexagonal-lattice sites nearest the centre form a compact disc.
    k = int(math.ceil(math.sqrt(n))) + 2
    sites = [
        ((i + 0.5 * (j % 2)) * pitch, j * pitch * math.sqrt(3) / 2)
        for i in range(-k, k + 1)
        for j in range(-k, k + 1)
    ]
    sites.sort(key=lambda p: p[0] ** 2 + p[1] ** 2)
    sites = sites[:n]
    rim = max(math.hypot(*p) for p in sites) + 1e-9
    v_max = 300.0 + 80.0 * difficulty + float(rng.uniform(-20, 20))
    bodies = []
    for dx, dy in sites:
        rad = float(rng.uniform(0.7, 1.0)) * r_max
        d = math.hypot(dx, dy)
        phi = math.atan2(dy, dx) if d > 1e-9 else float(rng.uniform(0, 2 * math.pi))
        phi += float(rng.normal(0, 0.08))
        # Homologous expansion (speed grows with distance from the centre), as in a real blast:
        # neighbours drift apart instead of colliding at once.
        v = v_max * (0.3 + 0.7 * d / rim) * float(rng.uniform(0.85, 1.15))
        bodies.append(
            circle(
                (center[0] + dx, center[1] + dy),
                rad,
                mass=0.02 * rad * rad,
                velocity=(v * math.cos(phi), v * math.sin(phi)),
                friction=0.3,
                elasticity=0.6,
            )
        )
    spec["bodies"] = bodies
    spec["description"] = f"Particle explosion: {n} particles burst out at up to {v_max:.0f} px/s."
    return spec


def gravity_well(difficulty: int, rng: np.random.Generator) -> dict:
    """Free bodies orbit fixed gravity wells: inverse-square attractors marked by static cores, no gravity.

    Difficulty: 2 to 8 bodies (2, 3, 4, 6, 8) around 1 well (levels 1-2), 2 wells (3-4) or 3
    wells (5); launch speeds stray up to 4% from circular, and from level 3 the other wells' pull
    makes the orbits lopsided (distance to the own well varying by up to about 1.7x).
    """
    spec = new_spec("", gravity=(0, 0))
    spec["statics"] = arena(friction=0.5, elasticity=0.5)
    n_wells = 1 if difficulty <= 2 else 2 if difficulty <= 4 else 3
    n_bodies = (2, 3, 4, 6, 8)[difficulty - 1]

    def jitter(p, amount):
        return (p[0] + float(rng.uniform(-amount, amount)), p[1] + float(rng.uniform(-amount, amount)))

    if n_wells == 1:
        wells = [jitter((WIDTH / 2, HEIGHT / 2), 15)]
        r_lo, r_hi = 110.0, 250.0
    elif n_wells == 2:
        wells = [jitter((205, 300), 15), jitter((595, 300), 15)]
        r_lo, r_hi = 45.0, 90.0
    else:
        wells = [jitter((200, 410), 12), jitter((600, 410), 12), jitter((400, 165), 12)]
        r_lo, r_hi = 45.0, 80.0
    g = 1000.0
    core = float(rng.uniform(12, 16))
    # The outermost orbit around each well turns at about 0.7 rad/s, the innermost ~2.2x faster.
    omega_out = float(rng.uniform(0.6, 0.8))
    masses = [omega_out**2 * r_hi**3 / g * float(rng.uniform(0.8, 1.2)) for _ in wells]
    spec["fields"]["attraction"] = {
        "G": g,
        "softening": core,
        "between_bodies": False,
        "wells": [
            {"position": [float(w[0]), float(w[1])], "mass": float(m)}
            for w, m in zip(wells, masses, strict=True)
        ],
    }
    spec["statics"] += [static_circle(w, core, friction=0.5, elasticity=0.5) for w in wells]
    ecc = 0.01 * (difficulty - 1)  # largest speed change from circular, as a fraction
    sense = 1.0 if rng.random() < 0.5 else -1.0
    bodies: list[dict] = []
    per_well = [n_bodies // n_wells + (1 if i < n_bodies % n_wells else 0) for i in range(n_wells)]
    for w, count in zip(wells, per_well, strict=True):
        # Radial bands far enough apart that neighbouring orbits cannot cross.
        radii = np.linspace(r_lo, r_hi, count) if count > 1 else [float(rng.uniform(r_lo, r_hi))]
        phi0 = float(rng.uniform(0, 2 * math.pi))
        for k, rr in enumerate(radii):
            rr = float(rr)
            phi = phi0 + 2 * math.pi * k / count + float(rng.uniform(-0.4, 0.4))
            pos = (w[0] + rr * math.cos(phi), w[1] + rr * math.sin(phi))
            # Circular speed from the pull of all wells towards this body's own well: the other
            # wells' pull would otherwise make the orbit lopsided.
            radial = sum(
                g
                * mk
                * ((wk[0] - pos[0]) * math.cos(phi) + (wk[1] - pos[1]) * math.sin(phi))
                / ((wk[0] - pos[0]) ** 2 + (wk[1] - pos[1]) ** 2 + core * core) ** 1.5
                for wk, mk in zip(wells, masses, strict=True)
            )
            v = math.sqrt(max(-radial, 0.0) * rr) * (1 + float(rng.uniform(-ecc, ecc)))
            vel = (-v * math.sin(phi) * sense, v * math.cos(phi) * sense)
            size = float(rng.uniform(6, 9))
            if rng.random() < 0.7:
                body = circle(
                    pos, size, mass=float(rng.uniform(0.5, 1.5)), velocity=vel, friction=0.5, elasticity=0.5
                )
            else:
                body = box(
                    pos,
                    1.6 * size,
                    1.2 * size,
                    mass=float(rng.uniform(0.5, 1.5)),
                    velocity=vel,
                    angle=float(rng.uniform(0, math.pi)),
                    angular_velocity=float(rng.uniform(-2, 2)),
                    friction=0.5,
                    elasticity=0.5,
                )
            bodies.append(body)
    spec["bodies"] = bodies
    spec["expect"]["conserves_energy"] = True  # fixed wells, no contacts: kinetic + well potential holds
    spec["description"] = f"Gravity well: {len(bodies)} bodies orbit {n_wells} fixed attractor(s)."
    return spec


def chain_reaction(difficulty: int, rng: np.random.Generator) -> dict:
    """A ball rolls into a row of dominoes that knock a second ball off a shelf, down a ramp, into a stack.

    The whole sequence plays out within 200 frames. Difficulty: 3 to 11 dominoes (2 more per level)
    and a target stack of 2 to 6 boxes, so the chain gets longer (the stack is hit after about 1.8 s
    at level 1, 3.1 s at level 5) and the final collapse bigger.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.6, elasticity=0.3)
    # Built left to right, mirrored at random afterwards.
    shelf_y = float(rng.uniform(340, 370))
    top = shelf_y + WALL_RADIUS
    start = (20.0, shelf_y + float(rng.uniform(55, 70)))
    ramp_foot = (float(rng.uniform(105, 120)), shelf_y)
    n_dom = 1 + 2 * difficulty
    dom_w, dom_h = 8.0, float(rng.uniform(34, 40))
    spacing = 0.55 * dom_h
    first = ramp_foot[0] + float(rng.uniform(38, 45))
    last = first + (n_dom - 1) * spacing
    r2 = float(rng.uniform(11, 13))
    ball2_x = last + dom_w / 2 + r2 + 1.5  # beside the last domino, which shoves it as it tips
    shelf_end = ball2_x + 3.0  # ball 2 rests right at the edge: any push rolls it off
    spec["statics"] += [
        segment(start, ramp_foot, friction=0.6, elasticity=0.1),
        segment(ramp_foot, (shelf_end, shelf_y), friction=0.7, elasticity=0.1),
    ]
    # The lower ramp: a straight 60-degree drop from under the shelf's edge that curves (in 15-degree
    # steps) into the floor, so ball 2 arrives rolling fast along the ground.
    bend = float(rng.uniform(130, 160))
    x0, y0 = shelf_end - 25.0, shelf_y - float(rng.uniform(80, 95))
    arc_top_y = -WALL_RADIUS + bend * (1 - math.cos(math.pi / 3))
    run = (y0 - arc_top_y) / math.tan(math.pi / 3)
    bottom_x = x0 + run + bend * math.sin(math.pi / 3)
    ramp = [(x0, y0)] + [
        (bottom_x - bend * math.sin(phi), -WALL_RADIUS + bend * (1 - math.cos(phi)))
        for phi in np.radians([60.0, 45.0, 30.0, 15.0, 0.0])
    ]
    spec["statics"] += [
        segment(p, q, friction=0.6, elasticity=0.1) for p, q in zip(ramp, ramp[1:], strict=False)
    ]
    bodies: list[dict] = []
    # Ball 1 on the start ramp, given a nudge down it; big enough to hit the first domino high.
    r1 = dom_h * float(rng.uniform(0.58, 0.65))
    dx, dy = ramp_foot[0] - start[0], ramp_foot[1] - start[1]
    length = math.hypot(dx, dy)
    ux, uy = dx / length, dy / length
    along, lift = 20.0, r1 + WALL_RADIUS + 0.5
    push = float(rng.uniform(80, 140))
    bodies.append(
        circle(
            (start[0] + along * ux - uy * lift, start[1] + along * uy + ux * lift),
            r1,
            mass=3.0,
            velocity=(push * ux, push * uy),
            angular_velocity=-push / r1,
            friction=0.7,
            elasticity=0.2,
        )
    )
    # Dominoes: thin slabs standing on the shelf.
    for k in range(n_dom):
        bodies.append(
            box(
                (first + k * spacing, top + dom_h / 2 + 0.25),
                dom_w,
                dom_h,
                mass=0.4,
                friction=0.6,
                elasticity=0.1,
            )
        )
    bodies.append(circle((ball2_x, top + r2 + 0.5), r2, mass=1.0, friction=0.6, elasticity=0.2))
    # The target: a stack of boxes on the floor, a little beyond the lower ramp's foot.
    n_stack = 1 + difficulty
    sx = bottom_x + float(rng.uniform(45, 65))
    y = 0.0
    for _ in range(n_stack):
        w, h = float(rng.uniform(30, 40)), float(rng.uniform(22, 28))
        bodies.append(
            box(
                (sx + float(rng.uniform(-2, 2)), y + h / 2 + 0.05),
                w,
                h,
                mass=0.8,
                friction=0.6,
                elasticity=0.1,
            )
        )
        y += h + 0.1
    spec["bodies"] = bodies
    spec["description"] = (
        f"Chain reaction: a ball, {n_dom} dominoes, a second ball and a stack of {n_stack} boxes."
    )
    return _mirror(spec) if rng.random() < 0.5 else spec


def fluid_sim(difficulty: int, rng: np.random.Generator) -> dict:
    """A dam breaks: a column of small, frictionless, barely bouncy discs collapses and floods the floor.

    Difficulty: 30 to 150 particles (30 more per level) in a taller column; from level 3 the flood
    meets 1 or 2 obstacles on the floor.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.0, elasticity=0.05)
    n = 30 * difficulty
    r_max = 6.0
    pitch = 2 * r_max + 0.6
    cols = 5 + difficulty
    x0 = r_max + 1.0
    # Built flowing rightwards, mirrored at random afterwards.
    bodies = []
    row = 0
    while len(bodies) < n:
        y = r_max + 0.5 + row * pitch * math.sqrt(3) / 2
        offset = pitch / 2 if row % 2 else 0.0
        for c in range(cols - (1 if row % 2 else 0)):
            if len(bodies) == n:
                break
            rad = r_max * float(rng.uniform(0.9, 1.0))
            x = x0 + offset + c * pitch + float(rng.uniform(-0.2, 0.2))
            bodies.append(circle((x, y), rad, mass=0.05 * rad * rad, friction=0.0, elasticity=0.05))
        row += 1
    obstacles = 0 if difficulty <= 2 else 1 if difficulty <= 4 else 2
    for k in range(obstacles):
        x = float(rng.uniform(330, 420)) + 200 * k
        if rng.random() < 0.5:
            w, h = float(rng.uniform(30, 60)), float(rng.uniform(25, 50))
            spec["statics"].append(
                static_poly(
                    [(x - w / 2, 0), (x + w / 2, 0), (x + w / 2, h), (x - w / 2, h)],
                    friction=0.0,
                    elasticity=0.05,
                )
            )
        else:
            spec["statics"].append(
                static_circle((x, 0.0), float(rng.uniform(25, 45)), friction=0.0, elasticity=0.05)
            )
    spec["bodies"] = bodies
    spec["description"] = f"Fluid: a dam of {n} particles breaks" + (
        f" and floods past {obstacles} obstacle(s)." if obstacles else "."
    )
    return _mirror(spec) if rng.random() < 0.5 else spec


def solar_system(difficulty: int, rng: np.random.Generator) -> dict:
    """Planets circle a heavy star on near-circular orbits under mutual gravity, the outer ones with moons.

    Difficulty: 2, 3, 3, 4, 5 planets and 0, 0, 1, 2, 3 moons (3 to 9 bodies), one moon on each of
    the outermost planets; moons circle their planets about 7 times faster than the planets circle
    the star.
    """
    spec = new_spec("", gravity=(0, 0))
    spec["statics"] = arena(friction=0.5, elasticity=0.5)
    eps = 1.0
    n_planets = (2, 3, 3, 4, 5)[difficulty - 1]
    n_moons = (0, 0, 1, 2, 3)[difficulty - 1]
    center = (WIDTH / 2 + float(rng.uniform(-15, 15)), HEIGHT / 2 + float(rng.uniform(-8, 8)))
    star_mass = 1000.0
    star_r = float(rng.uniform(24, 30))
    r_out = float(rng.uniform(250, 262))
    r_in = 105.0 if n_planets > 2 else 140.0
    # The outermost planet turns at about 0.38 rad/s (a 17 s year); Kepler's third law sets the rest.
    omega_out = float(rng.uniform(0.34, 0.42))
    g = omega_out**2 * r_out**3 / star_mass
    sense = 1.0 if rng.random() < 0.5 else -1.0
    radii = np.linspace(r_in, r_out, n_planets)
    radii[:-1] += rng.uniform(-6, 6, n_planets - 1)
    # Moons go to the outermost planets: the slowest, with the widest Hill spheres.
    hosts = set(range(n_planets - n_moons, n_planets))
    phase0 = float(rng.uniform(0, 2 * math.pi))
    star = circle(center, star_r, mass=star_mass, friction=0.5, elasticity=0.5)
    planets, moons = [], []
    for i, a in enumerate(radii):
        a = float(a)
        host = i in hosts
        m = star_mass * (float(rng.uniform(0.02, 0.025)) if host else float(rng.uniform(0.004, 0.012)))
        # Spread the planets around the star (golden-angle steps) so that no two start side by side.
        phi = phase0 + i * 2.39996 + float(rng.uniform(-0.3, 0.3))
        v = _circular_speed(g * (star_mass + m), a, eps)
        ppos = (center[0] + a * math.cos(phi), center[1] + a * math.sin(phi))
        pvel = (-v * math.sin(phi) * sense, v * math.cos(phi) * sense)
        planets.append(
            circle(
                ppos,
                float(rng.uniform(6, 7)) if host else float(rng.uniform(6, 10)),
                mass=m,
                velocity=pvel,
                friction=0.5,
                elasticity=0.5,
            )
        )
        if host:
            # A prograde moon at 0.38 Hill radii, well inside the sphere where the planet's pull
            # beats the star's tide.
            d = 0.38 * a * (m / (3 * star_mass)) ** (1 / 3)
            mm = m * 0.02
            vm = _circular_speed(g * (m + mm), d, eps)
            q = float(rng.uniform(0, 2 * math.pi))
            moons.append(
                circle(
                    (ppos[0] + d * math.cos(q), ppos[1] + d * math.sin(q)),
                    3.0,
                    mass=mm,
                    velocity=(pvel[0] - vm * math.sin(q) * sense, pvel[1] + vm * math.cos(q) * sense),
                    friction=0.5,
                    elasticity=0.5,
                )
            )
    bodies = [star] + planets + moons
    _zero_momentum(bodies)
    spec["bodies"] = bodies
    spec["fields"]["attraction"] = {"G": float(g), "softening": eps, "between_bodies": True, "wells": []}
    spec["expect"]["conserves_momentum"] = True  # isolated: nothing touches anything
    spec["expect"]["conserves_energy"] = True
    spec["description"] = f"Solar system: a star, {n_planets} planets and {len(moons)} moon(s)."
    return spec


SCENARIOS = {
    "avalanche": avalanche,
    "conveyor": conveyor,
    "hourglass": hourglass,
    "wind": wind,
    "orbit": orbit,
    "particle_explosion": particle_explosion,
    "gravity_well": gravity_well,
    "chain_reaction": chain_reaction,
    "fluid_sim": fluid_sim,
    "solar_system": solar_system,
}
