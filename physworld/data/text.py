"""The text view: scenes and frames as text a language model reads and writes, and the parser that
reads a model's frame back. A view of the store (like windows.py), never the source of truth.
API and purpose: docs/TEXT_CODEC.md. Numbers behind the choices: bench/bench_codec.py (BENCHMARKS.md).

Two formats (FORMATS):

"compact" (the default) is built for next-frame prediction. A frame is one line per body, in body
order, then the terminator line ";" (FRAME_END = ";\\n"):

    0 433.69 194.40 0.0000 36.4 -49.1 0.000
    1 120.05 87.51 -1.5708 0.0 -16.4 12.070
    ;

Each body line is `index x y angle vx vy angular_velocity`, single spaces, every number a plain
decimal with a fixed number of decimals per field (DECIMALS): no exponent, a sign only when the
written value is negative (a value that rounds to zero is written "0.00", never "-0.00"), so every
value has exactly one spelling. The quanta, chosen by measurement (bench/bench_codec.py):

    x, y        0.01 px      velocities vx, vy  0.1 px/s
    angle       1e-4 rad     angular velocity   1e-3 rad/s

The rule: the position quantum resolves what one frame of dynamics changes, and every other quantum
is the coarsest power of ten whose error, turned into pixels, is no larger than the position error.
0.01 px (max error 0.005 px) resolves gravity's per-frame curvature (g dt^2 = 0.27 px) to 2% and the
median per-frame displacement of a moving body (~1.4 px) to 0.4%; 0.1 px would blur the curvature by
18%. A velocity error moves the next position by error * dt: 0.05 px/s * dt = 0.0008 px, under
0.005 px, so positions can be integrated from written velocities (1 px/s would give 0.008 px). An
angle error moves a body's edge by error * extent: at 23 px (the 90th percentile extent of bodies
that rotate) 1e-4 rad gives 0.0012 px where 1e-3 rad would give 0.012 px, more than the position
error; likewise 1e-3 rad/s * dt * 23 px = 0.0002 px per frame. The finer angular quanta cost 2
characters (+5%) or half a BPE-512 token (+2%) per body line; every field one decimal finer costs 6
characters (+15%).

"guide" is guide 001's frame JSON (PhysicsLLMEngine src/physics/simulation.py get_state), for
measurement and comparison: one JSON line per frame, json.dumps's default separators,

    {"objects": [{"id": 0, "type": "circle", "position": {"x": 433.6947, "y": 194.4012},
      "velocity": {"x": 36.3691, "y": -49.05}, "angle": 0.0, "angular_velocity": 0.0,
      "material": {"mass": 1.0, "friction": 0.5, "elasticity": 0.5}}, ...]}
    ;

at the guide's precision: positions and velocities rounded to 4 decimals, angle and angular velocity
to 6, written as Python's shortest float repr (so "500.0", "-2e-06"), like json.dumps writes the
guide's round()ed values. "type" and "material" come from the spec (pass `spec=`); without one the
objects carry only id and state. The guide's per-frame "frame" number and "description" sentence
are left out (frame_text has no frame number), which favours the guide format in token counts.

Both formats end a frame with FRAME_END, which appears nowhere else in a frame or in a scene prompt,
so a generating model can stop at ";". `quantize(s, fmt)` is the state exactly as the format holds
it: parse_frame(frame_text(s)).states == quantize(s) bit for bit in float32, for any finite float32
state. Values are rounded as n = rint(float64(v) * 10**d) (ties to even) and represent n / 10**d.
Compact text is also a fixed point: frame_text(quantize(s)) == frame_text(s), so parsed (predicted)
states fed back into a prompt spell exactly as written, while float32 still resolves the quantum:
|x|, |y| < 131072 px, |angle| < 1024 rad, |vx|, |vy| < 2**20 px/s, |angular velocity| < 16384 rad/s.
(The guide's 4 decimals are finer than float32 resolves above 512 px, so its error there is float32's
6.1e-5 px, and it is not a fixed point.)

`parse_frame` reads what a model wrote and never raises: unreadable values are NaN, `errors` says
what failed and why, and `complete` is True only when every body was read exactly once, all six
values finite, and the frame was terminated. Text after the first ";" (a model running on into the
next frame) is ignored. The compact reader accepts any plain decimal ("12.3" as well as "12.30");
anything else (exponents, "nan", "+1", "1.2.3") is an error for that value.

Prompts: `scene_prompt(spec, fmt)` describes the world, static geometry, constraints, force fields,
bodies (shape, size, mass, moment, friction, elasticity, kinematic flag, collision group) and
kinematic controllers: everything that is not in the frames (initial positions and velocities are
frame 0). The compact prompt is one line per item, keyword and numbers (6 significant digits, no
exponent), ending with the column legend `frames x y a vx vy w`; the guide prompt is a scene_header
JSON line like the guide's (spec values at the same 6 significant digits). `training_example` and
`rollout_prompt` append frames to it, so a prompt is the scene, then context frames, each ending with
FRAME_END, and the completion is the next frame.

Tokenizers: `CharTokenizer` (one id per character: "\\n" and printable ASCII, which covers every
character either format writes, plus <pad> <bos> <eos> <unk>) and `train_bpe` (a byte-level BPE
trained locally with the `tokenizers` package).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMATS = ("compact", "guide")
FRAME_END = ";\n"
_END_CHAR = ";"
FIELDS = ("x", "y", "angle", "vx", "vy", "angular_velocity")
DECIMALS = {"compact": (2, 2, 4, 1, 1, 3), "guide": (4, 4, 6, 4, 4, 6)}
LEGEND = "frames x y a vx vy w"  # the compact prompt's last line: the columns of a body line
MAX_ERRORS = 100  # parse_frame lists at most this many errors, then a count of the rest

_F32_MAX = float(np.finfo(np.float32).max)
_FAST_LIMIT = float(2**50)  # below this |n|, "%.{d}f" % (n / 10**d) spells n / 10**d exactly
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_INDEX = re.compile(r"[0-9]{1,9}")
_GUIDE_OBJECT = re.compile(r'\{\s*"id"')
_SHAPE_TO_GUIDE = {"circle": "circle", "box": "rectangle", "poly": "polygon"}


def _check_fmt(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown text format {fmt!r}; expected one of {', '.join(FORMATS)}")


# ---------------------------------------------------------------- quantization


def _as_state(state) -> np.ndarray:
    s = np.asarray(state)
    if s.ndim != 2 or s.shape[1] != 6:
        raise ValueError(f"a frame state must be [bodies, 6] (x, y, angle, vx, vy, w), got shape {s.shape}")
    s = s.astype(np.float32, copy=False)
    bad = ~np.isfinite(s)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        raise ValueError(f"body {i}: {FIELDS[k]} is {s[i, k]}; text frames hold finite values only")
    return s


def _integers(s: np.ndarray, decimals) -> np.ndarray:
    """n = rint(v * 10**d) per field as exact float64 integers, -0 folded into +0."""
    scale = np.array([10.0**d for d in decimals])
    return np.rint(s.astype(np.float64) * scale) + 0.0


def _quantized64(n: np.ndarray, decimals) -> np.ndarray:
    # n and 10**d are exact doubles, so this is n / 10**d correctly rounded: what float() of the
    # written decimal returns.
    return n / np.array([10.0**d for d in decimals])


def quantize(state, fmt: str = "compact") -> np.ndarray:
    """The state float32 [N, 6] as the format represents it: parse_frame(frame_text(s)) == quantize(s)
    bit for bit. Raises ValueError on non-finite values (text frames cannot hold them)."""
    _check_fmt(fmt)
    d = DECIMALS[fmt]
    return _quantized64(_integers(_as_state(state), d), d).astype(np.float32)


# ---------------------------------------------------------------- writing frames


def _fixed(n: float, d: int) -> str:
    """The decimal n / 10**d with exactly d decimals, from the exact integer n (any size)."""
    i = int(n)
    digits = str(abs(i)).rjust(d + 1, "0")
    text = f"{digits[:-d]}.{digits[-d:]}" if d else digits
    return "-" + text if i < 0 else text


def compact_lines(state, decimals=DECIMALS["compact"]) -> str:
    """The compact frame text at the given decimals per field (frame_text uses DECIMALS["compact"];
    other decimals exist for the precision sweep in bench/bench_codec.py)."""
    s = _as_state(state)
    n = _integers(s, decimals)
    q = _quantized64(n, decimals).tolist()
    if s.size == 0 or np.abs(n).max() < _FAST_LIMIT:
        line = " ".join(["{}"] + [f"{{:.{d}f}}" for d in decimals]) + "\n"
        body = "".join(line.format(i, *row) for i, row in enumerate(q))
    else:
        nl = n.tolist()
        body = "".join(
            " ".join([str(i)] + [_fixed(v, d) for v, d in zip(row, decimals, strict=True)]) + "\n"
            for i, row in enumerate(nl)
        )
    return body + FRAME_END


def _r4(v) -> float:
    return round(float(v), 4) + 0.0


def _guide_prefixes(spec: dict | None, n: int) -> tuple[list[str], list[str]]:
    if spec is None:
        return [f'{{"id": {i}, ' for i in range(n)], ["}"] * n
    bodies = spec.get("bodies", [])
    if len(bodies) != n:
        raise ValueError(f"the spec has {len(bodies)} bodies but the state has {n}")
    pre, post = [], []
    for i, b in enumerate(bodies):
        kind = _SHAPE_TO_GUIDE.get(b.get("shape"), str(b.get("shape")))
        material = {k: _r4(b.get(k, 0.0)) for k in ("mass", "friction", "elasticity")}
        pre.append(f'{{"id": {i}, "type": {json.dumps(kind)}, ')
        post.append(f', "material": {json.dumps(material)}}}')
    return pre, post


def _guide_frame(state, spec: dict | None) -> str:
    s = _as_state(state)
    d = DECIMALS["guide"]
    q = _quantized64(_integers(s, d), d).tolist()
    pre, post = _guide_prefixes(spec, len(q))
    objs = [
        f'{pre[i]}"position": {{"x": {x!r}, "y": {y!r}}}, "velocity": {{"x": {vx!r}, "y": {vy!r}}}, '
        f'"angle": {a!r}, "angular_velocity": {w!r}{post[i]}'
        for i, (x, y, a, vx, vy, w) in enumerate(q)
    ]
    return '{"objects": [' + ", ".join(objs) + "]}\n" + FRAME_END


def frame_text(state, fmt: str = "compact", *, spec: dict | None = None) -> str:
    """One frame, state [N, 6] (x, y, angle, vx, vy, angular_velocity), at the format's fixed precision,
    ending with FRAME_END. `spec` gives guide objects their "type" and "material" (compact ignores it).
    Raises ValueError on a non-finite value or a malformed state."""
    _check_fmt(fmt)
    if fmt == "compact":
        return compact_lines(state)
    return _guide_frame(state, spec)


# ---------------------------------------------------------------- parsing frames


@dataclass
class FrameParse:
    states: np.ndarray  # float32 [N, 6], NaN where unreadable
    complete: bool  # every body read once, all values finite, frame terminated
    errors: list[str] = field(default_factory=list)  # what could not be read, and why


class _Errors:
    def __init__(self):
        self.items: list[str] = []
        self.dropped = 0

    def add(self, msg: str) -> None:
        if len(self.items) < MAX_ERRORS:
            self.items.append(msg)
        else:
            self.dropped += 1

    def done(self) -> list[str]:
        return self.items + ([f"... and {self.dropped} more errors"] if self.dropped else [])

    def __bool__(self) -> bool:
        return bool(self.items)


def _quote(s: str, limit: int = 40) -> str:
    return repr(s if len(s) <= limit else s[:limit] + "...")


def _split_frame(text: str, errors: _Errors) -> str:
    end = text.find(_END_CHAR)
    if end < 0:
        errors.add(f"no frame terminator {_END_CHAR!r}: the text is truncated or not a frame")
        return text
    return text[:end]


class _Bodies:
    """Which body rows were read where, so repeats and omissions are reported."""

    def __init__(self, states: np.ndarray, errors: _Errors):
        self.states, self.errors = states, errors
        self.first: dict[int, str] = {}  # body -> where it was first read
        self.repeated: set[int] = set()

    def claim(self, i: int, where: str) -> bool:
        """True if body i is read here for the first time; a repeat makes the body's row NaN."""
        if i in self.first:
            self.errors.add(
                f"{where}: body {i} repeated (first at {self.first[i]}); its values are ambiguous"
            )
            self.repeated.add(i)
            self.states[i] = np.nan
            return False
        self.first[i] = where
        return True

    def finish(self) -> None:
        for i in range(len(self.states)):
            if i not in self.first:
                self.errors.add(f"body {i}: missing")


def _parse_compact(text: str, n: int, states: np.ndarray, errors: _Errors) -> None:
    bodies = _Bodies(states, errors)
    for k, raw in enumerate(_split_frame(text, errors).split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        where = f"line {k}"
        if not _INDEX.fullmatch(parts[0]):
            errors.add(f"{where}: cannot parse {_quote(line)}: no body index at the start")
            continue
        i = int(parts[0])
        if i >= n:
            errors.add(f"{where}: body index {i} is not in 0..{n - 1} (an extra body)")
            continue
        if not bodies.claim(i, where):
            continue
        if len(parts) != 7:
            errors.add(f"{where}: body {i} has {len(parts) - 1} values, expected 6: {_quote(line)}")
            continue
        for f, tok in enumerate(parts[1:]):
            if not _NUMBER.fullmatch(tok):
                errors.add(f"{where}: body {i}: cannot parse {FIELDS[f]} {_quote(tok)}")
                continue
            v = float(tok)
            if not math.isfinite(v) or abs(v) > _F32_MAX:
                errors.add(f"{where}: body {i}: {FIELDS[f]} {_quote(tok)} is out of float32 range")
                continue
            states[i, f] = v + 0.0
    bodies.finish()


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name}")


def _guide_objects(body: str, errors: _Errors) -> list:
    body = body.strip()
    try:
        data = json.loads(body, parse_constant=_reject_constant)
        objects = data.get("objects") if isinstance(data, dict) else data
        if isinstance(objects, list):
            return objects
        errors.add("frame JSON: expected an object with an 'objects' list")
        return []
    except (ValueError, RecursionError) as e:
        errors.add(f"frame JSON: cannot parse ({e}); reading the objects that are whole")
    decoder, out, pos = json.JSONDecoder(parse_constant=_reject_constant), [], 0
    while (m := _GUIDE_OBJECT.search(body, pos)) is not None:
        try:
            obj, end = decoder.raw_decode(body, m.start())
        except (ValueError, RecursionError):
            pos = m.end()
            continue
        out.append(obj)
        pos = end
    return out


def _number(obj, path: tuple[str, ...]):
    v = obj
    for key in path:
        if not isinstance(v, dict) or key not in v:
            return None, "missing"
        v = v[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None, f"not a number ({_quote(json.dumps(v) if _jsonable(v) else repr(v))})"
    try:
        v = float(v)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v) or abs(v) > _F32_MAX:
        return None, "out of float32 range"
    return v + 0.0, ""


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError, RecursionError):
        return False


_GUIDE_PATHS = (("position", "x"), ("position", "y"), ("angle",), ("velocity", "x"), ("velocity", "y"))
_GUIDE_PATHS = (*_GUIDE_PATHS, ("angular_velocity",))


def _parse_guide(text: str, n: int, states: np.ndarray, errors: _Errors) -> None:
    bodies = _Bodies(states, errors)
    for j, obj in enumerate(_guide_objects(_split_frame(text, errors), errors)):
        where = f"object {j}"
        oid = obj.get("id") if isinstance(obj, dict) else None
        if isinstance(oid, bool) or not isinstance(oid, int):
            errors.add(f"{where}: no integer 'id'")
            continue
        if not 0 <= oid < n:
            errors.add(f"{where}: id {oid} is not in 0..{n - 1} (an extra body)")
            continue
        if not bodies.claim(oid, where):
            continue
        for f, path in enumerate(_GUIDE_PATHS):
            v, why = _number(obj, path)
            if why:
                errors.add(f"{where}: body {oid}: {'.'.join(path)} {why}")
            else:
                states[oid, f] = v
    bodies.finish()


def parse_frame(text, num_bodies: int, fmt: str = "compact") -> FrameParse:
    """Read one frame a model wrote. Never raises on the text: NaN where unreadable, `errors` says what
    and why (e.g. "body 3: missing", "line 5: body 2: cannot parse vx '1.2.3'"), `complete` is True
    only with no errors. Reads up to the first ";" (FRAME_END); bytes are decoded as UTF-8."""
    _check_fmt(fmt)
    n = int(num_bodies)
    if n < 0:
        raise ValueError(f"num_bodies must be >= 0, got {num_bodies}")
    states = np.full((n, 6), np.nan, dtype=np.float64)
    errors = _Errors()
    try:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", errors="replace")
        elif not isinstance(text, str):
            errors.add(f"expected text, got {type(text).__name__}")
            text = ""
        if fmt == "compact":
            _parse_compact(text, n, states, errors)
        else:
            _parse_guide(text, n, states, errors)
    except Exception as e:  # a last guard: a parser bug must not end a rollout
        errors.add(f"unexpected parser failure: {type(e).__name__}: {e}")
    out = states.astype(np.float32)
    out += 0.0  # -0.0 -> +0.0, as quantize holds it
    ok = not errors and bool(np.isfinite(out).all())
    return FrameParse(out, ok, errors.done())


# ---------------------------------------------------------------- scene prompts


def _pnum(v) -> str:
    """A prompt number: up to 6 significant digits, positional (never an exponent), no trailing zeros."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "1" if v else "0"
    v = float(v)
    if not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
    return np.format_float_positional(v + 0.0, precision=6, unique=True, fractional=False, trim="-")


def _word(s) -> str:
    """A prompt keyword: no whitespace, no frame terminator."""
    return re.sub(r"[\s;]+", "_", str(s)) or "_"


def _values(v) -> list[str]:
    """Generic key/value flattening for fields and controllers (nested dicts in brackets)."""
    if isinstance(v, dict):
        out = []
        for k in sorted(v):
            out += [_word(k), *_values(v[k])]
        return out
    if isinstance(v, (list, tuple)):
        out = [str(len(v))]
        for x in v:
            out += ["[", *_values(x), "]"] if isinstance(x, (dict, list, tuple)) else _values(x)
        return out
    if isinstance(v, str):
        return [_word(v)]
    return [_pnum(v)]


def _pts(points) -> list[str]:
    return [str(len(points))] + [_pnum(c) for p in points for c in p]


def _compact_static(s: dict) -> str:
    kind = s.get("kind")
    fe = ["f", _pnum(s.get("friction")), "e", _pnum(s.get("elasticity"))]
    if kind == "segment":
        sv = s.get("surface_velocity", (0.0, 0.0))
        parts = ["seg", *map(_pnum, (*s["a"], *s["b"])), "r", _pnum(s.get("radius", 0.0)), *fe]
        parts += ["sv", _pnum(sv[0]), _pnum(sv[1])]
    elif kind == "poly":
        parts = ["poly", *_pts(s["vertices"]), *fe]
    elif kind == "circle":
        parts = ["circle", _pnum(s["center"][0]), _pnum(s["center"][1]), "r", _pnum(s["radius"]), *fe]
    else:
        parts = [_word(kind), *_values({k: v for k, v in s.items() if k != "kind"})]
    return "static " + " ".join(parts)


def _compact_constraint(c: dict) -> str:
    kind = c.get("kind")
    parts = [_word(kind), str(c.get("a")), str(c.get("b"))]
    if kind in ("pin", "pivot", "slide", "spring"):
        parts += ["a", *map(_pnum, c["anchor_a"]), "b", *map(_pnum, c["anchor_b"])]
    if kind in ("slide", "rotary_limit"):
        parts += ["min", _pnum(c["min"]), "max", _pnum(c["max"])]
    elif kind == "spring":
        parts += ["rest", _pnum(c["rest_length"]), "k", _pnum(c["stiffness"]), "damp", _pnum(c["damping"])]
    elif kind == "motor":
        parts += ["rate", _pnum(c["rate"]), "max", _pnum(c.get("max_force"))]
    elif kind not in ("pin", "pivot"):
        parts += _values({k: v for k, v in c.items() if k not in ("kind", "a", "b")})
    return "joint " + " ".join(parts)


def _compact_body(i: int, b: dict) -> str:
    shape = b.get("shape")
    if shape == "circle":
        size = ["r", _pnum(b["radius"])]
    elif shape == "box":
        size = ["w", _pnum(b["width"]), "h", _pnum(b["height"])]
    elif shape == "poly":
        size = _pts(b["vertices"])
    else:
        size = []
    parts = [f"body {i}", _word(shape), *size, "m", _pnum(b.get("mass")), "I", _pnum(b.get("moment"))]
    parts += ["f", _pnum(b.get("friction")), "e", _pnum(b.get("elasticity"))]
    parts += ["kin", _pnum(bool(b.get("kinematic", False))), "grp", str(int(b.get("group", 0)))]
    return " ".join(parts)


def _compact_prompt(spec: dict) -> str:
    w = spec["world"]
    g = w.get("gravity", (0.0, 0.0))
    lines = [
        " ".join(
            ["world", _pnum(w.get("width")), _pnum(w.get("height")), "g", _pnum(g[0]), _pnum(g[1])]
            + ["dt", _pnum(w.get("dt")), "sub", _pnum(w.get("substeps")), "it", _pnum(w.get("iterations"))]
            + ["damp", _pnum(w.get("damping", 1.0))]
        )
    ]
    lines += [_compact_static(s) for s in spec.get("statics", [])]
    lines += [_compact_constraint(c) for c in spec.get("constraints", [])]
    fields = spec.get("fields") or {}
    lines += [f"field {_word(k)} " + " ".join(_values(fields[k])) for k in sorted(fields) if fields[k]]
    bodies = spec.get("bodies", [])
    lines += [_compact_body(i, b) for i, b in enumerate(bodies)]
    lines += [
        f"ctrl {i} " + " ".join(_values(b["controller"])) for i, b in enumerate(bodies) if b.get("controller")
    ]
    lines.append(LEGEND)
    return "\n".join(lines) + "\n"


def _g6(v):
    """Spec values for the guide prompt at 6 significant digits, the compact prompt's precision."""
    if isinstance(v, (bool, int, str)) or v is None:
        return v
    if isinstance(v, float):
        return float(f"{v:.6g}") + 0.0 if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _g6(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_g6(x) for x in v]
    return str(v)


def _guide_prompt(spec: dict) -> str:
    from physworld.data.jsonl import _header_constraint, _header_static

    w = spec["world"]
    objects = []
    for i, b in enumerate(spec.get("bodies", [])):
        obj = {
            "id": i,
            "type": _SHAPE_TO_GUIDE.get(b.get("shape"), b.get("shape")),
            "material": {k: b.get(k) for k in ("mass", "friction", "elasticity")},
        }
        if b.get("shape") == "circle":
            obj["radius"] = b["radius"]
        elif b.get("shape") == "box":
            obj.update(width=b["width"], height=b["height"])
        elif b.get("shape") == "poly":
            obj["vertices"] = b["vertices"]
        obj.update(moment=b.get("moment"), kinematic=bool(b.get("kinematic", False)), group=b.get("group", 0))
        if b.get("controller"):
            obj["controller"] = b["controller"]
        objects.append(obj)
    header = {
        "type": "scene_header",
        "object_count": len(objects),
        "gravity": {"x": w["gravity"][0], "y": w["gravity"][1]},
        "timestep": w["dt"],
        "substeps": w.get("substeps"),
        "iterations": w.get("iterations"),
        "damping": w.get("damping", 1.0),
        "objects": objects,
        "static_geometry": [_header_static(s) for s in spec.get("statics", [])],
        "constraints": [_header_constraint(c) for c in spec.get("constraints", [])],
    }
    if spec.get("fields"):
        header["fields"] = spec["fields"]
    return json.dumps(_g6(header)).replace(_END_CHAR, ",") + "\n"


def scene_prompt(spec: dict, fmt: str = "compact") -> str:
    """What the model needs that is not in the frames: world (size, gravity, dt, substeps,
    iterations, damping), static geometry, constraints, force fields, bodies (shape, size, mass,
    moment, friction, elasticity, kinematic flag, group) and controllers. Deterministic; never
    contains FRAME_END; ends with a newline."""
    _check_fmt(fmt)
    return _compact_prompt(spec) if fmt == "compact" else _guide_prompt(spec)


def rollout_prompt(spec: dict, frames, fmt: str = "compact") -> str:
    """scene_prompt(spec) followed by frame_text of each of frames [C, N, 6] (e.g. predicted states):
    the same prompt training_example writes for the same frames."""
    _check_fmt(fmt)
    frames = np.asarray(frames)
    n = len(spec.get("bodies", []))
    if frames.ndim != 3 or frames.shape[1:] != (n, 6):
        raise ValueError(f"frames must be [C, {n}, 6] for this spec's {n} bodies, got shape {frames.shape}")
    head = scene_prompt(spec, fmt)
    return head + "".join(frame_text(f, fmt, spec=spec) for f in frames)


def training_example(record: dict, t: int, context_frames: int, fmt: str = "compact") -> tuple[str, str]:
    """(prompt, completion) for predicting frame t+1: prompt = scene_prompt + frames
    max(0, t-context_frames+1) .. t; completion = frame_text(frame t+1)."""
    states = np.asarray(record["states"])
    if states.ndim != 3:
        raise ValueError(f"record states must be [frames, bodies, 6], got shape {states.shape}")
    if not 0 <= t < len(states) - 1:
        raise ValueError(f"t must be in 0..{len(states) - 2} (frame t+1 is the completion), got {t}")
    if context_frames < 1:
        raise ValueError(f"context_frames must be at least 1, got {context_frames}")
    spec = record["spec"]
    prompt = rollout_prompt(spec, states[max(0, t - context_frames + 1) : t + 1], fmt)
    return prompt, frame_text(states[t + 1], fmt, spec=spec)


# ---------------------------------------------------------------- tokenizers


SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
CHARS = "\n" + "".join(chr(c) for c in range(0x20, 0x7F))  # every character the codec writes
_TOKENIZER_FILE = "char_tokenizer.json"


class CharTokenizer:
    """One id per character: <pad>=0, <bos>=1, <eos>=2, <unk>=3, then "\\n" and printable ASCII.
    Anything else encodes to <unk> (decoded as U+FFFD). No files, no downloads."""

    def __init__(self, chars: str = CHARS):
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer characters must be distinct")
        self.chars = chars
        self.tokens = list(SPECIALS) + list(chars)
        self._ids = {c: i + len(SPECIALS) for i, c in enumerate(chars)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(len(SPECIALS))

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        get, unk = self._ids.get, self.unk_id
        ids = [get(c, unk) for c in text]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == self.unk_id:
                out.append("\ufffd")
            elif len(SPECIALS) <= i < len(self.tokens):
                out.append(self.tokens[i])
            elif 0 <= i < len(SPECIALS) and not skip_special:
                out.append(self.tokens[i])
            elif not 0 <= i < len(self.tokens):
                out.append("\ufffd")
        return "".join(out)

    def save(self, directory) -> Path:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        out = path / _TOKENIZER_FILE
        data = {"type": "CharTokenizer", "version": 1, "specials": list(SPECIALS), "chars": self.chars}
        out.write_text(json.dumps(data, indent=1) + "\n")
        return out

    @classmethod
    def load(cls, directory) -> CharTokenizer:
        path = Path(directory)
        if path.is_dir():
            path = path / _TOKENIZER_FILE
        data = json.loads(path.read_text())
        if data.get("type") != "CharTokenizer" or data.get("specials") != list(SPECIALS):
            raise ValueError(f"{path}: not a CharTokenizer file (type {data.get('type')!r})")
        return cls(data["chars"])


def train_bpe(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE (GPT-2 pre-tokenization, ByteLevel decoder) trained locally on `texts` with the
    `tokenizers` package; specials <pad> <bos> <eos> take ids 0-2. Returns a tokenizers.Tokenizer;
    decode(encode(text).ids) == text for any text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<pad>", "<bos>", "<eos>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(specials):
        raise ValueError(f"vocab_size must be at least {len(alphabet) + len(specials)} for byte-level BPE")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=alphabet, show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    return tok
