"""From a parsed scene to a physworld spec: knowledge-base properties, a layout solved with scipy's
L-BFGS-B, and the 2D pymunk spec (or its 3D PyBullet lift).

Layout. Every body rests on a support decided by the relations (the floor; the body below it in a
stack; what it is `on`; a container's floor; a table top; a ramp's slope), so heights follow from
supports and nothing floats. What is left free is where things stand along the floor: one x per body.
The relations become penalties on those x's (centred over a support, inside a container's walls,
left / right of, next to, a row's spacing, below a table's top, a mover left of its target), plus
non-overlap of every pair whose heights overlap, minimised by L-BFGS-B with each x bounded inside the
world. The solution is then checked without trusting the solver: every relation on the final poses,
overlap at spawn by physworld's own check (worlds/checks.py), and support by asking pymunk whether
each body, moved down by a hair, touches something. A relation that fails names itself (LayoutError);
a scene with overlapping bodies is never returned as valid.

3D: the same layout in the x-z plane of the 3D world (depth y = 0), in metres (1 px = 1 cm), bodies
as spheres, boxes and upright cylinders, statics as boxes.
"""

from __future__ import annotations

import math

import numpy as np

from physworld.text2scene.kb import KBError, KnowledgeBase
from physworld.text2scene.schema import COLOUR_RGB, SceneError
from physworld.worlds import spec as spec2d

SIZE_SCALE = {None: 1.0, "small": 0.6, "medium": 1.0, "large": 1.6}
PX_PER_M = 100.0  # the 2D world's convention: 1 px = 1 cm
MIN_PX, MAX_PX = 5.0, 220.0  # a body's edge in px after scaling (what the 800 x 600 world can show)
GAP = 4.0  # px between neighbours that must not touch
LEAN = math.radians(20)  # a leaning plank's tilt from vertical
DROP = 120.0  # px a falling body starts above its support
SPEED = {"push": 320.0, "roll": 260.0, "throw": 260.0}  # px/s given to the mover
FLOOR_Y = 0.0
CLEARANCE = 0.4  # px between a resting body and its support at spawn
PALETTE = ["red", "blue", "green", "yellow", "purple", "orange", "cyan", "brown", "pink", "gray"]


class LayoutError(ValueError):
    """No layout satisfies the relations (or they contradict each other): one line naming the relation."""


# ---------------------------------------------------------------- knowledge-base properties


def resolve(scene: dict, kb: KnowledgeBase) -> list[dict]:
    """Per object group: its KB entry, material and where each came from. Fills scene objects' shape."""
    out = []
    for i, o in enumerate(scene["objects"]):
        try:
            entry, how, sim = kb.lookup(o["name"], "object")
        except KBError as e:
            raise LayoutError(f"object {i} ({o['name']!r}): {e}") from None
        o["shape"] = entry["shape"]
        props = {k: entry[k] for k in ("density", "friction", "restitution")}
        material, m_how, m_sim, m_source = entry["material"], "default", 1.0, entry["source"]
        if o["material"] is not None:
            try:
                m_entry, m_how, m_sim = kb.lookup(o["material"], "material")
            except KBError as e:
                raise LayoutError(f"object {i} ({o['name']!r}) material: {e}") from None
            material, m_source = m_entry["name"], m_entry["source"]
            props = {k: m_entry[k] for k in ("density", "friction", "restitution")}
        out.append(
            {
                "index": i,
                "name": o["name"],
                "entry": entry["name"],
                "how": how,
                "similarity": sim,
                "source": entry["source"],
                "shape": entry["shape"],
                "material": material,
                "material_how": m_how,
                "material_similarity": m_sim,
                "material_source": m_source,
                "size_m": [v * SIZE_SCALE[o["size"]] for v in entry["size"]],
                **props,
            }
        )
    return out


def _dims_px(r: dict) -> tuple[float, float, float]:
    """(width, height, depth) in px, clamped to what the world can show."""
    s = [min(max(v * PX_PER_M, MIN_PX), MAX_PX) for v in r["size_m"]]
    if r["shape"] == "sphere":
        return s[0], s[0], s[0]
    if r["shape"] == "cylinder":
        return s[0], s[1], s[0]
    if r["shape"] == "ramp":
        return (
            min(max(r["size_m"][0] * PX_PER_M, 60), 300),
            min(max(r["size_m"][1] * PX_PER_M, 20), 160),
            s[2],
        )
    if r["shape"] == "platform":
        return max(s[0], 60), max(s[1], 30), s[2]
    return s[0], s[1], s[2]


# ---------------------------------------------------------------- bodies and supports


def _bodies(scene: dict, resolved: list[dict]) -> list[dict]:
    bodies = []
    for r in resolved:
        o = scene["objects"][r["index"]]
        w, h, d = _dims_px(r)
        static = r["shape"] in ("container", "platform", "ramp")
        if static and o["count"] > 1:
            raise LayoutError(
                f"object {r['index']} ({o['name']!r}): only one {r['shape']} per group is supported"
            )
        for k in range(o["count"]):
            bodies.append(
                {
                    "group": r["index"],
                    "copy": k,
                    "shape": r["shape"],
                    "static": static,
                    "w": w,
                    "h": h,
                    "d": d,
                    "support": ("floor", None),
                    "lean": None,
                    "drop": 0.0,
                    "angle": 0.0,
                }  # fmt: skip
            )
    # Real sizes are small in an 8 x 6 m world (a ball is 20 px): scale the whole scene up, the same
    # factor for every body, so it fills about half the frame's width (at most 4x; reported)
    grouped = {r["subject"]: r["relation"] for r in scene["relations"] if r["object"] is None}
    width = height = 0.0
    for g, o in enumerate(scene["objects"]):
        first = next(b for b in bodies if b["group"] == g)
        if first["static"]:
            continue  # ramps, tables and containers are capped below instead
        stacked = grouped.get(g) == "stacked"
        width += first["w"] * (1 if stacked else o["count"]) * (1.5 if grouped.get(g) == "in_a_row" else 1.0)
        height = max(height, first["h"] * (o["count"] if stacked else 1))
    width += GAP * 8 * len(scene["objects"])
    scale = float(np.clip(min(0.5 * spec2d.WIDTH / width, 0.45 * spec2d.HEIGHT / max(height, 1.0)), 1.0, 4.0))
    for b in bodies:
        cap = {"ramp": 320.0, "platform": 300.0, "container": 260.0}.get(b["shape"], float("inf"))
        k = min(scale, max(cap / b["w"], 1.0))
        b["w"], b["h"], b["d"] = b["w"] * k, b["h"] * k, b["d"] * k
        b["scale"] = scale
    return bodies


def _describe(scene, r) -> str:
    names = [o["name"] for o in scene["objects"]]
    rel = r["relation"].replace("_", " ")
    return f"'{names[r['subject']]} {rel}" + ("'" if r["object"] is None else f" {names[r['object']]}'")


def _assign_supports(scene, bodies, resolved) -> dict:
    """Set each body's support and lean from the relations; contradictions raise LayoutError."""
    copies: dict[int, list[int]] = {}
    for b, body in enumerate(bodies):
        copies.setdefault(body["group"], []).append(b)
    grouped = {r["subject"]: r["relation"] for r in scene["relations"] if r["object"] is None}
    shape = {r["index"]: r["shape"] for r in resolved}

    def top(g):  # the body another rests on: a stack's top copy
        return copies[g][-1] if grouped.get(g) == "stacked" else copies[g][0]

    def bases(g):  # the bodies that rest on the group's support
        return copies[g][:1] if grouped.get(g) == "stacked" else copies[g]

    support_of: dict[int, tuple] = {}  # group -> (relation text, support)
    for r in scene["relations"]:
        text = _describe(scene, r)
        a, b, rel = r["subject"], r["object"], r["relation"]
        if rel in ("stacked", "in_a_row"):
            if shape[a] in ("container", "platform", "ramp"):
                raise LayoutError(f"{text}: a {shape[a]} cannot be {rel.replace('_', ' ')}")
            if scene["objects"][a]["count"] < 2:
                raise LayoutError(
                    f"{text}: needs two or more copies (give a count, e.g. 'three {scene['objects'][a]['name']}s')"
                )
            continue
        if rel in ("left_of", "right_of", "next_to"):
            continue
        if rel == "under":
            if shape[b] == "platform":
                held, sup, kind = a, b, "under"
            elif shape[b] in ("container", "ramp") or shape[a] in ("container", "platform", "ramp"):
                raise LayoutError(f"{text}: nothing fits under a {shape[b]}; put it beside or on it")
            else:
                held, sup, kind = b, a, "on"  # a under b: b rests on a
        else:
            held, sup, kind = a, b, rel
        if shape[held] in ("container", "platform", "ramp"):
            raise LayoutError(f"{text}: a {shape[held]} stays on the floor; put things on or in it instead")
        if kind == "inside" and shape[sup] != "container":
            raise LayoutError(
                f"{text}: a {scene['objects'][sup]['name']} ({shape[sup]}) is not a container; use 'on'"
            )
        if kind == "on" and shape[sup] == "container":
            kind = "inside"  # on a bucket: in it
        if kind == "leaning_on" and (
            shape[held] == "sphere" or shape[sup] in ("sphere", "ramp", "container")
        ):
            raise LayoutError(f"{text}: only boxes and cylinders lean, and only on something with a side")
        if held in support_of:
            raise LayoutError(
                f"{support_of[held][0]} and {text} contradict each other: one thing rests on one support"
            )
        support_of[held] = (text, kind, sup)
    # left/right cycles: a left of b left of a
    before: dict[int, list[tuple[int, str]]] = {}
    for r in scene["relations"]:
        if r["relation"] in ("left_of", "right_of"):
            lo, hi = (
                (r["subject"], r["object"]) if r["relation"] == "left_of" else (r["object"], r["subject"])
            )
            before.setdefault(lo, []).append((hi, _describe(scene, r)))

    def walk(start, node, path):
        for nxt, text in before.get(node, ()):
            if nxt == start:
                raise LayoutError(
                    f"{' and '.join([*path, text])} contradict each other: left and right go round in a circle"
                )
            if len(path) < len(scene["objects"]):
                walk(start, nxt, [*path, text])

    for g in before:
        walk(g, g, [])
    # support cycles: a on b on a
    for g in support_of:
        seen, cur = [g], g
        while cur in support_of and support_of[cur][2] is not None:
            cur = support_of[cur][2]
            if cur in seen:
                chain = " and ".join(support_of[x][0] for x in seen if x in support_of)
                raise LayoutError(f"{chain} contradict each other: the supports go round in a circle")
            seen.append(cur)
    for g, (_text, kind, sup) in support_of.items():
        for b in bases(g):
            if kind == "under":
                bodies[b]["support"] = ("floor", None)
                bodies[b]["under"] = sup
            elif kind == "leaning_on":
                bodies[b]["support"] = ("floor", None)
                bodies[b]["lean"] = top(sup) if bodies[top(sup)]["static"] is False else copies[sup][0]
            else:
                bodies[b]["support"] = (kind, top(sup))
    for g, rel in grouped.items():
        if rel == "stacked":
            for prev, cur in zip(copies[g], copies[g][1:], strict=False):
                bodies[cur]["support"] = ("on", prev)
    m = scene["motion"]
    if m is not None and m["action"] == "fall":
        for b in bases(m["object"]):
            bodies[b]["drop"] = DROP
    return copies


# ---------------------------------------------------------------- geometry


def _extent_x(body) -> float:
    """Half the horizontal room a body takes."""
    if body["lean"] is not None:
        return 0.5 * (_lean_length(body) * math.sin(LEAN) + _lean_thick(body) * math.cos(LEAN))
    return 0.5 * body["w"]


def _lean_length(body) -> float:
    return max(body["w"], body["h"])


def _lean_thick(body) -> float:
    return min(body["w"], body["h"])


def _ramp_surface(ramp, x_left, x) -> float:
    """Height of a ramp's slope (high end on the left) at x."""
    return ramp["h"] * (1.0 - np.clip((x - x_left) / ramp["w"], 0.0, 1.0))


def _heights(bodies, xs) -> np.ndarray:
    """Each body's centre height (px) from its support chain at the given x's."""
    ys = np.full(len(bodies), np.nan)

    def height(b):
        if not np.isnan(ys[b]):
            return ys[b]
        body = bodies[b]
        kind, sup = body["support"]
        if body["static"]:
            y = body["h"] / 2
        elif kind == "floor":
            y = FLOOR_Y + (
                _lean_length(body) * math.cos(LEAN) / 2 if body["lean"] is not None else body["h"] / 2
            )
        elif kind == "inside":
            y = _wall(bodies[sup]) + body["h"] / 2
        elif kind == "on" and bodies[sup]["shape"] == "platform":
            y = bodies[sup]["h"] + body["h"] / 2
        elif kind == "on" and bodies[sup]["shape"] == "ramp":
            y = float(_ramp_pose(body, bodies[sup], xs[sup])[1])
        else:
            y = height(sup) + bodies[sup]["h"] / 2 + body["h"] / 2
        # a hair of clearance: contact solvers start without penetration (the float check allows 1.5 px)
        ys[b] = y + body["drop"] + (0.0 if body["static"] else CLEARANCE)
        return ys[b]

    for b in range(len(bodies)):
        height(b)
    return ys


def _wall(container) -> float:
    return max(1.0, 0.06 * min(container["w"], container["h"]))


def _ramp_pose(body, ramp, ramp_x):
    """(x, y, angle) of a body resting near the top of a ramp whose left edge is ramp_x - w/2."""
    x_left = ramp_x - ramp["w"] / 2
    slope = math.atan2(ramp["h"], ramp["w"])
    normal = np.array([math.sin(slope), math.cos(slope)])
    cx = x_left + 0.12 * ramp["w"] + body["w"]
    contact = np.array([cx, _ramp_surface(ramp, x_left, cx)])
    half = body["w"] / 2 if body["shape"] == "sphere" else body["h"] / 2
    centre = contact + normal * (half + 0.5)
    return centre[0], centre[1], (0.0 if body["shape"] == "sphere" else -slope)


# ---------------------------------------------------------------- the objective


def _targets(scene, bodies, copies):
    """Linear relations over body x's: (kind, i, j, value, relation text), from relations and motion."""
    out = []
    for r in scene["relations"]:
        text = _describe(scene, r)
        a, b, rel = r["subject"], r["object"], r["relation"]
        if rel == "stacked":
            for p, c in zip(copies[a], copies[a][1:], strict=False):
                out.append(("equal", c, p, 0.0, text))
        elif rel == "in_a_row":
            for p, c in zip(copies[a], copies[a][1:], strict=False):
                body = bodies[p]
                tall = body["h"] > 1.5 * body["w"]
                spacing = body["w"] + (0.55 * body["h"] if tall else max(GAP * 2, 0.4 * body["w"]))
                out.append(("equal", c, p, spacing, text))
        elif rel in ("left_of", "right_of"):
            for i in copies[a]:
                for j in copies[b]:
                    lo, hi = (i, j) if rel == "left_of" else (j, i)
                    out.append(("before", lo, hi, GAP + 10.0, text))
        elif rel == "next_to":
            out.append(("near", copies[a][0], copies[b][0], GAP + 6.0, text))
    for b, body in enumerate(bodies):
        kind, sup = body["support"]
        if kind == "inside" and body["w"] > bodies[sup]["w"] - 2 * _wall(bodies[sup]):
            raise LayoutError(
                f"{scene['objects'][body['group']]['name']!r} is {body['w']:.0f} px wide and the opening of "
                f"{scene['objects'][bodies[sup]['group']]['name']!r} is {bodies[sup]['w'] - 2 * _wall(bodies[sup]):.0f} px: "
                "it does not fit inside; make it smaller or the container larger"
            )
        if kind in ("on", "inside") and bodies[sup]["shape"] != "ramp":
            room = _extent_x(bodies[sup]) - (_wall(bodies[sup]) if kind == "inside" else 0.0) - body["w"] / 2
            if kind == "on" and bodies[sup]["shape"] != "platform" and not bodies[sup]["static"]:
                room = min(room, 0.15 * bodies[sup]["w"])  # well centred: a stack stays up
            out.append(("within", b, sup, max(room, 0.0), f"support of body {b}"))
        if body.get("under") is not None:
            plat = bodies[copies[body["under"]][0]]
            idx = copies[body["under"]][0]
            out.append(
                ("within", b, idx, max(plat["w"] / 2 - _leg(plat) - body["w"] / 2 - GAP, 0.0), "under")
            )
        if body["lean"] is not None:
            sup = bodies[body["lean"]]
            out.append(("equal", body["lean"], b, _extent_x(body) + sup["w"] / 2 + 0.5, "lean"))
    m = scene["motion"]
    if m is not None and m["target"] is not None and m["action"] != "fall":
        mover = copies[m["object"]][0]
        kind, sup = bodies[mover]["support"]
        start = sup if kind == "on" and bodies[sup]["shape"] == "ramp" else mover
        for j in copies[m["target"]]:
            if bodies[mover]["support"][1] not in copies[m["target"]]:
                out.append(("before", start, j, 40.0, "motion"))
    return out


def _leg(platform) -> float:
    return max(4.0, 0.06 * platform["w"])


def _objective(xs, bodies, targets, preferred, ys):
    f = 0.0
    g = np.zeros_like(xs)
    for kind, i, j, v, _ in targets:
        if kind == "equal":  # x_i - x_j = v
            d = xs[i] - xs[j] - v
            f += 10 * d * d
            g[i] += 20 * d
            g[j] -= 20 * d
        elif kind == "before":  # x_i + e_i + v <= x_j - e_j
            d = xs[i] + _extent_x(bodies[i]) + v - xs[j] + _extent_x(bodies[j])
            if d > 0:
                f += 10 * d * d
                g[i] += 20 * d
                g[j] -= 20 * d
        elif kind == "within":  # |x_i - x_j| <= v
            d = xs[i] - xs[j]
            over = abs(d) - v
            if over > 0:
                s = math.copysign(1.0, d)
                f += 10 * over * over
                g[i] += 20 * over * s
                g[j] -= 20 * over * s
        elif kind == "near":  # the gap between i and j is about v
            d = xs[i] - xs[j]
            gap = abs(d) - _extent_x(bodies[i]) - _extent_x(bodies[j])
            s = math.copysign(1.0, d) if d != 0 else 1.0
            e = gap - v
            f += 2 * e * e
            g[i] += 4 * e * s
            g[j] -= 4 * e * s
    # non-overlap of every pair whose heights overlap and that do not rest one on the other
    n = len(bodies)
    for i in range(n):
        for j in range(i + 1, n):
            if not _may_collide(bodies, i, j, ys):
                continue
            d = xs[i] - xs[j]
            need = _extent_x(bodies[i]) + _extent_x(bodies[j]) + GAP
            over = need - abs(d)
            if over > 0:
                s = math.copysign(1.0, d) if d != 0 else (1.0 if i < j else -1.0)
                f += 10 * over * over
                g[i] -= 20 * over * s
                g[j] += 20 * over * s
    # a weak pull towards an even spread keeps the solution unique
    d = xs - preferred
    f += 1e-3 * float(d @ d)
    g += 2e-3 * d
    return f, g


def _may_collide(bodies, i, j, ys) -> bool:
    a, b = bodies[i], bodies[j]
    for x, y in ((a, b), (b, a)):
        kind, sup = x["support"]
        if sup is not None and bodies[sup] is y:
            return False  # resting on it: apart vertically by construction
        if x.get("under") is not None and y["shape"] == "platform":
            return False
    if a["lean"] is not None and bodies[a["lean"]] is b or b["lean"] is not None and bodies[b["lean"]] is a:
        return False  # held apart by the "lean" target
    ha = a["h"] / 2 if a["lean"] is None else _lean_length(a) * math.cos(LEAN) / 2
    hb = b["h"] / 2 if b["lean"] is None else _lean_length(b) * math.cos(LEAN) / 2
    for p, q, k in ((a, b, j), (b, a, i)):
        if p["shape"] == "platform":  # a table's legs reach the floor: what stands below its top meets them
            return ys[k] - (q["h"] / 2 if q["lean"] is None else 0.0) < p["h"] - _top(p)
    return abs(ys[i] - ys[j]) < ha + hb


def solve_layout(scene: dict, resolved: list[dict]) -> tuple[list[dict], dict]:
    """(bodies with x, y, angle, the optimiser's report). LayoutError when no layout fits."""
    from scipy.optimize import minimize

    bodies = _bodies(scene, resolved)
    copies = _assign_supports(scene, bodies, resolved)
    targets = _targets(scene, bodies, copies)
    width = spec2d.WIDTH
    n = len(bodies)
    preferred = np.array([width * (k + 0.5) / n for k in range(n)])
    bounds = [(_extent_x(b) + 2.0, width - _extent_x(b) - 2.0) for b in bodies]
    for k, (lo, hi) in enumerate(bounds):
        if lo > hi:
            raise LayoutError(f"object {bodies[k]['group']} is wider than the world")
    # start from an order that already respects "before" and positive spacings (a topological sort),
    # so the solver does not have to push bodies through each other (a local minimum)
    after: dict[int, set[int]] = {k: set() for k in range(n)}
    for kind, i, j, v, _ in targets:
        if kind == "before":
            after[j].add(i)
        elif kind == "equal" and v > 0:
            after[i].add(j)
    order, placed = [], set()
    while len(order) < n:
        ready = [k for k in range(n) if k not in placed and after[k] <= placed] or [
            min(k for k in range(n) if k not in placed)
        ]
        order.append(ready[0])
        placed.add(ready[0])
    start = np.empty(n)
    start[order] = preferred
    xs = np.clip(start, [lo for lo, _ in bounds], [hi for _, hi in bounds])
    result, iterations = None, 0
    for _ in range(3):  # heights depend on x only through ramps: re-solve with updated heights
        ys = _heights(bodies, xs)
        result = minimize(
            _objective, xs, args=(bodies, targets, start, ys), jac=True, method="L-BFGS-B", bounds=bounds,
            options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-9},
        )  # fmt: skip
        xs = result.x
        iterations += int(result.nit)
    ys = _heights(bodies, xs)
    for b, body in enumerate(bodies):
        body["x"], body["y"] = float(xs[b]), float(ys[b])
        kind, sup = body["support"]
        if kind == "on" and bodies[sup]["shape"] == "ramp":
            body["x"], body["y"], body["angle"] = (float(v) for v in _ramp_pose(body, bodies[sup], xs[sup]))
            body["y"] += body["drop"]
    for body in bodies:
        if body["lean"] is not None:
            _lean_pose(body, bodies[body["lean"]])
    reg = 1e-3 * float((xs - start) @ (xs - start))
    report = {"penalty": float(result.fun) - reg, "iterations": iterations, "converged": bool(result.success),
              "scale": bodies[0]["scale"]}  # fmt: skip
    return bodies, report


def _lean_pose(body, sup) -> None:
    """Tilt a plank standing left of `sup` so it rests against it (its top corner on sup's face, or
    its face on sup's top edge when it is taller)."""
    length, thick = _lean_length(body), _lean_thick(body)
    face = sup["x"] - sup["w"] / 2 - 0.5
    reach = min(length * math.cos(LEAN), sup["y"] + sup["h"] / 2)
    along = reach / math.cos(LEAN)
    bottom_right = np.array([face - along * math.sin(LEAN), FLOOR_Y + 0.5])
    up = np.array([math.sin(LEAN), math.cos(LEAN)])
    left = np.array([-math.cos(LEAN), math.sin(LEAN)])
    centre = bottom_right + up * (length / 2) + left * (thick / 2)
    body["x"], body["y"], body["angle"] = float(centre[0]), float(centre[1]), -LEAN
    body["w"], body["h"] = thick, length


# ---------------------------------------------------------------- checks on the final layout


def check_relations(scene: dict, bodies: list[dict]) -> list[dict]:
    """Each relation with whether the final poses satisfy it (measured, not assumed) and by how much."""
    copies: dict[int, list[int]] = {}
    for b, body in enumerate(bodies):
        copies.setdefault(body["group"], []).append(b)

    def box(b):
        body = bodies[b]
        if body["angle"]:
            c, s = abs(math.cos(body["angle"])), abs(math.sin(body["angle"]))
            hw, hh = (body["w"] * c + body["h"] * s) / 2, (body["w"] * s + body["h"] * c) / 2
        else:
            hw, hh = body["w"] / 2, body["h"] / 2
        return body["x"] - hw, body["x"] + hw, body["y"] - hh, body["y"] + hh

    out = []
    tol = 1.5
    for r in scene["relations"]:
        a, b, rel = r["subject"], r["object"], r["relation"]
        ok, detail = True, ""
        if rel == "stacked":
            for p, c in zip(copies[a], copies[a][1:], strict=False):
                if (
                    abs(box(c)[2] - box(p)[3]) > tol
                    or abs(bodies[c]["x"] - bodies[p]["x"]) > bodies[p]["w"] / 2
                ):
                    ok, detail = False, f"copy {bodies[c]['copy']} is not on copy {bodies[p]['copy']}"
        elif rel == "in_a_row":
            ys = [bodies[k]["y"] for k in copies[a]]
            xs = [bodies[k]["x"] for k in copies[a]]
            if max(ys) - min(ys) > tol or any(x2 <= x1 for x1, x2 in zip(xs, xs[1:], strict=False)):
                ok, detail = False, "the copies are not level and in order"
        elif rel in ("left_of", "right_of"):
            for i in copies[a]:
                for j in copies[b]:
                    lo, hi = (i, j) if rel == "left_of" else (j, i)
                    if box(lo)[1] > box(hi)[0] + tol:
                        ok, detail = False, f"overlaps sideways by {box(lo)[1] - box(hi)[0]:.1f} px"
        elif rel == "next_to":
            i, j = copies[a][0], copies[b][0]
            gap = max(box(i)[0] - box(j)[1], box(j)[0] - box(i)[1])
            if not -tol <= gap <= 60.0:
                ok, detail = False, f"gap {gap:.1f} px (next to: 0 to 60 px)"
        elif rel in ("on", "inside", "under", "leaning_on"):
            held, sup = (b, a) if rel == "under" and bodies[copies[b][0]]["shape"] != "platform" else (a, b)
            i, j = copies[held][0], copies[sup][-1] if rel != "under" else copies[sup][0]
            bi, bj = box(i), box(j)
            if rel == "under" and bodies[j]["shape"] == "platform":
                ok = bj[0] <= bi[0] and bi[1] <= bj[1] and bi[3] <= bodies[j]["h"] - _top(bodies[j]) + tol
                detail = "" if ok else "not below the top, between the legs"
            elif rel == "inside":
                ok = bj[0] < bi[0] and bi[1] < bj[1] and bi[2] >= _wall(bodies[j]) - tol
                detail = "" if ok else "not between the container's walls"
            elif rel == "leaning_on":
                gap = _face_gap(bodies[i], bj)
                ok = bodies[i]["angle"] != 0.0 and gap < 2 * tol
                detail = "" if ok else f"its face is {gap:.1f} px from it"
            else:
                sup_top = bodies[j]["h"] if bodies[j]["shape"] in ("platform", "ramp") else bj[3]
                over = bj[0] - tol <= bodies[i]["x"] <= bj[1] + tol
                drop = bodies[i]["drop"]
                touching = bodies[j]["shape"] == "ramp" or abs(bi[2] - drop - sup_top) <= tol
                ok, detail = over and touching, "" if over and touching else "not resting on top of it"
        out.append({"relation": _describe(scene, r), "satisfied": bool(ok), "detail": detail})
    return out


def _face_gap(plank, rect) -> float:
    """Smallest distance (px) from a tilted plank's right face to an axis-aligned rectangle."""
    c, s_ = math.cos(plank["angle"]), math.sin(plank["angle"])
    hw, hh = plank["w"] / 2, plank["h"] / 2
    best = float("inf")
    for t in np.linspace(-hh, hh, 64):
        px = plank["x"] + c * hw - s_ * t
        py = plank["y"] + s_ * hw + c * t
        dx = max(rect[0] - px, 0.0, px - rect[1])
        dy = max(rect[2] - py, 0.0, py - rect[3])
        best = min(best, math.hypot(dx, dy))
    return best


def _top(platform) -> float:
    return max(3.0, 0.06 * platform["h"])


def floating_bodies(spec: dict, skip: set[int]) -> list[int]:
    """Dynamic bodies of a 2D spec that touch nothing when moved down by 1.5 px (they would float)."""
    import pymunk

    from physworld.worlds.engine import build_space

    space, pbodies = build_space(spec)
    out = []
    for i, body in enumerate(pbodies):
        if i in skip:
            continue
        shape = next(iter(body.shapes))
        body.position = (body.position.x, body.position.y - 1.5)
        space.reindex_shapes_for_body(body)
        hits = [h for h in space.shape_query(shape) if h.shape.body is not body]
        body.position = (body.position.x, body.position.y + 1.5)
        space.reindex_shapes_for_body(body)
        if not hits:
            out.append(i)
    del pymunk
    return out


# ---------------------------------------------------------------- specs


def _colour(o, k) -> str:
    return o["colour"] or PALETTE[k % len(PALETTE)]


def _static_polys(body) -> list[list[list[float]]]:
    """World-space convex polygons of a static body (ramp: a wedge; container: floor and walls;
    platform: top and two legs)."""
    x, w, h = body["x"], body["w"], body["h"]
    left, right = x - w / 2, x + w / 2
    if body["shape"] == "ramp":
        return [[[left, 0.0], [right, 0.0], [left, h]]]
    if body["shape"] == "container":
        t = _wall(body)
        return [[[left, 0], [right, 0], [right, t], [left, t]], [[left, t], [left + t, t], [left + t, h], [left, h]],
                [[right - t, t], [right, t], [right, h], [right - t, h]]]  # fmt: skip
    leg, top = _leg(body), _top(body)
    return [[[left, h - top], [right, h - top], [right, h], [left, h]],
            [[left, 0], [left + leg, 0], [left + leg, h - top], [left, h - top]],
            [[right - leg, 0], [right, 0], [right, h - top], [right - leg, h - top]]]  # fmt: skip


def _velocity(scene, bodies, b, px_scale=1.0):
    m = scene["motion"]
    body = bodies[b]
    if m is None or body["group"] != m["object"] or m["action"] not in SPEED or body["copy"] != 0:
        return (0.0, 0.0), 0.0
    direction = 1.0
    if m["target"] is not None:
        tx = next(o["x"] for o in bodies if o["group"] == m["target"])
        direction = 1.0 if tx >= body["x"] else -1.0
    v = SPEED[m["action"]] * direction
    vy = 0.6 * abs(v) if m["action"] == "throw" else 0.0
    w = -v / (body["w"] / 2) if body["shape"] == "sphere" and m["action"] == "roll" else 0.0
    return (v * px_scale, vy * px_scale), w


def build_spec_2d(scene: dict, resolved: list[dict], bodies: list[dict], description: str) -> dict:
    spec = spec2d.new_spec(description)
    spec["statics"] = spec2d.arena(ceiling=False)
    spec["expect"]["contained"] = False  # no ceiling: a thrown body may leave through the top
    spec["colors"] = []
    by_group = {r["index"]: r for r in resolved}
    for b, body in enumerate(bodies):
        r = by_group[body["group"]]
        o = scene["objects"][body["group"]]
        if body["static"]:
            for poly in _static_polys(body):
                spec["statics"].append(
                    spec2d.static_poly(poly, friction=r["friction"], elasticity=r["restitution"])
                )
            continue
        # mass from density (kg/m^3) over the body's 2D area times its depth, all in metres
        area_m2 = (
            math.pi * (body["w"] / 2) ** 2 if body["shape"] == "sphere" else body["w"] * body["h"]
        ) / PX_PER_M**2
        mass = max(r["density"] * area_m2 * body["d"] / PX_PER_M, 1e-3)
        velocity, omega = _velocity(scene, bodies, b)
        kw = dict(mass=mass, velocity=velocity, angle=body["angle"], angular_velocity=omega,
                  friction=r["friction"], elasticity=r["restitution"])  # fmt: skip
        if body["shape"] == "sphere":
            spec["bodies"].append(spec2d.circle((body["x"], body["y"]), body["w"] / 2, **kw))
        else:
            spec["bodies"].append(spec2d.box((body["x"], body["y"]), body["w"], body["h"], **kw))
        spec["colors"].append(COLOUR_RGB[_colour(o, body["group"])])
    return spec


def build_spec_3d(scene: dict, resolved: list[dict], bodies: list[dict], description: str) -> dict:
    """The same layout in PyBullet's world: x (px) -> x (m) centred, height (px) -> z (m), depth y = 0."""
    from physworld.worlds import spec3d

    s = 1.0 / PX_PER_M
    x0 = spec2d.WIDTH / 2

    def pos(x, y):
        return [(x - x0) * s, 0.0, y * s]

    spec = spec3d.new_spec(description, camera=spec3d.look_at((0.0, -8.0, 2.4), (0.0, 0.0, 0.6)),
                           bounds={"min": [-6.0, -6.0, -0.5], "max": [6.0, 6.0, 8.0]})  # fmt: skip
    spec["statics"] = [spec3d.floor(extent=6.0)]
    spec["expect"]["contained"] = False  # no walls in 3D: a pushed ball may roll out of the bounds
    by_group = {r["index"]: r for r in resolved}
    for b, body in enumerate(bodies):
        r = by_group[body["group"]]
        o = scene["objects"][body["group"]]
        colour = COLOUR_RGB[_colour(o, body["group"])]
        surface = dict(friction=r["friction"], restitution=r["restitution"], rolling_friction=0.0,
                       spinning_friction=0.0)  # fmt: skip
        depth = body["d"] * s
        if body["static"]:
            if body["shape"] == "ramp":
                slope = math.atan2(body["h"], body["w"])
                length = math.hypot(body["w"], body["h"]) * s
                thick = 0.05
                mid = np.array(pos(body["x"], body["h"] / 2))
                normal = np.array([math.sin(slope), 0.0, math.cos(slope)])
                centre = mid - normal * thick / 2
                spec["statics"].append(spec3d.static_box(centre, (length, depth, thick),
                                       orientation=spec3d.quat_from_euler(pitch=slope), color="gray",
                                       material=r["material"], **surface))  # fmt: skip
                continue
            for poly in _static_polys(body):
                xs = [p[0] for p in poly]
                ys = [p[1] for p in poly]
                size = ((max(xs) - min(xs)) * s, depth, (max(ys) - min(ys)) * s)
                centre = pos((max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2)
                spec["statics"].append(spec3d.static_box(centre, size, color="gray", material=r["material"],
                                                         **surface))  # fmt: skip
            continue
        velocity, omega = _velocity(scene, bodies, b, px_scale=s)
        shape = {"sphere": {"shape": "sphere", "radius": body["w"] / 2 * s},
                 "cylinder": {"shape": "cylinder", "radius": body["w"] / 2 * s, "height": body["h"] * s}}.get(
            body["shape"], {"shape": "box", "size": [body["w"] * s, depth, body["h"] * s]})  # fmt: skip
        b3 = dict(shape)
        b3.update(
            material=r["material"],
            color=colour,
            friction=r["friction"],
            restitution=r["restitution"],
            rolling_friction=0.05 * body["w"] / 2 * s,
            spinning_friction=0.05 * body["w"] / 2 * s,
            linear_damping=0.0,
            angular_damping=0.0,
            position=pos(body["x"], body["y"]),
            orientation=spec3d.quat_from_euler(pitch=-body["angle"]),
            velocity=[velocity[0], 0.0, velocity[1]],
            angular_velocity=[0.0, -omega, 0.0],
        )
        b3["mass"] = max(r["density"] / 1000.0 * spec3d.shape_volume(b3), 1e-3)  # Kubric's scale (spec3d)
        spec["bodies"].append(b3)
    return spec


def plan(scene: dict, kb: KnowledgeBase, description: str = "") -> dict:
    """Resolve, lay out, build the spec and check it. Returns {"resolved", "bodies", "spec",
    "relations", "solver"}; LayoutError (naming the relation or body) when no valid layout exists."""
    from physworld.worlds.checks import spawn_problems

    if not scene["objects"]:
        raise SceneError("the scene has no objects")
    resolved = resolve(scene, kb)
    bodies, report = solve_layout(scene, resolved)
    relations = check_relations(scene, bodies)
    failed = [r for r in relations if not r["satisfied"]]
    if failed:
        f = failed[0]
        raise LayoutError(
            f"no layout satisfies {f['relation']}: {f['detail']} (L-BFGS-B penalty {report['penalty']:.3g} after {report['iterations']} iterations)"
        )
    spec = build_spec_2d(scene, resolved, bodies, description)
    colours = spec.pop("colors")  # the renderer's palette, kept out of the spec
    problems = spawn_problems(spec)
    if problems:
        raise LayoutError(
            f"no layout without overlap: {problems[0]} ({_body_name(scene, bodies, problems[0])})"
        )
    dynamic = [b for b in bodies if not b["static"]]
    dropped = {k for k, b in enumerate(dynamic) if b["drop"] > 0}
    floating = floating_bodies(spec, dropped)
    if floating:
        b = dynamic[floating[0]]
        raise LayoutError(
            f"{scene['objects'][b['group']]['name']!r} (copy {b['copy']}) would float: nothing supports it"
        )
    if scene["dims"] == 3:
        spec = build_spec_3d(scene, resolved, bodies, description)
        problems = spawn_problems(spec)
        if problems:
            raise LayoutError(f"no 3D layout without overlap: {problems[0]}")
    return {"resolved": resolved, "bodies": bodies, "spec": spec, "relations": relations, "solver": report,
            "colours": colours}  # fmt: skip


def _body_name(scene, bodies, problem: str) -> str:
    dynamic = [b for b in bodies if not b["static"]]
    try:
        k = int(problem.split()[1])
        return f"body {k} is the {scene['objects'][dynamic[k]['group']]['name']}"
    except (ValueError, IndexError):
        return "see the spec"
