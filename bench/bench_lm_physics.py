"""Does a small GPT learn physics from text on a CPU? The GPT, the PhysicsExpert and the baselines on
the same scenes, one run, every step through the `physworld` CLI.

  data      train: billiards, explosion, head_on, projectile (40 scenes each, seed 1, 200 frames);
            val: the collision category plus ramp_roll (4 each, seed 2), so bowling and ramp_roll
            are held-out types.
  gpt       configs/gpt/small.yaml (4 layers, 128 wide, muP, character tokens, 3 context frames,
            completion-only loss) for --gpt-steps steps.
  pe        configs/physics_expert/quickstart.yaml on the same data, for comparison.
  evaluate  both with 10 context frames and --rollout-frames predicted frames on the same val
            scenes (up to --max-scenes-per-type per type), then one leaderboard page.

Every step resumes: rerunning with the same --work reuses finished data, runs and evaluations, so a
killed run loses nothing. Prints a markdown table of mean position error at horizons 1 and 20,
over the rollout, MSE at 20 and parse failures, for seen and held-out types.

    python bench/bench_lm_physics.py [--work /tmp/physworld-lm-physics] [--gpt-steps 1500] \
        [--gpt-set model.attn_mult=4.0 ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_TYPES = ["billiards", "explosion", "head_on", "projectile"]


def physworld(*args: str) -> float:
    """Run one CLI command; returns its wall time in seconds."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "physworld.cli", *args], check=True)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/physworld-lm-physics"))
    ap.add_argument("--gpt-steps", type=int, default=1500)
    ap.add_argument("--max-scenes-per-type", type=int, default=4)
    ap.add_argument("--rollout-frames", type=int, default=20)
    ap.add_argument("--gpt-set", nargs="*", default=[], metavar="KEY=VALUE", help="GPT config overrides")
    args = ap.parse_args()
    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    seconds = {}
    if not (w / "train" / "manifest.json").exists():
        physworld("generate", "--output-dir", str(w / "train"), "--scenario-types", *TRAIN_TYPES,
                  "--num-scenes-per-type", "40", "--seed", "1", "--quiet")  # fmt: skip
    if not (w / "val" / "manifest.json").exists():
        physworld("generate", "--output-dir", str(w / "val"), "--scenario-types", "collision", "ramp_roll",
                  "--num-scenes-per-type", "4", "--seed", "2", "--quiet")  # fmt: skip
    data = [f"data.train_dir={w / 'train'}", f"data.val_dir={w / 'val'}", "data.scenario_types=[seen]"]
    runs = {
        "gpt": (
            ["train", "gpt", "--config", str(ROOT / "configs/gpt/small.yaml"), *data,
             f"train.output_dir={w / 'gpt_run'}", f"train.max_steps={args.gpt_steps}", "train.eval_every=250", *args.gpt_set],
            w / "gpt_run",
        ),
        "physics-expert": (
            ["train", "physics-expert", "--config", str(ROOT / "configs/physics_expert/quickstart.yaml"), *data,
             f"train.output_dir={w / 'pe_run'}"],
            w / "pe_run",
        ),
    }  # fmt: skip
    for model, (command, run) in runs.items():
        if not (run / "summary.json").exists():
            seconds[f"train {model}"] = physworld(*command, "--quiet")
        out = w / f"eval_{model}"
        if not (out / "metrics.json").exists():
            seconds[f"evaluate {model}"] = physworld(
                "evaluate", "--model", model, "--checkpoint", str(run / "checkpoints" / "best.safetensors"),
                "--val-dir", str(w / "val"), "--output-dir", str(out), "--context-frames", "10",
                "--rollout-frames", str(args.rollout_frames), "--max-scenes-per-type",
                str(args.max_scenes_per_type), "--no-render", "--quiet", "--label", model,
            )  # fmt: skip
    physworld(
        "report", str(w / "eval_gpt"), str(w / "eval_physics-expert"), "--output", str(w / "leaderboard.html")
    )

    metrics = {m: json.loads((w / f"eval_{m}" / "metrics.json").read_text()) for m in runs}
    gpt_summary = json.loads((w / "gpt_run" / "summary.json").read_text())
    print(f"# {json.dumps({k: round(v, 1) for k, v in seconds.items()})} seconds this run")
    print(
        f"# GPT: {gpt_summary.get('steps', '?')} steps, best val_loss {gpt_summary.get('best_val_loss', '?')}"
    )
    h = str(args.rollout_frames)
    print(
        f"| split | method | error @1 px | error @{h} px | error over rollout px | MSE @{h} px² | parse failures |"
    )
    print("|---|---|---|---|---|---|---|")
    for split in ("seen", "heldout"):
        rows = [(m, metrics[m]["aggregate"][split]["model"]) for m in runs]
        rows += [
            (b, metrics["gpt"]["aggregate"][split][b]) for b in metrics["gpt"]["methods"] if b != "model"
        ]
        for name, r in rows:
            e, mse = r["position_error_px"], r["position_mse_px2"]
            print(
                f"| {split} | {name} | {_fmt(e['1'])} | {_fmt(e[h])} | {_fmt(e['all'])} | {_fmt(mse[h])} | "
                f"{r.get('parse_failures', 0)} |"
            )
    scenes = metrics["gpt"]["dataset"]["num_scenes"]
    print(
        f"# {scenes} val scenes x {args.rollout_frames} predicted frames; leaderboard: {w / 'leaderboard.html'}"
    )


def _fmt(v) -> str:
    return "diverged" if v is None else f"{v:.2f}"


if __name__ == "__main__":
    main()
