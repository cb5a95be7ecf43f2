"""The Visual Expert against the mask-centroid tracker, zero rotation and the mean-parameter baseline,
seen and held-out scenario types apart, after --steps optimizer steps on a CPU or a GPU.

    python bench/bench_visual_expert.py [--work /tmp/physworld-bench-vision] [--steps 400] [--scenes 12]
        [--device cpu|cuda|auto] [--resolution 64] [--batch-size 8] [--num-workers 1]
        [--train-seconds 0] [--json results.json]

1. generates --resolution px clips of 8 frames at 15 frames/s (--num-workers processes): a training
   set of --scenes scenes of each of TRAIN_TYPES (difficulty 1-3), a validation set of the same types
   (another seed), and a held-out set of HELDOUT_TYPES (the registry's held-out types but hourglass,
   whose 25+ grains exceed the slots)
2. trains configs/visual_expert/quickstart.yaml for --steps steps on --device (validation position
   error every --steps/10 steps); a progress line every ~15 s; --train-seconds > 0 stops the run at that
   wall time and scores the best checkpoint saved so far
3. scores the best checkpoint, the tracker, zero rotation and the mean parameters on both sets
   (physworld.evaluation.vision.evaluate_visual_expert) and prints a markdown table

--json PATH gets the results after every phase (atomically), so a run cut short still leaves the data
timings and the validation curve so far. Every step resumes: data, the run and metrics already in
--work are reused (use a new --work after changing --resolution or --scenes).
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


def clip_flags(resolution: int) -> list[str]:
    return [
        "--with-clips",
        "--clip-resolution",
        str(resolution),
        "--clip-frames",
        "8",
        "--clip-fps",
        "15",
        "--no-clip-captions",
    ]


def physworld(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "physworld.cli", *args], check=True)


def generate(out: Path, types: list[str], scenes: int, seed: int, resolution: int, workers: int) -> None:
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
        str(workers),
        "--quiet",
        *clip_flags(resolution),
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


def read_metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            break
    return rows


def training_record(run: Path) -> dict:
    logged = read_metrics(run)
    losses = [m for m in logged if "loss" in m]
    return {
        "last_step": losses[-1]["step"] if losses else 0,
        "train_loss": losses[-1]["loss"] if losses else None,
        "windows_per_s": losses[-1].get("windows_per_s") if losses else None,
        "val_curve": [
            {k: m[k] for k in ("step", "val_loss", "val_position_error")} for m in logged if "val_loss" in m
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/physworld-bench-vision"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--scenes", type=int, default=12, help="training scenes per type")
    parser.add_argument("--val-scenes", type=int, default=4, help="validation scenes per type")
    parser.add_argument("--heldout-scenes", type=int, default=8, help="held-out scenes per type")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--resolution", type=int, default=64, help="clip and model image size (px)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=None, help="default: the preset's")
    parser.add_argument("--num-workers", type=int, default=1, help="processes generating the clips")
    parser.add_argument("--loader-workers", type=int, default=0, help="DataLoader workers in training")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--train-seconds", type=float, default=0, help="> 0: stop training at this wall time")
    parser.add_argument("--json", type=Path, default=None, help="write the results here (after every phase)")
    args = parser.parse_args()
    import torch

    from physworld.fileio import atomic_write_json

    torch.set_num_threads(args.threads)
    record: dict = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    record["device_name"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"

    def dump() -> None:
        if args.json is not None:
            atomic_write_json(args.json, record)

    work = args.work
    t0 = time.perf_counter()
    res, nw = args.resolution, args.num_workers
    generate(work / "train", TRAIN_TYPES, args.scenes, seed=0, resolution=res, workers=nw)
    generate(work / "val", TRAIN_TYPES, args.val_scenes, seed=1, resolution=res, workers=nw)
    generate(work / "heldout", HELDOUT_TYPES, args.heldout_scenes, seed=2, resolution=res, workers=nw)
    record["data_seconds"] = round(time.perf_counter() - t0, 1)
    print(f"data: {record['data_seconds']:.0f} s", flush=True)
    dump()

    run = work / "run"
    reused = (run / "summary.json").exists()
    every = max(1, args.steps // 10)
    command = [
        sys.executable,
        "-m",
        "physworld.cli",
        "train",
        "visual-expert",
        "--quiet",
        "--config",
        str(ROOT / "configs" / "visual_expert" / "quickstart.yaml"),
        f"data.train_dir={work / 'train'}",
        f"data.val_dir={work / 'val'}",
        f"data.batch_size={args.batch_size}",
        f"data.num_workers={args.loader_workers}",
        f"model.image_size={res}",
        f"train.output_dir={run}",
        f"train.max_steps={args.steps}",
        f"train.device={args.device}",
        f"train.threads={args.threads}",
        f"train.eval_every={every}",
        f"train.save_every={every}",
        f"train.log_every={max(1, min(20, every))}",
        f"optim.warmup_steps={min(args.steps, max(30, args.steps // 100))}",
        *([f"optim.lr={args.lr}"] if args.lr else []),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(command)
    stopped_early = False
    while True:
        try:
            code = proc.wait(timeout=15)
            break
        except subprocess.TimeoutExpired:
            pass
        elapsed = time.perf_counter() - t0
        record["train"] = dict(training_record(run), seconds=round(elapsed, 1), finished=False)
        tr = record["train"]
        last_val = tr["val_curve"][-1] if tr["val_curve"] else {}
        print(
            f"train: step {tr['last_step']}/{args.steps} at {elapsed:.0f} s "
            f"({tr['last_step'] / max(elapsed, 1e-9):.1f} steps/s incl. start-up), loss {tr['train_loss']}, "
            f"val position error {last_val.get('val_position_error')} (step {last_val.get('step')})",
            flush=True,
        )
        dump()
        if args.train_seconds > 0 and elapsed > args.train_seconds:
            proc.terminate()
            proc.wait()
            stopped_early, code = True, 0
            print(f"train: stopped at --train-seconds {args.train_seconds:.0f}", flush=True)
            break
    if code != 0:
        record["train_error"] = f"training exited with {code}"
        dump()
        raise SystemExit(f"training exited with {code}")
    train_seconds = time.perf_counter() - t0
    tr = training_record(run)
    record["train"] = dict(
        tr,
        seconds=round(train_seconds, 1),
        finished=not stopped_early,
        reused=reused,
        steps_per_s=None if reused else round(tr["last_step"] / max(train_seconds, 1e-9), 2),
    )
    dump()
    from physworld.evaluation.vision import evaluate_visual_expert
    from physworld.models.visual_expert import load_visual_expert
    from physworld.recipes.visual_expert import resolve_device

    model, info = load_visual_expert(run / "checkpoints" / "best.safetensors")
    model.to(resolve_device(args.device))
    results = {}
    t0 = time.perf_counter()
    for split, group in (("val", "seen"), ("heldout", "heldout")):
        metrics = evaluate_visual_expert(
            model, work / split, seen_types=info["train_scenario_types"], progress=False
        )
        (work / f"metrics_{split}.json").write_text(json.dumps(metrics, indent=1))
        results[f"{group} ({split})"] = metrics["groups"][group]
        record["results"] = results
        dump()
    record["eval_seconds"] = round(time.perf_counter() - t0, 1)
    vals = tr["val_curve"]
    print(
        f"trained {tr['last_step']} steps on {record['device_name']}"
        + (" (the finished run in --work, reused)" if reused else f" in {train_seconds:.0f} s wall")
        + (" (stopped by --train-seconds)" if stopped_early else "")
        + f" (train loss {tr['train_loss']:.3f}"
        + (
            f"; val loss {vals[-1]['val_loss']:.3f}, best {min(v['val_loss'] for v in vals):.3f}"
            if vals
            else ""
        )
        + ")\n"
    )
    record["table"] = table(results)
    dump()
    print(record["table"])


if __name__ == "__main__":
    main()
