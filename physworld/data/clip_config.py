"""What a clip is, apart from how it is rendered or stored: its settings (ClipConfig), the frames
it takes from a scene, and the per-frame boxes and visible-pixel counts of a segmentation. Both the
2D renderer (clips.py) and the 3D one (render3d.py) build on it, so neither imports the other."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from physworld.data.store import StoreError

SEG_BACKGROUND = 0
SEG_STATIC = 65535
MIN_RESOLUTION, MAX_RESOLUTION = 16, 1024
MAX_FRAMES = 1000


class ClipError(StoreError):
    """A clip request or a clip file that cannot be honoured; the message names the flag or file."""


@dataclass(frozen=True)
class ClipConfig:
    resolution: int = 128  # square images, as MOVi's
    frames: int = 24
    fps: float = 12.0
    captions: bool = True  # store describe_scene's caption and questions (re-simulates: costs time)

    def __post_init__(self):
        if not isinstance(self.resolution, int) or not MIN_RESOLUTION <= self.resolution <= MAX_RESOLUTION:
            raise ClipError(
                f"--clip-resolution {self.resolution}: need a whole number of pixels in "
                f"[{MIN_RESOLUTION}, {MAX_RESOLUTION}] (MOVi uses 128 or 256)"
            )
        if self.resolution % 2:
            raise ClipError(f"--clip-resolution {self.resolution}: must be even (e.g. 128 or 256)")
        if not isinstance(self.frames, int) or not 1 <= self.frames <= MAX_FRAMES:
            raise ClipError(
                f"--clip-frames {self.frames}: need a whole number in [1, {MAX_FRAMES}] (MOVi: 24)"
            )
        if not (isinstance(self.fps, (int, float)) and np.isfinite(self.fps) and self.fps > 0):
            raise ClipError(
                f"--clip-fps {self.fps:g}: need a positive number of frames per second (MOVi: 12)"
            )

    def stride(self, sim_fps: float) -> int:
        """Simulated frames per clip frame; the clip rate must divide the simulation's rate."""
        ratio = sim_fps / self.fps
        stride = round(ratio)
        if stride < 1 or abs(ratio - stride) > 1e-6:
            divisors = [sim_fps / k for k in range(1, 13) if float(sim_fps / k).is_integer()]
            raise ClipError(
                f"--clip-fps {self.fps:g}: must divide the simulation's {sim_fps:g} frames/s; choose one of "
                f"{', '.join(f'{d:g}' for d in divisors)}"
            )
        return stride

    def frames_needed(self, sim_fps: float) -> int:
        """Simulated frames after the initial one a scene needs: the clip plus one step for the flow."""
        return self.frames * self.stride(sim_fps)

    def check_scene_length(self, sim_fps: float, frames_per_scene: int, source: str) -> None:
        need = self.frames_needed(sim_fps)
        if frames_per_scene < need:
            most = frames_per_scene // self.stride(sim_fps)
            raise ClipError(
                f"{source}: scenes have {frames_per_scene} frames after the first, but {self.frames} clip "
                f"frames at {self.fps:g} frames/s (plus one step for the forward flow) need {need}; use "
                f"--clip-frames {most} or a higher --clip-fps, or regenerate with --frames-per-scene {need}"
            )

    def to_dict(self) -> dict:
        return {**asdict(self), "fps": float(self.fps), "captions": bool(self.captions)}


def sim_fps_of(spec: dict) -> float:
    return 1.0 / float(spec["world"]["dt"])


def frame_plan(record: dict, config: ClipConfig) -> np.ndarray:
    """Indices of the clip's frames plus the one after its last (the flow's target): int64 [frames + 1]."""
    stride = config.stride(sim_fps_of(record["spec"]))
    config.check_scene_length(
        sim_fps_of(record["spec"]), len(record["states"]) - 1, f"scene {record.get('scene_id')}"
    )
    return np.arange(config.frames + 1, dtype=np.int64) * stride


def boxes_and_counts(seg: np.ndarray, num_bodies: int) -> tuple[np.ndarray, np.ndarray]:
    """Visible pixel counts int32 [T, N] and inclusive boxes int32 [T, N, 4] (-1 where not visible)."""
    t_len, h, w = seg.shape
    counts = np.zeros((t_len, num_bodies), dtype=np.int32)
    boxes = np.full((t_len, num_bodies, 4), -1, dtype=np.int32)
    labels = seg.astype(np.int64)
    body = (labels >= 1) & (labels <= num_bodies)
    for t in range(t_len):
        lab = np.where(body[t], labels[t], 0)
        counts[t] = np.bincount(lab.ravel(), minlength=num_bodies + 1)[1 : num_bodies + 1]
        if not counts[t].any():
            continue
        rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
        cols = np.broadcast_to(np.arange(w)[None, :], (h, w))
        sel = body[t]
        ids = lab[sel] - 1
        r, c = rows[sel], cols[sel]
        big = np.iinfo(np.int32).max
        rmin = np.full(num_bodies, big, np.int64)
        cmin = np.full(num_bodies, big, np.int64)
        rmax = np.full(num_bodies, -1, np.int64)
        cmax = np.full(num_bodies, -1, np.int64)
        np.minimum.at(rmin, ids, r)
        np.minimum.at(cmin, ids, c)
        np.maximum.at(rmax, ids, r)
        np.maximum.at(cmax, ids, c)
        seen = counts[t] > 0
        boxes[t, seen] = np.stack([rmin, cmin, rmax, cmax], -1)[seen]
    return counts, boxes
