"""The Supervisor's measured question: does fine-tuning the Visual Expert on unlabelled out-of-distribution
clips against the frozen PhysicsExpert lower its state and parameter errors there?

    python bench/bench_supervisor.py --output-dir /tmp/supervisor_bench [--steps 150]

Through the CLI and the library, every stage reused when its output exists (a finished training run,
a generated dataset):

  1. labelled 2D data with clips (64 x 64, 8 frames at 15 fps; types TRAIN_TYPES, difficulty 1-2):
     train + val
  2. the PhysicsExpert (configs/physics_expert/quickstart.yaml, fewer steps) and the Visual Expert
     (configs/visual_expert/quickstart.yaml, fewer steps) on it
  3. four unlabelled splits (generate --split unlabelled): held-out types (OOD_TYPES, parameters as
     written) and the training types with --param-shift ood (heavier, slipperier, bouncier), each
     once to fine-tune on and once, with other seeds, to score on
  4. two fine-tunes of that Visual Expert on both fine-tune splits, same seed and steps: the full
     Supervisor, and the same with supervisor.lambda_phys=0
  5. scores on the two scoring splits apart (evaluation/vision.py: slots matched to the true bodies;
     position, velocity error, parameter errors) for: the Visual Expert before fine-tuning, the full
     fine-tune, the fine-tune without L_phys, the classical tracker (true masks' centroids, finite
     differences) and the training-mean parameters; and vision in the loop (evaluation/vision_loop.py)
     for the Visual Expert before and after
  6. writes <output-dir>/bench_supervisor.json, and supervisor_ood.json + vision_loop.json into the
     PhysicsExpert's evaluation on the held-out-types split (eval/), then `physworld report` on it, so
     the report shows the OOD and vision-in-the-loop sections; prints the tables BENCHMARKS.md holds.

Every training run uses train.threads=1. The numbers are from small models trained for minutes: they
answer the question for this setting, not in general.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRAIN_TYPES = ["billiards", "head_on", "projectile"]
OOD_TYPES = ["ramp_roll", "pong"]  # registry held-out types, never in the Visual Expert's training
CLIP = [
    "--with-clips",
    "--clip-resolution",
    "64",
    "--clip-frames",
    "8",
    "--clip-fps",
    "15",
    "--no-clip-captions",
]


def cli(*args: str) -> None:
    from physworld.cli import main

    code = main([str(a) for a in args])
    if code != 0:
        raise SystemExit(f"physworld {' '.join(map(str, args))} exited {code}")


def generate(out: Path, types, per_type: int, seed: int, *extra) -> Path:
    if not (out / "clips" / "manifest.json").exists():
        cli(
            "generate", "--output-dir", out, "--scenario-types", *types, "--num-scenes-per-type", per_type,
            "--frames-per-scene", 60, "--difficulty-range", 1, 2, "--seed", seed, "--num-workers", 1, "--quiet",
            *CLIP, *extra,
        )  # fmt: skip
    return out


def train(recipe: str, config: str, out: Path, *overrides) -> Path:
    if not (out / "summary.json").exists():
        t = time.perf_counter()
        cli(
            "train",
            recipe,
            "--config",
            ROOT / config,
            f"train.output_dir={out}",
            "train.threads=1",
            *overrides,
            "--quiet",
        )
        print(f"  {recipe} -> {out}: {time.perf_counter() - t:.0f} s", flush=True)
    return out / "checkpoints" / "latest.safetensors"


def score(model, data_dir, seen) -> dict:
    from physworld.evaluation.vision import evaluate_visual_expert

    return evaluate_visual_expert(model, data_dir, seen_types=seen, progress=False)["groups"]["all"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=150, help="fine-tuning steps")
    ap.add_argument("--ve-steps", type=int, default=400)
    ap.add_argument("--pe-steps", type=int, default=600)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    out = args.output_dir
    t_all = time.perf_counter()
    data = out / "data"
    train_dir = generate(data / "train", TRAIN_TYPES, 24, 0)
    val_dir = generate(data / "val", TRAIN_TYPES, 6, 1)
    unl = ["--split", "unlabelled"]
    ft_types = generate(data / "ft_types", OOD_TYPES, 16, 11, *unl)
    ft_shift = generate(data / "ft_shift", TRAIN_TYPES, 12, 12, "--param-shift", "ood", *unl)
    ev_types = generate(data / "ev_types", OOD_TYPES, 10, 21, *unl)
    ev_shift = generate(data / "ev_shift", TRAIN_TYPES, 8, 22, "--param-shift", "ood", *unl)

    pe_ckpt = train(
        "physics-expert", "configs/physics_expert/quickstart.yaml", out / "pe",
        f"data.train_dir={train_dir}", f"data.val_dir={val_dir}", "data.scenario_types=[all]",
        f"train.max_steps={args.pe_steps}", "train.eval_every=200", "train.save_every=200",
    )  # fmt: skip
    ve_ckpt = train(
        "visual-expert", "configs/visual_expert/quickstart.yaml", out / "ve",
        f"data.train_dir={train_dir}", f"data.val_dir={val_dir}",
        f"train.max_steps={args.ve_steps}", "train.eval_every=200", "train.save_every=200",
    )  # fmt: skip
    common = [
        f"data.unlabelled_dirs=[{ft_types},{ft_shift}]",
        f"visual_expert={ve_ckpt}",
        f"physics_expert={pe_ckpt}",
        f"train.max_steps={args.steps}",
        "train.save_every=50",
        "train.log_every=10",
    ]
    t = time.perf_counter()
    full_ckpt = train("supervisor", "configs/supervisor/small.yaml", out / "ft_full", *common)
    nophys_ckpt = train(
        "supervisor", "configs/supervisor/small.yaml", out / "ft_nophys", *common, "supervisor.lambda_phys=0"
    )
    finetune_s = time.perf_counter() - t

    from physworld.evaluation.vision_loop import vision_loop
    from physworld.evaluation.vision_report import write_ood
    from physworld.models.physics_expert import load_model
    from physworld.models.supervisor import load_finetuned
    from physworld.models.visual_expert import load_visual_expert
    from physworld.training.metrics import read_metrics

    before, info = load_visual_expert(ve_ckpt)
    full, _ = load_finetuned(full_ckpt)
    nophys, _ = load_finetuned(nophys_ckpt)
    pe, _ = load_model(pe_ckpt)
    seen = info.get("train_scenario_types")
    result = {"splits": {}, "vision_loop": {}, "train_types": TRAIN_TYPES, "ood_types": OOD_TYPES}
    for split, d in (("heldout_types", ev_types), ("param_shift", ev_shift)):
        runs = {
            name: score(m, d, seen) for name, m in (("before", before), ("full", full), ("no_phys", nophys))
        }
        rows = {name: r["model"] for name, r in runs.items()}
        rows["tracker"] = runs["before"]["tracker"]
        rows["mean_params"] = runs["before"]["mean_params"]
        result["splits"][split] = {"rows": rows, "counts": runs["before"]["counts"], "data_dir": str(d)}
        result["vision_loop"][split] = {
            name: vision_loop(m, pe, d, rollout_frames=4, seen_types=seen, progress=False)
            for name, m in (("before", before), ("full", full))
        }
    curves = {}
    for name in ("ft_full", "ft_nophys"):
        rows = [r for r in read_metrics(out / name / "metrics.jsonl") if "phys" in r]
        curves[name] = {k: [rows[0][k], rows[-1][k]] for k in ("vis", "phys", "consistency", "loss")}
    result["loss_first_last"] = curves
    result["finetune_seconds_both"] = finetune_s
    result["total_seconds"] = time.perf_counter() - t_all

    # The report: the PhysicsExpert's own evaluation on the held-out-types split, with both sections.
    eval_dir = out / "eval"
    if not (eval_dir / "metrics.json").exists():
        cli(
            "evaluate", "--checkpoint", pe_ckpt, "--val-dir", ev_types, "--output-dir", eval_dir,
            "--context-frames", 12, "--rollout-frames", 16, "--no-render", "--quiet",
        )  # fmt: skip
    write_ood(eval_dir, result)
    from physworld.evaluation.vision_loop import FILE
    from physworld.fileio import atomic_write_json

    atomic_write_json(eval_dir / FILE, result["vision_loop"]["heldout_types"]["full"])
    atomic_write_json(out / "bench_supervisor.json", result)
    cli("report", eval_dir, "--output", eval_dir / "report.html")
    print_tables(result)


def _f(x, d=1):
    return "-" if x is None else f"{x:.{d}f}"


def print_tables(result: dict) -> None:
    names = {
        "before": "Visual Expert before fine-tuning",
        "full": "fine-tuned, full Supervisor",
        "no_phys": "fine-tuned, lambda_phys = 0",
        "tracker": "tracker (true masks)",
        "mean_params": "training-mean parameters",
    }
    for split, s in result["splits"].items():
        print(f"\n{split} ({s['counts']['windows']} windows, {s['counts']['pairs']} body-frames)")
        print("| | position (px) | velocity (px/s) | log mass rel | friction | restitution |")
        print("|---|---|---|---|---|---|")
        for key, r in s["rows"].items():
            print(
                f"| {names[key]} | {_f(r.get('position_error'))} | {_f(r.get('velocity_error'))} | "
                f"{_f(r.get('log_mass_rel_error'), 3)} | {_f(r.get('friction_error'), 3)} | "
                f"{_f(r.get('restitution_error'), 3)} |"
            )
    for split, v in result["vision_loop"].items():
        print(f"\nvision in the loop, {split}: mean position error over 1..4 clip frames (px)")
        for who, res in v.items():
            g = res["groups"].get("all", {}).get("rows", {})
            print(f"  VE {who}: " + ", ".join(f"{k} {_f(r['mean_over_horizons_px'])}" for k, r in g.items()))
    print("\nloss first/last step:", json.dumps(result["loss_first_last"]))
    print(
        f"fine-tuning both: {result['finetune_seconds_both']:.0f} s; whole bench {result['total_seconds']:.0f} s"
    )


if __name__ == "__main__":
    main()
