"""`physworld export --model physics-expert-3d`: the 3D PhysicsExpert's step network as ONNX, checked against
torch eager on real 3D graphs (a joint, the floor, a static ramp), static int8 written with its error
recorded, and the ONNX step rolled out by the family's own rollout loop.

Tolerances: fp32 ONNX vs torch, max abs error <= 1e-5 x max(1, largest |torch output|) (normalised linear
and angular accelerations [bodies, 6]); a rollout of 3 context + 3 predicted frames within 1e-3 m / (m/s) /
(rad/s) of torch's; int8 vs torch within 15% of the largest |output| (catches broken quantisation, not a
quality target: the errors themselves are in BENCHMARKS.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="needs the onnx extra (pip install -e '.[onnx]')")
pytest.importorskip("onnxscript", reason="needs the onnx extra (pip install -e '.[onnx]')")

from physworld.cli import main  # noqa: E402
from physworld.data.generate import GenerateConfig, generate  # noqa: E402
from physworld.data.store import Dataset  # noqa: E402
from physworld.export import onnx as export_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run3d(tmp_path_factory):
    """A tiny 3D dataset, the tiny preset trained 3 steps, exported with --int8 calibrated on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("export3d")
    generate(
        GenerateConfig(
            scenario_types=("pendulum_3d", "movi_a", "ramp_roll_3d"),
            num_scenes_per_type=1,
            frames_per_scene=12,
            difficulty_range=(2, 2),
        ),
        root / "train",
        progress=False,
    )
    run = root / "run"
    config = str(ROOT / "configs/physics_expert_3d/tiny.yaml")
    overrides = [f"data.train_dir={root / 'train'}", f"train.output_dir={run}", "train.max_steps=3"]
    assert main(["train", "physics-expert-3d", "--config", config, *overrides, "--quiet"]) == 0
    ckpt = run / "checkpoints" / "latest.safetensors"
    out = root / "onnx"
    args = ["export", "--model", "physics-expert-3d", "--checkpoint", str(ckpt), "--output-dir", str(out)]
    assert main([*args, "--int8", "--calibration-data", str(root / "train")]) == 0
    yield {"root": root, "checkpoint": ckpt, "dir": out}
    torch.set_num_threads(threads)


def test_fp32_matches_torch_and_int8_error_is_recorded(run3d):
    summary = json.loads((run3d["dir"] / "export.json").read_text())
    assert summary["family"] == "physics-expert-3d"
    assert summary["checked_on"] == "calibration data"
    fp32 = summary["fp32"]["error_vs_torch"]
    assert fp32["values"] > 0 and fp32["max_abs"] <= 1e-5 * max(1.0, fp32["torch_max_abs"])
    int8 = summary["int8"]["error_vs_torch"]
    assert (run3d["dir"] / "model.int8.onnx").stat().st_size > 0
    assert int8["values"] == fp32["values"] and 0 < int8["max_abs"] <= 0.15 * int8["torch_max_abs"]

    # independently: fresh feeds from the dataset (every window), every body's 6 outputs, graphs with
    # world edges (the floor, the ramp, the pendulum's pivot) among them
    family, model = export_onnx.load_family_model("physics-expert-3d", run3d["checkpoint"])
    feeds = list(export_onnx.NETWORKS[family](model)["feeds"](model, run3d["root"] / "train", 64, 4))
    assert sum(f["world_body"].shape[0] for f in feeds) > 0
    sess = export_onnx.session(run3d["dir"] / "model.onnx")
    for f in feeds:
        ref = export_onnx.torch_outputs(model, family, f)[0]
        got = sess.run(None, f)[0]
        assert got.shape == ref.shape == (f["node_features"].shape[0], 6)
        assert np.abs(got - ref).max() <= 1e-5 * max(1.0, float(np.abs(ref).max()))


def test_onnx_rollout_matches_torch(run3d):
    from physworld.evaluation.families import load_predictor

    ds = Dataset(run3d["root"] / "train")
    scenes = ds.scenes(sorted(ds.scene_ids))
    torch_rollout = load_predictor("physics-expert-3d", run3d["checkpoint"])[0]
    onnx_rollout = export_onnx.load_onnx_predictor(
        "physics-expert-3d", run3d["checkpoint"], run3d["dir"] / "model.onnx"
    )[0]
    ref, got = torch_rollout(scenes, 3, 3)[0], onnx_rollout(scenes, 3, 3)[0]
    for r, g in zip(ref, got, strict=True):
        assert r.shape == g.shape and r.shape[-1] == 13
        assert np.abs(r - g).max() <= 1e-3


def test_2d_calibration_data_is_one_line(run3d, tmp_path, capsys):
    generate(GenerateConfig(("head_on",), 1, frames_per_scene=8), tmp_path / "flat", progress=False)
    code = main(
        [
            "export",
            "--model",
            "physics-expert-3d",
            "--checkpoint",
            str(run3d["checkpoint"]),
            "--output-dir",
            str(tmp_path / "out"),
            "--int8",
            "--calibration-data",
            str(tmp_path / "flat"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "13" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
