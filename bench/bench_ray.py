"""Generation on Ray against local worker processes, on the same shards, in one run.

  no-op task     a Ray task that returns at once, against a process-pool call doing the same: the
                 price of one task (why a Ray task is a shard, never a scene).
  serial         generate(num_workers=1): the shards one after another in this process.
  2 processes    generate(num_workers=2): the local process pool.
  ray 1 node     generate(ray_address=...) on a cluster of one node with one CPU.
  ray 2 nodes    the same on a cluster of two nodes (two raylets on this machine) of one CPU each.
Every run writes into a fresh directory and all their files must be byte-identical; each cluster is
started before its timing and warmed with no-op tasks on every node, so timings hold the shards only.

    python bench/bench_ray.py [--shards 8] [--scenes-per-shard 4] [--frames 200]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from physworld.data.generate import GenerateConfig, generate
from physworld.data.ray_shards import start_local_cluster, stop_local_cluster


def noop(_=None):
    return b""


def files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def timed_generate(config, out: Path, **kwargs) -> float:
    started = time.perf_counter()
    generate(config, out, progress=False, **kwargs)
    return time.perf_counter() - started


def ray_round(config, num_nodes: int, work: Path, noop_tasks: int) -> tuple[float, float]:
    import ray

    from physworld.data.ray_shards import run_shards

    temp = Path(tempfile.mkdtemp(prefix="/tmp/pwbr"))
    address, procs = start_local_cluster(num_nodes, temp)
    try:
        ray.init(address=address, log_to_driver=False)
        run_shards(ray, noop, 4 * num_nodes, lambda i: (), lambda i, d: None)  # start a worker per node
        started = time.perf_counter()
        run_shards(ray, noop, noop_tasks, lambda i: (), lambda i, d: None, max_in_flight=noop_tasks)
        per_noop = (time.perf_counter() - started) / noop_tasks
        seconds = timed_generate(config, work / f"ray{num_nodes}", ray_address=address)
    finally:
        ray.shutdown()
        stop_local_cluster(procs)
        shutil.rmtree(temp, ignore_errors=True)
    return per_noop, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--scenes-per-shard", type=int, default=4)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--noop-tasks", type=int, default=200)
    args = parser.parse_args()
    # one type, so every shard costs about the same and the split over workers is even
    config = GenerateConfig(
        ("pendulum",),
        num_scenes_per_type=args.shards * args.scenes_per_shard,
        frames_per_scene=args.frames,
        scenes_per_shard=args.scenes_per_shard,
    )
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])
    )  # the nodes import this checkout
    work = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        ctx = mp.get_context("fork")
        with ctx.Pool(2) as pool:
            pool.map(noop, range(4))
            started = time.perf_counter()
            for _ in pool.imap_unordered(noop, range(args.noop_tasks)):
                pass
            pool_noop = (time.perf_counter() - started) / args.noop_tasks
        rows = {
            "serial": timed_generate(config, work / "serial", num_workers=1),
            "2 processes": timed_generate(config, work / "pool", num_workers=2),
        }
        ray1_noop, rows["ray 1 node x 1 CPU"] = ray_round(config, 1, work, args.noop_tasks)
        ray2_noop, rows["ray 2 nodes x 1 CPU"] = ray_round(config, 2, work, args.noop_tasks)
        reference = files(work / "serial")
        identical = all(files(work / d) == reference for d in ("pool", "ray1", "ray2"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"{config.num_scenes} pendulum scenes x {args.frames} frames in {config.num_shards} shards of "
        f"{args.scenes_per_shard}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, {platform.processor()}"
    )
    print("\n| run | wall s | scenes/s | speed vs serial |\n|---|---|---|---|")
    for name, seconds in rows.items():
        print(
            f"| {name} | {seconds:.2f} | {config.num_scenes / seconds:.1f} | {rows['serial'] / seconds:.2f}x |"
        )
    print(f"\nray 2 nodes vs 1 node: **{rows['ray 1 node x 1 CPU'] / rows['ray 2 nodes x 1 CPU']:.2f}x**")
    print(f"ray 2 nodes vs 2 local processes: {rows['2 processes'] / rows['ray 2 nodes x 1 CPU']:.2f}x")
    print(
        f"no-op task: process pool {pool_noop * 1e3:.2f} ms, ray 1 node {ray1_noop * 1e3:.2f} ms, "
        f"ray 2 nodes {ray2_noop * 1e3:.2f} ms"
    )
    print(f"all outputs byte-identical: {identical}")
    if not identical:
        raise SystemExit("outputs differ")


if __name__ == "__main__":
    main()
