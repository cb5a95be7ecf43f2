"""Generation speed: physworld generate against a bare `space.step` loop, and 2 workers against 1.

All in one run, on the same scenes:
  bare     build each scene's pymunk space and call space.step for every substep; nothing read,
           nothing stored. The floor any generator built on pymunk pays.
  simulate physworld.worlds.engine.simulate: the same stepping plus per-frame batch reads of
           every body, contact events, force fields and controllers.
  generate `generate(..., num_workers=1)` end to end: scenario functions, simulation, Parquet
           encoding with zstd, atomic writes, manifest and index.
  2 workers the same generate with num_workers=2 (into a fresh directory).
Each is repeated --repeats times, interleaved, and the median wall time is reported.

    python bench/bench_generate.py [--scenes-per-type 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from physworld.data.generate import GenerateConfig, generate, scene_plan
from physworld.worlds.engine import build_space, simulate
from physworld.worlds.registry import CATEGORY_OF, make_spec


def bare_loop(specs, frames):
    for spec in specs:
        space, _ = build_space(spec)
        h = spec["world"]["dt"] / spec["world"]["substeps"]
        for _ in range(frames * spec["world"]["substeps"]):
            space.step(h)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes-per-type", type=int, default=6)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    config = GenerateConfig(
        scenario_types=("all",),
        num_scenes_per_type=args.scenes_per_type,
        frames_per_scene=args.frames,
        scenes_per_shard=8,
    )
    plans = [scene_plan(config, i) for i in range(config.num_scenes)]
    specs = [make_spec(t, d, s) for t, d, s in plans]
    body_frames = sum(len(s["bodies"]) for s in specs) * (args.frames + 1)

    times = {"bare": [], "simulate": [], "generate 1 worker": [], "generate 2 workers": []}
    per_type = {}
    work = Path(tempfile.mkdtemp(prefix="physworld-bench-"))
    try:
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            bare_loop(specs, args.frames)
            times["bare"].append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            for spec in specs:
                simulate(spec, args.frames)
            times["simulate"].append(time.perf_counter() - t0)

            for workers in (1, 2):
                out = work / f"w{workers}"
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                generate(config, out, num_workers=workers, progress=False)
                times[f"generate {workers} worker{'s' if workers > 1 else ''}"].append(
                    time.perf_counter() - t0
                )
        # Per-category split of bare vs simulate, to show where overhead concentrates.
        for cat in dict.fromkeys(CATEGORY_OF.values()):
            cs = [s for s, (t, _, _) in zip(specs, plans, strict=True) if CATEGORY_OF[t] == cat]
            t0 = time.perf_counter()
            bare_loop(cs, args.frames)
            tb = time.perf_counter() - t0
            t0 = time.perf_counter()
            for s in cs:
                simulate(s, args.frames)
            per_type[cat] = (tb, time.perf_counter() - t0)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"# {platform.machine()}, {os.cpu_count()} CPUs, {config.num_scenes} scenes ({args.scenes_per_type} per "
        f"type x 35 types), {args.frames} frames, {body_frames} body-frames, median of {args.repeats}"
    )
    print("| run | wall s | scenes/s | speed vs bare step loop |")
    print("|---|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.2f} | {config.num_scenes / v:.1f} | {med['bare'] / v:.2f} |")
    print(f"\n2 workers vs 1: {med['generate 1 worker'] / med['generate 2 workers']:.2f}x")
    print("\n| category | bare s | simulate s | simulate speed vs bare |")
    print("|---|---|---|---|")
    for cat, (tb, ts) in per_type.items():
        print(f"| {cat} | {tb:.2f} | {ts:.2f} | {tb / ts:.2f} |")


if __name__ == "__main__":
    main()
