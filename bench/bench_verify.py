"""What verifying shard checksums on open costs the readers: Dataset(verify=True) against verify=False.

A Dataset hashes each shard (sha256, the whole file) the first time it reads from it, and checks the
manifest, index and every decoded scene (the scene the index names, finite states) always. This
times, side by side and interleaved (median of --repeats, a fresh Dataset each time, files in the page
cache for both), the three ways the project reads a store:

  lookup    open and read one scene from every shard (a scene viewer's or a sampler's first touch)
  evaluate  open and read the scenes `physworld evaluate` reads by default (up to 100 per type)
  full      open and decode every scene in storage order (what `prepare` does before training)

and the bare sha256 throughput of the shards. Generates a dataset of every scenario type
(--scenes-per-type scenes of --frames frames) or reuses --data-dir.

    python bench/bench_verify.py [--scenes-per-type 20] [--frames 200] [--repeats 5] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from physworld.data.generate import GenerateConfig, default_workers, generate
from physworld.data.store import Dataset
from physworld.evaluation.evaluate import select_scenes
from physworld.fileio import sha256_file


def lookup(root: Path, verify: bool) -> None:
    ds = Dataset(root, verify=verify)
    firsts, k = [], 0
    for entry in ds.manifest["shards"]:
        firsts.append(ds.index.column("scene_id")[k].as_py())
        k += entry["num_scenes"]
    for scene_id in firsts:
        ds.scene(scene_id)


def evaluate_read(root: Path, verify: bool) -> None:
    select_scenes(Dataset(root, verify=verify), max_per_type=100, min_frames=1)


def full(root: Path, verify: bool) -> None:
    for _ in Dataset(root, verify=verify).iter_scenes():
        pass


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenes-per-type", type=int, default=20)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--data-dir", type=Path, help="reuse this dataset instead of generating one")
    args = p.parse_args(argv)

    tmp = None
    root = args.data_dir
    if root is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench_verify_"))
        root = tmp / "data"
        config = GenerateConfig(
            scenario_types=("all",), num_scenes_per_type=args.scenes_per_type, frames_per_scene=args.frames
        )
        generate(config, root, num_workers=default_workers(), progress=True)
    try:
        ds = Dataset(root, verify=False)
        shards = [root / s["file"] for s in ds.manifest["shards"]]
        size = sum(s["bytes"] for s in ds.manifest["shards"])
        print(
            f"{len(ds)} scenes, {len(shards)} shards, {size / 1e6:.1f} MB; {platform.processor() or platform.machine()}, "
            f"median of {args.repeats}"
        )
        for path in shards:  # page cache warm for both sides
            path.read_bytes()
        hash_times = [timed(lambda: [sha256_file(s) for s in shards]) for _ in range(args.repeats)]
        print(f"sha256 alone: {size / 1e6 / statistics.median(hash_times):.0f} MB/s\n")
        print("| read | without verification | with verification | ratio |")
        print("|---|---|---|---|")
        for name, fn in (("lookup", lookup), ("evaluate", evaluate_read), ("full", full)):
            plain, checked = [], []
            for _ in range(args.repeats):  # interleaved, so load changes hit both sides alike
                plain.append(timed(fn, root, False))
                checked.append(timed(fn, root, True))
            a, b = statistics.median(plain), statistics.median(checked)
            print(f"| {name} | {a * 1e3:.1f} ms | {b * 1e3:.1f} ms | {b / a:.2f}x |")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
