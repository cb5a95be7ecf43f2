"""Scoring a Visual Expert on clips beside two baselines, seen and held-out scenario types apart.

    physworld evaluate-vision --checkpoint RUN/checkpoints/best.safetensors --data-dir DATA [--output FILE]

Baselines, on the same windows:
- tracker: the centroid of each body's instance mask in the clip's ground-truth segmentation,
  back-projected to world units through the clip's camera (2D: the orthographic map; 3D: the mask's
  median depth with the intrinsics and extrinsics), positions across frames where the body is hidden
  interpolated, velocities by finite differences at the clip's frame rate. Orientation: in 2D the
  mask's principal axis, which fixes the angle only up to a half turn and says nothing for a disc
  (so the tracker is scored on the angle modulo pi and on angular velocity); in 3D it gives no
  orientation or angular velocity (null). It reads the true segmentation, so its identities and masks
  are perfect: a generous baseline for state, and it has no mask IoU of its own.
- mean parameters: each physical parameter predicted as its training mean (the model's param_mean).
- zero rotation: angle 0 (3D: the identity quaternion) and no spin, for orientation and angular
  velocity, which the tracker cannot see well: in a short window most bodies barely turn.

What is scored: the model's slots are matched to the bodies visible in the window (hungarian_match,
as in training); state errors are means over (matched body, frame) pairs in which the body is
visible, and the tracker and the mean are scored on exactly those pairs. Bodies a window shows but
the model has no slot for (more bodies than slots) count in `bodies_unmatched`. Parameter errors are
over matched dynamic bodies. Mask IoU: the model's masks upsampled to the clip's size, thresholded at
0.5, against each matched body's true mask, over its visible frames.

`evaluate_visual_expert(model, data_dir, ...) -> dict` is the function other code calls (the
Supervisor's evaluation calls it on its unlabelled OOD split).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from physworld.data import clips as C
from physworld.data.clip_labels import ClipWindows, check_clips_fit, clip_labels, collate_windows
from physworld.models.visual_expert import (
    PARAM_FIELDS,
    hungarian_match,
    load_visual_expert,
    masks_from_segmentation,
)
from physworld.worlds.registry import is_heldout

# ---------------------------------------------------------------- the tracker baseline


def _fill(values: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Values [T, D] known where seen [T]: linear interpolation between, held at the ends."""
    t = np.arange(len(values))
    if not seen.any():
        return np.full_like(values, np.nan)
    return np.stack([np.interp(t, t[seen], values[seen, d]) for d in range(values.shape[1])], -1)


def tracker_states(segmentation, depth, num_bodies: int, camera: dict, fps: float, dims: int) -> np.ndarray:
    """Per body states from the instance masks: float64 [T, N, S] in world units, NaN where the tracker
    cannot say (never visible; 3D orientation and angular velocity; 2D angle is the principal axis)."""
    seg = np.asarray(segmentation)
    t_len, h, w = seg.shape
    s_size = 6 if dims == 2 else 13
    out = np.full((t_len, num_bodies, s_size), np.nan)
    rows, cols = np.mgrid[0:h, 0:w]
    pc, pr = cols + 0.5, rows + 0.5
    if dims == 3:
        k = np.asarray(camera["intrinsics"], dtype=np.float64)
        cam_to_world = np.linalg.inv(np.asarray(camera["extrinsics"], dtype=np.float64))
    for n in range(num_bodies):
        pos = np.zeros((t_len, dims))
        axis = np.zeros(t_len)
        seen = np.zeros(t_len, dtype=bool)
        for t in range(t_len):
            sel = seg[t] == n + 1
            if not sel.any():
                continue
            seen[t] = True
            u, v = pc[sel].mean(), pr[sel].mean()
            if dims == 2:
                sx, sy = camera["scale"]
                x = pc[sel] / sx
                y = camera["world_height"] - (pr[sel] - camera["pad_rows"]) / sy
                pos[t] = [x.mean(), y.mean()]
                dx, dy = x - x.mean(), y - y.mean()
                axis[t] = 0.5 * math.atan2(2 * (dx * dy).mean(), (dx * dx).mean() - (dy * dy).mean())
            else:
                z = float(np.median(np.asarray(depth[t])[sel]))
                cam = np.array([(u - k[0, 2]) * z / k[0, 0], (v - k[1, 2]) * z / k[1, 1], z, 1.0])
                pos[t] = (cam_to_world @ cam)[:3]
        if not seen.any():
            continue
        pos = _fill(pos, seen)
        vel = np.gradient(pos, axis=0) * fps if t_len > 1 else np.zeros_like(pos)
        if dims == 2:
            unwrapped = np.zeros(t_len)
            unwrapped[seen] = np.unwrap(2 * axis[seen]) / 2  # the axis is defined modulo pi
            angle = _fill(unwrapped[:, None], seen)[:, 0]
            omega = np.gradient(angle) * fps if t_len > 1 else np.zeros(t_len)
            out[:, n, 0:2], out[:, n, 2], out[:, n, 3:5], out[:, n, 5] = pos, angle, vel, omega
        else:
            out[:, n, 0:3], out[:, n, 7:10] = pos, vel
    return out


# ---------------------------------------------------------------- scoring


def _wrap(a):
    return np.abs((a + np.pi) % (2 * np.pi) - np.pi)


def _mod_pi(a):
    return np.abs((a + np.pi / 2) % np.pi - np.pi / 2)


def _quat_angle(p, q):
    dot = np.clip(
        np.abs((p * q).sum(-1)) / (np.linalg.norm(p, axis=-1) * np.linalg.norm(q, axis=-1) + 1e-12), 0, 1
    )
    return 2 * np.arccos(dot)


def _state_errors(pred: np.ndarray, true: np.ndarray, dims: int) -> dict:
    """Per-pair errors of states [P, S] (NaN where the predictor has no estimate)."""
    if dims == 2:
        return {
            "position_error": np.linalg.norm(pred[:, 0:2] - true[:, 0:2], axis=-1),
            "velocity_error": np.linalg.norm(pred[:, 3:5] - true[:, 3:5], axis=-1),
            "angle_error_rad": _wrap(pred[:, 2] - true[:, 2]),
            "angle_error_mod_pi_rad": _mod_pi(pred[:, 2] - true[:, 2]),
            "angular_velocity_error": np.abs(pred[:, 5] - true[:, 5]),
        }
    return {
        "position_error": np.linalg.norm(pred[:, 0:3] - true[:, 0:3], axis=-1),
        "velocity_error": np.linalg.norm(pred[:, 7:10] - true[:, 7:10], axis=-1),
        "angle_error_rad": _quat_angle(pred[:, 3:7], true[:, 3:7]),
        "angular_velocity_error": np.linalg.norm(pred[:, 10:13] - true[:, 10:13], axis=-1),
    }


def _mean(values: list) -> float | None:
    if not values:
        return None
    v = np.concatenate([np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in values])
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def _summarise(acc: dict) -> dict:
    out = {}
    for who in ("model", "tracker", "zero_rotation", "mean_params"):
        out[who] = {k: _mean(v) for k, v in sorted(acc[who].items())}
    out["counts"] = dict(acc["counts"])
    return out


def _new_acc() -> dict:
    from collections import defaultdict

    return {
        "model": defaultdict(list),
        "tracker": defaultdict(list),
        "zero_rotation": defaultdict(list),
        "mean_params": defaultdict(list),
        "counts": {"windows": 0, "bodies_present": 0, "bodies_matched": 0, "bodies_unmatched": 0, "pairs": 0},
    }


@torch.no_grad()
def evaluate_visual_expert(
    model,
    data_dir,
    seen_types=None,
    batch_size: int = 16,
    max_clips: int | None = None,
    progress: bool = True,
) -> dict:
    """Metrics of `model` (a VisualExpert), the tracker and the mean-parameter baseline on the clips of
    the dataset at `data_dir`, in non-overlapping windows of the model's frame count. Groups: "all",
    "seen", "heldout" (seen: a type in `seen_types`, by default the registry's seen types), and
    "per_type". Refuses clips the model cannot read with one line (ClipViewError, a ValueError)."""
    cfg = model.config
    dims = cfg.dims
    labels = clip_labels(data_dir, progress=False)
    check_clips_fit(
        labels["meta"], dims, cfg.image_size, cfg.frames, cfg.fps, Path(data_dir) / C.DEFAULT_SUBDIR
    )
    windows = ClipWindows(labels, cfg.frames, cfg.frames, max_clips=max_clips)
    fps = float(labels["meta"]["clip"]["fps"])
    param_mean = model.param_mean.cpu().numpy().astype(np.float64)
    device = next(model.parameters()).device  # the model may sit on a GPU; scoring runs on CPU
    groups: dict[str, dict] = {}

    def accs(scenario_type: str) -> list[dict]:
        seen = scenario_type in seen_types if seen_types is not None else not is_heldout(scenario_type)
        names = ["all", "seen" if seen else "heldout", f"type:{scenario_type}"]
        return [groups.setdefault(n, _new_acc()) for n in names]

    model.eval()
    bar = tqdm(
        total=len(windows), unit="window", desc="evaluate vision", disable=not progress, dynamic_ncols=True
    )
    for start in range(0, len(windows), batch_size):
        batch = collate_windows([windows[j] for j in range(start, min(start + batch_size, len(windows)))])
        out = {k: v.cpu() for k, v in model(batch["frames"].to(device)).items()}
        masks = [
            masks_from_segmentation(s, st.shape[1], model.mask_size)
            for s, st in zip(batch["segmentation"], batch["states"], strict=True)
        ]
        matches = hungarian_match(out, batch["states"], masks, state_std=model.state_std)
        hh, ww = batch["frames"].shape[-2:]
        full = F.interpolate(
            out["mask_logits"].flatten(1, 2), size=(hh, ww), mode="bilinear", align_corners=False
        )
        full = full.reshape(*out["mask_logits"].shape[:3], hh, ww)  # [B, T, K, H, W]
        for b, (slots, bodies) in enumerate(matches):
            clip = batch["clip"][b]
            states = batch["states"][b].numpy().astype(np.float64)  # [T, N, S]
            seg = batch["segmentation"][b].numpy()
            n = states.shape[1]
            visible = batch["visible_pixels"][b].numpy() > 0  # [T, N]
            present = int(visible.any(0).sum())
            track = tracker_states(
                seg, batch.get("depth", [None] * len(matches))[b], n, labels["cameras"][clip], fps, dims
            )
            pred = out["state"][b].numpy().astype(np.float64)  # [K, T, S]
            pred_params = out["params"][b].numpy().astype(np.float64)
            for acc in accs(batch["scenario_type"][b]):
                c = acc["counts"]
                c["windows"] += 1
                c["bodies_present"] += present
                c["bodies_matched"] += len(bodies)
                c["bodies_unmatched"] += present - len(bodies)
                acc["model"]["count_error"].append(abs(int((out["exist_logit"][b] > 0).sum()) - present))
            for slot, body in zip(slots.tolist(), bodies.tolist(), strict=True):
                frames = np.nonzero(visible[:, body])[0]
                true = states[frames, body]
                errs = {
                    "model": _state_errors(pred[slot, frames], true, dims),
                    "tracker": _state_errors(track[frames, body], true, dims),
                }
                still = np.full_like(true, np.nan)  # no rotation: angle 0 (identity quaternion), spin 0
                if dims == 2:
                    still[:, 2], still[:, 5] = 0.0, 0.0
                else:
                    still[:, 3:7], still[:, 10:13] = [0.0, 0.0, 0.0, 1.0], 0.0
                errs["zero_rotation"] = {
                    k: v
                    for k, v in _state_errors(still, true, dims).items()
                    if "angle" in k or "angular" in k
                }
                if dims == 2:  # the tracker's angle is a principal axis: only its value modulo pi counts
                    errs["tracker"].pop("angle_error_rad")
                iou = []
                for t in frames:
                    p = full[b, t, slot].numpy() > 0
                    g = seg[t] == body + 1
                    iou.append((p & g).sum() / max((p | g).sum(), 1))
                errs["model"]["mask_iou"] = np.array(iou)
                if labels["dynamic"][clip][body]:
                    truth = labels["params"][clip][body].astype(np.float64)
                    for i, name in enumerate(PARAM_FIELDS):
                        errs["model"][f"{name}_error"] = abs(pred_params[slot, i] - truth[i])
                        errs["mean_params"] = errs.get("mean_params", {})
                        errs["mean_params"][f"{name}_error"] = abs(param_mean[i] - truth[i])
                for acc in accs(batch["scenario_type"][b]):
                    acc["counts"]["pairs"] += len(frames)
                    for who, values in errs.items():
                        for k, v in values.items():
                            acc[who][k].append(v)
        bar.update(len(matches))
    bar.close()
    result = {
        "dims": dims,
        "data_dir": str(data_dir),
        "windows": len(windows),
        "frames_per_window": cfg.frames,
        "fps": fps,
        "units": "2D: px, rad, px/s, rad/s; 3D: m, rad, m/s, rad/s",
        "groups": {name: _summarise(acc) for name, acc in sorted(groups.items())},
    }
    return result


def evaluate_checkpoint(
    checkpoint, data_dir, output=None, max_clips=None, threads: int = 1, progress=True
) -> dict:
    """`physworld evaluate-vision`: load, score, write metrics JSON (atomically) when `output` is given."""
    from physworld.fileio import atomic_write_json

    if threads:
        torch.set_num_threads(threads)
    if not (Path(data_dir) / C.DEFAULT_SUBDIR / C.MANIFEST).is_file():
        raise ValueError(
            f"--data-dir {data_dir}: no clips there; render them with physworld render-clips --data-dir {data_dir}"
        )
    model, info = load_visual_expert(checkpoint)
    metrics = evaluate_visual_expert(
        model, data_dir, seen_types=info.get("train_scenario_types"), max_clips=max_clips, progress=progress
    )
    metrics["checkpoint"] = str(checkpoint)
    metrics["seen_types"] = info.get("train_scenario_types")
    if output is not None:
        atomic_write_json(output, metrics)
    return metrics
