"""The 3D PhysicsExpert against the 3D baselines: does a few CPU minutes of training beat them?

One run, all numbers side by side on the same scenes:
  1. generate a small 3D training set (the seen 3D types), a validation set (seen types, another
     seed: it picks the `best` checkpoint) and an evaluation set (every 3D type, so the held-out ones
     too, a third seed);
  2. train the quickstart preset (configs/physics_expert_3d/quickstart.yaml) for --steps steps, one
     thread;
  3. `physworld evaluate` it: autoregressive rollouts beside constant position, constant velocity,
     ballistic (gravity, with an inelastic floor) and the chaos floor, seen and held-out types apart;
  4. print position error (m) and orientation error (degrees) per split and method at each horizon,
     and the model's outcome per type; write everything to <output-dir>/bench.json.

    python bench/bench_physics_expert_3d.py [--output-dir /tmp/pe3d_bench] [--train-per-type 12]
        [--val-per-type 4] [--steps 2000] [--context 6] [--rollout 20]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from physworld.data.generate import GenerateConfig, generate
from physworld.evaluation.evaluate import evaluate
from physworld.fileio import atomic_write_json
from physworld.recipes import physics_expert_3d

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", type=Path, default=Path("/tmp/pe3d_bench"))
    ap.add_argument("--train-per-type", type=int, default=12)
    ap.add_argument("--val-per-type", type=int, default=4)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--context", type=int, default=6)
    ap.add_argument("--rollout", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    common = {"frames_per_scene": args.frames}
    generate(
        GenerateConfig(scenario_types=("seen3d",), num_scenes_per_type=args.train_per_type, seed=0, **common),
        out / "train",
        num_workers=1,
        progress=False,
    )  # a rerun resumes: an existing dataset of this config is reused
    generate(
        GenerateConfig(scenario_types=("seen3d",), num_scenes_per_type=2, seed=2_000_000, **common),
        out / "select",
        num_workers=1,
        progress=False,
    )
    generate(
        GenerateConfig(
            scenario_types=("3d",), num_scenes_per_type=args.val_per_type, seed=1_000_000, **common
        ),
        out / "val",
        num_workers=1,
        progress=False,
    )
    t_data = time.perf_counter() - t0

    t0 = time.perf_counter()
    summary = physics_expert_3d.main(
        str(ROOT / "configs" / "physics_expert_3d" / "quickstart.yaml"),
        [
            f"data.train_dir={out / 'train'}",
            f"data.val_dir={out / 'select'}",
            f"train.output_dir={out / 'run'}",
            f"train.max_steps={args.steps}",
            f"train.eval_every={max(args.steps // 4, 1)}",
            f"train.save_every={max(args.steps // 4, 1)}",
            "train.tensorboard=false",
        ],
        progress=True,
    )
    t_train = time.perf_counter() - t0

    t0 = time.perf_counter()
    metrics = evaluate(
        out / "run" / "checkpoints" / "best.safetensors",
        out / "val",
        out / "eval",
        model_name="physics-expert-3d",
        context_frames=args.context,
        rollout_frames=args.rollout,
        max_scenes_per_type=args.val_per_type,
        render=False,
        progress=True,
    )
    t_eval = time.perf_counter() - t0

    horizons = [str(h) for h in metrics["settings"]["horizons"]] + ["all"]
    print(
        f"\n3D PhysicsExpert, quickstart preset, {summary['steps']} steps ({t_train:.0f} s training, one thread); "
        f"data {t_data:.0f} s, evaluation {t_eval:.0f} s; {platform.processor() or platform.machine()}"
    )
    print(
        f"context {args.context} frames, rollout {args.rollout}; scenes: {metrics['dataset']['num_scenes']}"
    )
    table = {}
    for key, unit in (("position_error_m", "m"), ("orientation_error_deg", "deg")):
        print(f"\n{key} ({unit})")
        print(
            f"{'split':8s} {'method':18s} "
            + " ".join(f"{'h=' + h if h != 'all' else 'all':>9s}" for h in horizons)
        )
        for split in ("seen", "heldout"):
            for method in metrics["methods"]:
                row = metrics["aggregate"].get(split, {}).get(method)
                if row is None:
                    continue
                values = [row[key].get(h) for h in horizons]
                table.setdefault(split, {}).setdefault(method, {})[key] = dict(
                    zip(horizons, values, strict=True)
                )
                cells = " ".join(f"{v:9.4f}" if v is not None else f"{'diverged':>9s}" for v in values)
                print(f"{split:8s} {method:18s} {cells}")
    print("\nplausibility over the rollout: energy drift, penetration between bodies / into statics (m)")
    for split in ("seen", "heldout"):
        for method, row in metrics["aggregate"].get(split, {}).items():
            print(
                f"{split:8s} {method:18s} drift {row['energy_drift']:7.3f}  bodies {row['penetration_m']:7.4f}  "
                f"statics {row['static_penetration_m']:7.4f}"
            )
            table[split][method]["plausibility"] = {
                k: row[k] for k in ("energy_drift", "penetration_m", "static_penetration_m")
            }
    print(f"\nper type at horizon {horizons[-2]} (position error, m): model vs the best baseline")
    outcomes = {}
    for t, entry in sorted(metrics["per_type"].items(), key=lambda kv: (kv[1]["split"], kv[0])):
        h = horizons[-2]
        model = entry["model"]["position_error_m"][h]
        base = {
            m: entry[m]["position_error_m"][h]
            for m in ("constant_position", "constant_velocity", "ballistic")
        }
        best = min(base, key=lambda m: base[m] if base[m] is not None else float("inf"))
        verdict = "beats" if model is not None and model < base[best] else "loses to"
        outcomes[t] = {"split": entry["split"], "model": model, "best_baseline": best, "baseline": base[best]}
        print(f"  {t:18s} {entry['split']:8s} model {model:.4f}  {verdict} {best} {base[best]:.4f}")
    atomic_write_json(
        out / "bench.json",
        {
            "args": {k: str(v) for k, v in vars(args).items()},
            "steps": summary["steps"],
            "seconds": {"data": t_data, "train": t_train, "evaluate": t_eval},
            "aggregate": table,
            "per_type": outcomes,
        },
    )
    print(
        f"\n-> {out / 'bench.json'}; report: physworld report {out / 'eval'} --output {out / 'report.html'}"
    )


if __name__ == "__main__":
    main()
