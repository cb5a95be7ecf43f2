"""Intuitive physics of a small V-JEPA: violation-of-expectation accuracy and linear probes, beside a
randomly initialised encoder of the same config and pixel baselines, all in one run.

Steps (each a physworld command, printed as it runs; every step resumes if its output is there):
1. training clips: seen 2D types, 64 x 64, 16 frames at 12 frames/s (the model reads 8-frame windows);
2. `physworld train vjepa` on them for --train-steps steps (a few CPU minutes), unless --checkpoint;
3. VoE pairs of seen and held-out 2D types (16 frames, the six kinds), scored by `physworld voe`;
4. clips of every 2D type (another seed) and `physworld probe` on them.
Writes OUT/voe.json, OUT/probe.json and OUT/summary.md (the tables BENCHMARKS.md quotes).

    python bench/bench_voe.py                                  # about 10-20 CPU minutes on a shared machine
    python bench/bench_voe.py --checkpoint runs/vjepa/checkpoints/latest.safetensors --out-dir /tmp/bench_voe2
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

MODEL = {  # the bench's V-JEPA: small enough for a few CPU minutes at 64 x 64
    "model.image_size": 64,
    "model.frames": 8,
    "model.tubelet": 2,
    "model.patch": 8,
    "model.dim": 96,
    "model.depth": 4,
    "model.heads": 4,
    "model.pred_dim": 64,
    "model.pred_depth": 2,
    "model.pred_heads": 4,
}


def run(argv: list[str]) -> float:
    print("$ physworld " + shlex.join(argv), flush=True)
    t = time.perf_counter()
    # One torch thread: small models on a shared 2-core machine (more threads only contend).
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run([sys.executable, "-m", "physworld.cli", *argv], check=True, env=env)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/bench_voe"))
    ap.add_argument("--checkpoint", help="score this vjepa checkpoint instead of training one")
    ap.add_argument("--train-steps", type=int, default=150)
    ap.add_argument("--train-scenes-per-type", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=96)
    ap.add_argument("--probe-scenes-per-type", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    times = {}

    checkpoint = args.checkpoint
    if checkpoint is None:
        train_dir = out / "train"
        if not (train_dir / "clips" / "manifest.json").exists():
            times["train data"] = run(["generate", "--output-dir", str(train_dir), "--scenario-types", "seen",
                                       "--num-scenes-per-type", str(args.train_scenes_per_type),
                                       "--frames-per-scene", "80", "--with-clips", "--clip-resolution", "64",
                                       "--clip-frames", "16", "--no-clip-captions", "--num-workers", "1",
                                       "--seed", str(args.seed), "--quiet"])  # fmt: skip
        run_dir = out / "vjepa"
        overrides = [f"{k}={v}" for k, v in MODEL.items()]
        overrides += [f"data.train_dir={train_dir}", f"train.output_dir={run_dir}", f"train.max_steps={args.train_steps}",
                      "train.save_every=100", "train.eval_every=100000", "data.num_workers=0", "data.batch_size=8",
                      "optim.warmup_steps=30", f"train.seed={args.seed}", "train.tensorboard=false"]  # fmt: skip
        times["train"] = run(["train", "vjepa", "--config", "configs/vjepa/tiny.yaml", *overrides])
        checkpoint = str(run_dir / "checkpoints" / "latest.safetensors")

    pairs = out / "pairs"
    if not (pairs / "manifest.json").exists():
        times["voe pairs"] = run(["voe-pairs", "--out", str(pairs), "--scenarios", "seen", "heldout",
                                  "--pairs", str(args.pairs), "--resolution", "64", "--frames", "16",
                                  "--seed", str(args.seed), "--quiet"])  # fmt: skip
    times["voe"] = run(["voe", "--checkpoint", checkpoint, "--pairs", str(pairs), "--output", str(out / "voe.json"),
                        "--seed", str(args.seed), "--quiet"])  # fmt: skip

    probe_dir = out / "probe"
    if not (probe_dir / "clips" / "manifest.json").exists():
        times["probe data"] = run(["generate", "--output-dir", str(probe_dir), "--scenario-types", "all",
                                   "--num-scenes-per-type", str(args.probe_scenes_per_type), "--frames-per-scene", "45",
                                   "--with-clips", "--clip-resolution", "64", "--clip-frames", "8",
                                   "--no-clip-captions", "--num-workers", "1", "--seed", str(args.seed + 1),
                                   "--quiet"])  # fmt: skip
    times["probe"] = run(["probe", "--checkpoint", checkpoint, "--clips-dir", str(probe_dir / "clips"),
                          "--output", str(out / "probe.json"), "--seed", str(args.seed), "--quiet"])  # fmt: skip

    from physworld.evaluation.intuitive_physics import probe_table, voe_table

    voe = json.loads((out / "voe.json").read_text())
    probe = json.loads((out / "probe.json").read_text())
    summary = [
        f"checkpoint: {checkpoint}",
        "seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()),
        "",
        voe_table(voe),
        "",
        probe_table(probe),
    ]
    (out / "summary.md").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
