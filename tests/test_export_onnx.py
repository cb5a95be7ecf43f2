"""`physworld export`: ONNX of the PhysicsExpert's and the SSM's step networks, checked against torch eager
on real graphs of a generated dataset, rolled out by the families' own rollout loops under onnxruntime,
static int8 with its error bounded, the TensorRT fallback, and bad input as one line with exit 2.

Tolerances: fp32 ONNX vs torch, max abs error <= 1e-5 x max(1, largest |torch output|) on every output
(normalised accelerations for the PhysicsExpert, px/s^2 accelerations and the caches for the SSM); a
rollout of 3 context + 4 predicted frames within 1e-3 px / rad / (px/s) of torch's; int8 vs torch within
15% of the largest |output| (a bound that catches broken quantisation, not a quality target: the errors
themselves are in BENCHMARKS.md)."""

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
from physworld.evaluation.families import FAMILIES  # noqa: E402
from physworld.export import onnx as export_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAMILY_NAMES = ["physics-expert", "ssm"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny dataset (train: calibration; val: parity and rollouts, other scenes and a joint-free type),
    each family's tiny preset trained 4 steps, and its export with --int8."""
    root = tmp_path_factory.mktemp("export")
    common = {"frames_per_scene": 16, "difficulty_range": (1, 1)}
    generate(GenerateConfig(("pendulum", "head_on"), 2, **common), root / "train", progress=False)
    generate(GenerateConfig(("pendulum", "tower", "pong"), 1, seed=5, **common), root / "val", progress=False)
    out = {"root": root}
    for name in FAMILY_NAMES:
        fam = FAMILIES[name]
        run = root / "runs" / name
        overrides = [f"data.train_dir={root / 'train'}", f"train.output_dir={run}", "train.max_steps=4"]
        assert (
            main(
                [
                    "train",
                    fam["train"],
                    "--config",
                    str(ROOT / fam["configs"] / fam["tiny"]),
                    *overrides,
                    "--quiet",
                ]
            )
            == 0
        )
        ckpt = run / "checkpoints" / "latest.safetensors"
        args = [
            "export",
            "--model",
            name,
            "--checkpoint",
            str(ckpt),
            "--output-dir",
            str(root / "onnx" / name),
        ]
        assert main([*args, "--int8", "--calibration-data", str(root / "train")]) == 0
        out[name] = {"checkpoint": ckpt, "dir": root / "onnx" / name}
    return out


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_fp32_onnx_matches_torch_on_real_graphs(runs, name):
    family, model = export_onnx.load_family_model(name, runs[name]["checkpoint"])
    sess = export_onnx.session(runs[name]["dir"] / "model.onnx")
    feeds_list = list(export_onnx.NETWORKS[family](model)["feeds"](model, runs["root"] / "val", 40, 2))
    assert len(feeds_list) >= 2
    sizes = set()
    for feeds in feeds_list:
        sizes.add(tuple(x.shape[0] for x in feeds.values()))
        for got, ref in zip(
            sess.run(None, feeds), export_onnx.torch_outputs(model, family, feeds), strict=True
        ):
            assert got.shape == ref.shape
            tol = 1e-5 * max(1.0, float(np.abs(ref).max(initial=0.0)))
            assert float(np.abs(got - ref).max(initial=0.0)) <= tol
    assert len(sizes) > 1  # graphs of different sizes through one exported model: the axes are dynamic
    if name == "physics-expert":
        assert max(s[1] for s in sizes) > 0 and max(s[2] for s in sizes) > 0  # body and world edges met


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_export_summary_and_int8_error(runs, name):
    summary = json.loads((runs[name]["dir"] / "export.json").read_text())
    assert summary["family"] == name and summary["checked_on"] == "calibration data"
    fp32, int8 = summary["fp32"]["error_vs_torch"], summary["int8"]["error_vs_torch"]
    scale = max(1.0, fp32["torch_max_abs"])
    assert fp32["values"] > 0 and fp32["max_abs"] <= 1e-5 * scale
    # int8 is really quantised (not a copy of fp32) and within a loose bound
    assert 0 < int8["max_abs"] <= 0.15 * fp32["torch_max_abs"]
    import onnx

    ops = {node.op_type for node in onnx.load(runs[name]["dir"] / "model.int8.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_exported_step_rolls_out_like_torch(runs, name):
    from physworld.evaluation.families import load_predictor

    ds = Dataset(runs["root"] / "val")
    scenes = ds.scenes(ds.scene_ids)
    torch_rollout, _ = load_predictor(name, runs[name]["checkpoint"])
    onnx_rollout, _ = export_onnx.load_onnx_predictor(
        name, runs[name]["checkpoint"], runs[name]["dir"] / "model.onnx"
    )
    ref, _ = torch_rollout(scenes, 3, 4)
    got, fails = onnx_rollout(scenes, 3, 4)
    assert fails == [0] * len(scenes)
    for g, r in zip(got, ref, strict=True):
        assert g.shape == r.shape == (7, r.shape[1], 6)
        assert np.isfinite(g).all()
        assert float(np.abs(g - r).max()) <= 1e-3
    assert any(float(np.abs(r[3:] - r[2]).max()) > 0 for r in ref)  # the rollout moved something


def test_tensorrt_provider_missing_is_one_line(runs, capsys):
    import onnxruntime

    args = ["export", "--model", "physics-expert", "--checkpoint", str(runs["physics-expert"]["checkpoint"])]
    args += ["--output-dir", str(runs["root"] / "trt"), "--provider", "tensorrt"]
    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has TensorRT: the fallback cannot be shown here")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "TensorrtExecutionProvider" in err and "--provider cpu" in err
    assert not (runs["root"] / "trt" / "model.onnx").exists()


def test_bad_input_is_one_line_exit_2(runs, capsys, tmp_path):
    ssm_ckpt, pe_ckpt = runs["ssm"]["checkpoint"], runs["physics-expert"]["checkpoint"]
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cases = [
        (["--model", "physics-expert", "--checkpoint", str(ssm_ckpt)], "--model ssm"),
        (["--model", "ssm", "--checkpoint", str(pe_ckpt), "--int8"], "--calibration-data"),
        (
            [
                "--model",
                "ssm",
                "--checkpoint",
                str(ssm_ckpt),
                "--int8",
                "--calibration-data",
                str(tmp_path / "nope"),
            ],
            "nope",
        ),
    ]
    for extra, expected in cases:
        capsys.readouterr()
        assert main(["export", *extra, "--output-dir", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
        assert not (tmp_path / "out").exists()  # refused before anything was written
    capsys.readouterr()
    args = ["export", "--model", "ssm", "--checkpoint", str(ssm_ckpt), "--output-dir", str(blocker / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a_file" in err, err
