"""Clips: what a vision model reads. RGB, depth (3D), instance segmentation, forward optical flow from
the ground-truth motion, the camera, per-frame per-object visibility and bounding boxes, and the
states of the frames shown, for every scene of a dataset, stored beside its states.

    physworld render-clips --data-dir D [--resolution 128] [--frames 24] [--fps 12]
    physworld generate ... --with-clips          (the same, right after generating)

A clip is `frames` frames taken every `sim_fps / fps`-th simulated frame from frame 0 (MOVi's
defaults: 24 frames at 12 frames/s, 128 x 128; 256 x 256 on request). Its forward flow at clip frame
t points to where the surface under each pixel is at clip frame t + 1, so the scene must hold one
more step of simulation than the clip shows; the error says which flag to change when it does not.

Layout, beside the dataset's own files (every file written atomically, the manifest last):

    clips/clips.json                 the clip config and the source dataset's shard checksums, written
                                     first: a rerun with other settings is refused, a rerun with the
                                     same settings resumes
    clips/shards/clips-00000.parquet one clip shard per state shard (shards/shard-00000.parquet), one
                                     row per scene, COLUMNS below
    clips/manifest.json              per-shard sha256 and sizes
    clips/README.md                  a Hugging Face dataset card: `datasets.load_dataset("D/clips")`
                                     gives rgb and segmentation as lists of images

Streams and why (bench/bench_clips.py measures bytes per clip for each, against raw uint8 frames):
- rgb: one PNG per frame, in the Parquet row. Lossless, so the pixels a model trains on agree
  exactly with the masks and flow; Hugging Face `datasets` decodes it as images without a video
  backend (its Video feature needs torchcodec). H.264 MP4 is byte-stable at a fixed thread count and
  1.4x (2D) to 4x (3D) smaller than the stored RGB, but lossy, slower to write (one ffmpeg process per clip) and
  unreadable to `datasets` here; `write_mp4` in render.py makes one from a clip for viewing.
- segmentation: one 16-bit greyscale PNG per frame: 0 background, i + 1 body i, SEG_STATIC for static
  geometry (walls, the floor).
- depth (3D; empty in 2D): float32 metres along the camera's axis (z-buffer depth, not ray length),
  lossless, Parquet BYTE_STREAM_SPLIT + zstd.
- flow: float32 [frames, H, W, 2] (d column, d row) in pixels, lossless like depth. Computed from the
  ground truth, not estimated from pixels: in 2D each pixel's world point moves with its body's rigid
  motion; in 3D each pixel is unprojected with its depth and the camera, moved with its body's rigid
  transform and projected again. Background and static geometry have zero flow.
- visible_pixels int32 [frames, bodies] (pixels of the body in the segmentation); visible_fraction
  float32 [frames, bodies]: visible pixels over the pixels the body would cover alone, in the image
  or not (2D: its exact area in pixels; 3D: its whole projected silhouette, see render3d.py); bboxes int32
  [frames, bodies, 4] (row_min, col_min, row_max, col_max) inclusive, of the visible pixels, -1 where
  the body is not visible.
- states float32 [frames, bodies, state_dim] at the clip's frames; frame_indices int32 [frames].
- camera: JSON. 2D: an orthographic map (col = x * sx, row = pad_rows + (600 - y) * sy; the 4:3
  world is letterboxed into the square image so circles stay round). 3D: intrinsics K (3 x 3, pixels),
  extrinsics (4 x 4 world-to-camera, OpenCV axes: x right, y down, z forward), near, far.
- caption: JSON from physworld.data.captions.describe_scene for the frames the clip shows (caption,
  events, questions with answers, every answer from the simulator); null with --no-captions, which
  saves the re-simulations they need (bench/bench_clips.py measures what they cost).

Bytes depend only on the dataset and the clip config: every clip is rendered in its own process's
fresh state, shards are written whole, and the worker count only changes which process renders which
shard (tests/test_clips.py compares trees byte for byte, and after a SIGKILL).
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from physworld.data.clip_config import (  # noqa: F401  (re-exported: clips.ClipConfig, clips.SEG_STATIC, ...)
    MAX_FRAMES,
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    SEG_BACKGROUND,
    SEG_STATIC,
    ClipConfig,
    ClipError,
    boxes_and_counts,
    frame_plan,
    sim_fps_of,
)
from physworld.data.store import MANIFEST as STORE_MANIFEST
from physworld.data.store import canonical_json, table_to_records
from physworld.fileio import atomic_write_bytes, atomic_write_json, remove_stale_temporaries, sha256_file

FORMAT = "physworld-clips"
FORMAT_VERSION = 1
DEFAULT_SUBDIR = "clips"
CONFIG = "clips.json"
MANIFEST = "manifest.json"
SHARD_DIR = "shards"
PNG_LEVEL = 6  # zlib level; 9 makes RGB frames 13-23% smaller before the shard's zstd, for 4x the encode time
ROWS_PER_GROUP = 4  # clips per Parquet row group: the unit read when looking one up


# ---------------------------------------------------------------- rendering one clip


def check_types(config: ClipConfig, scenario_types, frames_per_scene: int) -> None:
    """Refuse, before anything is simulated, clips the scenes of these types could not hold."""
    from physworld.worlds.registry import make_spec, resolve_types

    for rate in sorted({sim_fps_of(make_spec(t, 1, 0)) for t in resolve_types(scenario_types)}):
        config.check_scene_length(rate, frames_per_scene, "--frames-per-scene")


def is_3d(record: dict) -> bool:
    return np.asarray(record["states"]).shape[-1] == 13


def _shape_area(body: dict) -> float:
    """Area of a 2D body in world units squared (polygons as their convex hull, as pymunk builds them)."""
    from physworld.data.render import _convex_hull

    if body["shape"] == "circle":
        return float(np.pi * body["radius"] ** 2)
    if body["shape"] == "box":
        return float(body["width"] * body["height"])
    hull = _convex_hull(np.asarray(body["vertices"], dtype=np.float64))
    if len(hull) < 3:
        return 0.0
    x, y = hull[:, 0], hull[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def camera_2d(resolution: int) -> dict:
    """The 2D world's orthographic map into a square image, letterboxed to keep its aspect."""
    from physworld.data.render import WORLD_HEIGHT, WORLD_WIDTH, default_height

    inner = default_height(resolution)
    pad = (resolution - inner) // 2
    return {
        "kind": "orthographic_2d",
        "width": resolution,
        "height": resolution,
        "scale": [resolution / WORLD_WIDTH, inner / WORLD_HEIGHT],  # px per world unit in x and y
        "pad_rows": pad,  # background rows above the world (and resolution - inner - pad below)
        "world_height": WORLD_HEIGHT,
        "note": "col = x * scale[0]; row = pad_rows + (world_height - y) * scale[1]; pixel (r, c) "
        "has its centre at (r + 0.5, c + 0.5)",
    }


def project_2d(points, camera: dict) -> np.ndarray:
    """World (x, y) -> continuous pixel (col, row) under a 2D clip camera."""
    p = np.asarray(points, dtype=np.float64)
    sx, sy = camera["scale"]
    return np.stack([p[..., 0] * sx, camera["pad_rows"] + (camera["world_height"] - p[..., 1]) * sy], -1)


def render_clip_2d(record: dict, config: ClipConfig) -> dict:
    from physworld.data.render import BACKGROUND, MASK_STATIC, default_height, render_frames

    spec, states = record["spec"], np.asarray(record["states"])
    idx = frame_plan(record, config)
    res = config.resolution
    inner = default_height(res)
    cam = camera_2d(res)
    pad = cam["pad_rows"]
    rgb_in, mask_in = render_frames(spec, states, width=res, height=inner, frames=idx[:-1])
    t_len, n = config.frames, states.shape[1]
    rgb = np.empty((t_len, res, res, 3), dtype=np.uint8)
    rgb[:] = np.asarray(BACKGROUND, dtype=np.uint8)
    rgb[:, pad : pad + inner] = rgb_in
    seg = np.zeros((t_len, res, res), dtype=np.uint16)
    # int16 masks (-1 static) to uint16 labels: cast first, then mark static, since SEG_STATIC does not
    # fit in int16 (numpy 2.5 raises where 2.4 wrapped it round silently)
    seg_in = mask_in.astype(np.uint16)
    seg_in[mask_in == MASK_STATIC] = SEG_STATIC
    seg[:, pad : pad + inner] = seg_in

    # Forward flow: a body pixel's centre, as a world point, moves with its body's rigid motion
    # from clip frame t to t + 1 (rotation by the angle change about the centre of mass, then the
    # centre's displacement).
    flow = np.zeros((t_len, res, res, 2), dtype=np.float32)
    sx, sy = cam["scale"]
    rows, cols = np.mgrid[0:res, 0:res]
    px = cols + 0.5
    py = rows + 0.5
    wx = px / sx
    wy = cam["world_height"] - (py - pad) / sy
    for t in range(t_len):
        lab = seg[t].astype(np.int64)
        sel = (lab >= 1) & (lab <= n)
        if not sel.any():
            continue
        b = lab[sel] - 1
        s0 = states[idx[t], b].astype(np.float64)
        s1 = states[idx[t + 1], b].astype(np.float64)
        dth = s1[:, 2] - s0[:, 2]
        co, si = np.cos(dth), np.sin(dth)
        rx, ry = wx[sel] - s0[:, 0], wy[sel] - s0[:, 1]
        nx = s1[:, 0] + co * rx - si * ry
        ny = s1[:, 1] + si * rx + co * ry
        new = project_2d(np.stack([nx, ny], -1), cam)
        flow[t][sel] = np.stack([new[:, 0] - px[sel], new[:, 1] - py[sel]], -1).astype(np.float32)

    counts, boxes = boxes_and_counts(seg, n)
    area_px = np.array([_shape_area(b) * sx * sy for b in spec["bodies"]])
    fraction = np.where(area_px > 0, np.minimum(1.0, counts / np.maximum(area_px, 1e-12)), 0.0)
    return {
        "rgb": rgb,
        "segmentation": seg,
        "depth": None,
        "flow": flow,
        "visible_pixels": counts,
        "visible_fraction": fraction.astype(np.float32),
        "bboxes": boxes,
        "states": np.ascontiguousarray(states[idx[:-1]], dtype=np.float32),
        "frame_indices": idx[:-1].astype(np.int32),
        "fps": float(config.fps),
        "camera": cam,
    }


def render_clip(record: dict, config: ClipConfig) -> dict:
    """All streams of one scene's clip as arrays (see the module docstring for shapes and units)."""
    if is_3d(record):
        from physworld.data.render3d import render_clip_3d

        return render_clip_3d(record, config)
    return render_clip_2d(record, config)


# ---------------------------------------------------------------- encoding


def encode_png(image: np.ndarray) -> bytes:
    """uint8 [H, W, 3] or uint16 [H, W] as PNG bytes (Pillow, fixed level: deterministic)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im)
    return arr.astype(np.uint16) if arr.dtype != np.uint8 else arr


_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # Hugging Face's Image storage
SCHEMA = pa.schema(
    [
        ("scene_id", pa.int64()),
        ("scenario_type", pa.string()),
        ("difficulty", pa.int8()),
        ("num_frames", pa.int32()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("num_bodies", pa.int32()),
        ("state_dim", pa.int32()),
        ("fps", pa.float32()),
        ("frame_indices", pa.list_(pa.int32())),
        ("camera", pa.string()),
        ("rgb", pa.list_(_IMAGE)),
        ("segmentation", pa.list_(_IMAGE)),
        ("depth", pa.list_(pa.float32())),  # [T * H * W], empty in 2D
        ("flow", pa.list_(pa.float32())),  # [T * H * W * 2]
        ("visible_pixels", pa.list_(pa.int32())),  # [T * N]
        ("visible_fraction", pa.list_(pa.float32())),  # [T * N]
        ("bboxes", pa.list_(pa.int32())),  # [T * N * 4]
        ("states", pa.list_(pa.float32())),  # [T * N * state_dim]
        ("caption", pa.string()),
    ]
)
# Feature types for Hugging Face `datasets` (their JSON form in the schema metadata): images decode
# to PIL images, everything else keeps its Arrow type.
_HF_FEATURES = {
    "rgb": {"_type": "List", "feature": {"_type": "Image"}},
    "segmentation": {"_type": "List", "feature": {"_type": "Image"}},
}


def _hf_schema() -> pa.Schema:
    features = {}
    for field in SCHEMA:
        if field.name in _HF_FEATURES:
            features[field.name] = _HF_FEATURES[field.name]
        elif pa.types.is_list(field.type):
            features[field.name] = {
                "_type": "List",
                "feature": {"_type": "Value", "dtype": _dtype(field.type.value_type)},
            }
        else:
            features[field.name] = {"_type": "Value", "dtype": _dtype(field.type)}
    meta = {"info": {"features": features}}
    return SCHEMA.with_metadata({"huggingface": json.dumps(meta, sort_keys=True)})


def _dtype(t: pa.DataType) -> str:
    return {"string": "string", "int64": "int64", "int32": "int32", "int8": "int8", "float": "float32"}[
        str(t)
    ]


def _describe(record: dict, clip: dict) -> str:
    """Caption, events and questions of what the clip shows: the scene up to its last clip frame."""
    from physworld.data.captions import describe_scene

    horizon = max(1, int(clip["frame_indices"][-1]))
    return canonical_json(describe_scene(record, horizon_frames=horizon))


def clip_row(record: dict, clip: dict, captions: bool = True) -> dict:
    n = clip["states"].shape[1]
    return {
        "scene_id": int(record["scene_id"]),
        "scenario_type": record["scenario_type"],
        "difficulty": int(record["difficulty"]),
        "num_frames": int(len(clip["rgb"])),
        "height": int(clip["rgb"].shape[1]),
        "width": int(clip["rgb"].shape[2]),
        "num_bodies": int(n),
        "state_dim": int(clip["states"].shape[2]),
        "fps": clip["fps"],
        "frame_indices": clip["frame_indices"],
        "camera": canonical_json(clip["camera"]),
        "rgb": [{"bytes": encode_png(f), "path": None} for f in clip["rgb"]],
        "segmentation": [{"bytes": encode_png(f), "path": None} for f in clip["segmentation"]],
        "depth": np.zeros(0, np.float32) if clip["depth"] is None else clip["depth"].ravel(),
        "flow": clip["flow"].ravel(),
        "visible_pixels": clip["visible_pixels"].ravel(),
        "visible_fraction": clip["visible_fraction"].ravel(),
        "bboxes": clip["bboxes"].ravel(),
        "states": clip["states"].ravel(),
        "caption": _describe(record, clip) if captions else None,
    }


def clip_shard_bytes(rows: list[dict]) -> bytes:
    columns = {}
    for field in SCHEMA:
        values = [r[field.name] for r in rows]
        if pa.types.is_list(field.type) and not pa.types.is_struct(field.type.value_type):
            columns[field.name] = pa.array([np.asarray(v) for v in values], field.type)
        else:
            columns[field.name] = pa.array(values, field.type)
    table = pa.table(columns, schema=_hf_schema())
    buf = io.BytesIO()
    pq.write_table(
        table,
        buf,
        row_group_size=ROWS_PER_GROUP,
        compression="zstd",
        compression_level=3,
        use_dictionary=["scenario_type"],
        use_byte_stream_split=[f"{c}.list.element" for c in ("depth", "flow", "states", "visible_fraction")],
        write_statistics=["scene_id"],
    )
    return buf.getvalue()


def _values(table: pa.Table, name: str, dtype) -> list[np.ndarray]:
    """A flat list column's values per row, without going through Python objects."""
    col = table.column(name).combine_chunks()
    lengths = col.value_lengths().to_numpy(zero_copy_only=False)
    values = col.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return np.split(values, np.cumsum(lengths)[:-1])


def decode_table(table: pa.Table, images: bool = True) -> list[dict]:
    """Clip rows back to arrays with their shapes (images decoded unless images=False)."""
    meta = table.select(
        [
            "scene_id",
            "scenario_type",
            "difficulty",
            "num_frames",
            "height",
            "width",
            "num_bodies",
            "state_dim",
        ]
        + ["fps", "camera", "caption"]
    ).to_pylist()
    flat = {
        name: _values(table, name, dtype)
        for name, dtype in (
            ("frame_indices", np.int32),
            ("depth", np.float32),
            ("flow", np.float32),
            ("visible_pixels", np.int32),
            ("visible_fraction", np.float32),
            ("bboxes", np.int32),
            ("states", np.float32),
        )
    }
    pngs = {k: table.column(k).to_pylist() for k in ("rgb", "segmentation")} if images else None
    out = []
    for i, m in enumerate(meta):
        t, h, w, n, d = (m[k] for k in ("num_frames", "height", "width", "num_bodies", "state_dim"))
        depth = flat["depth"][i]
        clip = {
            "scene_id": m["scene_id"],
            "scenario_type": m["scenario_type"],
            "difficulty": m["difficulty"],
            "fps": m["fps"],
            "camera": json.loads(m["camera"]),
            "caption": json.loads(m["caption"]) if m["caption"] else None,
            "frame_indices": flat["frame_indices"][i],
            "depth": depth.reshape(t, h, w) if depth.size else None,
            "flow": flat["flow"][i].reshape(t, h, w, 2),
            "visible_pixels": flat["visible_pixels"][i].reshape(t, n),
            "visible_fraction": flat["visible_fraction"][i].reshape(t, n),
            "bboxes": flat["bboxes"][i].reshape(t, n, 4),
            "states": flat["states"][i].reshape(t, n, d),
        }
        if images:
            clip["rgb"] = np.stack([decode_png(f["bytes"]) for f in pngs["rgb"][i]])
            clip["segmentation"] = np.stack([decode_png(f["bytes"]) for f in pngs["segmentation"][i]])
        out.append(clip)
    return out


# ---------------------------------------------------------------- the job


def clip_shard_name(k: int) -> str:
    return f"{SHARD_DIR}/clips-{k:05d}.parquet"


def _source_key(manifest: dict) -> str:
    shards = [[s["file"], s["sha256"]] for s in manifest["shards"]]
    return hashlib.sha256(json.dumps(shards, separators=(",", ":")).encode()).hexdigest()


def _load_source(data_dir: Path) -> dict:
    path = data_dir / STORE_MANIFEST
    if not path.exists():
        raise ClipError(
            f"{path}: no manifest; render clips from a finished dataset (run physworld generate first, "
            "or rerun it to finish)"
        )
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ClipError(f"{path}: unreadable ({e}); regenerate the dataset") from e


def _first_record(data_dir: Path, manifest: dict) -> dict | None:
    for entry in manifest["shards"]:
        pf = pq.ParquetFile(data_dir / entry["file"])
        if pf.metadata.num_rows:
            return table_to_records(pf.read_row_group(0))[0]
    return None


def clip_shard_payload(source, config: ClipConfig, source_name: str = "") -> bytes:
    """The bytes of the clip shard of one state shard, `source` being its path or its bytes (a Ray
    worker gets the bytes: nodes need not share a file system)."""
    try:
        table = pq.read_table(pa.BufferReader(source) if isinstance(source, bytes) else source)
        records = table_to_records(table)
    except Exception as e:
        name = source_name or str(source)
        raise ClipError(
            f"{name}: cannot read the scenes ({type(e).__name__}: {e}); run physworld validate on its dataset"
        ) from e
    return clip_shard_bytes([clip_row(r, render_clip(r, config), config.captions) for r in records])


def build_clip_shard(data_dir: Path, clips_dir: Path, k: int, source_file: str, config: ClipConfig) -> int:
    data = clip_shard_payload(data_dir / source_file, config)
    atomic_write_bytes(clips_dir / clip_shard_name(k), data)
    return pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows


def _worker(args) -> int:
    return build_clip_shard(*args)


def render_clips(
    data_dir,
    config: ClipConfig,
    clips_dir=None,
    num_workers: int = 1,
    progress: bool = True,
    ray_address: str | None = None,
) -> dict:
    """Render (or finish rendering) the clips of every scene of the dataset at `data_dir`; returns the
    clips manifest. Clip shard k holds the clips of state shard k, in the same order. ray_address
    runs the shards as Ray tasks (physworld/data/ray_shards.py), the driver sending each its source
    shard's bytes and writing what comes back."""
    from tqdm.auto import tqdm

    data_dir = Path(data_dir)
    clips_dir = Path(clips_dir) if clips_dir is not None else data_dir / DEFAULT_SUBDIR
    manifest = _load_source(data_dir)
    first = _first_record(data_dir, manifest)
    if first is None:
        raise ClipError(f"{data_dir} holds no scenes; there is nothing to render")
    frames = manifest.get("config", {}).get("frames_per_scene", len(first["states"]) - 1)
    config.check_scene_length(sim_fps_of(first["spec"]), frames, str(data_dir))
    frame_plan(first, config)
    clip_config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "clip": config.to_dict(),
        "source_shards_sha256": _source_key(manifest),
    }
    _prepare_clips_dir(clips_dir, clip_config)
    (clips_dir / SHARD_DIR).mkdir(exist_ok=True)
    for pattern in (".*.tmp*", "*/.*.tmp*"):
        remove_stale_temporaries(clips_dir, pattern)

    sources = [s["file"] for s in manifest["shards"]]
    sizes = [s["num_scenes"] for s in manifest["shards"]]
    todo = [k for k in range(len(sources)) if not (clips_dir / clip_shard_name(k)).exists()]
    bar = tqdm(
        total=sum(sizes),
        initial=sum(sizes) - sum(sizes[k] for k in todo),
        unit="clip",
        desc="clips",
        disable=not progress,
        dynamic_ncols=True,
    )
    jobs = [(data_dir, clips_dir, k, sources[k], config) for k in todo]
    try:
        if ray_address and todo:
            from physworld.data.ray_shards import connect, run_shards

            ray = connect(ray_address, num_cpus=num_workers)

            def write(index: int, data: bytes) -> None:
                atomic_write_bytes(clips_dir / clip_shard_name(todo[index]), data)
                bar.update(sizes[todo[index]])

            def job_args(index: int) -> tuple:  # read when submitted: one shard's bytes in memory at a time
                return (
                    (data_dir / sources[todo[index]]).read_bytes(),
                    config,
                    str(data_dir / sources[todo[index]]),
                )

            run_shards(ray, clip_shard_payload, len(todo), job_args, write)
        elif num_workers <= 1 or len(todo) <= 1:
            for job in jobs:
                bar.update(_worker(job))
        else:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
            with ctx.Pool(min(num_workers, len(todo))) as pool:
                for n in pool.imap_unordered(_worker, jobs):
                    bar.update(n)
    finally:
        bar.close()
    path = clips_dir / MANIFEST
    if path.exists() and not todo:
        return json.loads(path.read_text())
    return _finalize(clips_dir, clip_config, manifest, len(sources))


def _prepare_clips_dir(clips_dir: Path, clip_config: dict) -> None:
    clips_dir.mkdir(parents=True, exist_ok=True)
    existing = clips_dir / CONFIG
    if existing.exists():
        try:
            old = json.loads(existing.read_text())
        except json.JSONDecodeError as e:
            raise ClipError(f"{existing}: unreadable ({e}); delete {clips_dir} and render again") from e
        if old != clip_config:
            diff = [k for k in sorted(set(old) | set(clip_config)) if old.get(k) != clip_config.get(k)]
            detail = "; ".join(
                f"{k}: existing {old.get(k)!r}, requested {clip_config.get(k)!r}" for k in diff
            )
            raise ClipError(
                f"{clips_dir} holds other clips ({detail}). Rerun with the same settings to resume them, "
                "or pass --clips-dir for a new folder"
            )
        return
    if any(not p.name.startswith(".") for p in clips_dir.iterdir()):
        raise ClipError(f"{clips_dir} is not empty and holds no physworld clips; pass another --clips-dir")
    atomic_write_json(existing, clip_config)


def _finalize(clips_dir: Path, clip_config: dict, source: dict, num_shards: int) -> dict:
    shards = []
    for k in range(num_shards):
        path = clips_dir / clip_shard_name(k)
        shards.append(
            {
                "file": clip_shard_name(k),
                "source": source["shards"][k]["file"],
                "sha256": sha256_file(path),
                "bytes": path.stat().st_size,
                "num_clips": pq.ParquetFile(path).metadata.num_rows,
            }
        )
    manifest = {**clip_config, "num_clips": sum(s["num_clips"] for s in shards), "shards": shards}
    atomic_write_bytes(clips_dir / "README.md", _card(manifest).encode())
    atomic_write_json(clips_dir / MANIFEST, manifest)
    return manifest


def _card(manifest: dict) -> str:
    c = manifest["clip"]
    return (
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: shards/*.parquet\n---\n"
        f"# physworld clips\n\n{manifest['num_clips']} clips of {c['frames']} frames at {c['fps']:g} frames/s, "
        f"{c['resolution']} x {c['resolution']} px. `rgb` and `segmentation` are lists of PNG images "
        "(segmentation: 16-bit, 0 background, i + 1 body i, 65535 static geometry); depth, flow, "
        "visibility, boxes and states are flat float32/int32 lists (shapes in num_frames, height, width, "
        "num_bodies, state_dim); camera and caption are JSON. See manifest.json for checksums.\n"
    )


# ---------------------------------------------------------------- reading


def damaged(path: Path, clips_dir: Path, error: Exception) -> ClipError:
    return ClipError(
        f"{path}: does not decode ({type(error).__name__}: {error}); run physworld validate --data-dir "
        f"{Path(clips_dir).parent} to locate the damage, delete the file and rerun render-clips"
    )


class Clips:
    """A finished clips directory: its manifest and clips, decoded on demand."""

    def __init__(self, clips_dir):
        self.root = Path(clips_dir)
        path = self.root / MANIFEST
        if not path.exists():
            raise ClipError(
                f"{path}: no clips manifest; run physworld render-clips --data-dir {self.root.parent} "
                "(or rerun it to finish)"
            )
        try:
            self.manifest = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ClipError(f"{path}: not valid JSON ({e}); render the clips again") from e
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise ClipError(
                f"{path}: format_version {self.manifest.get('format_version')!r}, this reads {FORMAT_VERSION}"
            )

    def __len__(self) -> int:
        return self.manifest["num_clips"]

    def iter_clips(self, decode: bool = True):
        for entry in self.manifest["shards"]:
            path = self.root / entry["file"]
            try:
                pf = pq.ParquetFile(path)
                groups = [pf.read_row_group(g) for g in range(pf.num_row_groups)]
                clips = [c for table in groups for c in decode_table(table, images=decode)]
            except Exception as e:  # a damaged file: name it and say what to run, never a traceback
                raise damaged(path, self.root, e) from e
            yield from clips
