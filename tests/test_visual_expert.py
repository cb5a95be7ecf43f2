"""The Visual Expert's interface: shapes in 2D and 3D, matching, loading refusals."""

import json
from pathlib import Path

import pytest
import torch

from physworld.cli import main
from physworld.data import clips as C
from physworld.data.generate import GenerateConfig, generate
from physworld.models.visual_expert import (
    VisualExpert,
    VisualExpertConfig,
    VisualExpertLoadError,
    hungarian_match,
    load_visual_expert,
    masks_from_segmentation,
)
from physworld.recipes import visual_expert as recipe
from physworld.training.config import load_config


@pytest.mark.parametrize("dims,size", [(2, 6), (3, 13)])
def test_forward_shapes(dims, size):
    torch.manual_seed(0)
    cfg = VisualExpertConfig(dims=dims, image_size=16, frames=3, slots=4, channels=8, dim=16, heads=2)
    model = VisualExpert(cfg)
    out = model(torch.rand(2, 3, 3, 16, 16))
    assert out["state"].shape == (2, 4, 3, size)
    assert out["params"].shape == (2, 4, 3)
    assert out["exist_logit"].shape == (2, 4)
    assert out["mask_logits"].shape == (2, 3, 4, 16, 16)  # full resolution by default
    if dims == 3:  # unit quaternions
        torch.testing.assert_close(out["state"][..., 3:7].norm(dim=-1), torch.ones(2, 4, 3))
    else:  # the angle comes back wrapped
        assert out["state"][..., 2].abs().max() <= torch.pi + 1e-6
    out["state"].sum().backward()  # every head is differentiable


def test_hungarian_match_finds_the_slot_that_draws_each_body():
    """Slots whose masks sit on bodies 1 and 0 are matched to them; a body never visible is skipped."""
    t, k, h = 2, 3, 4
    seg = torch.zeros(t, 8, 8, dtype=torch.int32)
    seg[:, 0:4, 0:4] = 1  # body 0 top-left
    seg[:, 4:8, 4:8] = 2  # body 1 bottom-right; body 2 never shows
    masks = masks_from_segmentation(seg, 3, h)
    assert masks.shape == (t, 3, h, h) and masks[:, 2].sum() == 0
    logits = torch.full((1, t, k, h, h), -8.0)
    logits[0, :, 0, 2:, 2:] = 8.0  # slot 0 draws body 1
    logits[0, :, 2, :2, :2] = 8.0  # slot 2 draws body 0
    outputs = {
        "mask_logits": logits,
        "state": torch.zeros(1, k, t, 6),
        "exist_logit": torch.zeros(1, k),
    }
    ((slots, bodies),) = hungarian_match(outputs, [torch.zeros(t, 3, 6)], [masks])
    assert dict(zip(bodies.tolist(), slots.tolist(), strict=True)) == {0: 2, 1: 0}


def test_load_refuses_other_files(tmp_path):
    model, info = load_visual_expert(
        None, VisualExpertConfig(image_size=16, frames=2, slots=2, dim=16, channels=8)
    )
    assert info["state_fields"][:2] == ["x", "y"] and info["frames"] == 2
    with pytest.raises(VisualExpertLoadError, match="no such checkpoint"):
        load_visual_expert(tmp_path / "missing.safetensors")
    from physworld.training.checkpoint import save_checkpoint

    other = save_checkpoint(tmp_path / "other.safetensors", model, extra={"recipe": "physics-expert"})
    with pytest.raises(VisualExpertLoadError, match="physics-expert, not of visual-expert"):
        load_visual_expert(other)


# ---------------------------------------------------------------- recipe, evaluation, bad input

ROOT = Path(__file__).resolve().parents[1]
TINY_YAML = ROOT / "configs" / "visual_expert" / "tiny.yaml"


@pytest.fixture(scope="module")
def clips_data(tmp_path_factory):
    """12 scenes of the collision category with 32 x 32 clips of 8 frames at 15 fps (what tiny.yaml reads)."""
    root = tmp_path_factory.mktemp("vis") / "ds"
    cfg = GenerateConfig(scenario_types=("collision",), num_scenes_per_type=2, frames_per_scene=36, seed=3)
    generate(cfg, root, num_workers=1, progress=False)
    C.render_clips(
        root, C.ClipConfig(resolution=32, frames=8, fps=15, captions=False), num_workers=1, progress=False
    )
    return root


def _cfg(data, out, *extra):
    overrides = [f"data.train_dir={data}", f"train.output_dir={out}", *extra]
    return load_config(TINY_YAML, recipe.RecipeConfig, overrides)


def _weights(path):
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(path).items() if k.startswith("model.")}


def test_interrupted_run_resumes_bit_for_bit(clips_data, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    ref = recipe.train(_cfg(clips_data, tmp_path / "ref"), progress=False)
    calls = {"n": 0}
    original = recipe.compute_losses

    def dies_after_step_4(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # mid-step 5, after the checkpoint at step 3
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(recipe, "compute_losses", dies_after_step_4)
    with pytest.raises(KeyboardInterrupt):
        recipe.train(_cfg(clips_data, tmp_path / "out"), progress=False)
    monkeypatch.setattr(recipe, "compute_losses", original)
    resumed = recipe.train(_cfg(clips_data, tmp_path / "out"), progress=False)
    assert resumed["steps"] == ref["steps"] == 6
    a, b = _weights(ref["latest"]), _weights(resumed["latest"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logged = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    steps = [m["step"] for m in logged if "loss" in m]
    assert steps == sorted(set(steps))
    assert any((tmp_path / "out").rglob("events.out.tfevents*")), "TensorBoard scalars"


def test_nonfinite_batches_are_skipped(clips_data, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = recipe.collate_windows

    def poisoned(items):
        batch = original(items)
        calls["n"] += 1
        if calls["n"] in (2, 3):
            batch["frames"][:] = float("nan")
        return batch

    monkeypatch.setattr(recipe, "collate_windows", poisoned)
    out = tmp_path / "nan"
    recipe.train(_cfg(clips_data, out), progress=False)
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("skipped_nonfinite") == 2 for m in logged)
    assert all(torch.isfinite(t).all() for t in _weights(out / "checkpoints" / "latest.safetensors").values())


@pytest.fixture(scope="module")
def tiny_run(clips_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("vis_run") / "run"
    recipe.train(_cfg(clips_data, out, f"data.val_dir={clips_data}"), progress=False)
    return out


def test_evaluate_vision_scores_model_and_baselines(clips_data, tiny_run, tmp_path):
    from physworld.evaluation.vision import evaluate_visual_expert

    model, info = load_visual_expert(tiny_run / "checkpoints" / "best.safetensors")
    assert info["train_scenario_types"] and info["param_mean"] == pytest.approx(model.param_mean.tolist())
    metrics = evaluate_visual_expert(
        model, clips_data, seen_types=info["train_scenario_types"][:2], progress=False
    )
    groups = metrics["groups"]
    assert {"all", "seen", "heldout"} <= set(groups)
    all_ = groups["all"]
    assert all_["counts"]["bodies_matched"] > 0 and all_["counts"]["pairs"] > 0
    for key in ("position_error", "velocity_error", "angle_error_rad", "mask_iou", "friction_error"):
        assert all_["model"][key] is not None, key
    assert (
        all_["mean_params"]["restitution_error"] is not None
        and all_["zero_rotation"]["angle_error_rad"] is not None
    )
    # the tracker reads true masks: its centroid is within about a pixel (25 world px at 32 x 32) of the centre
    assert all_["tracker"]["position_error"] < 25
    assert all_["tracker"].get("angle_error_rad") is None  # a principal axis gives the angle only modulo pi
    out = tmp_path / "m.json"
    code = main(
        [
            "evaluate-vision",
            "--checkpoint",
            str(tiny_run / "checkpoints" / "best.safetensors"),
            "--data-dir",
            str(clips_data),
            "--output",
            str(out),
            "--quiet",
        ]
    )
    assert (
        code == 0
        and json.loads(out.read_text())["groups"]["all"]["counts"]["windows"] == all_["counts"]["windows"]
    )


def test_bad_input_is_one_line_and_exit_2(clips_data, tiny_run, tmp_path, capsys):
    other = tmp_path / "other"  # clips of another size and frame rate than the checkpoint's
    generate(
        GenerateConfig(scenario_types=("billiards",), num_scenes_per_type=1, frames_per_scene=36),
        other,
        num_workers=1,
        progress=False,
    )
    C.render_clips(
        other, C.ClipConfig(resolution=48, frames=6, fps=12, captions=False), num_workers=1, progress=False
    )
    ckpt = str(tiny_run / "checkpoints" / "best.safetensors")
    cases = [
        (["evaluate-vision", "--checkpoint", ckpt, "--data-dir", str(other)], "clips are 48 x 48 px"),
        (
            [
                "train",
                "visual-expert",
                "--config",
                str(TINY_YAML),
                f"data.train_dir={other}",
                f"train.output_dir={tmp_path / 'r'}",
            ],
            "clips are 48 x 48 px",
        ),
        (
            [
                "train",
                "visual-expert",
                "--config",
                str(TINY_YAML),
                f"data.train_dir={other}",
                f"train.output_dir={tmp_path / 'r2'}",
                "model.image_size=48",
            ],
            "at 12 frames/s, the model was trained at 15",
        ),
    ]
    from physworld.training.checkpoint import save_checkpoint

    foreign = save_checkpoint(
        tmp_path / "pe.safetensors", torch.nn.Linear(1, 1), extra={"recipe": "physics-expert"}
    )
    cases.append(
        (
            ["evaluate-vision", "--checkpoint", str(foreign), "--data-dir", str(clips_data)],
            "not of visual-expert",
        )
    )
    cases.append((["evaluate-vision", "--checkpoint", ckpt, "--data-dir", str(tmp_path)], "no clips there"))
    train_tiny = ["train", "visual-expert", "--config", str(TINY_YAML), f"data.train_dir={clips_data}"]
    cases.append(
        ([*train_tiny, f"train.output_dir={tmp_path / 'r3'}", "train.device=gpu"], "train.device must be")
    )
    if not torch.cuda.is_available():
        cases.append(
            ([*train_tiny, f"train.output_dir={tmp_path / 'r4'}", "train.device=cuda"], "no CUDA device")
        )
    for argv, message in cases:
        capsys.readouterr()
        assert (
            main(
                [*argv, "--quiet"]
                if argv[0] == "evaluate-vision"
                else [argv[0], argv[1], "--quiet", *argv[2:]]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_onnx_export_matches_torch_and_quantises(clips_data, tiny_run, tmp_path):
    pytest.importorskip("onnxruntime")
    from physworld.export.onnx import export, session, visual_expert_feeds

    ckpt = tiny_run / "checkpoints" / "best.safetensors"
    summary = export(
        "visual-expert",
        ckpt,
        tmp_path / "onnx",
        int8=True,
        calibration_data=clips_data,
        calibration_batches=2,
    )
    err = summary["fp32"]["error_vs_torch"]  # the state output, in world units (px)
    assert err["values"] > 0 and err["max_abs"] < 1e-3 * max(err["torch_max_abs"], 1.0)
    assert (tmp_path / "onnx" / "model.int8.onnx").is_file() and summary["int8"]["error_vs_torch"][
        "values"
    ] > 0
    model, _ = load_visual_expert(ckpt)
    feeds = next(
        visual_expert_feeds(model, clips_data, max_batches=1, batch_graphs=1)
    )  # batch 1: a dynamic axis
    got = session(tmp_path / "onnx" / "model.onnx").run(None, feeds)
    with torch.no_grad():
        ref = model(torch.from_numpy(feeds["frames"]))
    for name, value in zip(("state", "params", "exist_logit", "mask_logits"), got, strict=True):
        torch.testing.assert_close(torch.from_numpy(value), ref[name], atol=1e-3, rtol=1e-3)


def test_3d_tracker_and_model_on_a_real_3d_clip():
    """The tracker back-projects mask centroids with the clip's depth and camera: within the bodies'
    size of their centres (it sees surfaces, not centres); a 3D model reads the clip and matches it."""
    pytest.importorskip("pybullet")
    import numpy as np

    from physworld.data.generate import make_record
    from physworld.evaluation.vision import tracker_states

    rec = dict(make_record(0, "movi_b", 4, 11, 12), scene_id=0)
    clip = C.render_clip(rec, C.ClipConfig(resolution=48, frames=6, fps=12, captions=False))
    states, n = clip["states"], clip["states"].shape[1]
    track = tracker_states(clip["segmentation"], clip["depth"], n, clip["camera"], 12.0, 3)
    visible = clip["visible_pixels"] > 0
    err = np.linalg.norm(track[..., :3] - states[..., :3], axis=-1)[visible]
    assert err.mean() < 0.4 and np.isnan(track[..., 3:7]).all()  # metres; no orientation from a centroid
    model = VisualExpert(
        VisualExpertConfig(dims=3, image_size=48, frames=6, fps=12, slots=4, channels=8, dim=16)
    )
    frames = torch.from_numpy(clip["rgb"]).permute(0, 3, 1, 2)[None].float() / 255
    out = model(frames)
    masks = masks_from_segmentation(
        torch.from_numpy(clip["segmentation"].astype(np.int32)), n, model.mask_size
    )
    ((slots, bodies),) = hungarian_match(out, [torch.from_numpy(states)], [masks])
    assert len(slots) == min(4, int(visible.any(0).sum()))
