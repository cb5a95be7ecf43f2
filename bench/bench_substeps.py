"""Choose the default substeps per frame by measurement.

For each substep count, in one run: drift of resting stacks (a 12-block tower and a 5-row
pyramid, which should not move at all), the deepest penetration between any two shapes over a
scene in resting and violent scenarios, and the simulation time. The default is the smallest count
whose stacks stay put (< 0.5 px drift) and whose penetration stays within PENETRATION_TOLERANCE.

    python bench/bench_substeps.py [--frames 200]
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import numpy as np

from physworld.worlds.checks import max_penetration
from physworld.worlds.engine import simulate
from physworld.worlds.registry import make_spec
from physworld.worlds.spec import PENETRATION_TOLERANCE, arena, box, new_spec


def resting_tower(levels=12):
    spec = new_spec("bench: resting tower")
    spec["statics"] = arena()
    for k in range(levels):
        spec["bodies"].append(box((400.0, 10.0 + 20.0 * k), 60, 20, mass=1.0, friction=0.7, elasticity=0.1))
    return spec


def resting_pyramid(rows=5):
    spec = new_spec("bench: resting pyramid")
    spec["statics"] = arena()
    for r in range(rows):
        for k in range(rows - r):
            x = 400.0 + (k - (rows - r - 1) / 2) * 42.0
            spec["bodies"].append(box((x, 10.0 + 20.0 * r), 40, 20, mass=1.0, friction=0.7, elasticity=0.1))
    return spec


def with_substeps(spec, n):
    s = copy.deepcopy(spec)
    s["world"]["substeps"] = n
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 6, 8, 12, 16])
    args = ap.parse_args()
    resting = {"tower": resting_tower(), "pyramid": resting_pyramid()}
    violent = {f"{t} d5": make_spec(t, 5, 1) for t in ("bowling", "explosion", "billiards", "projectile")}
    print(f"# {platform.processor() or platform.machine()}, {args.frames} frames per scene")
    print(
        "| substeps | tower drift px | pyramid drift px | max penetration px (all scenes) | sim ms per scene | ok |"
    )
    print("|---|---|---|---|---|---|")
    chosen = None
    for n in args.counts:
        drift, pen, times = {}, 0.0, []
        for name, spec in {**resting, **violent}.items():
            s = with_substeps(spec, n)
            t0 = time.perf_counter()
            states = simulate(s, args.frames)["states"]
            times.append(time.perf_counter() - t0)
            if name in resting:
                drift[name] = float(np.abs(states[:, :, :2] - states[0, :, :2]).max())
            for f in range(0, args.frames + 1, 10):
                pen = max(pen, max_penetration(s, states[f]))
        ok = max(drift.values()) < 0.5 and pen <= PENETRATION_TOLERANCE
        if ok and chosen is None:
            chosen = n
        print(
            f"| {n} | {drift['tower']:.3f} | {drift['pyramid']:.3f} | {pen:.2f} | {1e3 * np.mean(times):.1f} | "
            f"{'yes' if ok else 'no'} |"
        )
    print(f"\nsmallest passing substep count: {chosen}")


if __name__ == "__main__":
    main()
