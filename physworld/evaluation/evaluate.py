"""`physworld evaluate`: a model and the analytic baselines on the same held-out scenes.

Writes into the output directory:
    metrics.json            docs/METRICS.md: per type, per split (seen / held-out), per method
    predictions/            the model's rollouts as a dataset store (validate and render them)
    comparison_gifs/        <type>_cmp.gif: ground truth left (green), prediction right (blue)
Seen and held-out types come from the training dataset's types recorded in the checkpoint.
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
    model_rollouts,
    text_rollouts,
)
from physworld.fileio import atomic_write_json

HORIZONS = (1, 5, 10, 20)
CHAOS_EPSILON_PX = 1e-3
GREEN, BLUE = (40, 160, 60), (40, 90, 210)
FORMAT_VERSION = 1


MODELS = ("physics-expert", "gpt", "lm", "ssm")


def load_predictor(model_name: str, checkpoint):
    """(rollout(scenes, context, rollout) -> (predictions, parse failures per scene), run info)."""
    if model_name == "physics-expert":
        from physworld.recipes.physics_expert import load_physics_expert

        model, info = load_physics_expert(checkpoint)
        return (lambda scenes, c, r: (model_rollouts(model, scenes, c, r), [0] * len(scenes))), info
    if model_name == "ssm":
        from physworld.models import ssm

        return ssm.load_predictor(checkpoint)
    if model_name == "gpt":
        from physworld.recipes.gpt import gpt_prompt_fits, gpt_text_generator, load_gpt

        model, tokenizer, info = load_gpt(checkpoint)
        generate, fits = gpt_text_generator(model, tokenizer), gpt_prompt_fits(model, tokenizer)
    elif model_name == "lm":
        from physworld.recipes.lm_lora import load_for_evaluation

        generate, fits, info = load_for_evaluation(checkpoint)
    else:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, got {model_name!r}")
    return (
        lambda scenes, c, r: text_rollouts(
            generate, scenes, c, r, fmt=info["fmt"], context_frames=info["context_frames"], prompt_fits=fits
        )
    ), info


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
) -> dict:
    from tqdm.auto import tqdm

    if context_frames < 1 or rollout_frames < 1:
        raise ValueError("--context-frames and --rollout-frames must be at least 1")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rollout_fn, info = load_predictor(model_name, checkpoint)
    seen_types = set(info["train_scenario_types"])
    ds = Dataset(val_dir)
    scenes = select_scenes(ds, max_scenes_per_type, context_frames + rollout_frames)
    horizons = [h for h in HORIZONS if h <= rollout_frames]

    t0 = time.perf_counter()
    predictions, parse_failures = rollout_fn(scenes, context_frames, rollout_frames)
    rollout_seconds = time.perf_counter() - t0

    results = defaultdict(lambda: defaultdict(list))  # type -> method -> [scene metrics]
    scored = list(zip(scenes, predictions, parse_failures, strict=True))
    for scene, pred, failed in tqdm(scored, desc="score", unit="scene", disable=not progress):
        spec, truth = scene["spec"], scene["states"]
        runs = {"model": pred}
        for b in BASELINES:
            runs[b] = baseline_rollout(b, spec, truth, context_frames, rollout_frames)
        runs["chaos_floor"] = chaos_floor_rollout(
            spec, context_frames, rollout_frames, CHAOS_EPSILON_PX, seed=scene["scene_id"]
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
            "chaos_epsilon_px": CHAOS_EPSILON_PX,
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

    _write_predictions(out / "predictions", scenes, predictions, model_name, context_frames)
    if render:
        metrics["gifs"] = write_comparison_gifs(out / "comparison_gifs", scenes, predictions)
    atomic_write_json(out / "metrics.json", _clean(metrics))
    return metrics


def _write_predictions(root: Path, scenes, predictions, model_name: str, context: int) -> None:
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
    write_dataset(
        root, records, {"source": "physworld evaluate", "model": model_name, "context_frames": context}
    )


def write_comparison_gifs(
    out_dir: Path, scenes, predictions, fps: float = 15, width: int = 256, per_type: int = 1
) -> dict[str, str]:
    """Side-by-side GIFs from real rollouts: ground truth left in green, prediction right in blue."""
    from physworld.data.render import label, render_frames, side_by_side, write_gif

    out_dir.mkdir(parents=True, exist_ok=True)
    written, counts = {}, defaultdict(int)
    for scene, pred in zip(scenes, predictions, strict=True):
        t = scene["scenario_type"]
        if counts[t] >= per_type:
            continue
        counts[t] += 1
        n = pred.shape[0]
        truth = scene["states"][:n]
        green = np.tile(GREEN, (truth.shape[1], 1))
        blue = np.tile(BLUE, (truth.shape[1], 1))
        left, _ = render_frames(scene["spec"], truth, width=width, palette=green)
        right, _ = render_frames(scene["spec"], pred, width=width, palette=blue)
        frames = side_by_side(label(left, f"{t}: ground truth"), label(right, "prediction"))
        name = f"{t}_cmp.gif" if per_type == 1 else f"{t}_{scene['scene_id']}_cmp.gif"
        write_gif(out_dir / name, frames, fps=fps)
        written.setdefault(t, f"{out_dir.name}/{name}")
    return written
