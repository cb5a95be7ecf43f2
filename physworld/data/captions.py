"""Captions and CLEVRER-style questions from a scene's events; every answer comes from the simulator.

    out = describe_scene(record)            # a record from generate.make_record or the store
    out["caption"]    # "There are two objects: a red ball and a blue square. The red ball hits ..."
    out["events"]     # [{"frame", "time", "kind", "objects", ...}, ...] in time order
    out["questions"]  # [{"type", "template", "question", "answer", "choices"?, "evidence"}, ...]

Events are read from the states and the engine's contact onsets (docs/CAPTIONS.md has the exact
rules and thresholds): enter / exit (the body's centre crosses the edge of the view), collide
(body-body or body-static contact onsets strong enough to see), fall (a drop in free fall that does
not follow a rise), come_to_rest (still for a quarter second after moving away) and topple (turned by
more than 45 degrees since it was last at rest). Thresholds are physical: the 2D world has 1 px =
1 cm, so they are stated in metres and seconds and scaled by UNITS_PER_METRE_2D.

Questions come in four types. Descriptive and explanatory ones are answered from the clip's events;
explanatory ones check each candidate cause by re-simulating the scene without it. Predictive ones
re-simulate the spec past the clip's end; counterfactual ones re-simulate it with one body removed
(`remove_body` drops the body, its joints and any controller's reference to it). Yes/no questions
are sampled so that each template has as many "yes" as "no" answers in every scene.

Objects are named as a viewer sees them: in 2D the colour the renderer draws
(render.body_color_names by body index), a shape word and "striped" for kinematic bodies (the
renderer stripes them); in 3D the spec's colour and shape. The material (3D) and then "small" /
"large" are added only where two bodies would otherwise share a name; bodies that still share one
are never the subject of a question.

Works for 2D (pymunk, states [F, N, 6], 60 frames/s) and 3D (PyBullet, world.dims == 3, states
[F, N, 13], 24 frames/s) records alike. `physworld captions` writes a whole dataset's.
"""

from __future__ import annotations

import copy
import json
import math
import zlib

import numpy as np

# ---------------------------------------------------------------- thresholds (SI; see docs/CAPTIONS.md)

UNITS_PER_METRE_2D = 100.0  # the 2D world: 1 px = 1 cm
# m/s: a contact onset counts when impulse / reduced mass is at least this: a drop of 1.3 cm, so a
# body spawned a hair above the floor and settling onto it is not "hitting" it
COLLIDE_MIN_DV = 0.5
SAME_COLLISION_TIME = 0.1  # s: onsets of one pair this close are one collision (a rattle)
REST_SPEED = 0.05  # m/s: slower than this ...
REST_SPIN = 0.2  # rad/s: ... and turning slower than this is still
REST_TIME = 0.25  # s: still this long after moving: comes to rest
MOVE_DISTANCE = 0.05  # m: a body must get this far from where it was last still (or started) ...
MOVE_TURN = 0.5  # rad: ... or turn this far, before it can come to rest again (settling is no motion)
FALL_SPEED = 0.5  # m/s: a descent is a run of frames sinking faster than this
FALL_DROP = 0.5  # m: ... that loses at least this much height
FREE_FALL_TOLERANCE = 0.15  # vertical acceleration within 15% of -g ...
FREE_FALL_TIME = 0.05  # s (and at least 2 frames) of the descent: it is a fall
FALL_RISE = 0.25  # m: not a fall if the body rose more than this in the FALL_RISE_TIME before
FALL_RISE_TIME = 0.5  # s: so the descent of a thrown or bouncing body is not a fall
TOPPLE_ANGLE = math.pi / 4  # rad: tilted this far from its orientation when last at rest
STANDING_ANGLE = math.pi / 6  # rad: a 3D cylinder or capsule topples only from standing on end

PREDICT_TIME = 2.0  # s: by default predictive questions look this far past the clip
MAX_CAPTION_EVENTS = 8  # events told one by one in the caption; the rest are counted
MAX_REMOVALS = 4  # counterfactual worlds simulated per scene (one body removed in each)
PER_ANSWER = 2  # yes/no templates: at most this many "yes" and as many "no" questions per scene
KIND_ORDER = ("enter", "collide", "fall", "topple", "come_to_rest", "exit")


# ---------------------------------------------------------------- scene geometry, 2D and 3D


def _dims(spec: dict) -> int:
    return int(spec["world"].get("dims", 2))


def _units(spec: dict) -> float:
    return UNITS_PER_METRE_2D if _dims(spec) == 2 else 1.0


def _dt(spec: dict) -> float:
    w = spec["world"]
    return float(w["dt"]) if "dt" in w else 1.0 / float(w["fps"])


def _frames(spec: dict, seconds: float, least: int = 1) -> int:
    return max(least, round(seconds / _dt(spec)))


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v [..., 3] by unit quaternions q [..., 4] (x, y, z, w)."""
    u, w = q[..., :3], q[..., 3:4]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def _tracks(spec: dict, states: np.ndarray) -> dict:
    """Positions, velocities, spin speed and orientation of states [F, N, 6 or 13], float64."""
    s = np.asarray(states, dtype=np.float64)
    if _dims(spec) == 2:
        return {"pos": s[..., 0:2], "vel": s[..., 3:5], "spin": np.abs(s[..., 5]), "orient": s[..., 2]}
    return {
        "pos": s[..., 0:3],
        "vel": s[..., 7:10],
        "spin": np.linalg.norm(s[..., 10:13], axis=-1),
        "orient": s[..., 3:7],
    }


def _turned(spec: dict, orient: np.ndarray, ref) -> np.ndarray:
    """Angle (rad) between each orientation in `orient` [F] (or [F, 4]) and the reference."""
    if _dims(spec) == 2:
        return np.abs(orient - ref)
    dot = np.abs(orient @ np.asarray(ref))
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))


def _tilted(spec: dict, orient: np.ndarray, ref, up: np.ndarray) -> np.ndarray:
    """How far (rad) the body has tipped since `ref`: in 2D its turn; in 3D the angle between the
    body axis that pointed up at `ref` and the up direction now (spinning about the vertical does
    not count as tipping)."""
    if _dims(spec) == 2:
        return np.abs(orient - ref)
    ref = np.asarray(ref, dtype=np.float64)
    inverse = ref * np.array([-1.0, -1.0, -1.0, 1.0])
    axis = _rotate(inverse, up)  # the body-frame vector that pointed up at ref
    now = _rotate(orient, np.broadcast_to(axis, orient.shape[:-1] + (3,)))
    return np.arccos(np.clip(now @ up, -1.0, 1.0))


def _can_topple(spec: dict, b: dict, orient_ref, up) -> bool:
    """Balls never topple; a 3D cylinder or capsule only when standing on end at `orient_ref`."""
    shape = b.get("shape")
    if shape in ("circle", "sphere"):
        return False
    if shape in ("cylinder", "capsule"):
        axis = _rotate(np.asarray(orient_ref, dtype=np.float64), np.array([0.0, 0.0, 1.0]))
        return bool(abs(axis @ up) >= math.cos(STANDING_ANGLE))
    return True


def _up(spec: dict) -> np.ndarray | None:
    g = np.asarray(spec["world"]["gravity"], dtype=np.float64)
    norm = float(np.linalg.norm(g))
    return None if norm == 0.0 else -g / norm


def _body_extent(spec: dict, b: dict) -> float:
    if _dims(spec) == 2:
        from physworld.worlds.spec import body_extent

        return body_extent(b)
    from physworld.worlds.spec3d import body_extent

    return body_extent(b)


def _constrained(spec: dict) -> set[int]:
    return {
        i for c in spec.get("constraints", []) for i in (c.get("a"), c.get("b")) if i is not None and i >= 0
    }


# ---------------------------------------------------------------- names


def _shape_word(spec: dict, b: dict) -> str:
    shape = b.get("shape")
    if _dims(spec) == 3:
        if shape == "box":
            return "cube" if max(b["size"]) <= 1.2 * min(b["size"]) else "block"
        return str(shape)
    if shape == "circle":
        return "ball"
    if shape == "box":
        long, short = max(b["width"], b["height"]), min(b["width"], b["height"])
        return "square" if long <= 1.2 * short else "block"
    from physworld.data.render import _convex_hull

    return "triangle" if len(_convex_hull(np.asarray(b["vertices"]))) == 3 else "polygon"


def body_names(spec: dict) -> tuple[list[str], list[bool]]:
    """Each body's name as a viewer would say it ("red ball", "small blue square") and whether that
    name picks out one body only.

    Colour and shape first; where two bodies share those, the material (3D: rubber looks matte,
    metal shiny), then, for a pair, "small"/"large" (extents differing by 30% or more), then where
    they start in the picture ("left", "middle", "top", "third from the left")."""
    bodies = spec["bodies"]
    names = []
    for b, colour in zip(bodies, body_colour_words(spec), strict=True):
        words = [colour, _shape_word(spec, b)]
        if _dims(spec) == 2 and b.get("kinematic"):
            words.insert(0, "striped")  # the renderer stripes kinematic bodies
        names.append(" ".join(words))

    def groups():
        return [
            [i for i, n in enumerate(names) if n == name]
            for name in sorted(set(names))
            if names.count(name) > 1
        ]

    if _dims(spec) == 3:
        for group in groups():
            if len({bodies[i].get("material") for i in group}) > 1:
                for i in group:
                    names[i] = f"{bodies[i]['material']} {names[i]}"
    for group in groups():
        if len(group) == 2:
            small, large = sorted(group, key=lambda i: _body_extent(spec, bodies[i]))
            if _body_extent(spec, bodies[large]) >= 1.3 * _body_extent(spec, bodies[small]):
                names[small], names[large] = f"small {names[small]}", f"large {names[large]}"
    for group in groups():
        placed = _by_position(spec, group)
        for i, word in placed.items():
            names[i] = f"{word[0]}{names[i]}{word[1]}"
    unique = [names.count(n) == 1 for n in names]
    return names, unique


_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def _by_position(spec: dict, group: list[int]) -> dict:
    """Where bodies look alike, tell them apart by where they start in the picture: left to right,
    else (a stack) bottom to top. {index: (prefix, suffix)}, empty when neither order is clear (the
    start positions of neighbours must differ by at least the larger body's extent)."""
    if len(group) > len(_ORDINALS):
        return {}
    bodies = spec["bodies"]
    pos = np.array([bodies[i]["position"] for i in group], dtype=np.float64)
    if _dims(spec) == 2:
        axes = [pos[:, 0], pos[:, 1]]
    else:
        cam = spec.get("camera") or {"position": [0.0, -1.0, 0.0], "target": [0.0, 0.0, 0.0], "up": [0, 0, 1]}
        forward = np.asarray(cam["target"], dtype=np.float64) - cam["position"]
        right = np.cross(forward, cam["up"])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        axes = [pos @ right, pos @ (up / np.linalg.norm(up))]
    extent = max(_body_extent(spec, bodies[i]) for i in group)
    words = {
        0: {2: ["left ", "right "], 3: ["leftmost ", "middle ", "rightmost "]},
        1: {2: ["lower ", "upper "], 3: ["bottom ", "middle ", "top "]},
    }
    for axis, coord in enumerate(axes):
        order = np.argsort(coord, kind="stable")
        if np.diff(coord[order]).min() < extent:
            continue
        n = len(group)
        out = {}
        for rank, k in enumerate(order):
            if n in words[axis]:
                out[group[k]] = (words[axis][n][rank], "")
            else:
                out[group[k]] = ("", f" {_ORDINALS[rank]} from the {'left' if axis == 0 else 'bottom'}")
        return out
    return {}


def body_colour_words(spec: dict) -> list[str]:
    """The colour word of each body: render.body_color_names in 2D, the spec's colour in 3D."""
    if _dims(spec) == 2:
        from physworld.data.render import body_color_names

        return body_color_names(len(spec["bodies"]))
    return [str(b.get("color", "gray")) for b in spec["bodies"]]


def static_names(spec: dict) -> tuple[list[str], list[bool]]:
    """Names of the static shapes ("ground", "left wall", "ramp", "peg", ...) and whether unique."""
    names = []
    if _dims(spec) == 3:
        up = _up(spec) if _up(spec) is not None else np.array([0.0, 0.0, 1.0])
        for s in spec.get("statics", []):
            if s["kind"] == "plane":
                names.append("floor" if float(np.dot(s["normal"], up)) > 0.9 else "wall")
                continue
            axis = _rotate(np.asarray(s["orientation"], dtype=np.float64), np.array([0.0, 0.0, 1.0]))
            lx, ly, lz = s["size"]
            if abs(float(axis @ up)) < math.cos(math.radians(5)):
                names.append("ramp")
            elif lz > max(lx, ly):
                names.append("wall")
            else:
                names.append("platform")
    else:
        w, h = spec["world"]["width"], spec["world"]["height"]
        # seen from above (no gravity) the bottom and top edges are walls, not ground and ceiling
        ground, ceiling = ("ground", "ceiling") if _up(spec) is not None else ("bottom wall", "top wall")
        for s in spec["statics"]:
            kind = s["kind"]
            if kind == "circle":
                names.append("peg")
            elif kind == "poly":
                names.append("obstacle")
            else:
                (ax, ay), (bx, by), r = s["a"], s["b"], s["radius"]
                dx, dy = abs(bx - ax), abs(by - ay)
                if dy <= 0.1 * dx:
                    if dx >= 0.5 * w and max(ay, by) + r <= 0.1 * h:
                        names.append(ground)
                    elif dx >= 0.5 * w and min(ay, by) - r >= 0.9 * h:
                        names.append(ceiling)
                    else:
                        names.append("ledge")
                elif dx <= 0.1 * dy:
                    if dy >= 0.5 * h and max(ax, bx) <= 1.0:
                        names.append("left wall")
                    elif dy >= 0.5 * h and min(ax, bx) >= w - 1.0:
                        names.append("right wall")
                    else:
                        names.append("post")
                else:
                    names.append("ramp")
    return names, [names.count(n) == 1 for n in names]


def _static_gap_2d(s: dict, p: np.ndarray) -> float:
    """Distance from point p to the surface of static shape s (negative inside), 2D."""
    if s["kind"] == "circle":
        return float(np.hypot(*(p - s["center"])) - s["radius"])
    if s["kind"] == "segment":
        a, b = np.asarray(s["a"]), np.asarray(s["b"])
        e = b - a
        t = np.clip(np.dot(p - a, e) / max(np.dot(e, e), 1e-12), 0.0, 1.0)
        return float(np.hypot(*(p - a - t * e)) - s["radius"])
    v = np.asarray(s["vertices"], dtype=np.float64)
    dists = []
    for k in range(len(v)):
        a, e = v[k], v[(k + 1) % len(v)] - v[k]
        t = np.clip(np.dot(p - a, e) / max(np.dot(e, e), 1e-12), 0.0, 1.0)
        dists.append(np.hypot(*(p - a - t * e)))
    return float(min(dists))


def _which_static(spec: dict, p: np.ndarray) -> int:
    """Index of the static shape nearest to a body's centre p (the one it touched), -1 if none."""
    statics = spec.get("statics", [])
    if not statics:
        return -1
    if _dims(spec) == 3:
        return int(np.argmin([_static_gap_3d(s, p) for s in statics]))
    return int(np.argmin([_static_gap_2d(s, p) for s in statics]))


def _static_gap_3d(s: dict, p: np.ndarray) -> float:
    """Distance from point p to a 3D static plane (signed) or box (0 inside)."""
    if s["kind"] == "plane":
        return float(np.dot(p, s["normal"]) - s["offset"])
    q = np.asarray(s["orientation"], dtype=np.float64) * np.array([-1.0, -1.0, -1.0, 1.0])
    local = _rotate(q, np.asarray(p, dtype=np.float64) - s["position"])
    return float(np.linalg.norm(np.maximum(np.abs(local) - 0.5 * np.asarray(s["size"]), 0.0)))


# ---------------------------------------------------------------- events


def _moved_from(spec: dict, tr: dict, i: int, frame: int) -> np.ndarray:
    """[F] bool: body i is MOVE_DISTANCE away from, or turned MOVE_TURN from, its pose at `frame`."""
    gone = np.linalg.norm(tr["pos"][:, i] - tr["pos"][frame, i], axis=-1) > MOVE_DISTANCE * _units(spec)
    return gone | (_turned(spec, tr["orient"][:, i], tr["orient"][frame, i]) > MOVE_TURN)


def _topple_from(spec: dict, tr: dict, i: int, frame: int, up, constrained: set) -> tuple:
    """(whether body i can topple, its tilt [F] from its pose at `frame`)."""
    ref = tr["orient"][frame, i]
    if up is None or i in constrained or not _can_topple(spec, spec["bodies"][i], ref, up):
        return False, None
    return True, _tilted(spec, tr["orient"][:, i], ref, up)


def _in_view(spec: dict, pos: np.ndarray) -> np.ndarray | None:
    """[F, N] bool: the body's centre is in the picture. 2D: inside the world rectangle, which the
    renderer maps onto the whole image. 3D: inside the camera's square view (vertical fov = the
    horizontal one, MOVi's square frames) and in front of it; None without a camera."""
    if _dims(spec) == 2:
        w, h = spec["world"]["width"], spec["world"]["height"]
        x, y = pos[..., 0], pos[..., 1]
        return (x >= 0) & (x <= w) & (y >= 0) & (y <= h)
    cam = spec.get("camera")
    if not cam:
        return None
    eye, target = np.asarray(cam["position"]), np.asarray(cam["target"])
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, cam["up"])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    rel = pos - eye
    depth = rel @ forward
    half = math.tan(math.radians(cam["fov"]) / 2) * np.maximum(depth, 1e-9)
    return (depth > cam.get("near", 0.0)) & (np.abs(rel @ right) <= half) & (np.abs(rel @ up) <= half)


def _approach_speed_3d(spec: dict, tr: dict, frame: int, a: int, b: int) -> float:
    """Speed (m/s) at which body a approached body b (b < 0: the static geometry it touched) along
    the contact normal in the frame before the contact began; 0 if they were separating."""
    before = max(frame - 1, 0)
    p = tr["pos"][before, a]
    if b >= 0:
        normal = p - tr["pos"][before, b]  # the line of centres: exact for spheres
        rel = tr["vel"][before, a] - tr["vel"][before, b]
    else:
        s = spec["statics"][_which_static(spec, tr["pos"][frame, a])]
        if s["kind"] == "plane":
            normal = np.asarray(s["normal"], dtype=np.float64)
        else:
            q = np.asarray(s["orientation"], dtype=np.float64)
            local = _rotate(q * np.array([-1.0, -1.0, -1.0, 1.0]), p - s["position"])
            half = 0.5 * np.asarray(s["size"])
            normal = p - (_rotate(q, np.clip(local, -half, half)) + s["position"])
        rel = tr["vel"][before, a]
    norm = float(np.linalg.norm(normal))
    if norm == 0.0:
        return 0.0
    return max(0.0, -float(rel @ normal) / norm)


def _contacts(events) -> list[tuple[int, int, int, float]]:
    """Contact onsets as (frame, body_a, body_b, impulse), from the engine's dict of arrays or lists."""
    frame = np.asarray(events["frame"]).tolist()
    a, b = np.asarray(events["body_a"]).tolist(), np.asarray(events["body_b"]).tolist()
    imp = np.asarray(events["impulse"], dtype=np.float64).tolist()
    return sorted(zip(frame, a, b, imp, strict=True))


def extract_events(spec: dict, states, contacts, last_frame: int | None = None) -> list[dict]:
    """The events of frames 0..last_frame of a run, in time order (see the module docstring).

    `states` [F, N, 6] (2D) or [F, N, 13] (3D); `contacts` the engine's onsets
    {"frame", "body_a", "body_b", "impulse"}. Each event: {"frame", "time", "kind", "objects"} and
    per kind "with_static"/"static" (collide with static geometry), "strength" (collide: the
    velocity change in m/s), "drop" (fall, m), "angle" (topple, degrees).
    """
    states = np.asarray(states)
    last = len(states) - 1 if last_frame is None else min(int(last_frame), len(states) - 1)
    states = states[: last + 1]
    units, dt = _units(spec), _dt(spec)
    tr = _tracks(spec, states)
    bodies = spec["bodies"]
    n = len(bodies)
    speed = np.linalg.norm(tr["vel"], axis=-1)  # [F, N]
    out: list[dict] = []

    def add(frame, kind, objects, **extra):
        out.append(
            {"frame": int(frame), "time": round(frame * dt, 4), "kind": kind, "objects": objects, **extra}
        )

    # collide: onsets whose impulse changes the pair's relative velocity by COLLIDE_MIN_DV or more
    mass = [0.0 if b.get("kinematic") else float(b["mass"]) for b in bodies]
    last_seen: dict[tuple, int] = {}
    for frame, a, b, impulse in _contacts(contacts):
        if frame > last:
            break
        if a < 0:
            a, b = b, a
        if a < 0:
            continue
        if b >= 0 and mass[a] > 0 and mass[b] > 0:
            m_eff = mass[a] * mass[b] / (mass[a] + mass[b])
        else:
            m_eff = mass[a] if mass[a] > 0 else (mass[b] if b >= 0 else 0.0)
        if m_eff <= 0:
            continue
        dv = impulse / m_eff / units
        if _dims(spec) == 3:
            # PyBullet spreads a contact's impulse over several substeps, so the onset substep's
            # impulse understates it. The speed at which the two approached along the contact
            # normal in the frame before is a lower bound on the velocity change (1 + e >= 1) that
            # a resting or sliding contact does not reach; take whichever is larger.
            dv = max(dv, _approach_speed_3d(spec, tr, frame, a, b))
        if dv < COLLIDE_MIN_DV:
            continue
        static = _which_static(spec, tr["pos"][frame, a]) if b < 0 else None
        key = (a, -1, static) if b < 0 else (min(a, b), max(a, b), None)
        previous = last_seen.get(key)
        last_seen[key] = frame
        if previous is not None and frame - previous <= _frames(spec, SAME_COLLISION_TIME):
            continue
        if b < 0:
            add(frame, "collide", [a], with_static=True, static=static, strength=round(dv, 3))
        else:
            # the faster body before the contact is the one that hits the other
            before = max(frame - 1, 0)
            first, second = sorted((a, b), key=lambda i: (-round(float(speed[before, i]), 6), i))
            add(frame, "collide", [first, second], with_static=False, strength=round(dv, 3))

    constrained = _constrained(spec)
    up = _up(spec)
    rest_frames, rise_frames = _frames(spec, REST_TIME), _frames(spec, FALL_RISE_TIME)
    free_frames = _frames(spec, FREE_FALL_TIME, least=2)
    for i, b in enumerate(bodies):
        if b.get("kinematic"):
            continue
        # come_to_rest, and topple measured from the orientation at the last rest (or the start)
        still = (speed[:, i] < REST_SPEED * units) & (tr["spin"][:, i] < REST_SPIN)
        armed, run = False, 0

        moving = _moved_from(spec, tr, i, 0)
        topple_armed, tilt = _topple_from(spec, tr, i, 0, up, constrained)
        for f in range(len(states)):
            armed |= bool(moving[f])
            run = run + 1 if still[f] else 0
            if topple_armed and tilt[f] > TOPPLE_ANGLE:
                add(f, "topple", [i], angle=round(math.degrees(float(tilt[f])), 1))
                topple_armed = False
            if armed and run >= rest_frames:
                start = f - rest_frames + 1
                add(start, "come_to_rest", [i])
                armed = False
                moving = _moved_from(spec, tr, i, start)
                topple_armed, tilt = _topple_from(spec, tr, i, start, up, constrained)
        # fall: a descent in free fall, of at least FALL_DROP, that does not follow a rise
        if up is None or i in constrained:
            continue
        height = tr["pos"][:, i] @ up
        v_up = tr["vel"][:, i] @ up
        g = float(np.linalg.norm(spec["world"]["gravity"]))
        accel = np.diff(v_up, prepend=v_up[0]) / dt
        free = np.abs(accel + g) < FREE_FALL_TOLERANCE * g
        sinking = v_up < -FALL_SPEED * units
        f = 1
        while f < len(states):
            if not sinking[f]:
                f += 1
                continue
            end = f
            while end + 1 < len(states) and sinking[end + 1]:
                end += 1
            drop = float(height[f - 1] - height[end])
            rose = bool(height[f - 1] - height[max(0, f - rise_frames) : f].min() > FALL_RISE * units)
            longest, cur = 0, 0
            for k in range(f, end + 1):
                cur = cur + 1 if free[k] else 0
                longest = max(longest, cur)
            if drop >= FALL_DROP * units and not rose and longest >= free_frames:
                add(f, "fall", [i], drop=round(drop / units, 3))
            f = end + 1

    # enter / exit: the centre crosses the edge of the view (2D: the whole world is in view)
    inside = _in_view(spec, tr["pos"])
    if inside is not None:
        for i in range(n):
            for f in np.flatnonzero(inside[1:, i] != inside[:-1, i]) + 1:
                add(int(f), "enter" if inside[f, i] else "exit", [i])

    out.sort(key=lambda e: (e["frame"], KIND_ORDER.index(e["kind"]), e["objects"]))
    return out


# ---------------------------------------------------------------- simulation


def _simulate(spec: dict, frames: int) -> dict:
    from physworld.worlds.engine import simulate  # runs 3D specs on PyBullet

    return simulate(spec, frames)


def remove_body(spec: dict, k: int) -> tuple[dict, list[int]]:
    """The spec without body k: its joints are dropped, other joints and controllers' targets are
    renumbered. Returns (new spec, old_to_new) where old_to_new[k] == -1."""
    n = len(spec["bodies"])
    if not 0 <= k < n:
        raise ValueError(f"remove_body: body {k} out of range (scene has {n} bodies)")
    old_to_new = [i if i < k else i - 1 for i in range(n)]
    old_to_new[k] = -1

    def renumber(i):
        return i if i < 0 else old_to_new[i]

    out = copy.deepcopy(spec)
    out["bodies"] = [b for i, b in enumerate(out["bodies"]) if i != k]
    out["constraints"] = [
        dict(c, a=renumber(c["a"]), b=renumber(c["b"]))
        for c in out.get("constraints", [])
        if k not in (c.get("a"), c.get("b"))
    ]
    for b in out["bodies"]:
        ctrl = b.get("controller")
        if ctrl and "targets" in ctrl:
            ctrl["targets"] = [renumber(t) for t in ctrl["targets"] if t != k]
    return out, old_to_new


def _renumber_events(events: list[dict], new_to_old: list[int]) -> list[dict]:
    return [dict(e, objects=[new_to_old[i] for i in e["objects"]]) for e in events]


# ---------------------------------------------------------------- phrases


def _the(name: str, unique: bool) -> str:
    if unique:
        return f"the {name}"
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight")


def _clause(e: dict, bn, bu, sn, su) -> str:
    a = _the(bn[e["objects"][0]], bu[e["objects"][0]])
    kind = e["kind"]
    if kind == "collide":
        if e["with_static"]:
            other = (
                "the static scenery"
                if e["static"] is None or e["static"] < 0
                else _the(sn[e["static"]], su[e["static"]])
            )
        else:
            other = _the(bn[e["objects"][1]], bu[e["objects"][1]])
        return f"{a} hits {other}"
    return {
        "fall": f"{a} falls",
        "come_to_rest": f"{a} comes to rest",
        "topple": f"{a} tips over",
        "enter": f"{a} comes into view",
        "exit": f"{a} leaves the view",
    }[kind]


def caption(spec: dict, events: list[dict]) -> str:
    """One paragraph: what is there, then the first MAX_CAPTION_EVENTS events in order, then a count
    of the rest."""
    bn, bu = body_names(spec)
    sn, su = static_names(spec)
    n = len(bn)
    if n == 0:
        return "The scene is empty."
    count = _NUMBERS[n] if n < len(_NUMBERS) else str(n)
    if n <= 6:
        first = (
            f"There {'is' if n == 1 else 'are'} {count} object{'s' if n > 1 else ''}: "
            + _join([_the(name, False) for name in bn])
            + "."
        )
    else:
        first = f"There are {count} objects."
    if not events:
        return first + " Nothing collides, falls, tips over or comes to rest."
    clauses = [_clause(e, bn, bu, sn, su) for e in events[:MAX_CAPTION_EVENTS]]
    sentences = [first]
    for k in range(0, len(clauses), 3):
        chunk = clauses[k : k + 3]
        text = ", then ".join(chunk)
        text = ("Then " + text) if k else (text[0].upper() + text[1:])
        sentences.append(text + ".")
    rest = events[MAX_CAPTION_EVENTS:]
    if rest:
        kinds = {
            "collide": ("collision", "collisions"),
            "fall": ("fall", "falls"),
            "topple": ("topple", "topples"),
            "come_to_rest": ("object coming to rest", "objects coming to rest"),
            "enter": ("entrance", "entrances"),
            "exit": ("exit", "exits"),
        }
        counts = {k: sum(e["kind"] == k for e in rest) for k in KIND_ORDER}
        tally = [f"{c} {kinds[k][c > 1]}" for k, c in counts.items() if c]
        sentences.append(f"After that, {len(rest)} more events follow ({_join(tally)}).")
    return " ".join(sentences)


# ---------------------------------------------------------------- questions


def _pairs_hit(events: list[dict]) -> set[tuple]:
    """Who hit whom: ("body", i, j) with i < j, and ("static", i, static index)."""
    out = set()
    for e in events:
        if e["kind"] != "collide":
            continue
        if e["with_static"]:
            out.add(("static", e["objects"][0], e["static"]))
        else:
            i, j = sorted(e["objects"])
            out.add(("body", i, j))
    return out


def _brief(events: list[dict]) -> list[dict]:
    """Events as evidence: what, when and who."""
    keep = ("frame", "kind", "objects", "static")
    return [{k: e[k] for k in keep if k in e} for e in events]


class _Scene:
    """One record's names, clip events and a cache of the runs its questions need."""

    def __init__(self, record: dict, horizon: int, predict_frames: int):
        self.spec = record["spec"]
        self.states = np.asarray(record["states"])
        self.horizon = horizon
        self.predict_frames = predict_frames
        self.bn, self.bu = body_names(self.spec)
        self.sn, self.su = static_names(self.spec)
        self.events = extract_events(self.spec, self.states, record["events"], horizon)
        self._removed: dict[int, list[dict]] = {}
        self._future: dict | None = None

    def body(self, i: int) -> str:
        return f"the {self.bn[i]}"

    def target(self, key: tuple) -> str:
        """Name of the second party of a pair key from _pairs_hit."""
        return f"the {self.sn[key[2]]}" if key[0] == "static" else self.body(key[2])

    def referable_bodies(self) -> list[int]:
        return [i for i in range(len(self.bn)) if self.bu[i]]

    def referable_targets(self, a: int) -> list[tuple]:
        """Every pair key (a, something) whose other party has a unique name."""
        keys = [("body", a, j) for j in self.referable_bodies() if j != a]
        keys += [("static", a, s) for s in range(len(self.sn)) if self.su[s]]
        return keys

    def without(self, k: int) -> list[dict]:
        """Events of the clip's frames re-simulated without body k, in the original numbering."""
        if k not in self._removed:
            spec, old_to_new = remove_body(self.spec, k)
            run = _simulate(spec, self.horizon)
            new_to_old = [i for i in range(len(old_to_new)) if old_to_new[i] >= 0]
            self._removed[k] = _renumber_events(
                extract_events(spec, run["states"], run["events"]), new_to_old
            )
        return self._removed[k]

    def future(self) -> dict:
        """The scene simulated predict_frames past the clip: events after the clip, and whether the
        re-simulation reproduced the recorded clip exactly."""
        if self._future is None:
            run = _simulate(self.spec, self.horizon + self.predict_frames)
            everything = extract_events(self.spec, run["states"], run["events"])
            shared = min(len(self.states), self.horizon + 1)
            self._future = {
                "events": [e for e in everything if e["frame"] > self.horizon],
                "reproduces_clip": bool(np.array_equal(run["states"][:shared], self.states[:shared])),
                "still_at_end": self._still(run["states"], self.horizon),
            }
        return self._future

    def _still(self, states, frame) -> list[bool]:
        tr = _tracks(self.spec, np.asarray(states)[frame : frame + 1])
        speed = np.linalg.norm(tr["vel"][0], axis=-1)
        return [bool(s < REST_SPEED * _units(self.spec)) for s in speed]


def _balanced(rng, yes: list, no: list) -> list:
    """As many "yes" as "no" candidates (at most PER_ANSWER each), in a deterministic order."""
    n = min(len(yes), len(no), PER_ANSWER)
    pick = []
    for pool in (yes, no):
        order = rng.permutation(len(pool))[:n]
        pick += [pool[k] for k in sorted(order)]
    return pick


def _choices(rng, answer: str, others: list[str], k: int = 4) -> list[str]:
    distractors = sorted(set(others) - {answer})
    order = rng.permutation(len(distractors))[: k - 1]
    return sorted([answer] + [distractors[i] for i in order])


def _question(qtype, template, question, answer, evidence, choices=None) -> dict:
    q = {"type": qtype, "template": template, "question": question, "answer": answer}
    if choices is not None:
        q["choices"] = choices
    q["evidence"] = evidence
    return q


def _descriptive(sc: _Scene, rng) -> list[dict]:
    out = []
    ev, refs = sc.events, sc.referable_bodies()
    body_hits = [e for e in ev if e["kind"] == "collide" and not e["with_static"]]
    if len(sc.bn) >= 2:
        out.append(
            _question(
                "descriptive",
                "count_collisions",
                "How many times do two objects collide with each other?",
                str(len(body_hits)),
                {"from": "clip", "events": _brief(body_hits)},
            )
        )
    colours = body_colour_words(sc.spec)
    firsts = []
    for x in refs:
        hits = [e for e in body_hits if x in e["objects"]]
        if hits:
            other = next(i for i in hits[0]["objects"] if i != x)
            firsts.append((x, other, hits[0]))
    for k in rng.permutation(len(firsts))[:2]:
        x, other, e = firsts[k]
        answer = colours[other]
        out.append(
            _question(
                "descriptive",
                "colour_of_first_hitter",
                f"What colour is the object that {sc.body(x)} collides with first?",
                answer,
                {"from": "clip", "events": _brief([e])},
                _choices(rng, answer, [colours[i] for i in range(len(colours)) if i != x]),
            )
        )
    # Does A hit B?
    hit = _pairs_hit(ev)
    yes, no = [], []
    for a in refs:
        for key in sc.referable_targets(a):
            if key[0] == "body" and key[2] < a:
                continue
            (yes if _hit(hit, key) else no).append(key)
    for key in _balanced(rng, yes, no):
        answer = "yes" if _hit(hit, key) else "no"
        out.append(
            _question(
                "descriptive",
                "does_hit",
                f"Does {sc.body(key[1])} hit {sc.target(key)}?",
                answer,
                {
                    "from": "clip",
                    "events": _brief([e for e in ev if e["kind"] == "collide" and _key_of(e) == _norm(key)]),
                },
            )
        )
    # Which object comes to rest first?
    rests = [e for e in ev if e["kind"] == "come_to_rest"]
    if (
        rests
        and bool(sc.bu[rests[0]["objects"][0]])
        and (len(rests) == 1 or rests[1]["frame"] > rests[0]["frame"])
    ):
        answer = sc.bn[rests[0]["objects"][0]]
        out.append(
            _question(
                "descriptive",
                "first_to_rest",
                "Which object comes to rest first?",
                answer,
                {"from": "clip", "events": _brief(rests[:2])},
                _choices(rng, answer, [sc.bn[i] for i in refs]),
            )
        )
    # Does A fall?
    fell = {e["objects"][0] for e in ev if e["kind"] == "fall"}
    if _up(sc.spec) is not None:
        yes = [a for a in refs if a in fell]
        no = [a for a in refs if a not in fell and not sc.spec["bodies"][a].get("kinematic")]
        for a in _balanced(rng, yes, no):
            out.append(
                _question(
                    "descriptive",
                    "does_fall",
                    f"Does {sc.body(a)} fall?",
                    "yes" if a in fell else "no",
                    {
                        "from": "clip",
                        "events": _brief([e for e in ev if e["kind"] == "fall" and e["objects"] == [a]]),
                    },
                )
            )
    return out


def _norm(key: tuple) -> tuple:
    if key[0] == "body":
        return ("body", min(key[1], key[2]), max(key[1], key[2]))
    return key


def _key_of(e: dict) -> tuple:
    if e["with_static"]:
        return ("static", e["objects"][0], e["static"])
    return _norm(("body", *e["objects"]))


def _hit(hit: set, key: tuple) -> bool:
    return _norm(key) in hit


def _explanatory(sc: _Scene, rng) -> list[dict]:
    """Which earlier collision caused an event: each candidate is removed and the scene re-simulated;
    the cause is the one candidate without which the event no longer happens."""
    named, none = [], []
    ev = sc.events
    targets = []
    seen_falls = set()
    for e in ev:
        if e["kind"] == "fall" and sc.bu[e["objects"][0]] and e["objects"][0] not in seen_falls:
            seen_falls.add(e["objects"][0])
            targets.append(e)
    first_body_hits = {}
    for e in ev:
        if e["kind"] == "collide" and not e["with_static"] and all(sc.bu[i] for i in e["objects"]):
            first_body_hits.setdefault(_key_of(e), e)
    targets += list(first_body_hits.values())
    budget = MAX_REMOVALS
    for t in [targets[k] for k in rng.permutation(len(targets))]:
        parties = set(t["objects"])
        candidates = sorted(
            {
                i
                for e in ev
                if e["kind"] == "collide"
                and not e["with_static"]
                and e["frame"] < t["frame"]
                and parties & set(e["objects"])
                for i in e["objects"]
                if i not in parties
            }
        )
        candidates = [c for c in candidates if sc.bu[c]]
        new = [c for c in candidates if c not in sc._removed]
        if not candidates or len(new) > budget:
            continue
        budget -= len(new)
        still = {}
        for c in candidates:
            cf = sc.without(c)
            if t["kind"] == "fall":
                still[c] = any(e["kind"] == "fall" and e["objects"] == t["objects"] for e in cf)
            else:
                still[c] = any(e["kind"] == "collide" and _key_of(e) == _key_of(t) for e in cf)
        causes = [c for c in candidates if not still[c]]
        if len(causes) > 1:
            continue  # several sufficient causes: no single answer
        answer = sc.bn[causes[0]] if causes else "none of them"
        # bodies that never touched the parties before are wrong by construction; they pad the
        # choices to four, so that a blind guess is not a coin toss between a candidate and "none"
        options = [sc.bn[c] for c in candidates] + ["none of them"]
        others = [sc.bn[i] for i in sc.referable_bodies() if i not in candidates and i not in parties]
        options += [others[k] for k in rng.permutation(len(others))[: max(0, 4 - len(options))]]
        options.sort()
        if t["kind"] == "fall":
            question = f"Which object's collision caused {sc.body(t['objects'][0])} to fall?"
            template = "cause_of_fall"
        else:
            a, b = t["objects"]
            question = f"Which object is responsible for the collision between {sc.body(a)} and {sc.body(b)}?"
            template = "cause_of_collision"
        (named if causes else none).append(
            _question(
                "explanatory",
                template,
                question,
                answer,
                {
                    "from": "counterfactual simulations",
                    "event": _brief([t])[0],
                    "candidates": {
                        sc.bn[c]: {"collided_before": True, "event_without_it": still[c]} for c in candidates
                    },
                },
                options,
            )
        )
        if len(named) >= 2:
            break
    # "none of them" no more often than a named cause, so it is never the safe guess
    return named + none[: len(named)]


def _predictive(sc: _Scene, rng) -> list[dict]:
    fut = sc.future()
    ev, refs = fut["events"], sc.referable_bodies()
    seconds = sc.predict_frames * _dt(sc.spec)
    within = f"in the {seconds:g} seconds after the video ends"
    evidence = {
        "from": "simulation past the clip",
        "frames_simulated": sc.horizon + sc.predict_frames,
        "reproduces_clip": fut["reproduces_clip"],
    }
    out = []
    hit = _pairs_hit(ev)
    yes, no = [], []
    for a in refs:
        for key in sc.referable_targets(a):
            if key[0] == "body" and key[2] < a:
                continue
            (yes if _hit(hit, key) else no).append(key)
    for key in _balanced(rng, yes, no):
        out.append(
            _question(
                "predictive",
                "will_hit",
                f"Will {sc.body(key[1])} hit {sc.target(key)} {within}?",
                "yes" if _hit(hit, key) else "no",
                dict(
                    evidence,
                    events=_brief([e for e in ev if e["kind"] == "collide" and _key_of(e) == _norm(key)][:3]),
                ),
            )
        )
    moving = [a for a in refs if not fut["still_at_end"][a] and not sc.spec["bodies"][a].get("kinematic")]
    rested = {e["objects"][0] for e in ev if e["kind"] == "come_to_rest"}
    for a in _balanced(rng, [a for a in moving if a in rested], [a for a in moving if a not in rested]):
        out.append(
            _question(
                "predictive",
                "will_rest",
                f"Will {sc.body(a)}, moving when the video ends, come to rest {within}?",
                "yes" if a in rested else "no",
                dict(
                    evidence,
                    events=_brief([e for e in ev if e["kind"] == "come_to_rest" and e["objects"] == [a]]),
                ),
            )
        )
    nexts = []
    for a in refs:
        first = next((e for e in ev if e["kind"] == "collide" and a in e["objects"]), None)
        if first is None:
            continue
        if first["with_static"]:
            if first["static"] >= 0 and sc.su[first["static"]]:
                nexts.append((a, sc.sn[first["static"]], first))
        else:
            other = next(i for i in first["objects"] if i != a)
            if sc.bu[other]:
                nexts.append((a, sc.bn[other], first))
    options = [sc.bn[i] for i in refs] + [sc.sn[s] for s in range(len(sc.sn)) if sc.su[s]]
    for k in rng.permutation(len(nexts))[:2]:
        a, answer, e = nexts[k]
        out.append(
            _question(
                "predictive",
                "next_hit",
                f"What will {sc.body(a)} hit next after the video ends?",
                answer,
                dict(evidence, events=_brief([e])),
                _choices(rng, answer, [o for o in options if o != sc.bn[a]]),
            )
        )
    return out


def _counterfactual(sc: _Scene, rng) -> list[dict]:
    out = []
    refs = sc.referable_bodies()
    involved = sorted({i for e in sc.events if e["kind"] == "collide" for i in e["objects"] if sc.bu[i]})
    pool = involved or refs
    # reuse the worlds the explanatory questions simulated, then draw more up to MAX_REMOVALS
    removals = sorted(sc._removed.keys() & set(pool))
    fresh = [pool[k] for k in rng.permutation(len(pool)) if pool[k] not in removals]
    removals += sorted(fresh[: max(0, MAX_REMOVALS - len(removals))])
    factual_hit = _pairs_hit(sc.events)
    factual_fell = {e["objects"][0] for e in sc.events if e["kind"] == "fall"}
    yes, no, fall_yes, fall_no = [], [], [], []
    for k in removals:
        cf = sc.without(k)
        hit = _pairs_hit(cf)
        fell = {e["objects"][0] for e in cf if e["kind"] == "fall"}
        for a in refs:
            if a == k:
                continue
            for key in sc.referable_targets(a):
                if key[0] == "body" and (key[2] < a or key[2] == k):
                    continue
                item = (k, key, _hit(hit, key), _hit(factual_hit, key))
                (yes if item[2] else no).append(item)
            if _up(sc.spec) is not None and not sc.spec["bodies"][a].get("kinematic"):
                item = (k, a, a in fell, a in factual_fell)
                (fall_yes if item[2] else fall_no).append(item)

    def changed_first(items):
        # outcomes that differ from the clip make the question worth asking; keep them first
        return sorted(items, key=lambda it: (it[2] == it[3], it[0], str(it[1])))

    for k, key, answer, factual in _balanced(
        rng, changed_first(yes)[: 4 * PER_ANSWER], changed_first(no)[: 4 * PER_ANSWER]
    ):
        cf = sc.without(k)
        out.append(
            _question(
                "counterfactual",
                "hit_without",
                f"If {sc.body(k)} were removed, would {sc.body(key[1])} hit {sc.target(key)}?",
                "yes" if answer else "no",
                {
                    "from": "simulation without the object",
                    "removed": k,
                    "frames_simulated": sc.horizon,
                    "factual": "yes" if factual else "no",
                    "events": _brief(
                        [e for e in cf if e["kind"] == "collide" and _key_of(e) == _norm(key)][:3]
                    ),
                },
            )
        )
    for k, a, answer, factual in _balanced(
        rng, changed_first(fall_yes)[: 4 * PER_ANSWER], changed_first(fall_no)[: 4 * PER_ANSWER]
    ):
        cf = sc.without(k)
        out.append(
            _question(
                "counterfactual",
                "fall_without",
                f"If {sc.body(k)} were removed, would {sc.body(a)} fall?",
                "yes" if answer else "no",
                {
                    "from": "simulation without the object",
                    "removed": k,
                    "frames_simulated": sc.horizon,
                    "factual": "yes" if factual else "no",
                    "events": _brief([e for e in cf if e["kind"] == "fall" and e["objects"] == [a]]),
                },
            )
        )
    return out


def describe_scene(
    record: dict, *, horizon_frames: int | None = None, predict_frames: int | None = None
) -> dict:
    """Caption, events and questions of a record's clip: frames 0..horizon_frames of its states
    (default: all of them). Deterministic: the same record gives the same, JSON-serialisable dict.

    Predictive questions look `predict_frames` frames past the clip (default: PREDICT_TIME
    seconds), re-simulated from the spec; counterfactual and explanatory ones re-simulate the
    clip's frames with one body removed. Frames are the record's simulation frames (60 per second in
    2D, 24 in 3D), whatever frame rate a clip is rendered at.
    """
    states = np.asarray(record["states"])
    last = len(states) - 1
    horizon = last if horizon_frames is None else int(horizon_frames)
    if not 1 <= horizon <= last:
        raise ValueError(
            f"horizon_frames must be between 1 and {last} (the record's last frame), got {horizon_frames}"
        )
    if predict_frames is None:
        predict_frames = _frames(record["spec"], PREDICT_TIME)
    if predict_frames < 1:
        raise ValueError(f"predict_frames must be at least 1, got {predict_frames}")
    sc = _Scene(record, horizon, int(predict_frames))
    seed_words = [
        int(record.get("seed", 0)) & 0xFFFFFFFF,
        zlib.crc32(str(record.get("scenario_type", "")).encode()),
        horizon,
    ]
    questions = []
    for k, part in enumerate((_descriptive, _explanatory, _predictive, _counterfactual)):
        questions += part(sc, np.random.default_rng(seed_words + [k]))
    out = {
        "caption": caption(sc.spec, sc.events),
        "objects": [{"index": i, "name": sc.bn[i], "unique": sc.bu[i]} for i in range(len(sc.bn))],
        "events": sc.events,
        "questions": questions,
        "horizon_frames": horizon,
        "predict_frames": int(predict_frames),
    }
    # one JSON round trip: plain Python types only, and the dict is exactly what a file will hold
    return json.loads(json.dumps(out))


# ---------------------------------------------------------------- a dataset's captions on disk

CAPTIONS_CONFIG = "captions.json"


def captions_file(k: int) -> str:
    return f"captions_{k:05d}.jsonl"


def _caption_shard(args) -> tuple[int, int]:
    """Describe every scene of dataset shard k and write them as one JSONL file, atomically."""
    from physworld.data.store import Dataset
    from physworld.fileio import atomic_write_bytes

    data_dir, out_dir, k, horizon, predict = args
    ds = Dataset(data_dir)
    lines = []
    for rec in table_to_records_of_shard(ds, k):
        out = describe_scene(rec, horizon_frames=horizon, predict_frames=predict)
        head = {
            "scene_id": rec["scene_id"],
            "scenario_type": rec["scenario_type"],
            "difficulty": rec["difficulty"],
        }
        lines.append(json.dumps({**head, **out}, sort_keys=True, separators=(",", ":")))
    atomic_write_bytes(out_dir / captions_file(k), ("\n".join(lines) + "\n").encode() if lines else b"")
    return k, len(lines)


def table_to_records_of_shard(ds, k: int) -> list[dict]:
    from physworld.data.store import table_to_records

    return table_to_records(ds.shard_file(k).read())


def _prepare_output_dir(root, config: dict) -> None:
    """New, or holding an unfinished or finished run of the same config; anything else is refused."""
    from physworld.data.store import StoreError
    from physworld.fileio import atomic_write_json

    root.mkdir(parents=True, exist_ok=True)
    existing = root / CAPTIONS_CONFIG
    if existing.exists():
        try:
            old = json.loads(existing.read_text())
        except json.JSONDecodeError as e:
            raise StoreError(f"{existing}: unreadable ({e}); delete it or choose another --output-dir") from e
        if old != config:
            diff = ", ".join(k for k in sorted(set(old) | set(config)) if old.get(k) != config.get(k))
            raise StoreError(
                f"{root} holds captions of another dataset or settings (differs in: {diff}); rerun with the "
                "same arguments to resume it, or choose another --output-dir"
            )
        return
    if any(not p.name.startswith(".") for p in root.iterdir()):
        raise StoreError(
            f"{root} is not empty and holds no physworld captions; choose an empty or new --output-dir"
        )
    atomic_write_json(existing, config)


def write_captions(
    data_dir,
    output_dir,
    horizon_frames: int | None = None,
    predict_frames: int | None = None,
    num_workers: int = 1,
    progress: bool = True,
) -> dict:
    """Describe every scene of a dataset into <output_dir>/captions_<shard>.jsonl, one JSON line per
    scene ({"scene_id", "scenario_type", "difficulty"} + describe_scene's dict), one file per dataset
    shard, each written atomically; a rerun skips the files that exist. The bytes depend only on
    the dataset and the two frame counts, never on --num-workers or interruptions. Returns the
    config written to <output_dir>/captions.json."""
    import multiprocessing as mp
    from pathlib import Path

    from tqdm.auto import tqdm

    from physworld.data.store import Dataset
    from physworld.fileio import remove_stale_temporaries

    ds = Dataset(data_dir)
    frames = int(ds.manifest["config"].get("frames_per_scene", 0))
    if horizon_frames is not None and not 1 <= horizon_frames <= frames:
        raise ValueError(
            f"--horizon-frames {horizon_frames}: the scenes of {data_dir} have {frames} frames after the "
            f"first; choose 1 to {frames}"
        )
    if predict_frames is not None and predict_frames < 1:
        raise ValueError(f"--predict-frames {predict_frames}: must be at least 1")
    out = Path(output_dir)
    config = {
        "format": "physworld-captions",
        "dataset": {
            "num_scenes": ds.manifest["num_scenes"],
            "shards": [s["sha256"] for s in ds.manifest["shards"]],
        },
        "horizon_frames": horizon_frames,
        "predict_frames": predict_frames,
    }
    _prepare_output_dir(out, config)
    remove_stale_temporaries(out)
    shards = ds.manifest["shards"]
    todo = [k for k in range(len(shards)) if not (out / captions_file(k)).exists()]
    done = sum(s["num_scenes"] for k, s in enumerate(shards) if k not in todo)
    jobs = [(Path(data_dir), out, k, horizon_frames, predict_frames) for k in todo]
    with tqdm(
        total=ds.manifest["num_scenes"], initial=done, unit="scene", desc="captions", disable=not progress
    ) as bar:
        if num_workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                bar.update(_caption_shard(job)[1])
        else:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
            with ctx.Pool(min(num_workers, len(jobs))) as pool:
                for _, n in pool.imap_unordered(_caption_shard, jobs):
                    bar.update(n)
    return config
