"""Report build time: the Jinja2 + matplotlib report against the string-concatenation + hand-written SVG
report it replaced, side by side in one run on the same evaluation directories.

    python bench/bench_report.py [--repeats 7] [--models 3] [--old-ref 71cd507]

The old report is read from git (`git show <old-ref>:physworld/evaluation/report.py`, the last commit
with it) and imported from a temporary file, so both build the same pages in the same process. The
evaluation directories are made up here: every one of the 35 scenario types, metrics in the
docs/METRICS.md format, and one real 972 x 262, 30-frame comparison GIF per type (the same bytes for
every type; embedding costs both reports the same). Measured:

  warm    render_report() in this process, after one call (imports and template compilation done):
          median of --repeats calls, old and new alternating, for one evaluation and for a
          leaderboard of --models evaluations
  cold    a fresh `python -c` that imports the report and renders one evaluation (what
          `physworld report` pays: matplotlib's and jinja2's imports included), median of 3 each
  GIF     one comparison GIF of a real 30-frame rollout (a billiards scene, 10 context + 20 predicted
          frames) as `evaluate` writes it: the old two 256 px panels against the new three 320 px
          panels with the context / prediction strip (evaluation/evaluate.py at --old-ref, the same way)
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OLD_REF = (
    "71cd50756229df321542e749ff48306267fae959"  # before issue 10: the string-built report, two-panel GIFs
)
HORIZONS, ROLLOUT = [1, 5, 10, 20], 20
BASELINES = {"constant_position": 1.0, "constant_velocity": 0.6, "ballistic": 0.405, "chaos_floor": 0.002}


def method_row(coef: float) -> dict:
    err = {h: coef * h for h in range(1, ROLLOUT + 1)}
    keys = {str(h): err[h] for h in HORIZONS} | {"all": sum(err.values()) / ROLLOUT}
    return {
        "position_error_px": dict(keys),
        "position_mse_px2": {k: v * v / 2 for k, v in keys.items()},
        "velocity_error": {k: 60 * v for k, v in keys.items()},
        "angle_error_rad": {k: v / 100 for k, v in keys.items()},
        "energy_drift": 0.01,
        "penetration_px": 0.3 * coef,
        "static_penetration_px": 0.0,
        "parse_failures": 0,
    }


def make_eval_dir(root: Path, name: str, model_coef: float, gif: bytes) -> Path:
    from physworld.worlds.registry import HELDOUT, SCENARIOS

    rng = np.random.default_rng(len(name))
    types = sorted(SCENARIOS)
    per_type = {}
    for t in types:
        factor = float(rng.uniform(0.5, 2.0))
        per_type[t] = {
            "split": "heldout" if t in HELDOUT else "seen",
            "num_scenes": 2,
            "model": method_row(model_coef * factor),
            **{m: method_row(c * factor) for m, c in BASELINES.items()},
        }
    rows = {"model": method_row(model_coef), **{m: method_row(c) for m, c in BASELINES.items()}}
    metrics = {
        "format": "physworld-metrics",
        "format_version": 1,
        "model": {"name": "physics-expert", "label": name, "checkpoint": f"runs/{name}/best.safetensors"},
        "dataset": {
            "val_dir": "data/bench/val",
            "num_scenes": 2 * len(types),
            "scene_ids": list(range(2 * len(types))),
            "seen_types": sorted(t for t in types if t not in HELDOUT),
            "heldout_types": sorted(t for t in types if t in HELDOUT),
        },
        "settings": {
            "context_frames": 10,
            "rollout_frames": ROLLOUT,
            "horizons": HORIZONS,
            "max_scenes_per_type": 2,
            "chaos_epsilon_px": 0.001,
        },
        "methods": ["model", *BASELINES],
        "per_type": per_type,
        "aggregate": {s: copy.deepcopy(rows) for s in ("seen", "heldout", "all")},
        "error_vs_horizon": {
            s: {
                m: [c * h for h in range(1, ROLLOUT + 1)]
                for m, c in [("model", model_coef), *BASELINES.items()]
            }
            for s in ("seen", "heldout")
        },
        "gifs": {t: f"comparison_gifs/{t}_cmp.gif" for t in types},
        "timing": {"rollout_frames_per_s": 1000.0},
    }
    d = root / name
    (d / "comparison_gifs").mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(metrics))
    for t in types:
        (d / "comparison_gifs" / f"{t}_cmp.gif").write_bytes(gif)
    return d


def one_gif(path: Path) -> bytes:
    from physworld.data.render import write_gif

    frames = np.full((30, 262, 972, 3), 250, dtype=np.uint8)
    for i in range(30):
        frames[i, 100:120, 20 + 8 * i : 40 + 8 * i] = (40, 160, 60)
        frames[i, 100:120, 346 + 8 * i : 366 + 8 * i] = (40, 90, 210)
    write_gif(path, frames, fps=15)
    return path.read_bytes()


def load_old(ref: str, where: Path, module: str = "report"):
    try:
        source = subprocess.run(
            ["git", "show", f"{ref}:physworld/evaluation/{module}.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"bench_report: cannot read the old report from git ref {ref} ({e}); run in a git checkout")
    path = where / f"old_{module}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"old_{module}", path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[f"old_{module}"] = loaded  # dataclasses look their module up while the class is built
    spec.loader.exec_module(loaded)
    return loaded, path


def gif_times(ref: str, where: Path, repeats: int) -> tuple[float, float, int, int]:
    """Median seconds to write one comparison GIF, old layout and new, and the files' sizes."""
    from physworld.data.generate import make_record
    from physworld.evaluation import evaluate as new

    old, _ = load_old(ref, where, "evaluate")
    scene = make_record(0, "billiards", 3, 12345, 30)
    pred = scene["states"].copy()
    pred[10:, :, :2] += np.linspace(0, 30, 21)[:, None, None]  # a prediction drifting off
    calls = {
        "old": lambda: old.write_comparison_gifs(where / "old_gif", [scene], [pred]),
        "new": lambda: new.write_comparison_gifs(where / "new_gif", [scene], [pred], context_frames=10),
    }
    times = {"old": [], "new": []}
    for _ in range(repeats):
        for name, call in calls.items():
            times[name].append(timed(call))
    sizes = [(where / f"{k}_gif" / "billiards_cmp.gif").stat().st_size for k in ("old", "new")]
    return statistics.median(times["old"]), statistics.median(times["new"]), *sizes


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cold(module_path: str, module_name: str, eval_dir: Path, repeats: int) -> float:
    code = (
        "import sys, time; t = time.perf_counter(); sys.path[:0] = sys.argv[1:3]; "
        f"import importlib; m = importlib.import_module('{module_name}'); "
        "m.render_report([sys.argv[3]]); print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(repeats):
        r = subprocess.run(
            [sys.executable, "-c", code, str(ROOT), module_path, str(eval_dir)],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, PYTHONWARNINGS="ignore"),
        )
        times.append(float(r.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--models", type=int, default=3, help="evaluations in the leaderboard")
    ap.add_argument("--old-ref", default=OLD_REF)
    args = ap.parse_args()

    from physworld.evaluation import report as new

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old, old_path = load_old(args.old_ref, tmp)
        gif = one_gif(tmp / "one.gif")
        dirs = [make_eval_dir(tmp, f"model{i}", 0.1 + 0.2 * i, gif) for i in range(args.models)]
        cases = {"one evaluation": dirs[:1], f"leaderboard of {args.models}": dirs}
        rows = []
        for case, ds in cases.items():
            sizes = {
                name: len(mod.render_report(ds)) for name, mod in (("old", old), ("new", new))
            }  # warm-up
            times = {"old": [], "new": []}
            for _ in range(args.repeats):
                for name, mod in (("old", old), ("new", new)):
                    times[name].append(timed(lambda mod=mod, ds=ds: mod.render_report(ds)))
            o, n = statistics.median(times["old"]), statistics.median(times["new"])
            rows.append((f"warm, {case}", o, n, sizes["old"], sizes["new"]))
        o = cold(str(old_path.parent), "old_report", dirs[0], 3)
        n = cold(str(ROOT), "physworld.evaluation.report", dirs[0], 3)
        rows.append(("cold process, one evaluation", o, n, None, None))
        rows.append(("comparison GIF, one scene", *gif_times(args.old_ref, tmp, args.repeats)))

    print(
        f"report build time, old ({args.old_ref[:7]}: strings + hand-written SVG) vs new (Jinja2 + matplotlib)"
    )
    print(f"{'case':36s} {'old s':>8s} {'new s':>8s} {'new/old':>8s} {'old MB':>7s} {'new MB':>7s}")
    for case, o, n, so, sn in rows:
        mb = f"{so / 1e6:7.2f} {sn / 1e6:7.2f}" if so else f"{'':7s} {'':7s}"
        print(f"{case:36s} {o:8.3f} {n:8.3f} {n / o:8.2f} {mb}")


if __name__ == "__main__":
    main()
