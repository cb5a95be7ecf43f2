"""The training view for learned simulators: windows of scenes as graphs (docs/GRAPH_BATCH.md).

Preparation happens once, offline, the way nanoGPT prepares its tokens: `prepare(data_dir)` streams
the dataset store (one Parquet row group at a time) into flat .npy arrays under
`<data_dir>/windows/`, which training memory-maps:

    states.npy        float32 [total body-frames, 6]  every scene's states [frames, bodies, 6], flattened,
                                                      scene after scene
    scenes.npy        int64 [scenes, len(SCENE_FIELDS)]        offsets into every array, counts, labels
    scenes_float.npy  float64 [scenes, len(SCENE_FLOAT_FIELDS)] dt, gravity
    body.npy          float32 [total bodies, 11]       BODY_FEATURES
    statics.npy       float32 [total static pieces, 7] STATIC_FEATURES (capsules)
    joint_index.npy   int64 [total joints, 2]          bodies a, b within their scene; -1 = static world
    joint_kind.npy    int64 [total joints]             index into JOINT_KINDS
    joint_anchor.npy  float32 [total joints, 4]        anchor_a, anchor_b
    meta.json         field names, scenario type names, array shapes, the statistics, and a hash of the
                      source manifest's shard checksums (a stale preparation is detected and redone)

Every file is written atomically and meta.json last, so a directory with a meta.json is complete and
an interrupted preparation is simply redone by the next call; a call on an up-to-date preparation
returns at once.

3D datasets (PyBullet, states [frames, bodies, 13]) are prepared the same way with `prepare(data_dir,
dims=3)`: the arrays then have the 3D widths of `windows3d.py` (`layout(3)`), and meta.json says
`"dims": 3`. A call with the other `dims` than the dataset's is refused in one line naming the family
that reads it.

`WindowDataset(prepared_dir, history)` is a torch Dataset over every window (scene, t) with
t in [history - 1, num_frames - 2]; `collate_graphs` batches its samples; `EpochSampler` orders them
reproducibly and resumably. Evaluation rollouts build the same samples from predicted states with
`graph_from_scene`, whose static part comes from `scene_arrays`, the function `prepare` uses too.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler
from tqdm.auto import tqdm

from physworld.data import windows3d
from physworld.data.store import MANIFEST, MANIFEST_LIMIT, Dataset, StoreError, regular_file_problem
from physworld.fileio import atomic_write_bytes, atomic_write_json, remove_stale_temporaries
from physworld.worlds.bullet import STATE_FIELDS_3D
from physworld.worlds.engine import STATE_FIELDS
from physworld.worlds.spec import body_extent

FORMAT = "physworld-windows"
FORMAT_VERSION = 1
DEFAULT_SUBDIR = "windows"
META = "meta.json"

BODY_FEATURES = (
    "is_circle",
    "is_box",
    "is_poly",
    "radius",
    "width",
    "height",
    "mass",
    "moment",
    "friction",
    "elasticity",
    "kinematic",
)
STATIC_FEATURES = ("ax", "ay", "bx", "by", "radius", "friction", "elasticity")
JOINT_KINDS = ("pin", "pivot", "slide", "spring", "motor", "rotary_limit")
SCENE_FIELDS = (
    "scene_id",
    "state_offset",  # first row of the scene in states.npy
    "num_frames",  # including the initial frame
    "num_bodies",
    "body_offset",  # first row in body.npy
    "static_offset",  # first row in statics.npy
    "num_statics",
    "joint_offset",  # first row in joint_*.npy
    "num_joints",
    "difficulty",
    "scenario_type",  # index into meta["scenario_types"]
    "substeps",
)
SCENE_FLOAT_FIELDS = ("dt", "gravity_x", "gravity_y")
STAT_KEYS = ("velocity_mean", "velocity_std", "accel_mean", "accel_std")
STD_FLOOR = 1e-3  # px/s, rad/s, px/s^2, rad/s^2: keeps normalisation finite for a constant quantity

# The kinematic flag is the last body feature in 2D and 3D alike (read as column -1 below).
assert BODY_FEATURES[-1] == "kinematic" and windows3d.BODY_FEATURES_3D[-1] == "kinematic"
_KINEMATIC = -1
_C = {name: k for k, name in enumerate(SCENE_FIELDS)}
_ARRAYS = (
    "states",
    "scenes",
    "scenes_float",
    "body",
    "statics",
    "joint_index",
    "joint_kind",
    "joint_anchor",
)


class PreparedError(StoreError):
    """A prepared directory that is missing, incomplete or stale; the message says what to run."""


def layout(dims: int) -> dict:
    """The widths of a 2D or a 3D preparation: state columns, the velocity columns (`motion`), the
    body, static and scene-float feature names, the joint anchor width, and the scene_arrays function."""
    if dims == 3:
        return {
            "dims": 3,
            "state_fields": STATE_FIELDS_3D,
            "motion": windows3d.MOTION_3D,
            "body": windows3d.BODY_FEATURES_3D,
            "statics": windows3d.STATIC_FEATURES_3D,
            "joint_kinds": windows3d.JOINT_KINDS_3D,
            "anchor": windows3d.ANCHOR_WIDTH_3D,
            "scene_float": windows3d.SCENE_FLOAT_FIELDS_3D,
            "scene_arrays": windows3d.scene_arrays_3d,
        }
    if dims == 2:
        return {
            "dims": 2,
            "state_fields": STATE_FIELDS,
            "motion": slice(3, 6),
            "body": BODY_FEATURES,
            "statics": STATIC_FEATURES,
            "joint_kinds": JOINT_KINDS,
            "anchor": 4,
            "scene_float": SCENE_FLOAT_FIELDS,
            "scene_arrays": scene_arrays,
        }
    raise ValueError(f"dims must be 2 or 3, got {dims!r}")


def spec_dims(spec: dict) -> int:
    return 3 if spec.get("world", {}).get("dims", 2) == 3 else 2


# ---------------------------------------------------------------- the static part of a graph


def _body_row(b: dict) -> list[float]:
    shape = b["shape"]
    if shape == "circle":
        r = float(b["radius"])
        width = height = 2.0 * r
    elif shape == "box":
        width, height = float(b["width"]), float(b["height"])
        r = body_extent(b)
    elif shape == "poly":
        v = np.asarray(b["vertices"], dtype=np.float64).reshape(-1, 2)
        width, height = (v.max(axis=0) - v.min(axis=0)).tolist()
        r = body_extent(b)
    else:
        raise ValueError(f"body shape {shape!r}: expected circle, box or poly")
    kinematic = bool(b.get("kinematic", False))
    return [
        float(shape == "circle"),
        float(shape == "box"),
        float(shape == "poly"),
        r,
        width,
        height,
        0.0 if kinematic else float(b["mass"]),
        0.0 if kinematic else float(b["moment"]),
        float(b["friction"]),
        float(b["elasticity"]),
        float(kinematic),
    ]


def _static_rows(s: dict) -> list[list[float]]:
    kind, fr, el = s.get("kind"), float(s["friction"]), float(s["elasticity"])
    if kind == "segment":
        return [[*s["a"], *s["b"], float(s["radius"]), fr, el]]
    if kind == "poly":
        v = [list(map(float, p)) for p in s["vertices"]]
        return [[*v[i], *v[(i + 1) % len(v)], float(s.get("radius", 0.0)), fr, el] for i in range(len(v))]
    if kind == "circle":
        c = list(map(float, s["center"]))
        return [[*c, *c, float(s["radius"]), fr, el]]
    raise ValueError(f"static kind {kind!r}: expected segment, poly or circle")


def scene_arrays(spec: dict) -> dict:
    """The static part of a scene's graph, from its spec (GRAPH_BATCH.md):

    body float32 [N, 11] (BODY_FEATURES), statics float32 [S, 7] (STATIC_FEATURES, every static piece
    as a capsule), joint_index int64 [J, 2] (-1 = static world), joint_kind int64 [J] (JOINT_KINDS),
    joint_anchor float32 [J, 4] (zeros for motor and rotary_limit), gravity float32 [2], dt float32 [],
    substeps int64 [].

    Size features of every shape are its bounding values: radius is the bounding radius about the
    centre of mass (a circle's own radius), width/height the bounding box in body coordinates
    (2 r for a circle). Kinematic bodies have mass = moment = 0.
    """
    bodies = spec["bodies"]
    body = np.array([_body_row(b) for b in bodies], dtype=np.float32).reshape(len(bodies), len(BODY_FEATURES))
    rows = [row for s in spec.get("statics", []) for row in _static_rows(s)]
    statics = np.array(rows, dtype=np.float32).reshape(len(rows), len(STATIC_FEATURES))
    joints = spec.get("constraints", [])
    joint_index = np.array([[c["a"], c["b"]] for c in joints], dtype=np.int64).reshape(len(joints), 2)
    kinds = []
    for c in joints:
        if c.get("kind") not in JOINT_KINDS:
            raise ValueError(f"constraint kind {c.get('kind')!r}: expected one of {', '.join(JOINT_KINDS)}")
        kinds.append(JOINT_KINDS.index(c["kind"]))
    joint_kind = np.array(kinds, dtype=np.int64)
    joint_anchor = np.array(
        [[*c.get("anchor_a", (0.0, 0.0)), *c.get("anchor_b", (0.0, 0.0))] for c in joints], dtype=np.float32
    ).reshape(len(joints), 4)
    w = spec["world"]
    return {
        "body": body,
        "statics": statics,
        "joint_index": joint_index,
        "joint_kind": joint_kind,
        "joint_anchor": joint_anchor,
        "gravity": np.asarray(w["gravity"], dtype=np.float32).reshape(2),
        "dt": np.array(w["dt"], dtype=np.float32),
        "substeps": np.array(w["substeps"], dtype=np.int64),
    }


def _target(v_now: np.ndarray, v_next: np.ndarray, dt: float) -> np.ndarray:
    """(v[t+1] - v[t]) / dt in float64, as float32."""
    return ((v_next.astype(np.float64) - v_now.astype(np.float64)) / float(dt)).astype(np.float32)


def graph_from_scene(
    spec: dict,
    history_states,
    next_state=None,
    scene: int = -1,
    t: int | None = None,
    arrays: dict | None = None,
) -> dict:
    """A sample dict (GRAPH_BATCH.md) for a rollout: `history_states` [k, N, 6] (3D: [k, N, 13]) are
    the last k frames, oldest first. With `next_state` [N, 6], next and target come from it; without,
    both are zeros. `arrays` may pass scene_arrays(spec) (3D: scene_arrays_3d), computed once per
    rollout; t defaults to k - 1."""
    lay = layout(spec_dims(spec))
    width, motion = len(lay["state_fields"]), lay["motion"]
    static = arrays if arrays is not None else lay["scene_arrays"](spec)
    hist = np.asarray(history_states, dtype=np.float32)
    if hist.ndim != 3 or hist.shape[2] != width or hist.shape[1] != len(static["body"]):
        raise ValueError(
            f"history_states must be [k, {len(static['body'])}, {width}] for this spec, got {list(hist.shape)}"
        )
    n = hist.shape[1]
    if next_state is None:
        nxt = np.zeros((n, width), dtype=np.float32)
        target = np.zeros((n, motion.stop - motion.start), dtype=np.float32)
    else:
        nxt = np.array(next_state, dtype=np.float32).reshape(n, width)
        target = _target(hist[-1, :, motion], nxt[:, motion], spec["world"]["dt"])
    sample = {
        "history": np.ascontiguousarray(hist.transpose(1, 0, 2)),
        "target": target,
        "next": nxt,
    }
    for key in ("body", "statics", "joint_index", "joint_kind", "joint_anchor", "gravity", "dt", "substeps"):
        sample[key] = np.array(static[key], copy=True)
    sample["scene"] = np.array(scene, dtype=np.int64)
    sample["t"] = np.array(hist.shape[0] - 1 if t is None else t, dtype=np.int64)
    return sample


def integrate(state, accel, dt, substeps):
    """The next state from an acceleration (GRAPH_BATCH.md): v' = v + a dt; x' = x + dt (v + c (v' - v))
    with c = (k - 1) / (2 k) for k substeps; the same for the angle. numpy arrays or torch tensors;
    state [..., 6], accel [..., 3]; dt and substeps scalars or shaped like the leading dimensions."""
    is_torch = isinstance(state, torch.Tensor)

    def trailing(x):
        if is_torch:
            x = torch.as_tensor(x, device=state.device).to(state.dtype)
        else:
            x = np.asarray(x, dtype=np.result_type(state.dtype, np.float32))
        return x[..., None] if x.ndim and x.ndim == state.ndim - 1 else x

    dt, k = trailing(dt), trailing(substeps)
    c = (k - 1) / (2 * k)
    v = state[..., 3:6]
    dv = accel * dt
    x = state[..., 0:3] + dt * (v + c * dv)
    return torch.cat([x, v + dv], dim=-1) if is_torch else np.concatenate([x, v + dv], axis=-1)


# ---------------------------------------------------------------- preparation


def source_key(manifest: dict) -> str:
    """sha256 over the manifest's shard checksums: changes whenever any scene does."""
    shards = [[s["file"], s["sha256"]] for s in manifest["shards"]]
    return hashlib.sha256(json.dumps(shards, separators=(",", ":")).encode()).hexdigest()


def _save_npy(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def _read_meta(out: Path) -> dict | None:
    try:
        return json.loads((out / META).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _is_current(out: Path, key: str) -> bool:
    meta = _read_meta(out)
    return (
        meta is not None
        and meta.get("format") == FORMAT
        and meta.get("format_version") == FORMAT_VERSION
        and meta.get("source", {}).get("shards_sha256") == key
        and all((out / f"{name}.npy").exists() for name in _ARRAYS)
    )


class _Moments:
    """Count, mean and sum of squared deviations per column, merged chunk by chunk (Chan et al.) in
    float64, so a whole dataset's statistics need neither two passes nor its values in memory."""

    def __init__(self, width: int):
        self.n = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        m = len(x)
        if m == 0:
            return
        mean = x.mean(axis=0)
        m2 = ((x - mean) ** 2).sum(axis=0)
        n = self.n + m
        delta = mean - self.mean
        self.mean = self.mean + delta * (m / n)
        self.m2 = self.m2 + m2 + delta**2 * (self.n * m / n)
        self.n = n

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n == 0:
            return np.zeros(len(self.mean), np.float32), np.ones(len(self.mean), np.float32)
        std = np.maximum(np.sqrt(self.m2 / self.n), STD_FLOOR)
        return self.mean.astype(np.float32), std.astype(np.float32)


def _stats_dict(vel: _Moments, acc: _Moments) -> dict:
    vm, vs = vel.result()
    am, as_ = acc.result()
    return {"velocity_mean": vm, "velocity_std": vs, "accel_mean": am, "accel_std": as_}


def _type_order(types: Iterable[str]) -> list[str]:
    from physworld.worlds.registry import SCENARIOS

    present = set(types)
    return [t for t in SCENARIOS if t in present] + sorted(present - set(SCENARIOS))


def prepare(data_dir, out_dir=None, progress: bool = True, dims: int = 2) -> Path:
    """Flatten the dataset store at `data_dir` into memory-mappable arrays under `out_dir`
    (default <data_dir>/windows) and return that directory. Returns at once when the preparation
    there is complete and made from the same shards; otherwise (re)does it. `dims`: the dimension the
    caller reads (2: the 2D families; 3: physics-expert-3d); a dataset of the other one is refused."""
    data_dir = Path(data_dir)
    ds = Dataset(data_dir)
    check_dims(ds.dims, dims, data_dir)
    out = Path(out_dir) if out_dir is not None else data_dir / DEFAULT_SUBDIR
    key = source_key(ds.manifest)
    if _is_current(out, key):
        return out
    if len(ds) == 0:
        raise StoreError(f"{data_dir} holds no scenes; there is nothing to prepare")
    lay = layout(dims)
    width, motion, n_motion = (
        len(lay["state_fields"]),
        lay["motion"],
        lay["motion"].stop - lay["motion"].start,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / META).unlink(missing_ok=True)  # from here until the new meta.json, the directory is incomplete
    remove_stale_temporaries(out)

    # First pass: sizes from the shards' num_frames / num_bodies columns (no trajectories read).
    sizes = []
    for k in range(len(ds.manifest["shards"])):  # opened through the Dataset: size and sha256 verified
        t = ds.shard_file(k).read(columns=["scene_id", "num_frames", "num_bodies"])
        sizes.append(np.stack([t.column(c).to_numpy().astype(np.int64) for c in t.column_names], axis=1))
    sizes = np.concatenate(sizes)
    num_scenes = len(sizes)
    rows = sizes[:, 1] * sizes[:, 2]
    total_rows = int(rows.sum())
    type_names = _type_order(ds.index.column("scenario_type").to_pylist())
    type_of = {name: k for k, name in enumerate(type_names)}

    scenes = np.zeros((num_scenes, len(SCENE_FIELDS)), dtype=np.int64)
    scenes_float = np.zeros((num_scenes, len(lay["scene_float"])), dtype=np.float64)
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("body", "statics", "joint_index", "joint_kind", "joint_anchor")
    }
    vel, acc = _Moments(n_motion), _Moments(n_motion)

    tmp = out / f".states.npy.{os.getpid()}.tmp"
    states_mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(total_rows, width))
    state_off = body_off = static_off = joint_off = 0
    bar = tqdm(total=num_scenes, unit="scene", desc="prepare", disable=not progress, dynamic_ncols=True)
    try:
        i = -1
        for i, rec in enumerate(ds.iter_scenes()):
            st = rec["states"]
            nf, nb = st.shape[:2]
            if i >= num_scenes or rec["scene_id"] != sizes[i, 0] or (nf, nb) != tuple(sizes[i, 1:]):
                raise StoreError(
                    f"{data_dir}: scene {rec['scene_id']} does not match the shards' size columns; "
                    "the dataset changed during preparation or is damaged (run physworld validate)"
                )
            arrays = lay["scene_arrays"](rec["spec"])
            if len(arrays["body"]) != nb:
                raise StoreError(
                    f"{data_dir}: scene {rec['scene_id']} has {nb} state tracks but its spec {len(arrays['body'])} bodies"
                )
            states_mm[state_off : state_off + nf * nb] = st.reshape(-1, width)
            for k in parts:
                parts[k].append(arrays[k])
            ns, nj = len(arrays["statics"]), len(arrays["joint_kind"])
            w = rec["spec"]["world"]
            scenes[i] = [
                rec["scene_id"],
                state_off,
                nf,
                nb,
                body_off,
                static_off,
                ns,
                joint_off,
                nj,
                rec["difficulty"],
                type_of[rec["scenario_type"]],
                w["substeps"],
            ]
            scenes_float[i] = [w["dt"], *w["gravity"]]
            # Whole-dataset statistics: v[t] and (v[t+1] - v[t]) / dt of dynamic bodies for every
            # transition t in [0, frames - 2] (the windows of history 1).
            dyn = arrays["body"][:, _KINEMATIC] == 0
            v = st[:, dyn, motion].astype(np.float64)
            vel.add(v[:-1].reshape(-1, n_motion))
            acc.add((np.diff(v, axis=0) / w["dt"]).reshape(-1, n_motion))
            state_off += nf * nb
            body_off += nb
            static_off += ns
            joint_off += nj
            bar.update(1)
        if i + 1 != num_scenes:
            raise StoreError(
                f"{data_dir}: read {i + 1} scenes, the shards list {num_scenes}; run physworld validate"
            )
        states_mm.flush()
        del states_mm
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out / "states.npy")
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)

    merged = {
        "body": np.concatenate(parts["body"]).reshape(-1, len(lay["body"])),
        "statics": np.concatenate(parts["statics"]).reshape(-1, len(lay["statics"])),
        "joint_index": np.concatenate(parts["joint_index"]).reshape(-1, 2),
        "joint_kind": np.concatenate(parts["joint_kind"]),
        "joint_anchor": np.concatenate(parts["joint_anchor"]).reshape(-1, lay["anchor"]),
        "scenes": scenes,
        "scenes_float": scenes_float,
    }
    for name, arr in merged.items():
        _save_npy(out / f"{name}.npy", arr)
    stats = _stats_dict(vel, acc)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dims": dims,
        "fields": {
            "state": list(lay["state_fields"]),
            "body": list(lay["body"]),
            "statics": list(lay["statics"]),
            "joint_kinds": list(lay["joint_kinds"]),
            "scenes": list(SCENE_FIELDS),
            "scenes_float": list(lay["scene_float"]),
        },
        "scenario_types": type_names,
        "num_scenes": num_scenes,
        "arrays": {
            "states": {"shape": [total_rows, width], "dtype": "float32"},
            **{k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in merged.items()},
        },
        "source": {
            "shards_sha256": key,
            "dir": str(data_dir.resolve()),
            "relative_dir": os.path.relpath(data_dir.resolve(), out.resolve()),
            "num_scenes": len(ds),
        },
        "stats": {k: [float(x) for x in v] for k, v in stats.items()},
        "stats_scope": "all transitions of dynamic bodies: velocity at frame t, (v[t+1] - v[t]) / dt"
        + (" (vx, vy, vz, wx, wy, wz)" if dims == 3 else " (vx, vy, angular_velocity)"),
    }
    atomic_write_json(out / META, meta)
    return out


def check_dims(data_dims: int, dims: int, where) -> None:
    """One line when a dataset of one dimension meets a reader of the other."""
    if data_dims == dims:
        return
    if data_dims == 3:
        raise StoreError(
            f"{where} holds 3D scenes; this model reads 2D datasets only: train or evaluate the 3D learned "
            "simulator on it (--model physics-expert-3d, `physworld train physics-expert-3d`), or "
            "generate a 2D dataset (--scenario-types all, seen or heldout)"
        )
    raise StoreError(
        f"{where} holds 2D scenes; this model reads 3D datasets only: use a 2D family on it (such as "
        "--model physics-expert), or generate a 3D dataset (--scenario-types 3d, seen3d or heldout3d)"
    )


def _hint(prepared_dir: Path, meta: dict | None = None) -> str:
    data = None
    if meta:
        data = meta.get("source", {}).get("dir")
    elif prepared_dir.name == DEFAULT_SUBDIR:
        data = str(prepared_dir.parent)
    where = data or "<data_dir>"
    return f"run `physworld prepare {where}` (physworld.data.windows.prepare({where!r})) first"


def _source_manifest(prepared_dir: Path, meta: dict) -> Path | None:
    src = meta.get("source", {})
    candidates = []
    if src.get("relative_dir"):
        candidates.append(prepared_dir / src["relative_dir"] / MANIFEST)
    if src.get("dir"):
        candidates.append(Path(src["dir"]) / MANIFEST)
    return next((p for p in candidates if p.exists()), None)


def load_meta(prepared_dir, check_source: bool = True) -> dict:
    """meta.json of a complete preparation; PreparedError (saying what to run) when it is missing,
    from another format version, or stale with respect to a source dataset that is still there."""
    prepared_dir = Path(prepared_dir)
    if not (prepared_dir / META).exists():
        raise PreparedError(
            f"{prepared_dir}: not a prepared windows directory (no {META}, or an interrupted preparation); "
            + _hint(prepared_dir)
        )
    meta = _read_meta(prepared_dir)
    if meta is None or meta.get("format") != FORMAT:
        raise PreparedError(f"{prepared_dir / META}: unreadable or not {FORMAT}; " + _hint(prepared_dir))
    if meta.get("format_version") != FORMAT_VERSION:
        raise PreparedError(
            f"{prepared_dir}: prepared with windows format {meta.get('format_version')!r}, this physworld "
            f"reads {FORMAT_VERSION}; " + _hint(prepared_dir, meta)
        )
    if check_source:
        manifest = _source_manifest(prepared_dir, meta)
        if manifest is not None:
            try:
                if regular_file_problem(manifest, limit=MANIFEST_LIMIT):
                    raise OSError("not a readable manifest")  # never read a device or a huge file
                key = source_key(json.loads(manifest.read_bytes()))
            except (OSError, ValueError, KeyError, TypeError):
                key = None
            if key != meta["source"]["shards_sha256"]:
                raise PreparedError(
                    f"{prepared_dir} is stale: the dataset at {manifest.parent} changed since it was prepared; "
                    + _hint(prepared_dir, meta)
                )
    return meta


def load_stats(prepared_dir) -> dict:
    """The whole dataset's normalisation statistics stored by `prepare`: float32 [3] arrays (3D: [6])."""
    meta = load_meta(prepared_dir, check_source=False)
    return {k: np.asarray(meta["stats"][k], dtype=np.float32) for k in STAT_KEYS}


# ---------------------------------------------------------------- the dataset of windows


class WindowDataset(TorchDataset):
    """Every window (scene, t), t in [history - 1, num_frames - 2], of the selected scenes of a prepared
    directory, as sample dicts of numpy arrays (GRAPH_BATCH.md). Arrays are memory-mapped lazily in
    each process, so the dataset pickles cheaply into DataLoader workers.

    scenario_types: type names (or categories, all, seen, heldout); difficulties: ints.
    """

    def __init__(
        self,
        prepared_dir,
        history: int,
        scenario_types: Iterable[str] | None = None,
        difficulties: Iterable[int] | None = None,
    ):
        self.dir = Path(prepared_dir)
        if not isinstance(history, (int, np.integer)) or history < 1:
            raise ValueError(f"history must be a positive int, got {history!r}")
        self.history = int(history)
        self.meta = load_meta(self.dir)
        self.scenario_types: list[str] = list(self.meta["scenario_types"])
        self.dims = int(self.meta.get("dims", 2))  # preparations older than 3D support are 2D
        lay = layout(self.dims)
        self.width, self.motion = len(lay["state_fields"]), lay["motion"]
        for name in _ARRAYS:
            if not (self.dir / f"{name}.npy").exists():
                raise PreparedError(f"{self.dir / (name + '.npy')}: missing; " + _hint(self.dir, self.meta))
        self.scenes = np.load(self.dir / "scenes.npy")
        self.scenes_float = np.load(self.dir / "scenes_float.npy")
        if self.scenes.shape != (self.meta["num_scenes"], len(SCENE_FIELDS)):
            raise PreparedError(
                f"{self.dir / 'scenes.npy'}: shape does not match {META}; " + _hint(self.dir, self.meta)
            )

        keep = np.ones(len(self.scenes), dtype=bool)
        if scenario_types is not None:
            keep &= np.isin(self.scenes[:, _C["scenario_type"]], self._type_indices(scenario_types))
        if difficulties is not None:
            keep &= np.isin(self.scenes[:, _C["difficulty"]], np.asarray(list(difficulties), dtype=np.int64))
        self.scene_indices = np.flatnonzero(keep)  # prepared scene indices in the selection
        counts = np.maximum(self.scenes[self.scene_indices, _C["num_frames"]] - self.history, 0)
        self._ends = np.cumsum(counts)
        self._len = int(self._ends[-1]) if len(self._ends) else 0
        self._arrays: dict | None = None
        self._fast: tuple | None = None

    def _type_indices(self, names) -> np.ndarray:
        if isinstance(names, str):
            names = [names]
        wanted: list[str] = []
        for name in names:
            if name in self.scenario_types:
                wanted.append(name)
                continue
            from physworld.worlds.registry import resolve_types

            try:
                wanted.extend(resolve_types([name]))
            except ValueError:
                raise ValueError(
                    f"scenario type {name!r} is neither in {self.dir} ({', '.join(self.scenario_types)}) "
                    "nor a known type, category, all, seen or heldout"
                ) from None
        return np.array(
            [self.scenario_types.index(n) for n in wanted if n in self.scenario_types], dtype=np.int64
        )

    # Memory maps are opened on first use in each process and never pickled.
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_arrays"] = None
        state["_fast"] = None
        return state

    @property
    def arrays(self) -> dict:
        if self._arrays is None:
            arrays = {}
            for name in ("states", "body", "statics", "joint_index", "joint_kind", "joint_anchor"):
                arr = np.load(self.dir / f"{name}.npy", mmap_mode="r")
                if list(arr.shape) != self.meta["arrays"][name]["shape"]:
                    raise PreparedError(
                        f"{self.dir / (name + '.npy')}: shape {list(arr.shape)} does not match {META}; "
                        + _hint(self.dir, self.meta)
                    )
                arrays[name] = arr.view(np.ndarray)  # same mapping, without np.memmap's per-slice overhead
            self._arrays = arrays
        return self._arrays

    def __len__(self) -> int:
        return self._len

    def locate(self, index) -> tuple[np.ndarray, np.ndarray]:
        """(prepared scene index, frame t) of window indices (vectorised)."""
        index = np.asarray(index, dtype=np.int64)
        n = len(self)
        if np.any((index < 0) | (index >= n)):
            raise IndexError(f"window index out of range [0, {n})")
        pos = np.searchsorted(self._ends, index, side="right")
        start = self._ends[pos] - np.maximum(
            self.scenes[self.scene_indices[pos], _C["num_frames"]] - self.history, 0
        )
        return self.scene_indices[pos], index - start + self.history - 1

    def __getitem__(self, index) -> dict:
        index = int(index)
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"window index {index} out of range [0, {n})")
        if self._fast is None:  # plain Python lists: scalar lookups cost far less than numpy indexing
            self._fast = (self._ends.tolist(), self.scene_indices.tolist(), self.scenes.tolist())
        ends, selected, rows = self._fast
        pos = bisect.bisect_right(ends, index)
        scene = selected[pos]
        row = rows[scene]
        nb, k = row[_C["num_bodies"]], self.history
        t = index - (ends[pos] - max(row[_C["num_frames"]] - k, 0)) + k - 1
        a = self.arrays
        first = row[_C["state_offset"]] + (t - k + 1) * nb
        block = a["states"][first : first + (k + 1) * nb].reshape(k + 1, nb, self.width)
        dt, *gravity = self.scenes_float[scene].tolist()
        bo, so, ns, jo, nj = (
            row[_C[f]] for f in ("body_offset", "static_offset", "num_statics", "joint_offset", "num_joints")
        )
        return {
            "history": block[:k].transpose(1, 0, 2).copy(),
            "target": _target(block[k - 1, :, self.motion], block[k, :, self.motion], dt),
            "next": block[k].copy(),
            "body": a["body"][bo : bo + nb].copy(),
            "statics": a["statics"][so : so + ns].copy(),
            "joint_index": a["joint_index"][jo : jo + nj].copy(),
            "joint_kind": a["joint_kind"][jo : jo + nj].copy(),
            "joint_anchor": a["joint_anchor"][jo : jo + nj].copy(),
            "gravity": np.array(gravity, dtype=np.float32),
            "dt": np.array(dt, dtype=np.float32),
            "substeps": np.array(row[_C["substeps"]], dtype=np.int64),
            "scene": np.array(scene, dtype=np.int64),
            "t": np.array(t, dtype=np.int64),
        }


# ---------------------------------------------------------------- batching


def collate_graphs(samples: Sequence[dict]) -> dict:
    """Samples -> one batch of torch tensors (GRAPH_BATCH.md): rows concatenated, `*_batch` vectors
    naming each row's graph, joint indices offset to the concatenated node numbering (-1 stays -1)."""
    if not samples:
        raise ValueError("collate_graphs needs at least one sample")
    # All in numpy, then wrapped with torch.from_numpy (no copies): small torch ops cost more per call,
    # and torch.repeat_interleave can stall for milliseconds in a busy process.

    def cat(key, width=None, dtype=None):
        parts = [np.asarray(s[key]) for s in samples]
        if width is not None:
            width = width if width == () else parts[0].shape[1:]  # 2D or 3D widths, as the samples have them
            parts = [p.reshape(-1, *width) for p in parts]
        out = np.concatenate(parts)
        return out if dtype is None else out.astype(dtype, copy=False)

    def per_graph(key, dtype):
        return np.array([s[key] for s in samples], dtype=dtype)

    graphs = np.arange(len(samples), dtype=np.int64)
    n_nodes = np.array([len(s["body"]) for s in samples], dtype=np.int64)
    n_statics = np.array([len(s["statics"]) for s in samples], dtype=np.int64)
    n_joints = np.array([len(s["joint_kind"]) for s in samples], dtype=np.int64)
    joint_batch = np.repeat(graphs, n_joints)
    joint_index = cat("joint_index", (2,), np.int64)
    offset = (np.cumsum(n_nodes) - n_nodes)[joint_batch][:, None]
    joint_index = np.where(joint_index >= 0, joint_index + offset, joint_index)
    batch = {
        "history": cat("history"),
        "target": cat("target"),
        "next": cat("next"),
        "body": cat("body", (None,)),
        "batch": np.repeat(graphs, n_nodes),
        "statics": cat("statics", (None,), np.float32),
        "statics_batch": np.repeat(graphs, n_statics),
        "joint_index": joint_index,
        "joint_kind": cat("joint_kind", (), np.int64).reshape(-1),
        "joint_anchor": cat("joint_anchor", (None,), np.float32),
        "joint_batch": joint_batch,
        "gravity": np.stack([np.asarray(s["gravity"], np.float32) for s in samples]),
        "dt": per_graph("dt", np.float32),
        "substeps": per_graph("substeps", np.int64),
        "scene": per_graph("scene", np.int64),
        "t": per_graph("t", np.int64),
    }
    out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
    out["num_graphs"] = len(samples)
    return out


# ---------------------------------------------------------------- statistics


def compute_stats(dataset: WindowDataset, max_windows: int | None = 20000, seed: int = 0) -> dict:
    """Normalisation statistics (float32 [3] each, over vx, vy, angular_velocity) from the dynamic
    bodies of a deterministic sample of windows (all of them if max_windows is None or larger):
    velocity at the window's frame t and acceleration (v[t+1] - v[t]) / dt. Population std,
    floored at STD_FLOOR."""
    n = len(dataset)
    if max_windows is None or n <= max_windows:
        chosen = np.arange(n, dtype=np.int64)
    else:
        chosen = np.sort(np.random.default_rng(seed).choice(n, size=max_windows, replace=False))
    motion = dataset.motion
    vel, acc = _Moments(motion.stop - motion.start), _Moments(motion.stop - motion.start)
    states, body = dataset.arrays["states"], dataset.arrays["body"]
    for lo in range(0, len(chosen), 65536):
        scene, t = dataset.locate(chosen[lo : lo + 65536])
        rows = dataset.scenes[scene]
        nb = rows[:, _C["num_bodies"]]
        total = int(nb.sum())
        which = np.repeat(np.arange(len(scene)), nb)
        within = np.arange(total) - np.repeat(np.cumsum(nb) - nb, nb)
        state_row = (rows[:, _C["state_offset"]] + t * nb)[which] + within
        dynamic = body[rows[:, _C["body_offset"]][which] + within, _KINEMATIC] == 0
        state_row, which = state_row[dynamic], which[dynamic]
        v0 = states[state_row, motion].astype(np.float64)
        v1 = states[state_row + nb[which], motion].astype(np.float64)
        vel.add(v0)
        acc.add((v1 - v0) / dataset.scenes_float[scene, 0][which][:, None])
    return _stats_dict(vel, acc)


# ---------------------------------------------------------------- ordering


def epoch_permutation(num_items: int, seed: int, epoch: int) -> np.ndarray:
    """The order of an epoch: a permutation of range(num_items) that depends only on (seed, epoch)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch)])).permutation(num_items)


class EpochSampler(Sampler):
    """Yields epoch_permutation(num_items, seed, epoch)[start:]. A run that stopped after consuming
    s items of an epoch resumes with start=s and sees exactly the items it would have seen.
    Sampling happens in the main process, so any number of DataLoader workers gives the same batches."""

    def __init__(self, num_items: int, seed: int, epoch: int = 0, start: int = 0):
        if num_items < 0 or seed < 0 or epoch < 0 or not 0 <= start <= max(num_items, 0):
            raise ValueError(
                f"EpochSampler(num_items={num_items}, seed={seed}, epoch={epoch}, start={start}): need "
                "non-negative values and 0 <= start <= num_items"
            )
        self.num_items, self.seed, self.epoch, self.start = int(num_items), int(seed), int(epoch), int(start)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def __iter__(self):
        return iter(epoch_permutation(self.num_items, self.seed, self.epoch)[self.start :].tolist())

    def __len__(self) -> int:
        return self.num_items - self.start
