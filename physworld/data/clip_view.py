"""The training view for vision models: clips decoded once into memory-mapped arrays.

`prepare_clips(data_dir)` decodes a clips folder (physworld render-clips) once, one row group at a
time, into flat .npy files under `<clips_dir>/view/`, as `prepare` does for state windows:

    rgb.npy            uint8   [clips, T, H, W, 3]
    segmentation.npy   uint16  [clips, T, H, W]      0 background, i + 1 body i, 65535 static
    flow.npy           float32 [clips, T, H, W, 2]   forward flow (d col, d row) in pixels
    depth.npy          float32 [clips, T, H, W]      only when the clips hold depth (3D); NaN for 2D clips
    states.npy         float32 [sum over clips of T * bodies, 13]  per-frame states, clip after clip,
                                                      frame-major, zero-padded past a 2D clip's 6 fields
    visible.npy        float32 [sum of T * bodies, 2]  visible pixels, visible fraction
    bboxes.npy         int32   [sum of T * bodies, 4]
    clips.npy          int64   [clips, len(CLIP_FIELDS)]
    meta.json          shapes, type names and the clips manifest's shard checksums (written last: a
                       folder without it, or made from other clips, is redone by the next call)

`ClipDataset(view_dir, streams=None)` serves one clip per item as torch tensors (every stream, or
only those named, e.g. streams=("rgb", "states")); `collate_clips` batches them
(images stacked; per-body arrays kept as lists, since clips hold different numbers of bodies).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset as TorchDataset
from tqdm.auto import tqdm

from physworld.data import clips as C
from physworld.data.windows import _save_npy
from physworld.fileio import atomic_write_json, remove_stale_temporaries

FORMAT = "physworld-clip-view"
FORMAT_VERSION = 1
DEFAULT_SUBDIR = "view"
META = "meta.json"
STATE_WIDTH = 13  # 3D states; 2D clips' 6 fields are zero-padded to it
CLIP_FIELDS = ("scene_id", "body_offset", "num_bodies", "state_dim", "scenario_type", "difficulty")
_IMAGE_ARRAYS = ("rgb", "segmentation", "flow", "depth")


class ClipViewError(C.ClipError):
    """A clip view that is missing, incomplete or stale; the message says what to run."""


def _key(manifest: dict) -> str:
    shards = [[s["file"], s["sha256"]] for s in manifest["shards"]]
    return hashlib.sha256(json.dumps(shards, separators=(",", ":")).encode()).hexdigest()


def _read_meta(out: Path) -> dict | None:
    try:
        return json.loads((out / META).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def prepare_clips(data_dir, clips_dir=None, out_dir=None, progress: bool = True) -> Path:
    """Decode the clips of `data_dir` (or `clips_dir`) into a memory-mapped view; returns its folder.
    Returns at once when the view there is complete and made from the same clip shards."""
    clips_dir = Path(clips_dir) if clips_dir is not None else Path(data_dir) / C.DEFAULT_SUBDIR
    store = C.Clips(clips_dir)
    out = Path(out_dir) if out_dir is not None else clips_dir / DEFAULT_SUBDIR
    key = _key(store.manifest)
    meta = _read_meta(out)
    if meta is not None and meta.get("format_version") == FORMAT_VERSION and meta.get("source") == key:
        return out
    if len(store) == 0:
        raise ClipViewError(f"{clips_dir} holds no clips; there is nothing to prepare")
    out.mkdir(parents=True, exist_ok=True)
    (out / META).unlink(missing_ok=True)
    remove_stale_temporaries(out, ".*.tmp*")

    cfg = store.manifest["clip"]
    n, t, res = len(store), cfg["frames"], cfg["resolution"]
    # Sizes first, from the small columns only.
    sizes, has_depth = [], False
    for entry in store.manifest["shards"]:
        try:
            table = pq.read_table(clips_dir / entry["file"], columns=["num_bodies", "state_dim"])
        except Exception as e:
            raise C.damaged(clips_dir / entry["file"], clips_dir, e) from e
        sizes += table.column("num_bodies").to_pylist()
        has_depth |= 13 in table.column("state_dim").to_pylist()
    if len(sizes) != n:
        raise ClipViewError(
            f"{clips_dir}: the shards hold {len(sizes)} clips, the manifest {n}; run physworld validate"
        )
    rows = int(sum(sizes)) * t
    shapes = {
        "rgb": ((n, t, res, res, 3), np.uint8),
        "segmentation": ((n, t, res, res), np.uint16),
        "flow": ((n, t, res, res, 2), np.float32),
        "states": ((rows, STATE_WIDTH), np.float32),
        "visible": ((rows, 2), np.float32),
        "bboxes": ((rows, 4), np.int32),
    }
    if has_depth:
        shapes["depth"] = ((n, t, res, res), np.float32)
    tmps = {name: out / f".{name}.npy.{os.getpid()}.tmp" for name in shapes}
    arrays = {
        name: np.lib.format.open_memmap(tmps[name], mode="w+", dtype=dtype, shape=shape)
        for name, (shape, dtype) in shapes.items()
    }
    index = np.zeros((n, len(CLIP_FIELDS)), dtype=np.int64)
    types: list[str] = []
    bar = tqdm(total=n, unit="clip", desc="prepare clips", disable=not progress, dynamic_ncols=True)
    try:
        i = off = 0
        for clip in store.iter_clips():
            nb, d = clip["states"].shape[1], clip["states"].shape[2]
            for name in ("rgb", "segmentation", "flow"):
                arrays[name][i] = clip[name]
            if has_depth:
                arrays["depth"][i] = clip["depth"] if clip["depth"] is not None else np.nan
            span = slice(off, off + t * nb)
            arrays["states"][span] = 0.0
            arrays["states"][span, :d] = clip["states"].reshape(-1, d)
            arrays["visible"][span, 0] = clip["visible_pixels"].ravel()
            arrays["visible"][span, 1] = clip["visible_fraction"].ravel()
            arrays["bboxes"][span] = clip["bboxes"].reshape(-1, 4)
            if clip["scenario_type"] not in types:
                types.append(clip["scenario_type"])
            index[i] = [clip["scene_id"], off, nb, d, types.index(clip["scenario_type"]), clip["difficulty"]]
            off += t * nb
            i += 1
            bar.update(1)
        for arr in arrays.values():
            arr.flush()
        del arrays
        for name, tmp in tmps.items():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, out / f"{name}.npy")
    finally:
        bar.close()
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
    _save_npy(out / "clips.npy", index)
    atomic_write_json(
        out / META,
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "source": key,
            "clip": cfg,
            "num_clips": n,
            "has_depth": has_depth,
            "scenario_types": types,
            "clip_fields": list(CLIP_FIELDS),
        },
    )
    return out


class ClipDataset(TorchDataset):
    """One clip per item: rgb uint8 [T, H, W, 3], segmentation int32 [T, H, W], flow float32
    [T, H, W, 2], depth float32 [T, H, W] (when present), states float32 [T, N, state_dim],
    visible_pixels, visible_fraction [T, N], bboxes int32 [T, N, 4], scene_id, scenario_type."""

    def __init__(self, view_dir, streams=None):
        self.root = Path(view_dir)
        self.meta = _read_meta(self.root)
        if self.meta is None or self.meta.get("format") != FORMAT:
            raise ClipViewError(f"{self.root}: no clip view here; run prepare_clips on the dataset first")
        available = ["rgb", "segmentation", "flow", "states", "visible", "bboxes"]
        available += ["depth"] if self.meta["has_depth"] else []
        # Only the streams asked for are read: a model that sees RGB alone should not pay for copying
        # float32 flow (2.7x the RGB bytes) out of the page cache for every clip.
        self.streams = tuple(available if streams is None else streams)
        unknown = sorted(set(self.streams) - set(available))
        if unknown:
            raise ClipViewError(f"streams {unknown}: not in this view; choose from {', '.join(available)}")
        self.index = np.load(self.root / "clips.npy")
        self._arrays = None  # opened lazily, so the dataset pickles cheaply into DataLoader workers

    def __getstate__(self):
        return {**self.__dict__, "_arrays": None}

    @property
    def arrays(self) -> dict:
        if self._arrays is None:
            # Copy-on-write maps: an item's frames are handed to torch without a copy (the batch's
            # stack is the one copy), and writing to them never reaches the files.
            self._arrays = {k: np.load(self.root / f"{k}.npy", mmap_mode="c") for k in self.streams}
        return self._arrays

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        a = self.arrays
        scene_id, off, nb, d, type_id, difficulty = (int(v) for v in self.index[i])
        t = self.meta["clip"]["frames"]
        span = slice(off, off + t * nb)
        item = {
            "scene_id": scene_id,
            "scenario_type": self.meta["scenario_types"][type_id],
            "difficulty": difficulty,
        }
        for name in ("rgb", "flow", "depth"):
            if name in a:
                item[name] = torch.from_numpy(a[name][i])
        if "segmentation" in a:
            item["segmentation"] = torch.from_numpy(a["segmentation"][i].astype(np.int32))
        if "states" in a:
            item["states"] = torch.from_numpy(np.array(a["states"][span, :d]).reshape(t, nb, d))
        if "visible" in a:
            item["visible_pixels"] = torch.from_numpy(a["visible"][span, 0].astype(np.int32).reshape(t, nb))
            item["visible_fraction"] = torch.from_numpy(np.array(a["visible"][span, 1]).reshape(t, nb))
        if "bboxes" in a:
            item["bboxes"] = torch.from_numpy(np.array(a["bboxes"][span]).reshape(t, nb, 4))
        return item


def collate_clips(items: list[dict]) -> dict:
    """Stack the images of equally sized clips; keep per-body tensors and labels as lists."""
    out = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if key in _IMAGE_ARRAYS:
            out[key] = torch.stack(values)
        elif key in ("scene_id", "difficulty"):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out
