"""Vision in the loop: clip context -> Visual Expert -> PhysicsExpert rollout -> position error against
the true future, beside the same PhysicsExpert rolled out from the true states.

    physworld vision-loop --visual-expert VE.safetensors --physics-expert PE.safetensors --data-dir DATA \
        --output-dir EVAL_DIR [--rollout-frames 8]

For each clip of DATA, the Visual Expert reads its first `frames` frames (its context); the last of
them, clip frame c, is the start of every rollout (simulator frame c * stride, stride = 60 / fps).
Rows, position error in px at clip frames c + 1 .. c + R (R = --rollout-frames), over the dynamic bodies
the window shows:

- pe_from_vision: the PhysicsExpert from the Visual Expert's estimates alone (state at c, parameters,
  discs of the masks' equivalent radius, the default arena as static world; models/supervisor.py
  documents each approximation), rolled R * stride simulator steps;
- cv_from_vision: constant velocity from the same estimated states;
- pe_from_truth: the PhysicsExpert's own rollout from the true states, with the scene's true bodies,
  statics and joints (models/physics_expert.model_rollouts with context c * stride + 1);
- cv_from_truth: constant velocity from the true state at c.
Horizon 0 is the estimate's own error at c (0 for the rows from truth).

Which slot is which body comes from hungarian_match against the window's true masks (evaluation may
read labels; the rollout's inputs do not): the rollout holds the slots matched to bodies visible in the
window, and is scored on those that are dynamic and visible at frame c. Types the Visual Expert trained
on count as seen (from its checkpoint), the rest as held out, reported apart. The result is written as
vision_loop.json in the evaluation directory, where the report finds it (evaluation/report.py
SECTIONS: "Vision in the loop").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from physworld.data import clips as C
from physworld.data.clip_labels import check_clips_fit, clip_labels
from physworld.data.clip_view import ClipDataset
from physworld.data.store import Dataset
from physworld.models.physics_expert import model_rollouts
from physworld.models.supervisor import SIM_FPS, disc_bodies, equivalent_radius, roll_physics
from physworld.models.visual_expert import hungarian_match, masks_from_segmentation
from physworld.worlds.registry import is_heldout

FILE = "vision_loop.json"
ROWS = ("pe_from_vision", "cv_from_vision", "pe_from_truth", "cv_from_truth")
ROW_NAMES = {
    "pe_from_vision": "PhysicsExpert from the Visual Expert's estimates",
    "cv_from_vision": "constant velocity from the Visual Expert's estimates",
    "pe_from_truth": "PhysicsExpert from the true states",
    "cv_from_truth": "constant velocity from the true states",
}


@torch.no_grad()
def vision_loop(
    ve, pe, data_dir, rollout_frames: int = 8, seen_types=None, max_clips=None, progress: bool = True
) -> dict:
    """The rows of the module docstring on the clips of `data_dir` -> metrics dict."""
    cfg = ve.config
    if cfg.dims != 2:
        raise ValueError("vision-loop runs 2D Visual Experts with the 2D PhysicsExpert")
    if rollout_frames < 1:
        raise ValueError(f"--rollout-frames must be at least 1, got {rollout_frames}")
    labels = clip_labels(data_dir)
    check_clips_fit(labels["meta"], 2, cfg.image_size, cfg.frames, cfg.fps, Path(data_dir) / C.DEFAULT_SUBDIR)
    stride = int(round(SIM_FPS / cfg.fps))
    dt = 1.0 / SIM_FPS
    clips = ClipDataset(labels["view"], streams=("rgb", "segmentation", "states", "visible"))
    store = Dataset(data_dir)
    c = cfg.frames - 1
    n = len(clips) if max_clips is None else min(max_clips, len(clips))
    groups: dict[str, dict] = {}
    ve.eval()
    pe.eval()
    for i in tqdm(range(n), desc="vision loop", unit="clip", disable=not progress, dynamic_ncols=True):
        clip = clips[i]
        record = store.scene(int(labels["scene_ids"][i]))
        true = np.asarray(record["states"], dtype=np.float64)  # [F, N, 6] at the simulator's rate
        horizon = min(rollout_frames, (len(true) - 1 - c * stride) // stride)
        if horizon < 1:
            continue
        t0 = c * stride
        states = clip["states"][: cfg.frames]
        seg = clip["segmentation"][: cfg.frames]
        frames = clip["rgb"][: cfg.frames].permute(0, 3, 1, 2).float()[None] / 255.0
        out = ve(frames)
        masks = masks_from_segmentation(seg, states.shape[1], ve.mask_size)
        slots, bodies = hungarian_match(out, [states], [masks], state_std=ve.state_std)[0]
        if len(slots) == 0:
            continue
        visible = clip["visible_pixels"][c].numpy() > 0
        scored = np.array([labels["dynamic"][i][b] and visible[b] for b in bodies.tolist()])
        if not scored.any():
            continue
        est = out["state"][0, slots, c].float()  # [M, 6]
        coverage = torch.sigmoid(out["mask_logits"][0, :, slots]).transpose(0, 1)  # [M, T, h, w]
        radius = equivalent_radius(coverage, labels["cameras"][i], cfg.image_size).clamp(2.0, 150.0)
        body = disc_bodies(out["params"][0, slots].float(), radius)
        path = roll_physics(pe, est, body, torch.zeros(len(slots), dtype=torch.long), 1, horizon * stride)
        steps = np.arange(1, horizon + 1) * stride  # simulator steps after t0
        pe_truth = model_rollouts(pe, [record], context=t0 + 1, rollout=horizon * stride)[0].astype(
            np.float64
        )
        b = bodies.numpy()[scored]
        goal = true[t0 + steps][:, b, :2]  # [H, M', 2]
        est_np = est.numpy().astype(np.float64)[scored]
        predictions = {
            "pe_from_vision": np.stack([path[s - 1].numpy()[scored, :2] for s in steps]),
            "cv_from_vision": est_np[None, :, :2] + steps[:, None, None] * dt * est_np[None, :, 3:5],
            "pe_from_truth": pe_truth[t0 + steps][:, b, :2],
            "cv_from_truth": true[t0, b, :2][None] + steps[:, None, None] * dt * true[t0, b, 3:5][None],
        }
        start_error = np.linalg.norm(est_np[:, :2] - true[t0, b, :2], axis=-1)
        scenario_type = clip["scenario_type"]
        seen = scenario_type in seen_types if seen_types is not None else not is_heldout(scenario_type)
        for name in ("all", "seen" if seen else "heldout"):
            g = groups.setdefault(name, {"clips": 0, "bodies": 0, "sums": {}, "counts": {}})
            g["clips"] += 1
            g["bodies"] += int(scored.sum())
            for row, pred in predictions.items():
                err = np.linalg.norm(pred - goal, axis=-1)  # [H, M']
                zero = start_error if row.endswith("vision") else np.zeros_like(start_error)
                err = np.concatenate([zero[None], err])  # horizon 0 first
                sums = g["sums"].setdefault(row, np.zeros(rollout_frames + 1))
                counts = g["counts"].setdefault(row, np.zeros(rollout_frames + 1))
                sums[: horizon + 1] += err.sum(1)
                counts[: horizon + 1] += err.shape[1]
    result = {
        "format": "physworld-vision-loop",
        "data_dir": str(data_dir),
        "rollout_frames": rollout_frames,
        "fps": float(cfg.fps),
        "context_frames": cfg.frames,
        "units": "position error in px; horizons in clip frames after the context's last frame",
        "rows": {r: ROW_NAMES[r] for r in ROWS},
        "groups": {},
    }
    for name, g in sorted(groups.items()):
        per_row = {}
        for row in ROWS:
            with np.errstate(invalid="ignore", divide="ignore"):
                curve = g["sums"][row] / g["counts"][row]
            per_row[row] = {
                "position_error_px": [None if not np.isfinite(v) else float(v) for v in curve],
                "mean_over_horizons_px": float(np.nanmean(curve[1:])),
            }
        result["groups"][name] = {"clips": g["clips"], "bodies": g["bodies"], "rows": per_row}
    return result


def run(visual_expert, physics_expert, data_dir, output_dir, rollout_frames=8, max_clips=None, progress=True):
    """`physworld vision-loop`: load both checkpoints, evaluate, write <output_dir>/vision_loop.json."""
    from physworld.fileio import atomic_write_json, check_output_path
    from physworld.models.physics_expert import load_model
    from physworld.models.supervisor import load_any_visual_expert

    if not (Path(data_dir) / C.DEFAULT_SUBDIR / C.MANIFEST).is_file():
        raise ValueError(f"--data-dir {data_dir}: no clips there; render them with physworld render-clips")
    check_output_path(Path(output_dir), "--output-dir")
    ve, info = load_any_visual_expert(visual_expert)
    pe, _ = load_model(physics_expert)
    result = vision_loop(
        ve,
        pe,
        data_dir,
        rollout_frames,
        info.get("train_scenario_types"),
        max_clips=max_clips,
        progress=progress,
    )
    result.update(visual_expert=str(visual_expert), physics_expert=str(physics_expert))
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(output_dir) / FILE, result)
    return result
