"""The state-space family, measured: (a) the scan's speed, (b) an ablation on the same scenes.

(a) `python bench/bench_ssm.py scan`: tokens/s of one Mamba mixer (d_model 64, d_state 16, expand 2,
    conv 4) over sequences of 32 rows, forward (no grad) and forward + backward, for
      - the PhysicsSSM block with its parallel scan (models/ssm.py: linear_recurrence), with rows in
      cache-sized blocks (the default) and all in one block,
      - the same block with the scan as a Python loop over time (selective_scan_reference),
      - transformers' MambaMixer at the same width on its torch path (no CUDA kernels here: its
        sequence form is a Python loop over time),
    and the recurrent step (one frame for 32 rows) that rollouts use, against re-running the parallel
    pass over the whole prefix each frame. Interleaved repeats, median; ratios come from one run.

(b) `python bench/bench_ssm.py ablation --output-dir /tmp/ssm_ablation`: through the CLI, on the same
    scenes (the quickstart's: seen types for training, every type for evaluation): generate -> train ->
    evaluate for the PhysicsSSM with its gate, without it (model.gate=false), and the PhysicsExpert
    (quickstart preset), each with train.threads=1 and a step budget; prints one table of seen and
    held-out errors beside the analytic baselines (from the same evaluation). Reruns reuse finished
    stages (a finished run's summary.json, an evaluation's metrics.json).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- (a) the scan


def bench_scan(lengths, rows: int, repeats: int) -> list[dict]:
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the mixer's kernel lookup must not wait on a network
    from transformers import MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer

    from physworld.models import ssm

    torch.set_num_threads(1)
    torch.manual_seed(0)
    d_model, d_state = 64, 16
    ours = ssm.MambaBlock(ssm.SSMConfig(d_model=d_model, d_state=d_state, expand=2, d_conv=4))
    hf = MambaMixer(
        MambaConfig(hidden_size=d_model, state_size=d_state, expand=2, conv_kernel=4, time_step_rank=4),
        layer_idx=0,
    )
    unblocked = functools.partial(ssm.selective_scan, block_elements=1 << 62)  # all rows in one block
    hf_params = sum(p.numel() for p in hf.parameters())
    our_params = sum(p.numel() for p in ours.parameters())
    runs = {
        "PhysicsSSM block, parallel scan": lambda x: ours(x),
        "PhysicsSSM block, parallel scan, rows not blocked": lambda x: ours(x, scan=unblocked),
        "PhysicsSSM block, Python loop over time": lambda x: ours(x, scan=ssm.selective_scan_reference),
        "transformers MambaMixer (torch path)": lambda x: hf(x),
    }

    def timed(fn, x, backward: bool) -> float:
        start = time.perf_counter()
        if backward:
            fn(x).square().mean().backward()
        else:
            with torch.no_grad():
                fn(x)
        return time.perf_counter() - start

    results = []
    for steps in lengths:
        x = torch.randn(rows, steps, d_model)
        for backward in (False, True):
            times = {name: [] for name in runs}
            for fn in runs.values():  # warm-up
                timed(fn, x.clone().requires_grad_(backward), backward)
            for _ in range(repeats):
                for name, fn in runs.items():
                    times[name].append(timed(fn, x.clone().requires_grad_(backward), backward))
            base = statistics.median(times["PhysicsSSM block, parallel scan"])
            for name in runs:
                t = statistics.median(times[name])
                results.append(
                    {
                        "what": name,
                        "T": steps,
                        "mode": "forward + backward" if backward else "forward",
                        "tokens_per_s": rows * steps / t,
                        "vs_parallel": base / t,
                    }
                )

    # The recurrent step against recomputing the parallel pass over the prefix, at frame `steps`.
    steps = max(lengths)
    x = torch.randn(rows, steps, d_model)
    with torch.no_grad():
        cache = ours.init_cache(rows)
        for t in range(steps - 1):
            _, cache = ours.step(x[:, t], cache)
        step_times, prefix_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(10):
                ours.step(x[:, -1], cache)
            step_times.append((time.perf_counter() - start) / 10)
            start = time.perf_counter()
            ours(x)
            prefix_times.append(time.perf_counter() - start)
    step_s, prefix_s = statistics.median(step_times), statistics.median(prefix_times)
    results.append(
        {
            "what": "recurrent step (one new frame)",
            "T": steps,
            "mode": "rollout",
            "tokens_per_s": rows / step_s,
            "vs_parallel": prefix_s / step_s,
        }
    )
    print(f"parameters: PhysicsSSM block {our_params:,}, transformers MambaMixer {hf_params:,}")
    print(
        f"{rows} rows, d_model {d_model}, d_state {d_state}, expand 2, conv 4, 1 thread, median of {repeats}"
    )
    print("| what | T | mode | tokens/s | speed vs parallel scan |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['what']} | {r['T']} | {r['mode']} | {r['tokens_per_s']:,.0f} | {r['vs_parallel']:.3g}x |"
        )
    print(
        "(rollout row: speed of one recurrent step vs re-running the parallel pass over all "
        f"{steps} frames to get the newest one)"
    )
    return results


# ---------------------------------------------------------------- (b) the ablation


def physworld(*args: str) -> None:
    cmd = [sys.executable, "-m", "physworld.cli", *args]
    print("$ physworld " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def ablation(out: Path, ssm_steps: int, pe_steps: int, context: int, rollout: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    train_dir, val_dir = out / "data" / "train", out / "data" / "val"
    if not (train_dir / "manifest.json").exists():
        physworld("generate", "--output-dir", str(train_dir), "--scenario-types", "seen",
                  "--num-scenes-per-type", "8", "--seed", "0", "--quiet")  # fmt: skip
    if not (val_dir / "manifest.json").exists():
        physworld("generate", "--output-dir", str(val_dir), "--scenario-types", "all",
                  "--num-scenes-per-type", "2", "--seed", "1", "--quiet")  # fmt: skip
    common = [f"data.train_dir={train_dir}", f"data.val_dir={val_dir}", "train.threads=1"]
    runs = {
        "PhysicsSSM, gate": ("ssm", "configs/ssm/quickstart.yaml", [f"train.max_steps={ssm_steps}"]),
        "PhysicsSSM, no gate": (
            "ssm",
            "configs/ssm/quickstart.yaml",
            [f"train.max_steps={ssm_steps}", "model.gate=false"],
        ),
        "PhysicsExpert": (
            "physics-expert",
            "configs/physics_expert/quickstart.yaml",
            [f"train.max_steps={pe_steps}"],
        ),
    }
    table = {}
    for label, (recipe, config, extra) in runs.items():
        slug = label.lower().replace(", ", "_").replace(" ", "_")
        run_dir, eval_dir = out / "runs" / slug, out / "eval" / slug
        timing_file = run_dir / "bench_train_seconds.json"
        if not (run_dir / "summary.json").exists():
            start = time.perf_counter()
            physworld("train", recipe, "--quiet", "--config", str(ROOT / config),
                      f"train.output_dir={run_dir}", *common, *extra)  # fmt: skip
            timing_file.write_text(json.dumps({"seconds": time.perf_counter() - start}))
        if not (eval_dir / "metrics.json").exists():
            physworld("evaluate", "--model", recipe, "--checkpoint", str(run_dir / "checkpoints" / "best.safetensors"),
                      "--val-dir", str(val_dir), "--output-dir", str(eval_dir), "--context-frames", str(context),
                      "--rollout-frames", str(rollout), "--no-render", "--quiet", "--label", label)  # fmt: skip
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        seconds = json.loads(timing_file.read_text())["seconds"] if timing_file.exists() else float("nan")
        steps = json.loads((run_dir / "summary.json").read_text())["steps"]
        table[label] = {"metrics": metrics, "train_seconds": seconds, "steps": steps}

    gates = gate_statistics(out / "runs" / "physicsssm_gate" / "checkpoints" / "best.safetensors", val_dir)
    print(
        f"learned gate on {gates['sequences']} validation sequences (1 = the SSM, 0 = the ballistic prior): "
        f"mean ax {gates['mean'][0]:.3f}, ay {gates['mean'][1]:.3f}, angular {gates['mean'][2]:.3f}; "
        f"{100 * gates['below_half']:.1f}% of values below 0.5"
    )
    horizon = str(rollout)
    first = next(iter(table.values()))["metrics"]
    print(
        f"{first['dataset']['num_scenes']} evaluation scenes, {context} context frames, {rollout} predicted; "
        f"seen types {len(first['dataset']['seen_types'])}, held-out {len(first['dataset']['heldout_types'])}"
    )
    print(
        f"| split | method | train steps | train s | error @{horizon} px | error over rollout px | MSE @{horizon} px² |"
    )
    print("|---|---|---|---|---|---|---|")
    for split in ("seen", "heldout"):
        rows = [
            (label, t["metrics"]["aggregate"][split]["model"], t["steps"], t["train_seconds"])
            for label, t in table.items()
        ]
        rows += [
            (m.replace("_", " "), first["aggregate"][split][m], "", "")
            for m in ("constant_position", "constant_velocity", "ballistic", "chaos_floor")
        ]
        for label, agg, steps, seconds in rows:
            err, mse = agg["position_error_px"], agg["position_mse_px2"]
            secs = f"{seconds:.0f}" if seconds != "" else ""
            print(
                f"| {split} | {label} | {steps} | {secs} | {err[horizon]:.2f} | {err['all']:.2f} | {mse[horizon]:.1f} |"
            )
    return table


def gate_statistics(checkpoint: Path, val_dir: Path, sequences: int = 64) -> dict:
    """How far the learned gate leans on the SSM (1) or on the ballistic prior (0): the mean gate per
    acceleration component over the dynamic bodies of a fixed, seeded set of validation sequences."""
    import numpy as np
    import torch

    from physworld.data import windows
    from physworld.models import ssm

    model, _ = ssm.load_model(checkpoint)
    data = windows.WindowDataset(windows.prepare(val_dir, progress=False), history=model.config.seq_len)
    chosen = np.sort(np.random.default_rng(0).permutation(len(data))[:sequences])
    batch = ssm.collate_sequences([data[int(i)] for i in chosen])
    with torch.no_grad():
        gate = model(batch["states"][:, :-1], batch)["gate"]  # [R, T, 3]
    sc, who = model.rows(batch)
    dynamic = batch["body"][sc, who, ssm.KINEMATIC] < 0.5
    gate = gate[dynamic]  # [dynamic rows, T, 3]
    return {
        "mean": gate.mean(dim=(0, 1)).tolist(),
        "below_half": float((gate < 0.5).float().mean()),
        "sequences": len(chosen),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    scan = sub.add_parser("scan")
    scan.add_argument("--lengths", type=int, nargs="+", default=[32, 128, 512])
    scan.add_argument("--rows", type=int, default=32)
    scan.add_argument("--repeats", type=int, default=3)
    abl = sub.add_parser("ablation")
    abl.add_argument("--output-dir", type=Path, default=Path("/tmp/ssm_ablation"))
    abl.add_argument("--ssm-steps", type=int, default=600)
    abl.add_argument("--pe-steps", type=int, default=4000)
    abl.add_argument("--context-frames", type=int, default=10)
    abl.add_argument("--rollout-frames", type=int, default=20)
    args = parser.parse_args(argv)
    if args.part == "scan":
        bench_scan(args.lengths, args.rows, args.repeats)
    else:
        ablation(args.output_dir, args.ssm_steps, args.pe_steps, args.context_frames, args.rollout_frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
