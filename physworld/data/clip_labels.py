"""What a clip view does not hold but a vision model is scored on: each body's physical parameters
(from the scene spec in the state store) and each clip's camera (from the clip shards), in the order
of the clip view (clip_view.prepare_clips), so item i of a ClipDataset has labels i here.

    params   float32 [N, 3]  log mass relative to the clip (log m minus the mean of log m over the
                             clip's dynamic bodies), friction, restitution (2D: pymunk's elasticity;
                             3D: the restitution PyBullet is given)
    dynamic  bool [N]        False for kinematic bodies (2D; mass 0): their parameters mean nothing
    camera   dict            clips.camera_2d's orthographic map, or the 3D intrinsics and extrinsics
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from physworld.data import clips as C
from physworld.data.clip_view import ClipViewError, prepare_clips
from physworld.data.store import Dataset

PARAM_FIELDS = ("log_mass_rel", "friction", "restitution")


def body_params(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """(params float32 [N, 3], dynamic bool [N]) of a scene spec's bodies (2D or 3D)."""
    bodies = spec["bodies"]
    mass = np.array([float(b.get("mass", 0.0)) for b in bodies], dtype=np.float64)
    dynamic = np.array([not b.get("kinematic", False) and m > 0 for b, m in zip(bodies, mass, strict=True)])
    friction = np.array([float(b.get("friction", 0.0)) for b in bodies])
    restitution = np.array([float(b.get("restitution", b.get("elasticity", 0.0))) for b in bodies])
    log_mass = np.zeros(len(bodies))
    if dynamic.any():
        log_mass[dynamic] = np.log(mass[dynamic])
        log_mass[dynamic] -= log_mass[dynamic].mean()
    return np.stack([log_mass, friction, restitution], -1).astype(np.float32), dynamic


def clip_labels(data_dir, clips_dir=None, progress: bool = False) -> dict:
    """Labels of every clip of the dataset at `data_dir`, in the clip view's order:
    {"view": view folder, "params": [N_i, 3] each, "dynamic": [N_i] each, "cameras": dict each,
    "scene_ids": int64 [clips], "scenario_types": [str], "meta": the view's meta.json}."""
    data_dir = Path(data_dir)
    clips_dir = Path(clips_dir) if clips_dir is not None else data_dir / C.DEFAULT_SUBDIR
    view = prepare_clips(data_dir, clips_dir=clips_dir, progress=progress)
    meta = json.loads((view / "meta.json").read_text())
    index = np.load(view / "clips.npy")
    scene_ids = index[:, 0].astype(np.int64)
    cameras = [clip["camera"] for clip in C.Clips(clips_dir).iter_clips(decode=False)]
    if len(cameras) != len(scene_ids):
        raise ClipViewError(
            f"{clips_dir}: {len(cameras)} clips, its view {len(scene_ids)}; run physworld validate"
        )
    ds = Dataset(data_dir)
    specs = {}
    ids = [int(i) for i in scene_ids]
    for start in range(0, len(ids), 64):
        for scene in ds.scenes(ids[start : start + 64]):
            specs[int(scene["scene_id"])] = scene["spec"]
    params, dynamic = [], []
    for row in index:
        p, d = body_params(specs[int(row[0])])
        if len(p) != int(row[2]):
            raise ClipViewError(
                f"{clips_dir}: scene {int(row[0])} has {len(p)} bodies in {data_dir}, {int(row[2])} in its clip; "
                "render the clips again from this dataset"
            )
        params.append(p)
        dynamic.append(d)
    return {
        "view": view,
        "params": params,
        "dynamic": dynamic,
        "cameras": cameras,
        "scene_ids": scene_ids,
        "scenario_types": [meta["scenario_types"][int(r[4])] for r in index],
        "meta": meta,
    }


# ---------------------------------------------------------------- windows a model reads


def check_clips_fit(meta: dict, dims: int, image_size: int, frames: int, fps: float, source) -> None:
    """One line naming the mismatch and the fix when a clip view cannot be read by a model trained on
    (dims, image_size, frames, fps) clips; nothing when it can."""
    clip = meta["clip"]
    res, clip_frames, clip_fps = int(clip["resolution"]), int(clip["frames"]), float(clip["fps"])
    fix = f"render clips that match: physworld render-clips --data-dir DATA --clips-dir NEW_DIR --clip-resolution {image_size} --clip-frames {frames} --clip-fps {fps:g}"
    if res != image_size:
        raise ClipViewError(
            f"{source}: clips are {res} x {res} px, the model reads {image_size} x {image_size}; {fix}"
        )
    if abs(clip_fps - fps) > 1e-6:
        raise ClipViewError(
            f"{source}: clips are at {clip_fps:g} frames/s, the model was trained at {fps:g}; {fix}"
        )
    if clip_frames < frames:
        raise ClipViewError(f"{source}: clips have {clip_frames} frames, the model reads {frames}; {fix}")
    held = 3 if meta.get("has_depth") else 2
    if held != dims:
        raise ClipViewError(f"{source}: {held}D clips, the model reads {dims}D clips; pass a {dims}D dataset")


class ClipWindows:
    """Windows of `frames` consecutive clip frames, starting every `stride` frames of each clip of
    the selected types; one item: frames float32 [frames, 3, H, W] in [0, 1], segmentation int32
    [frames, H, W], states float32 [frames, N, S], visible_pixels int32 [frames, N], params [N, 3],
    dynamic bool [N], depth [frames, H, W] (3D), clip (index into the labels), start, scenario_type."""

    def __init__(
        self, labels: dict, frames: int, stride: int, scenario_types=None, max_clips: int | None = None
    ):
        from physworld.data.clip_view import ClipDataset

        self.labels = labels
        streams = ["rgb", "segmentation", "states", "visible"] + (
            ["depth"] if labels["meta"]["has_depth"] else []
        )
        self.clips = ClipDataset(labels["view"], streams=streams)
        self.frames = frames
        length = int(labels["meta"]["clip"]["frames"])
        chosen = [
            i
            for i, t in enumerate(labels["scenario_types"])
            if scenario_types is None or t in set(scenario_types)
        ]
        if max_clips is not None:
            chosen = chosen[:max_clips]
        self.windows = [(i, s) for i in chosen for s in range(0, length - frames + 1, max(1, stride))]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, j: int) -> dict:
        import torch

        i, s = self.windows[j]
        clip = self.clips[i]
        span = slice(s, s + self.frames)
        item = {
            "frames": clip["rgb"][span].permute(0, 3, 1, 2).float() / 255.0,
            "segmentation": clip["segmentation"][span],
            "states": clip["states"][span],
            "visible_pixels": clip["visible_pixels"][span],
            "params": torch.from_numpy(self.labels["params"][i]),
            "dynamic": torch.from_numpy(self.labels["dynamic"][i]),
            "clip": i,
            "start": s,
            "scenario_type": clip["scenario_type"],
        }
        if "depth" in clip:
            item["depth"] = clip["depth"][span]
        return item


def collate_windows(items: list[dict]) -> dict:
    """Frames stacked [B, T, 3, H, W]; everything per body (clips hold different numbers) as lists."""
    import torch

    out = {key: [it[key] for it in items] for key in items[0]}
    out["frames"] = torch.stack(out["frames"])
    return out
