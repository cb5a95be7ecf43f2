"""What the 3D engine adds on top of PyBullet's own stepping, and how fast 3D scenes are made.

For the same scenes (every 3D type at difficulties 1-5), timed side by side in one run, rounds
interleaved so machine noise hits each the same: a bare PyBullet loop (fresh client, build the
world, step, disconnect), physworld's `simulate` (the same plus reading every body every frame
and scanning contacts every substep for onsets), and `make_spec` (including the restitution
measurement, cached after the first scene of a material per process).

    python bench/bench_generate_3d.py [--frames 48] [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import time

from physworld.worlds.bullet import ENGINE_3D, build_world, connect, simulate
from physworld.worlds.registry import DIFFICULTIES, SCENARIOS_3D, make_spec


def bare(spec: dict, frames: int) -> None:
    p, client = connect(spec["world"])
    try:
        build_world(p, client, spec)
        for _ in range(frames * spec["world"]["substeps"]):
            p.stepSimulation(physicsClientId=client)
    finally:
        p.disconnect(physicsClientId=client)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    specs = [make_spec(t, d, 1000 + d) for t in SCENARIOS_3D for d in DIFFICULTIES]
    first_specs = time.perf_counter() - t0  # includes measuring each material's restitution once
    t0 = time.perf_counter()
    specs = [make_spec(t, d, 2000 + d) for t in SCENARIOS_3D for d in DIFFICULTIES]
    cached_specs = time.perf_counter() - t0
    times = {"bare": 0.0, "simulate": 0.0}
    for _ in range(args.rounds):
        for name, fn in (("bare", bare), ("simulate", simulate)):
            t0 = time.perf_counter()
            for spec in specs:
                fn(spec, args.frames)
            times[name] += time.perf_counter() - t0
    n = len(specs) * args.rounds
    print(f"{ENGINE_3D}, {platform.processor() or platform.machine()}, {len(specs)} scenes "
          f"({len(SCENARIOS_3D)} types x 5 levels), {args.frames} frames at 24 fps, {args.rounds} rounds")  # fmt: skip
    print("| step | ms per scene | scenes per second | relative to bare PyBullet |")
    print("|---|---|---|---|")
    for name in ("bare", "simulate"):
        ms = 1000 * times[name] / n
        print(f"| {name} | {ms:.1f} | {1000 / ms:.1f} | {times[name] / times['bare']:.2f} |")
    print(f"| make_spec, first scenes of a process | {1000 * first_specs / len(specs):.1f} | | |")
    print(f"| make_spec, restitution cached | {1000 * cached_specs / len(specs):.1f} | | |")


if __name__ == "__main__":
    main()
