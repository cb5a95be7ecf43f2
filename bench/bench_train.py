"""PhysicsExpert training throughput: samples per second, the loader's headroom, and FLOP/s.

All measured in one run on the same generated dataset:
  train step     forward + backward + AdamW step of the model at a preset's size, on pre-collated
                 batches (no loading): windows per second and ms per step.
  loader         the recipe's DataLoader (EpochSampler + collate_graphs) alone: windows per second.
                 The ratio loader / train says how far loading is from being the bottleneck
                 (target: at least 20x).
  FLOP/s         FLOPs of one training step (torch.utils.flop_counter: forward and backward matmuls)
                 divided by its time, as a fraction of a dense float32 matmul peak measured in the
                 same run (a 1024x1024 @ 1024x1024 matmul loop on the same threads).

    python bench/bench_train.py [--preset quickstart] [--scenes-per-type 4] [--steps 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from physworld.data import windows
from physworld.data.generate import GenerateConfig, generate
from physworld.models.physics_expert import PhysicsExpert
from physworld.recipes import physics_expert as recipe
from physworld.training.config import load_config
from physworld.training.loop_utils import matmul_peak_flops

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quickstart")
    ap.add_argument("--scenes-per-type", type=int, default=4)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--loader-seconds", type=float, default=5.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="physworld-train-bench-"))
    try:
        generate(
            GenerateConfig(
                scenario_types=("seen",), num_scenes_per_type=args.scenes_per_type, frames_per_scene=120
            ),
            work / "train",
            num_workers=2,
            progress=False,
        )
        cfg = load_config(
            ROOT / "configs" / "physics_expert" / f"{args.preset}.yaml",
            recipe.RecipeConfig,
            [f"data.train_dir={work / 'train'}", "data.val_dir=null", f"train.output_dir={work / 'run'}"],
        )
        prepared = windows.prepare(cfg.data.train_dir, progress=False)
        dataset = windows.WindowDataset(prepared, history=cfg.model.history)
        stats = {k: torch.as_tensor(v) for k, v in windows.load_stats(prepared).items()}
        torch.manual_seed(0)
        model = PhysicsExpert(cfg.model, stats=stats)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(0)
        loader = recipe.make_loader(dataset, cfg, seed=0, epoch=0, start=0)
        it = iter(loader)
        batches = [next(it) for _ in range(args.steps + 3)]

        def train_step(batch):
            batch = model.add_training_noise(batch, cfg.model.noise_std, gen)
            opt.zero_grad(set_to_none=True)
            loss = model.loss(batch)
            loss.backward()
            opt.step()

        for b in batches[:3]:
            train_step(b)
        t0 = time.perf_counter()
        windows_done = 0
        for b in batches[3:]:
            train_step(b)
            windows_done += b["num_graphs"]
        train_s = time.perf_counter() - t0
        train_rate = windows_done / train_s
        with FlopCounterMode(display=False) as counter:
            train_step(batches[3])
        step_flops = counter.get_total_flops()
        achieved = step_flops * args.steps / train_s
        peak = matmul_peak_flops()

        loader_rate = {}
        for workers in (0, 2):
            cfg.data.num_workers = workers
            count, t0 = 0, time.perf_counter()
            for b in recipe.make_loader(dataset, cfg, seed=1, epoch=0, start=0):
                count += b["num_graphs"]
                if time.perf_counter() - t0 > args.loader_seconds:
                    break
            loader_rate[workers] = count / (time.perf_counter() - t0)

        bodies = sum(int(b["history"].shape[0]) for b in batches[3:]) / max(windows_done, 1)
        print(
            f"# {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} "
            f"threads; preset {args.preset} ({model.num_parameters():,} parameters), batch "
            f"{cfg.data.batch_size} windows, {bodies:.1f} bodies per window, {len(dataset):,} windows"
        )
        print("| measure | value |")
        print("|---|---|")
        print(f"| training step | {1e3 * train_s / args.steps:.1f} ms ({train_rate:,.0f} windows/s) |")
        for w, rate in loader_rate.items():
            print(
                f"| loader, {w} workers | {rate:,.0f} windows/s = {rate / train_rate:.1f}x training consumption |"
            )
        print(f"| FLOPs per training step | {step_flops / 1e9:.2f} GFLOP |")
        print(f"| achieved | {achieved / 1e9:.2f} GFLOP/s |")
        print(f"| matmul peak (1024^3 fp32, same run) | {peak / 1e9:.1f} GFLOP/s |")
        print(f"| achieved / peak | {achieved / peak:.1%} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
