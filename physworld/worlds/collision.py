"""Collision scenarios: bodies meeting at speed.

Each function takes (difficulty 1-5, numpy Generator) and returns a spec (see spec.py). Its
docstring's first sentence says what happens and its 'Difficulty:' paragraph says what scales;
both feed docs/SCENARIOS.md.
"""

from __future__ import annotations

import math

from physworld.worlds.spec import HEIGHT, WIDTH, arena, box, circle, new_spec, place


def billiards(difficulty, rng):
    """A cue ball strikes a triangular rack on a top-down table with cushions and rolling resistance.

    Difficulty: the rack grows from 1 to 5 rows (1, 3, 6, 10, 15 balls) and the cue speed rises
    from about 400 to 1200 px/s, with a wider aiming error.
    """
    spec = new_spec("", gravity=(0, 0), damping=0.7)  # damping stands in for the cloth's rolling resistance
    spec["statics"] = arena(friction=0.2, elasticity=0.9)
    r = 12.0
    rows = difficulty
    apex_x = float(rng.uniform(480, 540))
    cy = HEIGHT / 2 + float(rng.uniform(-40, 40))
    gap = 2 * r + 0.5
    for row in range(rows):
        for k in range(row + 1):
            x = apex_x + row * gap * math.sqrt(3) / 2
            y = cy + (k - row / 2) * gap
            spec["bodies"].append(circle((x, y), r, mass=1.0, friction=0.05, elasticity=0.92))
    speed = float(rng.uniform(300, 500)) + 180 * difficulty
    cue = (float(rng.uniform(120, 200)), cy + float(rng.uniform(-30, 30)))
    aim = math.atan2(cy - cue[1], apex_x - cue[0]) + float(rng.normal(0, 0.01 * difficulty))
    spec["bodies"].append(
        circle(
            cue,
            r,
            mass=1.0,
            velocity=(speed * math.cos(aim), speed * math.sin(aim)),
            friction=0.05,
            elasticity=0.92,
        )
    )
    spec["description"] = f"Billiards: a cue ball strikes a rack of {len(spec['bodies']) - 1} balls."
    return spec


def bowling(difficulty, rng):
    """A heavy ball rolls along a lane into upright pins standing one behind another (side view).

    Difficulty: 3 to 11 pins (2 more per level), ball speed from about 350 to 750 px/s.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.6, elasticity=0.2)
    n_pins = 1 + 2 * difficulty
    pin_w, pin_h = 8.0, 30.0
    spacing = float(rng.uniform(16, 22))
    x0 = float(rng.uniform(440, 520))
    for k in range(n_pins):
        # Pins stand upright on the floor: centre at half their height, gaps between them.
        spec["bodies"].append(
            box((x0 + k * spacing, pin_h / 2), pin_w, pin_h, mass=0.5, friction=0.6, elasticity=0.3)
        )
    r = 20.0
    speed = float(rng.uniform(250, 350)) + 100 * difficulty
    spec["bodies"].append(
        circle(
            (float(rng.uniform(60, 140)), r),
            r,
            mass=8.0,
            velocity=(speed, 0),
            angular_velocity=-speed / r,
            friction=0.8,
            elasticity=0.2,
        )
    )
    spec["description"] = f"Bowling: a heavy ball rolls into {n_pins} upright pins."
    return spec


def explosion(difficulty, rng):
    """A cluster of blocks and balls at rest is blown apart by a blast at its centre, then falls.

    Difficulty: 4 to 20 fragments (4 per level) and a blast speed scale from 300 to 700 px/s.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.6, elasticity=0.4)
    center = (float(rng.uniform(300, 500)), float(rng.uniform(250, 350)))
    blast = 200.0 + 100 * difficulty
    bodies: list[dict] = []
    for _ in range(4 * difficulty):
        kind = rng.integers(2)
        size = float(rng.uniform(8, 16))
        mass = float(rng.uniform(0.5, 2.0))

        def make(pos, kind=kind, size=size, mass=mass):
            if kind == 0:
                return circle(pos, size, mass=mass, elasticity=0.5)
            return box(pos, 1.6 * size, size, mass=mass, angle=float(rng.uniform(0, math.pi)), elasticity=0.4)

        body = place(
            rng, make, bodies, (center[0] - 110, center[0] + 110), (center[1] - 110, center[1] + 110)
        )
        if body is None:
            continue
        dx, dy = body["position"][0] - center[0], body["position"][1] - center[1]
        d = math.hypot(dx, dy) + 1e-6
        # Impulse falls off with distance from the blast and is shared out by mass.
        v = blast * min(1.0, 40.0 / d) * 1.5 / math.sqrt(mass)
        body["velocity"] = [v * dx / d, v * dy / d]
        body["angular_velocity"] = float(rng.uniform(-3, 3))
        bodies.append(body)
    spec["bodies"] = bodies
    spec["description"] = f"Explosion: a blast throws {len(bodies)} fragments outwards."
    return spec


def head_on(difficulty, rng):
    """Perfectly elastic, frictionless discs collide head-on and at glancing angles without gravity.

    Energy is conserved (elasticity 1 everywhere, no friction, no gravity). Difficulty: 1 to 5 pairs;
    level 1 is one pair on a line at 80-120 px/s, higher levels add pairs, mass ratios up to 4:1,
    speeds up to about 400 px/s and off-centre impacts.
    """
    spec = new_spec("", gravity=(0, 0))
    spec["statics"] = arena(friction=0.0, elasticity=1.0)
    spec["expect"]["conserves_energy"] = True
    # Momentum is conserved too while nobody touches a wall; level 1 is built so nobody does.
    spec["expect"]["conserves_momentum"] = difficulty == 1
    pairs = difficulty
    lane = HEIGHT / (pairs + 1)
    for p in range(pairs):
        y = lane * (p + 1) + float(rng.uniform(-0.15, 0.15) * lane)
        r1, r2 = (float(rng.uniform(12, 20)) for _ in range(2))
        ratio = 1.0 if difficulty == 1 else float(rng.uniform(1.0, 1 + 0.75 * (difficulty - 1)))
        m1, m2 = r1 * r1 / 200.0, r1 * r1 / 200.0 * ratio
        speed = (
            float(rng.uniform(80, 120)) if difficulty == 1 else float(rng.uniform(100, 100 + 75 * difficulty))
        )
        offset = 0.0 if difficulty == 1 else float(rng.uniform(-0.5, 0.5)) * (r1 + r2)
        gap = float(rng.uniform(220, 320))
        cx = WIDTH / 2 + float(rng.uniform(-40, 40))
        spec["bodies"].append(
            circle((cx - gap / 2, y), r1, mass=m1, velocity=(speed, 0), friction=0.0, elasticity=1.0)
        )
        # Equal and opposite momenta keep a level-1 pair's centre of mass still, so neither disc
        # reaches a wall within a scene.
        v2 = -speed * m1 / m2
        spec["bodies"].append(
            circle((cx + gap / 2, y + offset), r2, mass=m2, velocity=(v2, 0), friction=0.0, elasticity=1.0)
        )
    spec["description"] = f"Head-on: {pairs} pair(s) of elastic discs collide."
    return spec


def projectile(difficulty, rng):
    """Balls are launched from the left at 30-60 degrees in a parabolic arc towards target blocks.

    Difficulty: 1 to 5 projectiles, 2 to 10 target blocks, launch speed from about 450 to 750 px/s.
    """
    spec = new_spec("")
    spec["statics"] = arena(friction=0.7, elasticity=0.4)
    bodies: list[dict] = []
    # Targets: short stacks of blocks on the floor to the right.
    n_blocks = 2 * difficulty
    x_stack = float(rng.uniform(560, 680))
    y = 0.0
    stack_x = x_stack
    for k in range(n_blocks):
        w, h = float(rng.uniform(30, 44)), float(rng.uniform(18, 28))
        if k and k % 5 == 0:  # start a new stack beside the last one
            stack_x += 60.0
            y = 0.0
        bodies.append(
            box(
                (stack_x + float(rng.uniform(-3, 3)), y + h / 2),
                w,
                h,
                mass=float(rng.uniform(0.8, 2.0)),
                friction=0.7,
                elasticity=0.2,
            )
        )
        y += h
    # Projectiles: on a launch column at the left, each launched at its own angle and speed.
    for k in range(difficulty):
        r = float(rng.uniform(8, 14))
        theta = math.radians(float(rng.uniform(30, 60)))
        speed = float(rng.uniform(400, 500)) + 50 * difficulty
        pos = (60.0 + 40 * (k % 2), 40.0 + 45 * k)
        bodies.append(
            circle(
                pos,
                r,
                mass=float(rng.uniform(1, 4)),
                velocity=(speed * math.cos(theta), speed * math.sin(theta)),
                friction=0.4,
                elasticity=0.5,
            )
        )
    spec["bodies"] = bodies
    spec["description"] = f"Projectile: {difficulty} ball(s) launched at {n_blocks} target blocks."
    return spec


SCENARIOS = {
    "billiards": billiards,
    "bowling": bowling,
    "explosion": explosion,
    "head_on": head_on,
    "projectile": projectile,
}
