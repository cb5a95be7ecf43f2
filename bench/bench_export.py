"""ONNX export: onnxruntime fp32 and static int8 against torch eager, per step and in rollouts.

For each family (physics-expert, ssm): its quickstart preset trains --steps steps on a generated dataset,
`physworld export --int8` writes model.onnx and model.int8.onnx (calibrated on the training scenes), then,
in one process with torch threads and ORT intra-op threads both 1:

  speed     the exported step (torch eager: the same step module the exporter traced) on real batches of
            the validation scenes, batch 1 and batch 32 (graphs per call for the PhysicsExpert, scenes per
            call for the SSM), torch / fp32 / int8 timed interleaved, median ms per call and the ratios
  error     max and mean abs error of fp32 and int8 step outputs against torch on the validation batches
            (never seen by calibration), beside the largest |output|
  rollout   mean position error (px) against the ground truth over --rollout-frames predicted frames of
            the validation scenes for torch, ORT fp32 and ORT int8: does int8 cost accuracy that matters?

Prints markdown tables. Every step resumes: data, runs and exports in --work are reused.

    python bench/bench_export.py [--work /tmp/physworld-bench-export] [--steps 300] [--repeats 30]
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
FAMILIES = {"physics-expert": "configs/physics_expert/quickstart.yaml", "ssm": "configs/ssm/quickstart.yaml"}


def physworld(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "physworld.cli", *args], check=True)


def prepare(work: Path, steps: int) -> None:
    if not (work / "train" / "manifest.json").exists():
        physworld(
            "generate",
            "--output-dir",
            str(work / "train"),
            "--scenario-types",
            *TRAIN_TYPES,
            "--num-scenes-per-type",
            "6",
            "--frames-per-scene",
            "60",
            "--seed",
            "0",
            "--quiet",
        )
    if not (work / "val" / "manifest.json").exists():
        physworld(
            "generate",
            "--output-dir",
            str(work / "val"),
            "--scenario-types",
            *TRAIN_TYPES,
            "--num-scenes-per-type",
            "8",
            "--frames-per-scene",
            "60",
            "--seed",
            "1",
            "--quiet",
        )
    for name, config in FAMILIES.items():
        run = work / "runs" / name
        ckpt = run / "checkpoints" / "latest.safetensors"
        if not ckpt.exists():
            physworld(
                "train",
                name,
                "--config",
                str(ROOT / config),
                f"data.train_dir={work / 'train'}",
                f"data.val_dir={work / 'val'}",
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
                str(work / "train"),
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
        feeds = next(iter(spec["feeds"](model, work / "val", 1, batch)))
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
        size = feeds["receivers"].shape[0]
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
    feeds_list = list(spec["feeds"](model, work / "val", 64, 8))
    for precision, sess in sessions.items():
        err = ex.max_errors(model, family, sess, feeds_list)
        error_rows.append(
            [name, precision, err["max_abs"], err["mean_abs"], err["torch_max_abs"], err["values"]]
        )

    ds = Dataset(work / "val")
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
                    p[context:, :, :2] - s["states"][context : context + rollout_frames, :, :2], axis=-1
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
    args = parser.parse_args()
    torch.set_num_threads(1)
    prepare(args.work, args.steps)
    import onnxruntime

    speed, errors, rollouts = [], [], []
    for name in FAMILIES:
        s, e, r = bench_family(name, args.work, args.repeats, args.rollout_frames)
        speed, errors, rollouts = speed + s, errors + e, rollouts + r
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, 1 thread each\n")
    print(
        table(
            [
                "family",
                "batch",
                "edges",
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
            ["family", "rollout by", "mean pos err (px)", "max abs diff vs torch", "seconds"],
            rollouts,
            ["{}", "{}", "{:.2f}", "{:.2e}", "{:.2f}"],
        )
    )


if __name__ == "__main__":
    main()
