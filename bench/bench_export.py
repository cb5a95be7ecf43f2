"""ONNX export: onnxruntime fp32 and static int8 against torch eager, per step and in rollouts.

For each family (physics-expert, physics-expert-3d, ssm, visual-expert; --families picks): its quickstart preset
trains --steps steps on a generated dataset (the Visual Expert: the same scenes as 64 x 64 clips; the 3D
PhysicsExpert: PyBullet scenes of the seen 3D types), `physworld export --int8`
writes model.onnx and model.int8.onnx (calibrated on the training scenes), then, in one process with torch
threads and ORT intra-op threads both 1:

  speed     the exported step (torch eager: the same step module the exporter traced) on real batches of
            the validation scenes, batch 1 and batch 32 (graphs per call for the PhysicsExpert, scenes per
            call for the SSM, clip windows per call for the Visual Expert), torch / fp32 / int8 timed
            interleaved, median ms per call and the ratios
  error     max and mean abs error of fp32 and int8 step outputs against torch on the validation batches
            (never seen by calibration), beside the largest |output|
  rollout   mean position error (px; 3D: m) against the ground truth over --rollout-frames predicted frames of
            the validation scenes for torch, ORT fp32 and ORT int8: does int8 cost accuracy that matters?
            (not for the Visual Expert, which reads states from clips; its error rows are its state output)

Prints markdown tables. Every step resumes: data, runs and exports in --work are reused.

    python bench/bench_export.py [--work /tmp/physworld-bench-export] [--steps 300] [--repeats 30]
                                 [--families physics-expert physics-expert-3d ssm visual-expert]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
TRAIN_TYPES = ["billiards", "tower", "pendulum", "explosion", "chain"]
FAMILIES = {
    "physics-expert": "configs/physics_expert/quickstart.yaml",
    "physics-expert-3d": "configs/physics_expert_3d/quickstart.yaml",
    "ssm": "configs/ssm/quickstart.yaml",
    "visual-expert": "configs/visual_expert/quickstart.yaml",
}
# The Visual Expert reads clips: its data are the same types and seeds with 64 x 64 clips of 8 frames at 15 fps.
CLIPS = [
    "--with-clips",
    "--clip-resolution",
    "64",
    "--clip-frames",
    "8",
    "--clip-fps",
    "15",
    "--no-clip-captions",
]


# The 3D PhysicsExpert reads PyBullet datasets: the seen 3D types, fewer and shorter scenes (3D generation is slower).
TRAIN_TYPES_3D = ["seen3d"]


def data_dir(work: Path, name: str, split: str) -> Path:
    return work / {"visual-expert": f"vis_{split}", "physics-expert-3d": f"{split}3d"}.get(name, split)


def physworld(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "physworld.cli", *args], check=True)


def prepare(work: Path, steps: int, families: list[str]) -> None:
    for split, scenes, seed in (("train", "6", "0"), ("val", "8", "1")):
        out = data_dir(work, "physics-expert-3d", split)
        if "physics-expert-3d" in families and not (out / "manifest.json").exists():
            physworld(
                "generate",
                "--output-dir",
                str(out),
                "--scenario-types",
                *TRAIN_TYPES_3D,
                "--num-scenes-per-type",
                {"train": "3", "val": "2"}[split],
                "--frames-per-scene",
                "48",
                "--seed",
                seed,
                "--quiet",
            )
        for clips in sorted({name == "visual-expert" for name in families if name != "physics-expert-3d"}):
            out = data_dir(work, "visual-expert" if clips else "physics-expert", split)
            if (out / ("clips" if clips else ".") / "manifest.json").exists():
                continue
            physworld(
                "generate",
                "--output-dir",
                str(out),
                "--scenario-types",
                *TRAIN_TYPES,
                "--num-scenes-per-type",
                scenes,
                "--frames-per-scene",
                "60",
                "--seed",
                seed,
                "--quiet",
                *(CLIPS if clips else []),
            )
    for name in families:
        config = FAMILIES[name]
        run = work / "runs" / name
        ckpt = run / "checkpoints" / "latest.safetensors"
        if not ckpt.exists():
            physworld(
                "train",
                name,
                "--config",
                str(ROOT / config),
                f"data.train_dir={data_dir(work, name, 'train')}",
                f"data.val_dir={data_dir(work, name, 'val')}",
                f"train.output_dir={run}",
                f"train.max_steps={steps}",
                f"optim.warmup_steps={max(1, steps // 10)}",
                "--quiet",
            )
        if not (work / "onnx" / name / "model.int8.onnx").exists():
            physworld(
                "export",
                "--model",
                name,
                "--checkpoint",
                str(ckpt),
                "--output-dir",
                str(work / "onnx" / name),
                "--int8",
                "--calibration-data",
                str(data_dir(work, name, "train")),
            )


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_family(name: str, work: Path, repeats: int, rollout_frames: int) -> tuple[list, list, list]:
    from physworld.data.store import Dataset
    from physworld.evaluation.families import load_predictor
    from physworld.export import onnx as ex

    family, model = ex.load_family_model(name, work / "runs" / name / "checkpoints" / "latest.safetensors")
    spec = ex.NETWORKS[family](model)
    step = spec["module"].eval()
    paths = {"fp32": work / "onnx" / name / "model.onnx", "int8": work / "onnx" / name / "model.int8.onnx"}
    sessions = {k: ex.session(p, threads=1) for k, p in paths.items()}

    speed_rows = []
    for batch in (1, 32):
        feeds = next(iter(spec["feeds"](model, data_dir(work, name, "val"), 1, batch)))
        inputs = [torch.from_numpy(feeds[n]) for n in spec["input_names"]]
        runners = {"torch": lambda inputs=inputs: step(*inputs)}
        runners |= {k: (lambda s=s, feeds=feeds: s.run(None, feeds)) for k, s in sessions.items()}
        times = {k: [] for k in runners}
        with torch.no_grad():
            for fn in runners.values():  # warm up
                for _ in range(3):
                    fn()
            for _ in range(repeats):  # interleaved, so load on the shared machine hits all three alike
                for k, fn in runners.items():
                    times[k] += timed(fn, 1)
        ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        size = feeds["receivers"].shape[0] if "receivers" in feeds else feeds["frames"].shape[0]
        speed_rows.append(
            [
                name,
                batch,
                size,
                ms["torch"],
                ms["fp32"],
                ms["int8"],
                ms["torch"] / ms["fp32"],
                ms["torch"] / ms["int8"],
            ]
        )

    error_rows = []
    feeds_list = list(spec["feeds"](model, data_dir(work, name, "val"), 64, 8))
    for precision, sess in sessions.items():
        err = ex.max_errors(model, family, sess, feeds_list)
        error_rows.append(
            [name, precision, err["max_abs"], err["mean_abs"], err["torch_max_abs"], err["values"]]
        )

    if name == "visual-expert":  # no rollout: it reads clips into states, it does not step them
        return speed_rows, error_rows, []
    ds = Dataset(data_dir(work, name, "val"))
    position = slice(0, 3) if name == "physics-expert-3d" else slice(0, 2)
    scenes = ds.scenes(sorted(ds.scene_ids))
    context = 10
    rollouts = {"torch": load_predictor(name, work / "runs" / name / "checkpoints" / "latest.safetensors")[0]}
    for precision, path in paths.items():
        rollouts[f"ORT {precision}"] = ex.load_onnx_predictor(
            name, work / "runs" / name / "checkpoints" / "latest.safetensors", path, threads=1
        )[0]
    rollout_rows = []
    preds = {}
    for label, fn in rollouts.items():
        t0 = time.perf_counter()
        preds[label] = fn(scenes, context, rollout_frames)[0]
        seconds = time.perf_counter() - t0
        err = np.mean(
            [
                np.linalg.norm(
                    p[context:, :, position] - s["states"][context : context + rollout_frames, :, position],
                    axis=-1,
                ).mean()
                for p, s in zip(preds[label], scenes, strict=True)
            ]
        )
        vs_torch = max(float(np.abs(p - q).max()) for p, q in zip(preds[label], preds["torch"], strict=True))
        rollout_rows.append([name, label, err, vs_torch, seconds])
    return speed_rows, error_rows, rollout_rows


def table(header: list[str], rows: list[list], fmt: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f.format(v) for f, v in zip(fmt, row, strict=True)) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/physworld-bench-export"))
    parser.add_argument("--steps", type=int, default=300, help="training steps of each quickstart preset")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rollout-frames", type=int, default=20)
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    prepare(args.work, args.steps, args.families)
    import onnxruntime

    speed, errors, rollouts = [], [], []
    for name in args.families:
        s, e, r = bench_family(name, args.work, args.repeats, args.rollout_frames)
        speed, errors, rollouts = speed + s, errors + e, rollouts + r
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, 1 thread each\n")
    print(
        table(
            [
                "family",
                "batch",
                "edges (VE: windows)",
                "torch ms",
                "ORT fp32 ms",
                "ORT int8 ms",
                "torch/fp32",
                "torch/int8",
            ],
            speed,
            ["{}", "{}", "{}", "{:.3f}", "{:.3f}", "{:.3f}", "{:.2f}x", "{:.2f}x"],
        )
    )
    print()
    print(
        table(
            ["family", "precision", "max abs err", "mean abs err", "largest abs output", "values"],
            errors,
            ["{}", "{}", "{:.2e}", "{:.2e}", "{:.2e}", "{}"],
        )
    )
    print()
    print(
        table(
            ["family", "rollout by", "mean pos err (px; 3D: m)", "max abs diff vs torch", "seconds"],
            rollouts,
            ["{}", "{}", "{:.4g}", "{:.2e}", "{:.2f}"],
        )
    )


if __name__ == "__main__":
    main()
