"""Loader throughput: windows per second that a DataLoader over physworld.data.windows delivers.

Generates (or reuses, with --data-dir) a dataset of every registered scenario type, --scenes-per-type
scenes of --frames frames each, prepares it with windows.prepare (timed), and for each --workers value
runs a DataLoader (EpochSampler order, collate_graphs, batch size --batch-size) for --seconds after a
first, untimed batch (worker start-up), reporting delivered windows per second as a markdown table.
How that compares with what training consumes is measured by the training recipe's benchmark, which
calls `loader_throughput` from here.

    python bench/bench_loader.py [--scenes-per-type 4] [--frames 200] [--history 5] \
        [--batch-size 64] [--workers 0 2] [--seconds 10] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from physworld.data import windows
from physworld.data.generate import GenerateConfig, default_workers, generate


def loader_throughput(dataset, batch_size: int = 64, num_workers: int = 0, seconds: float = 10.0) -> float:
    """Windows per second delivered (sampled, loaded and collated into torch batches) by a DataLoader
    over `dataset`, measured for about `seconds` after the first batch; epochs repeat as needed."""
    if len(dataset) == 0:
        raise ValueError("the dataset has no windows")
    epoch, windows_seen, started = 0, 0, None
    while True:
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=windows.EpochSampler(len(dataset), seed=0, epoch=epoch),
            num_workers=num_workers,
            collate_fn=windows.collate_graphs,
        )
        for batch in loader:
            if started is None:  # the first batch pays for worker start-up; time from here
                started = time.perf_counter()
                continue
            windows_seen += batch["num_graphs"]
            if time.perf_counter() - started >= seconds:
                return windows_seen / (time.perf_counter() - started)
        epoch += 1


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenes-per-type", type=int, default=4)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--history", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--data-dir", type=Path, default=None, help="reuse (or create) the dataset here")
    args = p.parse_args(argv)

    scratch = None if args.data_dir else Path(tempfile.mkdtemp(prefix="bench_loader_"))
    try:
        run(args, args.data_dir or scratch / "ds")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def run(args, data_dir: Path) -> None:
    config = GenerateConfig(
        scenario_types=("all",), num_scenes_per_type=args.scenes_per_type, frames_per_scene=args.frames
    )
    generate(config, data_dir, num_workers=default_workers(), progress=False)
    meta = data_dir / windows.DEFAULT_SUBDIR / windows.META
    before = meta.stat().st_mtime_ns if meta.exists() else None
    t0 = time.perf_counter()
    prepared = windows.prepare(data_dir, progress=False)
    prep_s = time.perf_counter() - t0
    redone = before != (prepared / windows.META).stat().st_mtime_ns
    ds = windows.WindowDataset(prepared, history=args.history)
    scenes = ds.scenes
    bodies = scenes[:, windows.SCENE_FIELDS.index("num_bodies")]
    frames = scenes[:, windows.SCENE_FIELDS.index("num_frames")]
    mean_nodes = float(np.sum(bodies * (frames - args.history)) / len(ds))
    states_mb = (prepared / "states.npy").stat().st_size / 1e6

    prep = (
        f"prepare {prep_s:.2f} s ({len(scenes) / prep_s:.0f} scenes/s)"
        if redone
        else f"prepare skipped (up to date, {prep_s * 1e3:.0f} ms)"
    )
    print(
        f"{len(scenes)} scenes ({len(config.scenario_types)} types x {args.scenes_per_type}), {args.frames} frames, "
        f"history {args.history}: {len(ds)} windows, {mean_nodes:.1f} bodies per window on average; "
        f"{prep}; states.npy {states_mb:.1f} MB"
    )
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}, {args.seconds:g} s per row\n"
    )
    print("| DataLoader workers | batch size | windows/s | batches/s | bodies/s |")
    print("|---:|---:|---:|---:|---:|")
    for w in args.workers:
        rate = loader_throughput(ds, args.batch_size, w, args.seconds)
        print(
            f"| {w} | {args.batch_size} | {rate:,.0f} | {rate / args.batch_size:,.1f} | {rate * mean_nodes:,.0f} |"
        )


if __name__ == "__main__":
    main()
