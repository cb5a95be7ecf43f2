"""`physworld evaluate`: honest rollouts, exact baselines, the chaos floor, and the outputs they feed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from physworld.cli import main
from physworld.data.generate import GenerateConfig, generate, make_record
from physworld.data.store import Dataset
from physworld.data.validate import validate
from physworld.evaluation.metrics import scene_metrics
from physworld.evaluation.rollout import baseline_rollout, chaos_floor_rollout, model_rollouts, text_rollouts
from physworld.models.physics_expert import load_model as load_physics_expert

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "physics_expert" / "tiny.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    generate(
        GenerateConfig(
            scenario_types=("pendulum", "billiards", "projectile"), num_scenes_per_type=2, frames_per_scene=40
        ),
        root / "train",
        progress=False,
    )
    generate(
        GenerateConfig(
            scenario_types=("pendulum", "projectile", "pong"),
            num_scenes_per_type=2,
            frames_per_scene=40,
            seed=5,
        ),
        root / "val",
        progress=False,
    )
    assert (
        main(
            [
                "train",
                "physics-expert",
                "--quiet",
                "--config",
                str(TINY),
                f"data.train_dir={root / 'train'}",
                f"data.val_dir={root / 'val'}",
                f"train.output_dir={root / 'run'}",
                "train.max_steps=30",
            ]
        )
        == 0
    )
    return root


def test_ballistic_is_exact_in_free_flight_and_constant_position_is_still():
    rec = make_record(0, "projectile", 2, 3, 40)
    spec, truth = rec["spec"], rec["states"]
    ball = next(i for i, b in enumerate(spec["bodies"]) if b["shape"] == "circle")
    touched = rec["events"]["frame"][(rec["events"]["body_a"] == ball) | (rec["events"]["body_b"] == ball)]
    free_until = int(touched.min()) - 1 if len(touched) else 40
    assert free_until > 12
    pred = baseline_rollout("ballistic", spec, truth, context=2, rollout=10)
    np.testing.assert_allclose(pred[2:12, ball, :2], truth[2:12, ball, :2], atol=2e-3)
    still = baseline_rollout("constant_position", spec, truth, context=2, rollout=10)
    assert (still[2:, :, :3] == truth[1, :, :3]).all()
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_rollout("oracle", spec, truth, 2, 10)


def test_kinematic_bodies_follow_the_truth_in_every_method():
    rec = make_record(0, "pong", 2, 1, 40)
    kin = np.array([b["kinematic"] for b in rec["spec"]["bodies"]])
    assert kin.any()
    for method in ("constant_position", "constant_velocity", "ballistic"):
        pred = baseline_rollout(method, rec["spec"], rec["states"], 5, 20)
        assert np.array_equal(pred[:, kin], rec["states"][:25, kin])


def test_chaos_floor_is_tiny_for_a_regular_scene_and_zero_at_zero_epsilon():
    rec = make_record(0, "pendulum", 1, 2, 40)
    exact = chaos_floor_rollout(rec["spec"], 10, 20, epsilon=0.0, seed=0)
    assert np.array_equal(exact, rec["states"][:30])
    nudged = chaos_floor_rollout(rec["spec"], 10, 20, epsilon=1e-3, seed=0)
    err = scene_metrics(rec["spec"], rec["states"], nudged, 10, (1, 20), plausibility=False)
    assert 0 < err["position_error_px"]["20"] < 0.05


def test_text_rollouts_drop_context_frames_to_fit_as_training_did():
    """A prompt too long for the model loses whole frames from the front, never the scene header."""
    from physworld.data import text

    scene = make_record(0, "projectile", 2, 7, 12)
    spec, states = scene["spec"], scene["states"]
    header = text.scene_prompt(spec)
    frame_len = max(len(text.frame_text(f, spec=spec)) for f in states)  # they differ by a few chars
    limit = len(header) + 3 * frame_len  # room for two context frames and the completion, not three
    seen = []

    def truth(prompts, budgets):  # answers with the true next frame, so the rollout follows the truth
        seen.extend(prompts)
        return [
            text.frame_text(states[len(seen) - len(prompts) + 5 + i], spec=spec) for i in range(len(prompts))
        ]

    preds, failures = text_rollouts(
        truth, [scene], 5, 3, context_frames=4, prompt_fits=lambda p, c: len(p) + len(c) <= limit
    )
    assert failures == [0] and len(seen) == 3
    for k, prompt in enumerate(seen):
        t = 4 + k
        assert prompt == text.rollout_prompt(spec, preds[0][t - 1 : t + 1])  # the last two frames, whole
        assert prompt.startswith(header)
    unlimited = []
    text_rollouts(lambda ps, b: unlimited.extend(ps) or truth(ps, b), [scene], 5, 1, context_frames=4)
    assert unlimited[0] == text.rollout_prompt(spec, states[1:5])  # without a limit: all four frames


def test_model_rollouts_feed_back_their_own_predictions(trained):
    """Changing the ground truth after the context must not change a model's rollout."""
    model, _ = load_physics_expert(trained / "run" / "checkpoints" / "best.safetensors")
    scenes = [Dataset(trained / "val").scene(i) for i in (0, 1)]
    first = model_rollouts(model, scenes, 10, 15)
    tampered = [dict(s, states=s["states"].copy()) for s in scenes]
    for s in tampered:
        dyn = np.array([not b["kinematic"] for b in s["spec"]["bodies"]])
        s["states"][10:, dyn] += 100.0
    second = model_rollouts(model, tampered, 10, 15)
    for a, b, s in zip(first, second, scenes, strict=True):
        assert np.array_equal(a[:10], s["states"][:10])
        assert np.array_equal(a, b)


def test_evaluate_writes_metrics_predictions_gifs_and_report(trained, capsys):
    out = trained / "eval"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(trained / "run" / "checkpoints" / "best.safetensors"),
                "--val-dir",
                str(trained / "val"),
                "--output-dir",
                str(out),
                "--context-frames",
                "10",
                "--rollout-frames",
                "20",
                "--max-scenes-per-type",
                "1",
                "--report",
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "heldout  constant_velocity" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["methods"] == [
        "model",
        "constant_position",
        "constant_velocity",
        "ballistic",
        "chaos_floor",
    ]
    assert metrics["dataset"]["seen_types"] == ["pendulum", "projectile"]
    assert metrics["dataset"]["heldout_types"] == ["pong"]  # from the checkpoint's training data
    assert (
        metrics["per_type"]["pong"]["split"] == "heldout" and metrics["per_type"]["pong"]["num_scenes"] == 1
    )
    seen = metrics["aggregate"]["seen"]
    for method in metrics["methods"]:
        assert set(seen[method]["position_error_px"]) == {"1", "5", "10", "20", "all"}
        assert {"energy_drift", "penetration_px", "static_penetration_px", "parse_failures"} <= set(
            seen[method]
        )
    assert len(metrics["error_vs_horizon"]["heldout"]["model"]) == 20
    assert (
        seen["chaos_floor"]["position_error_px"]["20"] < seen["constant_position"]["position_error_px"]["20"]
    )
    assert sorted(metrics["gifs"]) == ["pendulum", "pong", "projectile"]
    assert all((out / path).exists() for path in metrics["gifs"].values())
    preds = Dataset(out / "predictions")
    assert len(preds) == 3 and preds.scene(preds.scene_ids[0])["states"].shape[0] == 30
    assert validate(out / "predictions", check_physics=False).ok  # predictions are a dataset like any other
    html = (out / "report.html").read_text()
    assert "data:image/gif;base64" in html and "held-out" in html.lower()
    assert "both overlaid" in html and "scenes per type</dt><dd>1 (at most 1 asked for)" in html


def test_comparison_gifs_mark_where_the_prediction_begins(trained, tmp_path):
    """Issue 9: three panels (truth, prediction, overlay) of 320 x 240, and a header strip grey on the
    context frames and orange on the predicted ones, so the switch is visible on the frame it happens."""
    from PIL import Image

    from physworld.evaluation.evaluate import (
        CONTEXT_GREY,
        PREDICTION_ORANGE,
        comparison_frames,
        write_comparison_gifs,
    )

    scene = Dataset(trained / "val").scene(0)
    pred = scene["states"][:8].copy()
    pred[5:, :, :2] += 40.0  # a visible error after a context of 5
    frames = comparison_frames(scene, pred, context_frames=5)
    assert frames.shape == (8, 22 + 240, 3 * 320 + 2 * 6, 3)
    header = frames[:, 2, -3]  # the strip's right end, clear of the text
    assert (header[:5] == CONTEXT_GREY).all() and (header[5:] == PREDICTION_ORANGE).all()
    truth_panel, pred_panel, overlay = (frames[:, 22:, k * 326 + 4 : k * 326 + 316] for k in range(3))

    def drawn(panel):  # pixels that are not the empty background
        return (panel != (250, 250, 250)).any(-1)

    assert np.array_equal(drawn(truth_panel[:5]), drawn(pred_panel[:5]))  # context: the same picture
    assert not np.array_equal(drawn(truth_panel[7]), drawn(pred_panel[7]))  # then the error shows
    # the overlay holds both the truth's green and the prediction's blue
    colours = {tuple(c) for c in overlay[7].reshape(-1, 3)}
    assert (40, 160, 60) in colours and (40, 90, 210) in colours
    written = write_comparison_gifs(tmp_path, [scene], [pred], context_frames=5)
    with Image.open(tmp_path / Path(written[scene["scenario_type"]]).name) as gif:
        assert gif.size == (972, 262) and gif.n_frames == 8


def test_render_comparison_and_errors(trained, capsys):
    out = trained / "cmp"
    assert (
        main(
            [
                "render-comparison",
                "--checkpoint",
                str(trained / "run" / "checkpoints" / "best.safetensors"),
                "--val-dir",
                str(trained / "val"),
                "--output-dir",
                str(out),
                "--scenario-types",
                "pong",
                "--num-scenes",
                "2",
            ]
        )
        == 0
    )
    assert len(list(out.glob("pong_*_cmp.gif"))) == 2
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(trained / "run" / "checkpoints" / "best.safetensors"),
                "--val-dir",
                str(trained / "val"),
                "--output-dir",
                str(trained / "x"),
                "--rollout-frames",
                "90",
                "--quiet",
            ]
        )
        == 2
    )
    assert "fewer than context + rollout" in capsys.readouterr().err


def test_evaluate_uses_one_torch_thread_unless_told(trained, tmp_path):
    """Rollouts of small models collapse with torch's default threads on a shared CPU: evaluate sets one
    thread by default, --threads N sets N, and --threads 0 leaves torch's setting alone."""
    import torch

    before = torch.get_num_threads()
    args = [
        "evaluate",
        "--checkpoint",
        str(trained / "run" / "checkpoints" / "best.safetensors"),
        "--val-dir",
        str(trained / "val"),
        "--context-frames",
        "5",
        "--rollout-frames",
        "5",
        "--max-scenes-per-type",
        "1",
        "--no-render",
        "--quiet",
    ]
    try:
        torch.set_num_threads(2)
        assert main([*args, "--output-dir", str(tmp_path / "a")]) == 0
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        assert main([*args, "--output-dir", str(tmp_path / "b"), "--threads", "0"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
