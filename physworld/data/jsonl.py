"""Scene import/export in the JSONL layout of PhysicsLLMEngine (guide 001), one scene per file.

Files live at `<dir>/<scenario_type>/scene_<scene_id:08d>.jsonl`. Line 1 is a `scene_header`; then one
line per recorded frame 1..F, as PhysicsLLMEngine writes them:

    {"type":"scene_header","seed","description","object_count","gravity":{"x","y"},"timestep",
     "objects":[{"id","type":"circle"|"rectangle"|"polygon","position":{"x","y"},
                 "material":{"mass","friction","elasticity"},"radius" | "width","height" | "vertices"}],
     "scenario_type","scenario_category","difficulty",
     "static_geometry":[{"type":"segment","p1":{"x","y"},"p2":{"x","y"},"friction","elasticity"}],
     "constraints":[{"type":"PinJoint","body_a":"static"|id,"body_b":"static"|id,"anchor_a":[x,y],...}]}
    {"frame":k,"description":"Frame k: m of n objects are moving.",
     "objects":[{"id","type","position":{"x","y"},"velocity":{"x","y"},"angle","angular_velocity",
                 "material"}]}

physworld's export (`scene_to_lines`) writes that layout and adds what the guide's files lose:

* header objects carry the initial state ("angle", "velocity", "angular_velocity"), "moment",
  "kinematic" (where true) and "group" (where nonzero);
* static geometry: segments also carry "radius" and "surface_velocity"; polygons are
  {"type":"polygon","vertices":[[x,y],...]}, circles {"type":"circle","center":{"x","y"},"radius"};
* constraints of every kind: PinJoint, PivotJoint (anchor_a, anchor_b), SlideJoint (+ min, max),
  DampedSpring (+ rest_length, stiffness, damping), SimpleMotor (rate, max_force; null = unlimited),
  RotaryLimitJoint (min, max);
* "scene_id", "frame_count" and "physworld": the full scene spec, so our own files round-trip exactly;
* frame lines carry "events": [{"body_a","body_b","impulse"}] (contact onsets; "static" = the world)
  on the frames that have any.

State floats (frame lines, and the header's initial state when it differs from the spec's values) are
written as the shortest decimal that parses back to the identical float32, so a record survives
`read_scene_lines(scene_to_lines(record))` bit for bit.

Importing the guide's own files (no "physworld" key) rebuilds a spec from the header. Their headers
have no initial velocity or angle; the initial velocity is estimated (see `read_scene_lines`) and the
estimate is recorded in spec["imported"]. Their pendulum and cradle pins are anchored at the world
origin (the guide anchors them to a separate static body but writes "static" with a (0, 0) anchor);
that is imported as written, not repaired.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from physworld.data.store import canonical_json, write_dataset
from physworld.fileio import atomic_write_bytes
from physworld.worlds import spec as S
from physworld.worlds.registry import CATEGORY_OF

GUIDE_SOURCE = "physicsllmengine"
MOVING_SPEED = 1.0  # px/s; the guide's frame description counts a body as moving above this |vx| or |vy|
MOVE_TOLERANCE = 1e-4  # px; a body "moved" between the header and frame 1 if a coordinate changed by more
STATIC = -1  # body index of the static world in specs and events

_COMPACT = (",", ":")
_SCENE_NAME = re.compile(r"^scene_(\d+)\.jsonl$")
_SAFE_TYPE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

_SHAPE_TO_GUIDE = {"circle": "circle", "box": "rectangle", "poly": "polygon"}
_CONSTRAINT_TO_GUIDE = {
    "pin": "PinJoint",
    "pivot": "PivotJoint",
    "slide": "SlideJoint",
    "spring": "DampedSpring",
    "motor": "SimpleMotor",
    "rotary_limit": "RotaryLimitJoint",
}
_GUIDE_TO_CONSTRAINT = {v: k for k, v in _CONSTRAINT_TO_GUIDE.items()}
_LAYOUT_HINT = "see the layout described at the top of physworld/data/jsonl.py"


class JsonlError(ValueError):
    """A scene file that cannot be read; the message names the file, the 1-based line, what is wrong
    and how to fix it."""


# ---------------------------------------------------------------- float formatting


def _f32_strings(values) -> list[str]:
    """The shortest decimal strings that parse back (via float(), as json does) to the same float32.

    numpy's str() of a float32 scalar is Dragon4's shortest round-trip repr ('0.1', '1.2345678e-07');
    we drop a trailing '.0' ('60' instead of '60.0', keeping '-0.0' so the sign of zero survives) and
    the exponent's leading zero ('1e-7'). Every string is checked by parsing it back; any that would
    not come back bit-identical (none are known) falls back to the float64 repr of the value, which
    always does.
    """
    flat = np.ascontiguousarray(values, dtype=np.float32).ravel()
    if not np.isfinite(flat).all():
        bad = int(np.flatnonzero(~np.isfinite(flat))[0])
        raise ValueError(f"non-finite state value {flat[bad]} at flat index {bad}; JSON cannot hold it")
    out = [_short(str(v)) for v in flat]
    back = np.fromiter(map(float, out), dtype=np.float64, count=len(out)).astype(np.float32)
    wrong = np.flatnonzero(back.view(np.uint32) != flat.view(np.uint32))
    for i in wrong.tolist():
        out[i] = repr(float(flat[i]))
    return out


def _short(s: str) -> str:
    if s.endswith(".0") and s != "-0.0":
        s = s[:-2]
    if "e-0" in s:
        s = s.replace("e-0", "e-")
    return s


class _Raw(str):
    """Already-encoded JSON text, spliced verbatim by `_dumps`."""


def _dumps(obj, allow_nan: bool = False) -> str:
    """Compact JSON like json.dumps, except that `_Raw` strings are inserted as they are."""
    if isinstance(obj, _Raw):
        return str(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + _dumps(v, allow_nan) for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(_dumps(v, allow_nan) for v in obj) + "]"
    return json.dumps(obj, allow_nan=allow_nan)


def _xy(v) -> dict:
    return {"x": v[0], "y": v[1]}


# ---------------------------------------------------------------- export


def _header_static(s: dict) -> dict:
    kind = s.get("kind")
    if kind == "segment":
        return {
            "type": "segment",
            "p1": _xy(s["a"]),
            "p2": _xy(s["b"]),
            "friction": s["friction"],
            "elasticity": s["elasticity"],
            "radius": s["radius"],
            "surface_velocity": _xy(s.get("surface_velocity", (0.0, 0.0))),
        }
    if kind == "poly":
        return {
            "type": "polygon",
            "vertices": [list(v) for v in s["vertices"]],
            "friction": s["friction"],
            "elasticity": s["elasticity"],
        }
    if kind == "circle":
        return {
            "type": "circle",
            "center": _xy(s["center"]),
            "radius": s["radius"],
            "friction": s["friction"],
            "elasticity": s["elasticity"],
        }
    raise ValueError(f"static kind {kind!r} has no JSONL form; expected segment, poly or circle")


def _body_ref(i: int):
    return "static" if i == STATIC else int(i)


def _header_constraint(c: dict) -> dict:
    kind = c.get("kind")
    if kind not in _CONSTRAINT_TO_GUIDE:
        raise ValueError(
            f"constraint kind {kind!r} has no JSONL form; expected one of {', '.join(_CONSTRAINT_TO_GUIDE)}"
        )
    out = {"type": _CONSTRAINT_TO_GUIDE[kind], "body_a": _body_ref(c["a"]), "body_b": _body_ref(c["b"])}
    if kind in ("pin", "pivot", "slide", "spring"):
        out["anchor_a"] = list(c["anchor_a"])
        out["anchor_b"] = list(c["anchor_b"])
    if kind in ("slide", "rotary_limit"):
        out["min"] = c["min"]
        out["max"] = c["max"]
    elif kind == "spring":
        out.update(rest_length=c["rest_length"], stiffness=c["stiffness"], damping=c["damping"])
    elif kind == "motor":
        out.update(rate=c["rate"], max_force=c.get("max_force"))
    return out


def _material(b: dict) -> dict:
    return {"mass": b["mass"], "friction": b["friction"], "elasticity": b["elasticity"]}


def _header_object(i: int, b: dict, init) -> dict:
    shape = b["shape"]
    if shape not in _SHAPE_TO_GUIDE:
        raise ValueError(f"bodies[{i}].shape {shape!r} has no JSONL form; expected circle, box or poly")
    x, y, angle, vx, vy, w = init
    obj = {"id": i, "type": _SHAPE_TO_GUIDE[shape], "position": {"x": x, "y": y}, "material": _material(b)}
    if shape == "circle":
        obj["radius"] = b["radius"]
    elif shape == "box":
        obj["width"] = b["width"]
        obj["height"] = b["height"]
    else:
        obj["vertices"] = [list(v) for v in b["vertices"]]
    obj.update(angle=angle, velocity={"x": vx, "y": vy}, angular_velocity=w, moment=b["moment"])
    if b.get("kinematic"):
        obj["kinematic"] = True
    if b.get("group"):
        obj["group"] = b["group"]
    return obj


def _describe(frame: int, moving: int, n: int) -> str:
    """The guide's frame description (src/data/formats.py: format_frame)."""
    if moving == 0:
        motion = "All objects are at rest"
    elif moving == n:
        motion = "All objects are in motion"
    else:
        motion = f"{moving} of {n} objects are moving"
    return f"Frame {frame}: {motion}."


def scene_to_lines(record: dict) -> list[str]:
    """A scene record as JSONL lines (no newlines): the header, then frames 1..F.

    The header's initial state is the spec's float64 values when they are exactly what states[0]
    holds (always true for engine output), else states[0]'s float32 values. Frame values are the
    shortest strings that parse back to the identical float32. Events are grouped onto the line of
    their frame (in the record's order within a frame; frames ascending).
    """
    spec = record["spec"]
    states = np.asarray(record["states"])
    if states.dtype != np.float32 or states.ndim != 3 or states.shape[2] != 6:
        raise ValueError(
            f"record states must be float32 [frames+1, bodies, 6], got {states.dtype} {states.shape}"
        )
    n_frames, n = states.shape[0] - 1, states.shape[1]
    bodies = spec["bodies"]
    if len(bodies) != n:
        raise ValueError(f"spec has {len(bodies)} bodies but states have {n}")

    init64 = np.array(
        [[*b["position"], b["angle"], *b["velocity"], b["angular_velocity"]] for b in bodies],
        dtype=np.float64,
    ).reshape(n, 6)
    if np.array_equal(init64.astype(np.float32).view(np.uint32), states[0].view(np.uint32)):
        init = init64.tolist()
    else:
        init = np.array([_Raw(s) for s in _f32_strings(states[0])], dtype=object).reshape(n, 6).tolist()

    header = {
        "type": "scene_header",
        "seed": int(record["seed"]),
        "description": spec.get("description", ""),
        "object_count": n,
        "gravity": _xy(spec["world"]["gravity"]),
        "timestep": spec["world"]["dt"],
        "objects": [_header_object(i, b, init[i]) for i, b in enumerate(bodies)],
        "scenario_type": record["scenario_type"],
        "scenario_category": record["category"],
        "difficulty": int(record["difficulty"]),
        "static_geometry": [_header_static(s) for s in spec["statics"]],
    }
    if spec.get("constraints"):
        header["constraints"] = [_header_constraint(c) for c in spec["constraints"]]
    header["scene_id"] = int(record["scene_id"])
    header["frame_count"] = n_frames
    # The spec goes through json.dumps itself, so its floats round-trip exactly; canonical (sorted)
    # so a scene exports to the same bytes whether it comes from the simulator or from the store.
    header["physworld"] = _Raw(canonical_json(spec))
    lines = [_dumps(header)]

    events = record.get("events") or {}
    ev_frame = np.asarray(events.get("frame", ()), dtype=np.int64)
    by_frame: dict[int, list[str]] = {}
    if ev_frame.size:
        if ev_frame.min() < 1 or ev_frame.max() > n_frames:
            raise ValueError(
                f"event frames must lie in 1..{n_frames} (a frame line carries them), "
                f"got {ev_frame.min()}..{ev_frame.max()}"
            )
        imp = _f32_strings(events["impulse"])
        ea = np.asarray(events["body_a"]).tolist()
        eb = np.asarray(events["body_b"]).tolist()
        for j in np.argsort(ev_frame, kind="stable").tolist():
            a, b = json.dumps(_body_ref(ea[j])), json.dumps(_body_ref(eb[j]))
            by_frame.setdefault(int(ev_frame[j]), []).append(
                f'{{"body_a":{a},"body_b":{b},"impulse":{imp[j]}}}'
            )

    prefixes = [
        f'{{"id":{i},"type":"{_SHAPE_TO_GUIDE[b["shape"]]}","position":{{"x":' for i, b in enumerate(bodies)
    ]
    suffixes = [',"material":' + json.dumps(_material(b), separators=_COMPACT) + "}" for b in bodies]
    vals = _f32_strings(states[1:])
    vel = states[1:, :, 3:5]
    moving = (
        ((np.abs(vel[..., 0]) > MOVING_SPEED) | (np.abs(vel[..., 1]) > MOVING_SPEED)).sum(axis=1).tolist()
    )
    k = 0
    for f in range(1, n_frames + 1):
        objs = []
        for i in range(n):
            x, y, a, vx, vy, w = vals[k : k + 6]
            k += 6
            objs.append(
                f'{prefixes[i]}{x},"y":{y}}},"velocity":{{"x":{vx},"y":{vy}}},"angle":{a},'
                f'"angular_velocity":{w}{suffixes[i]}'
            )
        description = json.dumps(_describe(f, moving[f - 1], n))
        line = f'{{"frame":{f},"description":{description},"objects":[{",".join(objs)}]'
        if f in by_frame:
            line += ',"events":[' + ",".join(by_frame[f]) + "]"
        lines.append(line + "}")
    return lines


def write_scene_file(record: dict, out_dir) -> Path:
    """Write `<out_dir>/<scenario_type>/scene_<scene_id:08d>.jsonl` atomically: a temporary file in the
    same directory, flushed and fsynced, then os.replace'd over the final name. Returns the path."""
    scenario_type = str(record["scenario_type"])
    if not _SAFE_TYPE.match(scenario_type):
        raise ValueError(
            f"scenario_type {scenario_type!r} cannot name a directory; use letters, digits, _ . -"
        )
    scene_id = int(record["scene_id"])
    if scene_id < 0:
        raise ValueError(f"scene_id must be >= 0 to name a file, got {scene_id}")
    folder = Path(out_dir) / scenario_type
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"scene_{scene_id:08d}.jsonl"
    atomic_write_bytes(path, ("\n".join(scene_to_lines(record)) + "\n").encode("utf-8"))
    return path


def iter_scene_files(in_dir) -> Iterator[Path]:
    """Every `<in_dir>/*/scene_*.jsonl`, sorted by path. Raises FileNotFoundError at call time if the
    directory does not exist or holds none."""
    root = Path(in_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: not a directory; expected <dir>/<scenario_type>/scene_<id>.jsonl files"
        )
    files = sorted(p for p in root.glob("*/scene_*.jsonl") if p.is_file())
    if not files:
        raise FileNotFoundError(
            f"{root}: no scene files matching {root}/*/scene_*.jsonl. Expected the layout "
            "<dir>/<scenario_type>/scene_<id>.jsonl that write_scene_file and PhysicsLLMEngine write; "
            "point at the directory that holds the scenario-type folders."
        )
    return iter(files)


def read_scene_file(path) -> dict:
    """`read_scene_lines` on a file, named by its path in error messages."""
    with open(path, encoding="utf-8", newline="") as fh:
        return read_scene_lines(fh, source=str(path))


EXPORT_MARKER = "export.json"  # written first by export_jsonl: which dataset the folder is an export of


def prepare_export_dir(out: Path, marker: dict) -> None:
    """Make `out` ready for an export described by `marker`: new or empty, or holding an unfinished
    or finished export of the same dataset (resumed: files are rewritten with identical bytes).
    Anything else (another export, a generate run, other files) is refused, as generate refuses a
    directory holding another dataset, so two exports are never merged."""
    from physworld.data.store import StoreError, regular_file_problem
    from physworld.fileio import atomic_write_json

    if out.exists() and not out.is_dir():
        raise StoreError(f"{out} is a file, not a directory; choose another --output-dir")
    out.mkdir(parents=True, exist_ok=True)
    existing = out / EXPORT_MARKER
    if existing.exists() or existing.is_symlink():
        problem = regular_file_problem(existing, limit=64 << 20)
        try:
            old = json.loads(existing.read_bytes()) if problem is None else None
        except ValueError:
            old = None
        if not isinstance(old, dict):
            raise StoreError(f"{existing}: unreadable; delete the directory or choose another --output-dir")
        if old.get("source_manifest_sha256") != marker["source_manifest_sha256"]:
            raise StoreError(
                f"{out} holds an export of another dataset ({old.get('source_dir')!r}, "
                f"{old.get('num_scenes')!r} scenes). Choose another --output-dir, or rerun the export "
                "of that dataset to finish it."
            )
        return
    if any(not p.name.startswith(".") for p in out.iterdir()):
        raise StoreError(
            f"{out} is not empty and holds no unfinished export of {marker['source_dir']}; choose an "
            "empty or new --output-dir"
        )
    atomic_write_json(existing, marker)


def export_jsonl(data_dir, out_dir, progress: bool = True) -> int:
    """Write every scene of the store at `data_dir` to `<out_dir>/<type>/scene_<id>.jsonl`; returns the
    number of scenes. The folder gets EXPORT_MARKER first, naming the dataset and the files it will
    hold, so a rerun finishes an interrupted export, another export into it is refused, and
    `physworld validate` finds files deleted from it or moved to another type's folder."""
    from tqdm.auto import tqdm

    from physworld.data.store import MANIFEST, Dataset
    from physworld.fileio import sha256_file

    ds = Dataset(data_dir)
    ids: dict[str, list[int]] = {}
    for row in ds.index.select(["scene_id", "scenario_type"]).to_pylist():
        ids.setdefault(row["scenario_type"], []).append(row["scene_id"])
    marker = {
        "format": "physworld-jsonl-export",
        "source_dir": str(Path(data_dir).resolve()),
        "source_manifest_sha256": sha256_file(Path(data_dir) / MANIFEST),
        "num_scenes": len(ds),
        "scene_ids": ids,
    }
    out = Path(out_dir)
    prepare_export_dir(out, marker)
    for record in tqdm(ds.iter_scenes(), total=len(ds), unit="scene", desc="export", disable=not progress):
        write_scene_file(record, out)
    return len(ds)


def import_jsonl(in_dir, out_dir, progress: bool = True, scenes_per_shard: int = 64) -> dict:
    """Read every scene file under `in_dir` (our export or the guide's own files) into a new store."""
    from tqdm.auto import tqdm

    files = list(iter_scene_files(in_dir))
    records = (read_scene_file(p) for p in tqdm(files, unit="scene", desc="import", disable=not progress))
    config = {"source": "import-jsonl", "input_dir": str(in_dir), "num_files": len(files)}
    return write_dataset(out_dir, records, config, scenes_per_shard=scenes_per_shard)


# ---------------------------------------------------------------- import


class _Line:
    """One parsed line and its position, for error messages."""

    def __init__(self, source: str, lineno: int, data=None):
        self.source, self.lineno, self.data = source, lineno, data

    def error(self, what: str, fix: str) -> JsonlError:
        return JsonlError(f"{self.source}, line {self.lineno}: {what}. {fix.rstrip('.')}.")

    def get(self, d: dict, key: str, where: str, fix: str = ""):
        if not isinstance(d, dict):
            raise self.error(
                f"{where or 'the line'} must be a JSON object, got {type(d).__name__}",
                fix or f"Check the file against the layout ({_LAYOUT_HINT}).",
            )
        if key not in d:
            name = f"{where}.{key}" if where else key
            raise self.error(
                f"missing field {name!r}", fix or f"Add it or regenerate the file ({_LAYOUT_HINT})."
            )
        return d[key]

    def num(self, d: dict, key: str, where: str) -> float:
        v = self.get(d, key, where)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.error(f"{where}.{key} must be a number, got {v!r}", "Write it as a JSON number.")
        return float(v)

    def int_(self, d: dict, key: str, where: str) -> int:
        v = self.get(d, key, where)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(
                f"{where + '.' if where else ''}{key} must be an integer, got {v!r}",
                "Write it as a JSON integer.",
            )
        return v

    def str_(self, d: dict, key: str, where: str) -> str:
        v = self.get(d, key, where)
        if not isinstance(v, str):
            raise self.error(
                f"{where + '.' if where else ''}{key} must be a string, got {v!r}",
                "Write it as a JSON string.",
            )
        return v

    def vec(self, d: dict, key: str, where: str) -> list[float]:
        """A 2-vector written as {"x", "y"} or [x, y]."""
        v = self.get(d, key, where)
        name = f"{where}.{key}" if where else key
        if isinstance(v, dict):
            return [self.num(v, "x", name), self.num(v, "y", name)]
        if isinstance(v, list) and len(v) == 2:
            return [self.num({"x": v[0]}, "x", name), self.num({"y": v[1]}, "y", name)]
        raise self.error(
            f'{name} must be {{"x": .., "y": ..}} or [x, y], got {v!r}', "Write it as a 2-vector."
        )

    def list_(self, d: dict, key: str, where: str, default=None) -> list:
        v = d.get(key, default) if default is not None else self.get(d, key, where)
        if not isinstance(v, list):
            raise self.error(
                f"{where + '.' if where else ''}{key} must be a list, got {type(v).__name__}",
                "Write it as a JSON array.",
            )
        return v


def _parse_lines(lines: Iterable[str], source: str) -> list[_Line]:
    raw = list(lines)
    parsed = []
    last = max((i for i, s in enumerate(raw) if s.strip()), default=-1)
    with_newlines = any(s.endswith("\n") for s in raw)  # a file object's lines, not str.splitlines()
    for i, text in enumerate(raw):
        if not text.strip():
            continue
        lineno = i + 1
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            ctx = _Line(source, lineno)
            if i == last:
                ended = " and has no final newline" if with_newlines and not text.endswith("\n") else ""
                raise ctx.error(
                    f"the last line is not complete JSON ({e.msg}, column {e.colno}){ended}: the file looks "
                    "truncated",
                    "It was probably cut short by an interrupted write or download; regenerate or "
                    "re-download it (or delete the partial last line to keep the frames before it)",
                ) from None
            raise ctx.error(
                f"not valid JSON ({e.msg}, column {e.colno})",
                "Each line must be one complete JSON object; repair the line or regenerate the file",
            ) from None
        if not isinstance(data, dict):
            raise _Line(source, lineno).error(
                f"expected a JSON object, got {type(data).__name__}",
                f"Each line is one object ({_LAYOUT_HINT})",
            )
        parsed.append(_Line(source, lineno, data))
    if not parsed:
        raise JsonlError(
            f"{source}, line 1: the file is empty (no scene_header). Write the scene again, "
            "or check that the right file was given."
        )
    return parsed


def read_scene_lines(lines: Iterable[str], source: str) -> dict:
    """Parse one scene's JSONL lines (physworld's export or PhysicsLLMEngine's own files) into a record.

    `source` names the file in error messages and, for the guide's files, gives the scene id when it is
    `scene_<digits>.jsonl` (else the header's seed is used). Our export comes back exactly: states,
    spec and events bit-identical. For the guide's files a spec is rebuilt from the header: gravity,
    dt = timestep, 1 substep, static segments with radius 0 unless given, bodies with moments computed
    from their shapes, constraints as written, every "expect" False. Their headers carry no initial
    velocity: for a body whose position changed between the header and frame 1 it is estimated as
    v(frame 1) - gravity * dt (pymunk moves bodies with the old velocity before adding gravity), for the
    others it is 0; the initial angle and angular velocity are 0. spec["imported"] records this.
    Raises JsonlError naming the file and line on anything malformed.
    """
    parsed = _parse_lines(lines, source)
    head = parsed[0]
    h = head.data
    if h.get("type") != "scene_header":
        what = (
            "the first line is a frame line, not the scene_header"
            if "frame" in h
            else f"the first line has type {h.get('type')!r}, not 'scene_header'"
        )
        raise head.error(
            f"missing header: {what}",
            "Line 1 must be the scene_header object that write_scene_file and PhysicsLLMEngine "
            "write first; the file is a fragment or lost its first line, so regenerate it",
        )
    ours = "physworld" in h
    # Header fields first, so problems are reported in line order.
    seed, scenario_type = head.int_(h, "seed", ""), head.str_(h, "scenario_type", "")
    difficulty = head.int_(h, "difficulty", "")
    head.vec(h, "gravity", "")
    head.num(h, "timestep", "")
    objects = head.list_(h, "objects", "")
    n = len(objects)
    if "object_count" in h and head.int_(h, "object_count", "") != n:
        raise head.error(
            f"object_count is {h['object_count']} but the header lists {n} objects",
            "Make object_count equal the number of header objects, or regenerate the file",
        )
    ids = [head.int_(o, "id", f"objects[{j}]") for j, o in enumerate(objects)]
    if len(set(ids)) != n:
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise head.error(f"duplicate object ids {dup} in the header", "Give every object a unique id")
    index_of = {oid: j for j, oid in enumerate(ids)}

    if ours:  # physworld's export: the spec and the exact initial state are in the header
        spec = h["physworld"]
        if not isinstance(spec, dict) or not isinstance(spec.get("bodies"), list):
            raise head.error(
                "the 'physworld' key must hold the scene spec (a JSON object with 'bodies')",
                "Export the scene again with write_scene_file",
            )
        if len(spec["bodies"]) != n:
            raise head.error(
                f"the physworld spec has {len(spec['bodies'])} bodies but the header lists {n}",
                "The file was edited by hand; export the scene again",
            )
        scene_id = head.int_(h, "scene_id", "")
        initial = np.empty((n, 6), dtype=np.float64)
        for j, o in enumerate(objects):
            where = f"objects[{j}]"
            row = initial[j]
            row[0], row[1] = head.vec(o, "position", where)
            row[2] = head.num(o, "angle", where)
            row[3], row[4] = head.vec(o, "velocity", where)
            row[5] = head.num(o, "angular_velocity", where)

    frames = parsed[1:]
    if not frames and not (ours and h.get("frame_count") == 0):
        raise head.error(
            "the file has a header but no frame lines",
            "A scene needs at least frame 1; the file was cut short, so regenerate it",
        )
    states = np.empty((len(frames) + 1, n, 6), dtype=np.float64)
    ev_frame, ev_a, ev_b, ev_imp = [], [], [], []
    for k, line in enumerate(frames, start=1):
        d = line.data
        got = line.get(
            d,
            "frame",
            "",
            "Every line after the header is a frame with a 'frame' number; regenerate the file",
        )
        if got != k or isinstance(got, bool):
            raise line.error(
                f"frame numbers are not consecutive: expected frame {k}, found {got!r}",
                "Frames must run 1, 2, 3, ... one per line after the header; a line was lost, "
                "duplicated or reordered, so regenerate the file",
            )
        objs = line.list_(d, "objects", "")
        if len(objs) != n:
            raise line.error(
                f"frame {k} lists {len(objs)} objects but the header has {n}",
                "Every frame must list every header object once; the file was edited or "
                "mixes scenes, so regenerate it",
            )
        seen = set()
        for j, o in enumerate(objs):
            where = f"objects[{j}]"
            oid = line.get(o, "id", where)
            if isinstance(oid, bool) or not isinstance(oid, int) or oid not in index_of or oid in seen:
                present = {x.get("id") for x in objs if isinstance(x, dict) and isinstance(x.get("id"), int)}
                missing = sorted(set(ids) - present)
                raise line.error(
                    f"frame {k}: object id {oid!r} "
                    + ("appears twice" if oid in seen else "is not in the header")
                    + (f" (missing: {missing})" if missing else ""),
                    "Object ids must not change between frames; the file was edited or mixes "
                    "scenes, so regenerate it",
                )
            seen.add(oid)
            row = states[k, index_of[oid]]
            row[0], row[1] = line.vec(o, "position", where)
            row[2] = line.num(o, "angle", where)
            row[3], row[4] = line.vec(o, "velocity", where)
            row[5] = line.num(o, "angular_velocity", where)
        for j, e in enumerate(line.list_(d, "events", "", default=[])):
            where = f"events[{j}]"
            ev_frame.append(k)
            ev_a.append(_event_body(line, e, "body_a", where, index_of))
            ev_b.append(_event_body(line, e, "body_b", where, index_of))
            ev_imp.append(line.num(e, "impulse", where))
    if ours and "frame_count" in h and h["frame_count"] != len(frames):
        raise frames[-1].error(
            f"the header promises {h['frame_count']} frames but the file ends after frame {len(frames)}: "
            "it is truncated",
            "It was cut short by an interrupted write or copy; export the scene again",
        )

    if ours:
        states[0] = initial
    else:
        spec = _spec_from_guide(head, objects, ids, index_of, states, source)
        m = _SCENE_NAME.match(os.path.basename(source))
        scene_id = int(m.group(1)) if m else seed

    category = h.get("scenario_category") or CATEGORY_OF.get(scenario_type)
    if not isinstance(category, str):
        raise head.error("missing field 'scenario_category'", f"Add the scenario's category ({_LAYOUT_HINT})")
    return {
        "scene_id": scene_id,
        "seed": seed,
        "scenario_type": scenario_type,
        "category": category,
        "difficulty": difficulty,
        "spec": spec,
        "states": states.astype(np.float32),
        "events": {
            "frame": np.asarray(ev_frame, dtype=np.int32),
            "body_a": np.asarray(ev_a, dtype=np.int32),
            "body_b": np.asarray(ev_b, dtype=np.int32),
            "impulse": np.asarray(ev_imp, dtype=np.float64).astype(np.float32),
        },
    }


def _event_body(line: _Line, e: dict, key: str, where: str, index_of: dict) -> int:
    v = line.get(e, key, where)
    if v == "static":
        return STATIC
    if isinstance(v, bool) or not isinstance(v, int) or v not in index_of:
        raise line.error(
            f"{where}.{key} is {v!r}, neither 'static' nor a header object id",
            "Events name bodies by header id; regenerate the file",
        )
    return index_of[v]


def _spec_from_guide(
    head: _Line, objects: list, ids: list, index_of: dict, states: np.ndarray, source: str
) -> dict:
    """Rebuild a spec from a guide header; fills states[0] (initial state, partly estimated)."""
    h = head.data
    gravity = head.vec(h, "gravity", "")
    dt = head.num(h, "timestep", "")
    spec = S.new_spec(
        head.str_(h, "description", "") if "description" in h else "", gravity=gravity, substeps=1
    )
    spec["world"]["dt"] = dt
    spec["expect"] = {"contained": False, "conserves_energy": False, "conserves_momentum": False}

    for j, s in enumerate(head.list_(h, "static_geometry", "", default=[])):
        spec["statics"].append(_guide_static(head, s, f"static_geometry[{j}]"))

    estimated, header_velocity = [], False
    for j, o in enumerate(objects):
        where = f"objects[{j}]"
        pos = head.vec(o, "position", where)
        mat = head.get(o, "material", where)
        kwargs = dict(
            mass=head.num(mat, "mass", f"{where}.material"),
            friction=head.num(mat, "friction", f"{where}.material"),
            elasticity=head.num(mat, "elasticity", f"{where}.material"),
            kinematic=bool(o.get("kinematic", False)),
            group=head.int_(o, "group", where) if "group" in o else 0,
        )
        if "velocity" in o:  # a guide-style header that does carry the initial state
            header_velocity = True
            vel = head.vec(o, "velocity", where)
            angle = head.num(o, "angle", where) if "angle" in o else 0.0
            omega = head.num(o, "angular_velocity", where) if "angular_velocity" in o else 0.0
        else:
            angle, omega = 0.0, 0.0
            x1, y1, _, vx1, vy1, _ = states[1, j]
            if abs(x1 - pos[0]) > MOVE_TOLERANCE or abs(y1 - pos[1]) > MOVE_TOLERANCE:
                vel = [float(vx1) - gravity[0] * dt, float(vy1) - gravity[1] * dt]
                estimated.append(j)
            else:
                vel = [0.0, 0.0]
        kwargs.update(velocity=vel, angle=angle, angular_velocity=omega)
        kind = head.str_(o, "type", where)
        if kind == "circle":
            body = S.circle(pos, head.num(o, "radius", where), **kwargs)
        elif kind in ("rectangle", "box"):
            body = S.box(pos, head.num(o, "width", where), head.num(o, "height", where), **kwargs)
        elif kind in ("polygon", "poly"):
            body = S.poly(pos, _vertices(head, o, where), **kwargs)
        else:
            raise head.error(
                f"{where}.type {kind!r} is not a known shape",
                "Use circle, rectangle (width, height) or polygon (vertices)",
            )
        if "moment" in o:
            body["moment"] = head.num(o, "moment", where)
        spec["bodies"].append(body)
        states[0, j] = [pos[0], pos[1], angle, vel[0], vel[1], omega]

    for j, c in enumerate(head.list_(h, "constraints", "", default=[])):
        spec["constraints"].append(_guide_constraint(head, c, f"constraints[{j}]", index_of))

    spec["imported"] = {
        "source": GUIDE_SOURCE,
        "file": os.path.basename(source),
        "initial_velocity": "header" if header_velocity else "estimated",
        "estimate": None
        if header_velocity
        else (
            "v0 = v(frame 1) - gravity*dt for bodies whose position changed between the header and "
            f"frame 1 (by more than {MOVE_TOLERANCE} px), else 0; initial angle and angular velocity 0"
        ),
        "estimated_bodies": [] if header_velocity else estimated,
        "moment": "computed from shape and mass" if not any("moment" in o for o in objects) else "header",
        "substeps": "assumed 1 (one pymunk step per frame, as the guide steps)",
        "anchors": "as written (the guide's pins to 'static' are anchored at the world origin)",
    }
    return spec


def _vertices(head: _Line, o: dict, where: str) -> list[list[float]]:
    verts = head.list_(o, "vertices", where)
    if len(verts) < 3:
        raise head.error(
            f"{where}.vertices needs at least 3 points, got {len(verts)}",
            "Write the polygon's vertices as [[x, y], ...]",
        )
    return [head.vec({"v": v}, "v", f"{where}.vertices[{i}]") for i, v in enumerate(verts)]


def _guide_static(head: _Line, s: dict, where: str) -> dict:
    kind = head.str_(s, "type", where)
    friction, elasticity = head.num(s, "friction", where), head.num(s, "elasticity", where)
    if kind == "segment":
        radius = head.num(s, "radius", where) if "radius" in s else 0.0
        surface = head.vec(s, "surface_velocity", where) if "surface_velocity" in s else (0.0, 0.0)
        return S.segment(
            head.vec(s, "p1", where), head.vec(s, "p2", where), radius, friction, elasticity, surface
        )
    if kind in ("polygon", "poly"):
        return S.static_poly(_vertices(head, s, where), friction, elasticity)
    if kind == "circle":
        return S.static_circle(
            head.vec(s, "center", where), head.num(s, "radius", where), friction, elasticity
        )
    raise head.error(f"{where}.type {kind!r} is not a known static shape", "Use segment, polygon or circle")


def _guide_constraint(head: _Line, c: dict, where: str, index_of: dict) -> dict:
    kind_name = head.str_(c, "type", where)
    kind = _GUIDE_TO_CONSTRAINT.get(kind_name)
    if kind is None:
        raise head.error(
            f"{where}.type {kind_name!r} is not a supported constraint",
            f"Use one of {', '.join(_GUIDE_TO_CONSTRAINT)}",
        )

    def body(key):
        v = head.get(c, key, where)
        if v == "static":
            return STATIC
        if isinstance(v, bool) or not isinstance(v, int) or v not in index_of:
            raise head.error(
                f"{where}.{key} is {v!r}, neither 'static' nor a header object id",
                "Constraints name bodies by header id or 'static'",
            )
        return index_of[v]

    a, b = body("body_a"), body("body_b")
    if kind in ("motor", "rotary_limit"):
        if kind == "motor":
            mf = c.get("max_force")
            return S.motor(
                a, b, head.num(c, "rate", where), None if mf is None else head.num(c, "max_force", where)
            )
        return S.rotary_limit(a, b, head.num(c, "min", where), head.num(c, "max", where))
    anchor_a, anchor_b = head.vec(c, "anchor_a", where), head.vec(c, "anchor_b", where)
    if kind == "pin":
        return S.pin(a, b, anchor_a, anchor_b)
    if kind == "pivot":
        return S.pivot(a, b, anchor_a, anchor_b)
    if kind == "slide":
        return S.slide(a, b, anchor_a, anchor_b, head.num(c, "min", where), head.num(c, "max", where))
    return S.spring(
        a,
        b,
        anchor_a,
        anchor_b,
        head.num(c, "rest_length", where),
        head.num(c, "stiffness", where),
        head.num(c, "damping", where),
    )
