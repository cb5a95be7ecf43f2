"""What verifying shard checksums on open costs the readers: Dataset(verify=True) against verify=False.

A Dataset hashes each shard (sha256, the whole file) the first time it reads from it, and checks the
manifest, index and every decoded scene (the scene the index names, finite states) always. This
times (CPU time of this process, the figure compared, and wall time), side by side and interleaved
(fastest of --repeats, a fresh Dataset each time, files in the page cache for both), the three ways the project reads a store:

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


def timed(fn, *args) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds). CPU time is the figure compared: on a shared,
    loaded machine wall time mostly measures the other processes."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn(*args)
    return time.process_time() - c0, time.perf_counter() - t0


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
            f"fastest of {args.repeats}"
        )
        for path in shards:  # page cache warm for both sides
            path.read_bytes()
        hash_cpu = [timed(lambda: [sha256_file(s) for s in shards])[0] for _ in range(args.repeats)]
        print(
            f"sha256 alone: {size / 1e6 / min(hash_cpu):.0f} MB per CPU second ({min(hash_cpu) * 1e3:.1f} ms)\n"
        )
        print(
            "| read | CPU without verification | CPU with verification | ratio | wall without | wall with |"
        )
        print("|---|---|---|---|---|---|")
        for name, fn in (("lookup", lookup), ("evaluate", evaluate_read), ("full", full)):
            plain, checked = [], []
            for r in range(
                args.repeats
            ):  # interleaved, first one side then the other, so load hits both alike
                for verify in (False, True) if r % 2 else (True, False):
                    (checked if verify else plain).append(timed(fn, root, verify))
            # The fastest of the repeats: on a shared machine the others measure the neighbours' load.
            (a, wa), (b, wb) = ([min(t[i] for t in runs) for i in (0, 1)] for runs in (plain, checked))
            print(
                f"| {name} | {a * 1e3:.1f} ms | {b * 1e3:.1f} ms | {b / a:.2f}x | {wa * 1e3:.1f} ms | {wb * 1e3:.1f} ms |"
            )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
