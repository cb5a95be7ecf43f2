"""Violation-of-expectation (VoE) pairs: two clips of one simulated scene, one possible and one
impossible, pixel-identical until an event frame e, after which the impossible one breaks physics.

    physworld voe-pairs --out D --scenarios seen heldout --pairs 64 --seed 0

Kinds of violation (what the impossible clip shows from clip frame e on):
- teleport:        one body jumps sideways (its real trajectory, shifted), then carries on.
- vanish:          one body disappears (it is moved out of view for the rest of the clip).
- size_change:     one body is drawn 1.7x larger or 0.55x smaller from e on (its motion is unchanged).
- fall_upward:     gravity flips at e: the world is simulated again from its state at frame e - 1
                   with the opposite gravity, so everything that falls falls up.
- through_floor:   a body about to land on the floor keeps its pre-contact ballistic motion (gravity
                   only, no contacts) and sinks through the floor.
- through_object:  (2D only) two bodies that collide in the real run are put in one collision group
                   and the scene is simulated again: one passes through the other.
The possible clip is always the real simulation; the impossible one reuses its rendered frames
before e, so the two agree bit for bit there. Every candidate is checked for the violation it
claims (a pair is kept only if it does: see `violation_check`) and for visibly different pixels
after e; a scene that does not admit a kind (no floor landing, no collision in the window, a body
out of view) is skipped and another seed of the same type is tried.

Layout (every file written atomically; the manifest last):

    D/pairs.json                 the VoE config (a rerun with other settings is refused, with the
                                 same settings it resumes)
    D/shards/pairs-00000.parquet PAIRS_PER_SHARD pairs per shard, one row per pair (COLUMNS below)
    D/manifest.json              per-shard sha256 and the per-pair metadata (kind, event frame,
                                 body, scenario type, held-out or seen, details)

Everything is a pure function of (config, seed, pair index): pair i draws its kind round-robin
over --kinds, its scenario type round-robin over the types, and its scene seeds from
np.random.default_rng([seed, i]).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from physworld.data.clip_config import SEG_STATIC, ClipError
from physworld.data.clips import decode_png, encode_png
from physworld.data.store import canonical_json
from physworld.fileio import atomic_write_bytes, atomic_write_json, remove_stale_temporaries, sha256_file

FORMAT = "physworld-voe-pairs"
FORMAT_VERSION = 1
CONFIG = "pairs.json"
MANIFEST = "manifest.json"
SHARD_DIR = "shards"
PAIRS_PER_SHARD = 8
KINDS = ("teleport", "vanish", "size_change", "fall_upward", "through_floor", "through_object")
KINDS_2D_ONLY = ("through_object",)
TRIES_PER_TYPE = 12  # scene seeds tried for one (pair, type) before moving on to the next type
MIN_VISIBLE_PIXELS = 4  # a body chosen for a visual edit must show at least this many pixels
MIN_CHANGED_PIXELS = 6  # the impossible clip must differ in at least this many pixels after e
GROW, SHRINK = 1.7, 0.55
OFF_SCREEN_2D = (-1.0e5, -1.0e5)  # world px: far outside the 800 x 600 view
OFF_SCREEN_3D = (0.0, 0.0, -1.0e4)
VELOCITY_UP = {
    2: 4,
    3: 9,
}  # state field of the vertical velocity (vy in 2D, vz in 3D)  # metres: far below the floor, past the camera's far plane


class VoEError(ClipError):
    """A VoE request or folder that cannot be honoured; the message names the flag or file."""


@dataclass(frozen=True)
class VoEConfig:
    resolution: int = 64
    frames: int = 16
    fps: float = 12.0
    difficulty: int = 1
    kinds: tuple = KINDS
    scenarios: tuple = ("seen", "heldout")
    seed: int = 0
    num_pairs: int = 48
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        from physworld.worlds.registry import DIFFICULTIES, resolve_types

        if not isinstance(self.resolution, int) or self.resolution < 16 or self.resolution % 2:
            raise VoEError(f"--resolution {self.resolution}: need an even number of pixels, at least 16")
        if not isinstance(self.frames, int) or self.frames < 6:
            raise VoEError(f"--frames {self.frames}: need at least 6 frames (context, event, aftermath)")
        if self.difficulty not in DIFFICULTIES:
            raise VoEError(f"--difficulty {self.difficulty}: must be one of {DIFFICULTIES}")
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise VoEError(f"--kinds {' '.join(bad) or '(none)'}: choose from {', '.join(KINDS)}")
        if self.num_pairs < 1:
            raise VoEError(f"--pairs {self.num_pairs}: need at least 1")
        try:
            types = resolve_types(self.scenarios)
        except ValueError as e:
            raise VoEError(f"--scenarios: {e}") from None
        if not types:
            raise VoEError("--scenarios: no scenario types selected")
        from physworld.worlds.registry import dims_of

        if any(k in KINDS_2D_ONLY for k in self.kinds) and not any(dims_of(t) == 2 for t in types):
            only = [k for k in self.kinds if k in KINDS_2D_ONLY]
            raise VoEError(f"--kinds {' '.join(only)}: needs 2D scenario types, and --scenarios selects none")

    def types(self) -> list[str]:
        from physworld.worlds.registry import resolve_types

        return resolve_types(self.scenarios)

    def event_range(self) -> tuple[int, int]:
        """Event frames allowed: at least a quarter of the clip before and after (min 3 frames)."""
        margin = max(3, self.frames // 4)
        return margin, self.frames - margin

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kinds"] = list(self.kinds)
        d["scenarios"] = list(self.scenarios)
        d["fps"] = float(self.fps)
        return d


# ---------------------------------------------------------------- simulation and rendering


def _stride(spec: dict, fps: float) -> int:
    sim_fps = 1.0 / float(spec["world"]["dt"])
    stride = round(sim_fps / fps)
    if stride < 1 or abs(sim_fps / fps - stride) > 1e-6:
        raise VoEError(f"--fps {fps:g}: must divide the simulation's {sim_fps:g} frames/s")
    return stride


def render_rgb_seg(spec: dict, states: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 [T, R, R, 3] and segmentation uint16 [T, R, R] (0 background, i + 1 body i) of clip
    states [T, N, D], with the clips' cameras (2D letterboxed orthographic, 3D the spec's camera)."""
    if states.shape[-1] == 13:
        from physworld.data.render3d import camera_3d, render_views

        views = render_views(spec, states[..., :7], camera_3d(spec["camera"], resolution, resolution))
        return views["rgb"], views["segmentation"]
    from physworld.data.clips import camera_2d
    from physworld.data.render import BACKGROUND, MASK_STATIC, default_height, render_frames

    inner = default_height(resolution)
    pad = camera_2d(resolution)["pad_rows"]
    rgb_in, mask_in = render_frames(spec, states, width=resolution, height=inner)
    t_len = len(states)
    rgb = np.empty((t_len, resolution, resolution, 3), dtype=np.uint8)
    rgb[:] = np.asarray(BACKGROUND, dtype=np.uint8)
    rgb[:, pad : pad + inner] = rgb_in
    seg = np.zeros((t_len, resolution, resolution), dtype=np.uint16)
    # int16 masks (-1 static) to uint16 labels: cast first, then mark static, since SEG_STATIC does not
    # fit in int16 (numpy 2.5 raises where 2.4 wrapped it round silently)
    seg_in = mask_in.astype(np.uint16)
    seg_in[mask_in == MASK_STATIC] = SEG_STATIC
    seg[:, pad : pad + inner] = seg_in
    return rgb, seg


def _gravity(spec: dict) -> np.ndarray:
    return np.asarray(spec["world"]["gravity"], dtype=np.float64)


def _dynamic(spec: dict) -> list[int]:
    return [i for i, b in enumerate(spec["bodies"]) if not b.get("kinematic") and b.get("mass", 0) > 0]


def _jointed(spec: dict) -> set[int]:
    return {c[k] for c in spec.get("constraints", []) for k in ("a", "b") if k in c and c[k] >= 0}


def _ballistic(state0: np.ndarray, gravity: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """States [len(taus), D] of a free body from state0 under gravity alone (no contacts)."""
    out = np.repeat(state0[None].astype(np.float64), len(taus), 0)
    tau = taus[:, None]
    if state0.shape[-1] == 13:
        p0, v0, w0 = state0[:3], state0[7:10], state0[10:13]
        out[:, :3] = p0 + v0 * tau + 0.5 * gravity * tau**2
        out[:, 7:10] = v0 + gravity * tau
        speed = float(np.linalg.norm(w0))
        if speed > 0:  # rotate with the constant angular velocity (world frame): q(t) = dq(t) * q0
            axis = w0 / speed
            for k, t in enumerate(taus):
                half = 0.5 * speed * t
                dq = np.array([*(axis * math.sin(half)), math.cos(half)])
                out[k, 3:7] = _quat_mul(dq, state0[3:7])
    else:
        p0, v0 = state0[:2], state0[3:5]
        out[:, :2] = p0 + v0 * tau + 0.5 * gravity * tau**2
        out[:, 2] = state0[2] + state0[5] * taus
        out[:, 3:5] = v0 + gravity * tau
    return out.astype(np.float32)


def _quat_mul(a, b) -> np.ndarray:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def _restart_spec(spec: dict, state: np.ndarray) -> dict:
    """The spec with every body placed at `state` [N, D] (positions, angles, velocities)."""
    out = copy.deepcopy(spec)
    for b, s in zip(out["bodies"], state.astype(np.float64), strict=True):
        if s.shape[-1] == 13:
            b["position"], b["orientation"] = s[:3].tolist(), s[3:7].tolist()
            b["velocity"], b["angular_velocity"] = s[7:10].tolist(), s[10:13].tolist()
        else:
            b["position"], b["angle"] = s[:2].tolist(), float(s[2])
            b["velocity"], b["angular_velocity"] = s[3:5].tolist(), float(s[5])
    return out


def _scaled_spec(spec: dict, body: int, factor: float) -> dict:
    out = copy.deepcopy(spec)
    b = out["bodies"][body]
    for key in ("radius", "width", "height"):
        if key in b:
            b[key] = float(b[key]) * factor
    if "size" in b:
        b["size"] = [float(v) * factor for v in b["size"]]
    if "vertices" in b:
        b["vertices"] = [[float(x) * factor, float(y) * factor] for x, y in b["vertices"]]
    return out


def _floor_level(spec: dict) -> float | None:
    """Height of the floor's top surface: 3D the plane z = offset; 2D the lowest horizontal segment
    spanning most of the world's width (arena's floor), its top edge. None without a floor."""
    if spec["world"].get("dims", 2) == 3:
        planes = [s for s in spec["statics"] if s["kind"] == "plane" and abs(s["normal"][2]) > 0.99]
        return float(planes[0]["offset"]) if planes else None
    floors = [
        s["a"][1] + s["radius"]
        for s in spec["statics"]
        if s["kind"] == "segment" and abs(s["a"][1] - s["b"][1]) < 1e-6 and abs(s["a"][0] - s["b"][0]) > 400
    ]
    return float(min(floors)) if floors else None


def _inner_radius(body: dict) -> float:
    """A radius the body surely covers around its centre (for the overlap check)."""
    if body["shape"] in ("circle", "sphere"):
        return float(body["radius"])
    if body["shape"] == "box":
        dims = body["size"] if "size" in body else [body["width"], body["height"]]
        return 0.5 * float(min(dims))
    if body["shape"] in ("cylinder", "capsule"):
        return float(body["radius"])
    return 0.3 * max(math.hypot(x, y) for x, y in body["vertices"])


# ---------------------------------------------------------------- the violation of each kind


def violation_check(
    kind: str, spec: dict, possible: np.ndarray, impossible: np.ndarray, e: int, body: int
) -> str:
    """'' when the impossible clip states [T, N, D] break physics as `kind` says after frame e, else why
    not. Shared by the generator (a candidate that fails is dropped) and the tests."""
    if not np.array_equal(possible[:e], impossible[:e]):
        return "the clips' states differ before the event"
    dims = 3 if possible.shape[-1] == 13 else 2
    up = dims - 1  # y in 2D, z in 3D
    pos = slice(0, dims)
    after_p, after_i = possible[e:], impossible[e:]
    if kind == "teleport":
        jump = np.linalg.norm(after_i[0, body, pos] - after_p[0, body, pos])
        scale = 100.0 if dims == 2 else 0.5  # px or m
        return "" if jump > scale else f"body {body} moved only {jump:.3g} from its real position"
    if kind == "vanish":
        far = np.abs(after_i[:, body, pos]).max(axis=-1).min()
        return "" if far > 1e3 else f"body {body} stays in the world"
    if kind == "size_change":
        return ""  # the states are the real ones; the render spec carries the change (checked by pixels)
    if kind == "fall_upward":
        g = _gravity(spec)[up]
        dyn = _dynamic(spec)
        # Mean vertical velocity change after e against gravity's sign: real runs fall, this one rises.
        v_up = VELOCITY_UP[dims]
        dv_i = (after_i[-1, dyn, v_up] - impossible[e - 1, dyn, v_up]).mean()
        return "" if g != 0 and np.sign(dv_i) == -np.sign(g) else "nothing accelerates against gravity"
    if kind == "through_floor":
        floor = _floor_level(spec)
        low = after_i[:, body, up].min()
        return "" if floor is not None and low < floor else f"body {body} stays above the floor"
    if kind == "through_object":
        other = int(spec["_voe_other"]) if "_voe_other" in spec else -1
        if other < 0:
            return "no second body"
        d = np.linalg.norm(after_i[:, body, pos] - after_i[:, other, pos], axis=-1).min()
        overlap = _inner_radius(spec["bodies"][body]) + _inner_radius(spec["bodies"][other])
        return "" if d < overlap else f"bodies {body} and {other} never overlap"
    raise ValueError(f"unknown VoE kind {kind!r}")


def _simulate(spec: dict, frames: int) -> dict:
    from physworld.worlds.engine import simulate

    return simulate(spec, frames)


def _candidate(kind: str, spec: dict, sim: dict, stride: int, config: VoEConfig, rng) -> dict | None:
    """Impossible clip states and what to render them with, or None if this scene does not admit it."""
    states = sim["states"]
    t_len = config.frames
    clip = states[np.arange(t_len) * stride]
    dims = 3 if states.shape[-1] == 13 else 2
    lo, hi = config.event_range()
    dyn = _dynamic(spec)
    if not dyn:
        return None
    jointed = _jointed(spec)
    free = [i for i in dyn if i not in jointed] or dyn
    dt = float(spec["world"]["dt"])
    out = {"render_spec": spec, "details": {}}

    if kind in ("teleport", "vanish", "size_change"):
        e = int(rng.integers(lo, hi + 1))
        body = int(rng.choice(free))
        imp = clip.copy()
        if kind == "teleport":
            if dims == 2:
                x = float(clip[e, body, 0])
                shift = float(rng.uniform(150, 300)) * (1 if x < 400 else -1)
                imp[e:, body, 0] += shift
                out["details"]["shift"] = [shift, 0.0]
            else:
                shift = np.zeros(3)
                shift[int(rng.integers(0, 2))] = float(rng.uniform(0.8, 1.4)) * float(rng.choice([-1, 1]))
                imp[e:, body, :3] += shift
                out["details"]["shift"] = shift.tolist()
        elif kind == "vanish":
            imp[e:, body, :dims] = OFF_SCREEN_2D if dims == 2 else OFF_SCREEN_3D
            imp[e:, body, 3 if dims == 2 else 7 :] = 0.0  # at rest, out of view
        else:
            factor = GROW if rng.random() < 0.5 else SHRINK
            out["render_spec"] = _scaled_spec(spec, body, factor)
            out["details"]["scale"] = factor
        return {**out, "impossible": imp, "event_frame": e, "body": body}

    if kind == "fall_upward":
        if any(b.get("controller") for b in spec["bodies"]) or not np.any(_gravity(spec)):
            return None
        e = int(rng.integers(lo, hi + 1))
        flipped = _restart_spec(spec, states[(e - 1) * stride])
        flipped["world"]["gravity"] = (-_gravity(spec)).tolist()
        again = _simulate(flipped, (t_len - e) * stride)["states"]
        imp = clip.copy()
        imp[e:] = again[np.arange(1, t_len - e + 1) * stride]
        return {**out, "impossible": imp, "event_frame": e, "body": -1}

    events = sim["events"]
    frames, a_ids, b_ids = (np.asarray(events[k]) for k in ("frame", "body_a", "body_b"))
    order = rng.permutation(len(frames))
    if kind == "through_floor":
        floor = _floor_level(spec)
        if floor is None:
            return None
        g = _gravity(spec)
        for k in order:
            f = int(frames[k])
            e = -(-f // stride)
            body = int(a_ids[k]) if b_ids[k] == -1 else int(b_ids[k]) if a_ids[k] == -1 else -1
            if body < 0 or body not in dyn or not lo <= e <= hi:
                continue
            s0 = states[(e - 1) * stride, body]
            if s0[VELOCITY_UP[dims]] >= 0:  # must be moving down before the contact
                continue
            taus = np.arange(1, t_len - e + 1) * stride * dt
            imp = clip.copy()
            imp[e:, body] = _ballistic(s0, g, taus)
            if violation_check(kind, spec, clip, imp, e, body):
                continue
            return {**out, "impossible": imp, "event_frame": e, "body": body}
        return None
    if kind == "through_object":
        if dims == 3:
            return None
        for k in order:
            f, a, b = int(frames[k]), int(a_ids[k]), int(b_ids[k])
            e = -(-f // stride)
            if a < 0 or b < 0 or not lo <= e <= hi:
                continue
            if spec["bodies"][a].get("group", 0) or spec["bodies"][b].get("group", 0):
                continue
            body, other = (a, b) if a in dyn else (b, a)
            if body not in dyn:
                continue
            ghost = copy.deepcopy(spec)
            group = 1 + max(int(x.get("group", 0)) for x in spec["bodies"])
            ghost["bodies"][a]["group"] = ghost["bodies"][b]["group"] = group
            again = _simulate(ghost, t_len * stride)["states"]
            imp = clip.copy()
            imp[e:] = again[np.arange(e, t_len) * stride]
            checked = {**spec, "_voe_other": other}
            if violation_check(kind, checked, clip, imp, e, body):
                continue
            out["details"]["other"] = other
            return {**out, "impossible": imp, "event_frame": e, "body": body}
        return None
    raise ValueError(f"unknown VoE kind {kind!r}")


def make_pair(kind: str, scenario_type: str, scene_seed: int, config: VoEConfig, rng) -> dict | None:
    """One checked pair from one scene, or None when the scene does not admit the kind."""
    from physworld.worlds.registry import is_heldout, make_spec

    spec = make_spec(scenario_type, config.difficulty, scene_seed)
    stride = _stride(spec, config.fps)
    sim = _simulate(spec, config.frames * stride)
    cand = _candidate(kind, spec, sim, stride, config, rng)
    if cand is None:
        return None
    clip = np.ascontiguousarray(sim["states"][np.arange(config.frames) * stride], dtype=np.float32)
    imp = np.ascontiguousarray(cand["impossible"], dtype=np.float32)
    e, body = cand["event_frame"], cand["body"]
    checked_spec = {**spec, "_voe_other": cand["details"].get("other", -1)}
    if violation_check(kind, checked_spec, clip, imp, e, body):
        return None
    rgb_p, seg_p = render_rgb_seg(spec, clip, config.resolution)
    if body >= 0 and (seg_p[e - 1] == body + 1).sum() < MIN_VISIBLE_PIXELS:
        return None  # the edited body is not in view before the event
    rgb_after, _ = render_rgb_seg(cand["render_spec"], imp[e:], config.resolution)
    rgb_i = np.concatenate([rgb_p[:e], rgb_after])
    changed = (rgb_i[e:] != rgb_p[e:]).any(-1).sum()
    if changed < MIN_CHANGED_PIXELS:
        return None
    return {
        "kind": kind,
        "scenario_type": scenario_type,
        "dims": 3 if clip.shape[-1] == 13 else 2,
        "heldout": bool(is_heldout(scenario_type)),
        "difficulty": config.difficulty,
        "scene_seed": int(scene_seed),
        "event_frame": int(e),
        "body": int(body),
        "details": cand["details"],
        "changed_pixels": int(changed),
        "spec": spec,
        "possible_rgb": rgb_p,
        "impossible_rgb": rgb_i,
        "possible_states": clip,
        "impossible_states": imp,
    }


def pair_plan(config: VoEConfig, index: int) -> tuple[str, list[str]]:
    """The kind of pair `index` and the scenario types to try for it, in order."""
    kinds = list(config.kinds)
    kind = kinds[index % len(kinds)]
    types = config.types()
    if kind in KINDS_2D_ONLY:
        from physworld.worlds.registry import dims_of

        types = [t for t in types if dims_of(t) == 2]
    if not types:
        raise VoEError(f"--kinds {kind}: needs 2D scenario types, and --scenarios selects none")
    start = index % len(types)  # with --kinds coprime to the type count, every (kind, type) comes up
    return kind, types[start:] + types[:start]


def generate_pair(config: VoEConfig, index: int) -> dict:
    kind, types = pair_plan(config, index)
    rng = np.random.default_rng([config.seed, index])
    for scenario_type in types:
        for _ in range(TRIES_PER_TYPE):
            pair = make_pair(kind, scenario_type, int(rng.integers(0, 2**31 - 1)), config, rng)
            if pair is not None:
                return {"pair_id": index, **pair}
    raise VoEError(
        f"pair {index}: no scene of types {', '.join(types)} admits a {kind!r} violation in "
        f"{TRIES_PER_TYPE} tries each; choose other --scenarios or --kinds"
    )


# ---------------------------------------------------------------- storage

_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SCHEMA = pa.schema(
    [
        ("pair_id", pa.int64()),
        ("kind", pa.string()),
        ("scenario_type", pa.string()),
        ("dims", pa.int8()),
        ("heldout", pa.bool_()),
        ("difficulty", pa.int8()),
        ("scene_seed", pa.int64()),
        ("event_frame", pa.int32()),
        ("body", pa.int32()),
        ("details", pa.string()),
        ("changed_pixels", pa.int64()),
        ("num_frames", pa.int32()),
        ("resolution", pa.int32()),
        ("num_bodies", pa.int32()),
        ("state_dim", pa.int32()),
        ("spec", pa.string()),
        ("possible_rgb", pa.list_(_IMAGE)),
        ("impossible_rgb", pa.list_(_IMAGE)),
        ("possible_states", pa.list_(pa.float32())),  # [T * N * D]
        ("impossible_states", pa.list_(pa.float32())),
    ]
)
META_FIELDS = ("pair_id", "kind", "scenario_type", "dims", "heldout", "difficulty", "scene_seed")
META_FIELDS += ("event_frame", "body", "details", "changed_pixels")


def _row(pair: dict) -> dict:
    t, n, d = pair["possible_states"].shape
    row = {k: pair[k] for k in META_FIELDS if k != "details"}
    row.update(
        details=canonical_json(pair["details"]),
        num_frames=t,
        resolution=int(pair["possible_rgb"].shape[1]),
        num_bodies=n,
        state_dim=d,
        spec=canonical_json(pair["spec"]),
        possible_rgb=[{"bytes": encode_png(f), "path": None} for f in pair["possible_rgb"]],
        impossible_rgb=[{"bytes": encode_png(f), "path": None} for f in pair["impossible_rgb"]],
        possible_states=pair["possible_states"].ravel(),
        impossible_states=pair["impossible_states"].ravel(),
    )
    return row


def _shard_bytes(pairs: list[dict]) -> bytes:
    import io

    rows = [_row(p) for p in pairs]
    columns = {}
    for f in SCHEMA:
        values = [r[f.name] for r in rows]
        if f.name in ("possible_states", "impossible_states"):
            columns[f.name] = pa.array([np.asarray(v) for v in values], f.type)
        else:
            columns[f.name] = pa.array(values, f.type)
    buf = io.BytesIO()
    pq.write_table(pa.table(columns, schema=SCHEMA), buf, compression="zstd", compression_level=3)
    return buf.getvalue()


def shard_name(k: int) -> str:
    return f"{SHARD_DIR}/pairs-{k:05d}.parquet"


def generate_pairs(out_dir, config: VoEConfig, progress: bool = True) -> dict:
    """Generate (or finish generating) config.num_pairs pairs under out_dir; returns the manifest."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    stored = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config.to_dict()}
    out.mkdir(parents=True, exist_ok=True)
    existing = out / CONFIG
    if existing.exists():
        try:
            old = json.loads(existing.read_text())
        except json.JSONDecodeError as e:
            raise VoEError(f"{existing}: unreadable ({e}); delete {out} and generate again") from e
        if old != stored:
            raise VoEError(
                f"{out} holds pairs made with other settings; rerun with the same flags to resume, "
                "or pass another --out"
            )
    elif any(not p.name.startswith(".") for p in out.iterdir()):
        raise VoEError(f"{out} is not empty and holds no VoE pairs; pass another --out")
    else:
        atomic_write_json(existing, stored)
    (out / SHARD_DIR).mkdir(exist_ok=True)
    remove_stale_temporaries(out / SHARD_DIR)
    num_shards = -(-config.num_pairs // PAIRS_PER_SHARD)
    bar = tqdm(
        total=config.num_pairs, unit="pair", desc="voe pairs", disable=not progress, dynamic_ncols=True
    )
    try:
        for k in range(num_shards):
            ids = range(k * PAIRS_PER_SHARD, min(config.num_pairs, (k + 1) * PAIRS_PER_SHARD))
            if not (out / shard_name(k)).exists():
                pairs = []
                for i in ids:
                    pairs.append(generate_pair(config, i))
                    bar.update(1)
                atomic_write_bytes(out / shard_name(k), _shard_bytes(pairs))
            else:
                bar.update(len(ids))
    finally:
        bar.close()
    shards, meta = [], []
    for k in range(num_shards):
        path = out / shard_name(k)
        table = pq.read_table(path, columns=list(META_FIELDS))
        meta += [{**r, "details": json.loads(r["details"])} for r in table.to_pylist()]
        shards.append({"file": shard_name(k), "sha256": sha256_file(path), "bytes": path.stat().st_size})
    manifest = {**stored, "num_pairs": len(meta), "shards": shards, "pairs": meta}
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def load_pairs(pairs_dir, images: bool = True) -> tuple[dict, list[dict]]:
    """(manifest, pairs): each pair its metadata, possible_rgb / impossible_rgb uint8 [T, R, R, 3],
    possible_states / impossible_states float32 [T, N, D] and spec."""
    root = Path(pairs_dir)
    path = root / MANIFEST
    if not root.is_dir():
        raise VoEError(f"{root}: no such folder; make pairs with physworld voe-pairs --out {root}")
    if not path.exists():
        raise VoEError(
            f"{path}: no VoE manifest; run physworld voe-pairs --out {root} (or rerun it to finish)"
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise VoEError(f"{path}: not valid JSON ({e}); generate the pairs again") from e
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise VoEError(f"{path}: not a physworld VoE pairs manifest (format {FORMAT} v{FORMAT_VERSION})")
    pairs = []
    for entry in manifest["shards"]:
        shard = root / entry["file"]
        try:
            if sha256_file(shard) != entry["sha256"]:
                raise ValueError("sha256 does not match the manifest")
            rows = pq.read_table(shard).to_pylist()
        except Exception as e:
            raise VoEError(
                f"{shard}: damaged or missing ({type(e).__name__}: {e}); delete it and rerun physworld voe-pairs"
            ) from e
        for r in rows:
            t, n, d = r["num_frames"], r["num_bodies"], r["state_dim"]
            pair = {k: r[k] for k in META_FIELDS}
            pair["details"] = json.loads(r["details"])
            pair["spec"] = json.loads(r["spec"])
            for k in ("possible_states", "impossible_states"):
                pair[k] = np.asarray(r[k], dtype=np.float32).reshape(t, n, d)
            if images:
                for k in ("possible_rgb", "impossible_rgb"):
                    pair[k] = np.stack([decode_png(f["bytes"]) for f in r[k]])
            pairs.append(pair)
    return manifest, pairs
