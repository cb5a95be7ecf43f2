"""Measure the 3D engine (PyBullet) against its substeps per 24 fps frame.

For each substep count, in one run: drift of a resting 7-block tower (centred: should not move)
and of a leaning one (tower_3d level 3: stands, but PyBullet lets it creep), the deepest
penetration between shapes over level-5 movi_a and dominos_3d scenes, the energy error of an
elastic head-on collision, the effective restitution of a 0.7 ball, and the simulation time of
the level-5 scenes (movi_a, dominos_3d, tower_3d). A second table varies the solver iterations at
the default substeps.

    python bench/bench_substeps_3d.py [--frames 200]
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import numpy as np

from physworld.worlds.bullet import ENGINE_3D, floor_surface, measured_restitution, simulate
from physworld.worlds.checks import kinetic_energy, penetration_depths
from physworld.worlds.registry import make_spec
from physworld.worlds.spec3d import new_spec, sphere


def with_substeps(spec: dict, substeps: int) -> dict:
    spec = copy.deepcopy(spec)
    spec["world"]["substeps"] = substeps
    return spec


def drift(spec: dict, frames: int) -> float:
    s = simulate(spec, frames)["states"]
    return float(np.abs(s[:, :, :3] - s[0, :, :3]).max())


def head_on(substeps: int) -> float:
    spec = new_spec("bench: elastic head-on collision", gravity=(0.0, 0.0, 0.0), substeps=substeps)
    spec["bodies"] += [
        sphere((-1.0, 0.0, 1.0), 0.1, mass=1.0, velocity=(2, 0, 0), restitution=1.0, friction=0.0),
        sphere((1.0, 0.0, 1.0), 0.1, mass=3.0, velocity=(-1, 0, 0), restitution=1.0, friction=0.0),
    ]
    e = kinetic_energy(spec, simulate(spec, 36)["states"])
    return float(abs(e[-1] - e[0]) / e[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    args = ap.parse_args()
    centred, leaning = make_spec("tower_3d", 1, 0), make_spec("tower_3d", 3, 0)
    violent = [make_spec("movi_a", 5, 0), make_spec("dominos_3d", 5, 0)]
    timed = [make_spec("movi_a", 5, 0), make_spec("dominos_3d", 5, 0), make_spec("tower_3d", 5, 0)]
    print(f"{ENGINE_3D}, {platform.processor() or platform.machine()}, {args.frames} frames at 24 fps")
    print("| substeps | solver iterations | centred tower drift m | leaning tower drift m | max penetration m "
          "| head-on energy error | e_eff of 0.7 | sim s per level-5 scene |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    default_iterations = centred["world"]["solver_iterations"]
    settings = [(s, default_iterations) for s in (5, 10, 20, 40)]
    settings += [(10, i) for i in (50, 150, 250) if i != default_iterations]
    for substeps, iterations in settings:

        def setup(spec, substeps=substeps, iterations=iterations):
            spec = with_substeps(spec, substeps)
            spec["world"]["solver_iterations"] = iterations
            return spec

        d_centred = drift(setup(centred), args.frames)
        d_leaning = drift(setup(leaning), args.frames)
        pen = 0.0
        for spec in violent:
            spec = setup(spec)
            s = simulate(spec, args.frames)["states"]
            pen = max(pen, *(max(penetration_depths(spec, s[f])) for f in range(0, args.frames + 1, 10)))
        w = centred["world"]
        e_eff = measured_restitution(0.7, floor_surface(centred), w["dt"], substeps, iterations)
        t0 = time.perf_counter()
        for spec in timed:
            simulate(setup(spec), args.frames)
        per_scene = (time.perf_counter() - t0) / len(timed)
        print(f"| {substeps} | {iterations} | {d_centred:.4f} | {d_leaning:.4f} | {pen:.4f} | "
              f"{head_on(substeps):.4f} | {e_eff:.3f} | {per_scene:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
