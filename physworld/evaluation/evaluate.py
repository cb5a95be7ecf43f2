"""`physworld evaluate`: a model and the analytic baselines on the same held-out scenes.

Writes into the output directory:
    metrics.json            docs/METRICS.md: per type, per split (seen / held-out), per method
    predictions/            the model's rollouts as a dataset store (validate and render them)
    comparison_gifs/        <type>_cmp.gif: ground truth (green) | prediction (blue) | both overlaid,
                            under a header marking context frames (grey) and predicted ones (orange)
Seen and held-out types come from the training dataset's types recorded in the checkpoint.

3D datasets (PyBullet, states [F, N, 13]) are evaluated the same way by a 3D family (its FAMILIES entry
has `"dims": 3`): metres and degrees (metrics.ERROR_KEYS_3D), the 3D baselines
(rollout.baseline_rollout_3d), the chaos floor from initial positions nudged by CHAOS_EPSILON_M, and
comparison GIFs drawn by PyBullet's renderer from the scene's camera. A family of one dimension on a
dataset of the other is refused in one line before anything runs.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from physworld.data.store import Dataset, write_dataset
from physworld.evaluation.metrics import aggregate, scene_metrics
from physworld.evaluation.rollout import (
    BASELINES,
    baseline_rollout,
    chaos_floor_rollout,
)
from physworld.fileio import atomic_write_json

HORIZONS = (1, 5, 10, 20)
CHAOS_EPSILON_PX = 1e-3
# 3D scenes span about 10 m where 2D ones span 800 px: the same relative nudge (about 1e-6).
CHAOS_EPSILON_M = 1e-5
GREEN, BLUE = (40, 160, 60), (40, 90, 210)
GIF_PANEL_WIDTH = 320  # px per panel (240 high): three panels, 972 x 262 with the header
CONTEXT_GREY, PREDICTION_ORANGE = (225, 228, 234), (255, 170, 60)
FORMAT_VERSION = 1


# Scenes per rollout call: each call is one step of the progress bar (any family, through the plain
# contract). The PhysicsExpert batches a call's scenes into one graph per predicted frame.
ROLLOUT_CHUNK = 16


def load_predictor(model_name: str, checkpoint):
    """(rollout(scenes, context, rollout) -> (predictions, parse failures per scene), run info) of the
    family `model_name` (physworld/evaluation/families.py: the contract; no recipe is imported)."""
    from physworld.evaluation.families import load_predictor as load

    return load(model_name, checkpoint)


def chunked_rollouts(
    rollout_fn, scenes, context_frames, rollout_frames, progress=True, desc="rollout", chunk=ROLLOUT_CHUNK
):
    """Call a family's rollout on consecutive chunks of `chunk` scenes, a progress bar over the scenes
    (any family, through the plain contract); the same chunks every time, so it is deterministic."""
    from tqdm.auto import tqdm

    predictions, failures = [], []
    with tqdm(total=len(scenes), desc=desc, unit="scene", disable=not progress) as bar:
        for start in range(0, len(scenes), chunk):
            chunk_scenes = scenes[start : start + chunk]
            preds, fails = rollout_fn(chunk_scenes, context_frames, rollout_frames)
            if len(preds) != len(chunk_scenes) or len(fails) != len(chunk_scenes):
                raise RuntimeError(
                    f"the model's rollout returned {len(preds)} predictions and {len(fails)} failure counts "
                    f"for {len(chunk_scenes)} scenes (families.py: one of each per scene)"
                )
            predictions += list(preds)
            failures += [int(f) for f in fails]
            bar.update(len(chunk_scenes))
    return predictions, failures


def select_scenes(ds: Dataset, max_per_type: int, min_frames: int) -> list[dict]:
    """Up to `max_per_type` scenes of each type, lowest scene ids first (deterministic)."""
    index = ds.index.to_pylist()
    chosen = defaultdict(list)
    for row in sorted(index, key=lambda r: r["scene_id"]):
        if len(chosen[row["scenario_type"]]) < max_per_type:
            chosen[row["scenario_type"]].append(row["scene_id"])
    scenes = ds.scenes([i for ids in chosen.values() for i in ids])
    short = [s["scene_id"] for s in scenes if s["states"].shape[0] < min_frames]
    if short:
        raise ValueError(
            f"{ds.root}: scenes {short[:5]} have fewer than context + rollout = {min_frames} frames; "
            "lower --context-frames/--rollout-frames or generate longer scenes"
        )
    return scenes


def _clean(obj):
    """JSON has no NaN or infinity: a diverged prediction's error becomes null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def evaluate(
    checkpoint,
    val_dir,
    output_dir,
    model_name: str = "physics-expert",
    context_frames: int = 10,
    rollout_frames: int = 20,
    max_scenes_per_type: int = 100,
    render: bool = True,
    label: str | None = None,
    progress: bool = True,
    threads: int | None = 1,
) -> dict:
    """`threads`: torch CPU threads for the rollouts (None or 0: torch's default). One by default, as
    training: the families' small models slow down many times over with more threads on a shared
    CPU (BENCHMARKS.md, "Training threads")."""
    import torch
    from tqdm.auto import tqdm

    if context_frames < 1 or rollout_frames < 1:
        raise ValueError("--context-frames and --rollout-frames must be at least 1")
    if threads:
        torch.set_num_threads(threads)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    from physworld.data.windows import check_dims
    from physworld.evaluation.families import entry
    from physworld.evaluation.metrics import units

    family = entry(model_name)
    model_name = family["name"]  # an alias (scratch, finetune) becomes the family's name
    ds = Dataset(val_dir)
    dims = family.get("dims", 2)
    check_dims(ds.dims, dims, val_dir)  # one line, before the checkpoint is read
    epsilon = CHAOS_EPSILON_M if dims == 3 else CHAOS_EPSILON_PX
    rollout_fn, info = load_predictor(model_name, checkpoint)
    seen_types = set(info["train_scenario_types"])
    scenes = select_scenes(ds, max_scenes_per_type, context_frames + rollout_frames)
    horizons = [h for h in HORIZONS if h <= rollout_frames]

    t0 = time.perf_counter()
    predictions, parse_failures = chunked_rollouts(
        rollout_fn,
        scenes,
        context_frames,
        rollout_frames,
        progress=progress,
        chunk=family.get("rollout_chunk", ROLLOUT_CHUNK),
    )
    rollout_seconds = time.perf_counter() - t0

    results = defaultdict(lambda: defaultdict(list))  # type -> method -> [scene metrics]
    scored = list(zip(scenes, predictions, parse_failures, strict=True))
    for scene, pred, failed in tqdm(scored, desc="score", unit="scene", disable=not progress):
        spec, truth = scene["spec"], scene["states"]
        runs = {"model": pred}
        for b in BASELINES:
            runs[b] = baseline_rollout(b, spec, truth, context_frames, rollout_frames)
        runs["chaos_floor"] = chaos_floor_rollout(
            spec, context_frames, rollout_frames, epsilon, seed=scene["scene_id"]
        )
        for method, states in runs.items():
            results[scene["scenario_type"]][method].append(
                scene_metrics(
                    spec,
                    truth,
                    states[: context_frames + rollout_frames],
                    context_frames,
                    horizons,
                    parse_failures=failed if method == "model" else 0,
                )
            )

    methods = ["model", *BASELINES, "chaos_floor"]
    split_of = {t: ("seen" if t in seen_types else "heldout") for t in results}
    per_type, by_split = {}, defaultdict(lambda: defaultdict(list))
    for t, by_method in results.items():
        per_type[t] = {"split": split_of[t], "num_scenes": len(by_method["model"])}
        for m in methods:
            per_type[t][m] = {k: v for k, v in aggregate(by_method[m]).items() if k != "curve"}
            by_split[split_of[t]][m] += by_method[m]
            by_split["all"][m] += by_method[m]
    aggregates = {split: {m: aggregate(rs) for m, rs in ms.items()} for split, ms in by_split.items()}
    metrics = {
        "format": "physworld-metrics",
        "format_version": FORMAT_VERSION,
        "model": {
            "name": model_name,
            "label": label or f"{model_name} ({Path(checkpoint).name})",
            "checkpoint": str(checkpoint),
            "train_dir": info.get("train_dir"),
        },
        "dataset": {
            "val_dir": str(val_dir),
            "num_scenes": len(scenes),
            "scene_ids": [s["scene_id"] for s in scenes],
            "seen_types": sorted(t for t in results if split_of[t] == "seen"),
            "heldout_types": sorted(t for t in results if split_of[t] == "heldout"),
        },
        "settings": {
            "context_frames": context_frames,
            "rollout_frames": rollout_frames,
            "horizons": horizons,
            "max_scenes_per_type": max_scenes_per_type,
            "dims": dims,
            "units": units(dims),
            **({"chaos_epsilon_m": epsilon} if dims == 3 else {"chaos_epsilon_px": epsilon}),
        },
        "methods": methods,
        "per_type": per_type,
        "aggregate": {
            s: {m: {k: v for k, v in a.items() if k != "curve"} for m, a in ms.items()}
            for s, ms in aggregates.items()
        },
        "error_vs_horizon": {
            s: {m: a["curve"] for m, a in ms.items()} for s, ms in aggregates.items() if s != "all"
        },
        "gifs": {},
        "timing": {"rollout_frames_per_s": len(scenes) * rollout_frames / max(rollout_seconds, 1e-9)},
    }

    _write_predictions(out / "predictions", scenes, predictions, model_name, context_frames, dims)
    if render:
        metrics["gifs"] = write_comparison_gifs(
            out / "comparison_gifs",
            scenes,
            predictions,
            width=GIF_PANEL_WIDTH,
            context_frames=context_frames,
            progress=progress,
        )
        metrics["settings"]["comparison_gif"] = {
            "panels": ["ground truth", "prediction", "overlay"],
            "width": GIF_PANEL_WIDTH,
            "context_marked": True,
        }
    atomic_write_json(out / "metrics.json", _clean(metrics))
    return metrics


def _write_predictions(root: Path, scenes, predictions, model_name: str, context: int, dims: int = 2) -> None:
    import shutil

    if root.exists():
        shutil.rmtree(root)  # a previous evaluation's predictions: this one replaces them whole
    records = []
    for scene, pred in zip(scenes, predictions, strict=True):
        spec = dict(scene["spec"], prediction={"model": model_name, "context_frames": context})
        empty = {
            "frame": np.zeros(0, np.int32),
            "body_a": np.zeros(0, np.int32),
            "body_b": np.zeros(0, np.int32),
            "impulse": np.zeros(0, np.float32),
        }
        records.append(dict(scene, spec=spec, states=pred, events=empty))
    config = {"source": "physworld evaluate", "model": model_name, "context_frames": context}
    write_dataset(root, records, dict(config, dims=3) if dims == 3 else config)


def comparison_frames(scene: dict, pred: np.ndarray, context_frames: int, width: int = 320) -> np.ndarray:
    """The frames of one comparison animation, uint8 [F, H, W, 3]: three panels, ground truth (green),
    prediction (blue) and both overlaid (truth green, prediction blue on top, where they overlap a mix),
    under a header that says, on every frame, whether it is context (ground truth given to the model;
    grey) or prediction (the model's own, frame k of R; orange, with an orange border on the panels
    the model drew)."""
    from PIL import Image, ImageDraw

    from physworld.data.render import render_frames

    n = pred.shape[0]
    truth = scene["states"][:n]
    if truth.shape[-1] == 13:
        left, truth_mask = _render_3d(scene["spec"], truth, width, GREEN)
        right, pred_mask = _render_3d(scene["spec"], pred, width, BLUE)
    else:
        green = np.tile(GREEN, (truth.shape[1], 1))
        blue = np.tile(BLUE, (truth.shape[1], 1))
        left, truth_mask = render_frames(scene["spec"], truth, width=width, palette=green)
        right, pred_mask = render_frames(scene["spec"], pred, width=width, palette=blue)
    pred_body, truth_body = pred_mask > 0, truth_mask > 0
    overlay = left.copy()
    overlay[pred_body] = right[pred_body]
    both = pred_body & truth_body
    overlay[both] = ((left[both].astype(np.uint16) + right[both]) // 2).astype(np.uint8)

    f, h, w = left.shape[:3]
    gap, header, border = 6, 22, 3
    canvas = np.full((f, header + h, 3 * w + 2 * gap, 3), 255, dtype=np.uint8)
    rollout = n - context_frames
    for k in range(f):
        predicted = k >= context_frames
        accent = CONTEXT_GREY if not predicted else PREDICTION_ORANGE
        canvas[k, :header] = accent
        for p, panel in enumerate((left[k], right[k], overlay[k])):
            x = p * (w + gap)
            canvas[k, header:, x : x + w] = panel
            if predicted and p > 0:  # the panels the model drew, framed while it predicts
                for edge in (
                    (slice(header, header + border), slice(x, x + w)),
                    (slice(header + h - border, header + h), slice(x, x + w)),
                    (slice(header, header + h), slice(x, x + border)),
                    (slice(header, header + h), slice(x + w - border, x + w)),
                ):
                    canvas[k][edge] = PREDICTION_ORANGE
    titles = (f"{scene['scenario_type']}: ground truth", "prediction", "overlay: truth + prediction")
    out = np.empty_like(canvas)
    for k in range(f):
        image = Image.fromarray(canvas[k])
        draw = ImageDraw.Draw(image)
        phase = (
            f"context {k + 1}/{context_frames}"
            if k < context_frames
            else f"PREDICTED {k + 1 - context_frames}/{rollout}"
        )
        for p, title in enumerate(titles):
            draw.text((p * (w + gap) + 5, 5), f"{title} | {phase}" if p == 0 else title, fill=(20, 20, 20))
        out[k] = np.asarray(image)
    return out


def _render_3d(spec: dict, states: np.ndarray, width: int, colour) -> tuple[np.ndarray, np.ndarray]:
    """A 3D trajectory drawn from the scene's camera by PyBullet's renderer, every body in `colour`:
    (rgb uint8 [F, H, W, 3], body mask [F, H, W], > 0 where a body is seen). A non-finite pose (a
    diverged prediction) is drawn far below the floor, out of sight."""
    from physworld.data.render import default_height
    from physworld.data.render3d import camera_3d, render_views

    coloured = dict(spec, bodies=[dict(b, color=list(colour)) for b in spec["bodies"]])
    poses = np.array(states[..., 0:7], dtype=np.float64)
    bad = ~np.isfinite(poses).all(-1)
    poses[bad] = [0.0, 0.0, -1e3, 0.0, 0.0, 0.0, 1.0]
    views = render_views(coloured, poses, camera_3d(spec["camera"], width, default_height(width)))
    seg = views["segmentation"].astype(np.int32)
    return views["rgb"], (seg >= 1) & (seg <= len(spec["bodies"]))


def write_comparison_gifs(
    out_dir: Path,
    scenes,
    predictions,
    fps: float = 15,
    width: int = 320,
    per_type: int = 1,
    *,
    context_frames: int,
    progress: bool = False,
) -> dict[str, str]:
    """Comparison GIFs from real rollouts (comparison_frames: truth | prediction | overlay, the context
    and the predicted frames marked), `per_type` scenes of each type."""
    from tqdm.auto import tqdm

    from physworld.data.render import write_gif

    out_dir.mkdir(parents=True, exist_ok=True)
    chosen, counts = [], defaultdict(int)
    for scene, pred in zip(scenes, predictions, strict=True):
        if counts[scene["scenario_type"]] < per_type:
            counts[scene["scenario_type"]] += 1
            chosen.append((scene, pred))
    written = {}
    for scene, pred in tqdm(chosen, desc="comparison GIFs", unit="gif", disable=not progress):
        t = scene["scenario_type"]
        frames = comparison_frames(scene, pred, context_frames, width=width)
        name = f"{t}_cmp.gif" if per_type == 1 else f"{t}_{scene['scene_id']}_cmp.gif"
        write_gif(out_dir / name, frames, fps=fps)
        written.setdefault(t, f"{out_dir.name}/{name}")
    return written
