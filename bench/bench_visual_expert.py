"""The Visual Expert against the mask-centroid tracker and the mean-parameter baseline, seen and
held-out scenario types apart, after a few CPU minutes of training.

    python bench/bench_visual_expert.py [--work /tmp/physworld-bench-vision] [--steps 400] [--scenes 12]

1. generates 64 x 64 clips of 8 frames at 15 frames/s: a training set of --scenes scenes of each of
   TRAIN_TYPES (difficulty 1-3), a validation set of the same types (another seed), and a held-out set
   of HELDOUT_TYPES (the registry's held-out types but hourglass, whose 25+ grains exceed the slots)
2. trains configs/visual_expert/quickstart.yaml for --steps steps (one torch thread)
3. scores the best checkpoint, the tracker, zero rotation and the mean parameters on both sets
   (physworld.evaluation.vision.evaluate_visual_expert) and prints a markdown table

Every step resumes: data, the run and metrics already in --work are reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_TYPES = [
    "billiards",
    "explosion",
    "head_on",
    "projectile",
    "tower",
    "pyramid",
    "plinko",
    "marble_run",
    "pendulum",
    "wrecking_ball",
    "seesaw",
    "pinball",
    "basketball",
    "conveyor",
    "wind",
    "orbit",
    "gravity_well",
    "solar_system",
]
HELDOUT_TYPES = ["pong", "bowling", "ramp_roll", "angry_birds", "newtons_cradle"]
CLIPS = [
    "--with-clips",
    "--clip-resolution",
    "64",
    "--clip-frames",
    "8",
    "--clip-fps",
    "15",
    "--no-clip-captions",
]


def physworld(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "physworld.cli", *args], check=True)


def generate(out: Path, types: list[str], scenes: int, seed: int) -> None:
    if (out / "clips" / "manifest.json").exists():
        return
    physworld(
        "generate",
        "--output-dir",
        str(out),
        "--scenario-types",
        *types,
        "--num-scenes-per-type",
        str(scenes),
        "--frames-per-scene",
        "36",
        "--difficulty-range",
        "1",
        "3",
        "--seed",
        str(seed),
        "--num-workers",
        "1",
        "--quiet",
        *CLIPS,
    )


ROWS = [
    ("position error", "position_error", "{:.1f}"),
    ("velocity error", "velocity_error", "{:.0f}"),
    ("angle error (rad)", "angle_error_rad", "{:.2f}"),
    ("angle error mod pi (rad)", "angle_error_mod_pi_rad", "{:.2f}"),
    ("angular velocity error (rad/s)", "angular_velocity_error", "{:.2f}"),
    ("mask IoU", "mask_iou", "{:.3f}"),
    ("log mass (relative) error", "log_mass_rel_error", "{:.3f}"),
    ("friction error", "friction_error", "{:.3f}"),
    ("restitution error", "restitution_error", "{:.3f}"),
]


def table(results: dict) -> str:
    header = ["metric"]
    for split in results:
        header += [f"{split}: model", f"{split}: tracker", f"{split}: zero rotation", f"{split}: mean params"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, key, fmt in ROWS:
        cells = [label]
        for g in results.values():
            for who in ("model", "tracker", "zero_rotation", "mean_params"):
                v = g[who].get(key)
                cells.append("-" if v is None else fmt.format(v))
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["bodies matched / shown"]
    for g in results.values():
        c = g["counts"]
        cells += [f"{c['bodies_matched']} / {c['bodies_present']}", "same", "same", "same"]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/physworld-bench-vision"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--scenes", type=int, default=12, help="training scenes per type")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    work = args.work
    t0 = time.perf_counter()
    generate(work / "train", TRAIN_TYPES, args.scenes, seed=0)
    generate(work / "val", TRAIN_TYPES, 4, seed=1)
    generate(work / "heldout", HELDOUT_TYPES, 8, seed=2)
    print(f"data: {time.perf_counter() - t0:.0f} s")
    run = work / "run"
    reused = (run / "summary.json").exists()
    t0 = time.perf_counter()
    physworld(
        "train",
        "visual-expert",
        "--config",
        str(ROOT / "configs" / "visual_expert" / "quickstart.yaml"),
        f"data.train_dir={work / 'train'}",
        f"data.val_dir={work / 'val'}",
        f"train.output_dir={run}",
        f"train.max_steps={args.steps}",
        "--quiet",
    )
    train_seconds = time.perf_counter() - t0
    from physworld.evaluation.vision import evaluate_visual_expert
    from physworld.models.visual_expert import load_visual_expert

    model, info = load_visual_expert(run / "checkpoints" / "best.safetensors")
    results = {}
    for split, group in (("val", "seen"), ("heldout", "heldout")):
        metrics = evaluate_visual_expert(
            model, work / split, seen_types=info["train_scenario_types"], progress=False
        )
        (work / f"metrics_{split}.json").write_text(json.dumps(metrics, indent=1))
        results[f"{group} ({split})"] = metrics["groups"][group]
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = [m for m in logged if "loss" in m][-1]
    vals = [m for m in logged if "val_loss" in m]
    print(
        f"trained {last['step']} steps"
        + (" (the finished run in --work, reused)" if reused else f" in {train_seconds:.0f} s wall")
        + f" (train loss {last['loss']:.3f}; "
        f"val loss {vals[-1]['val_loss']:.3f}, best {min(v['val_loss'] for v in vals):.3f})\n"
    )
    print(table(results))


if __name__ == "__main__":
    main()
