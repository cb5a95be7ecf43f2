"""VoE pairs (data/voe.py) and the intuitive-physics scores (evaluation/intuitive_physics.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from physworld.data import voe as V

TINY = dict(resolution=64, frames=8, fps=12.0)


@pytest.fixture(scope="module")
def pairs_2d(tmp_path_factory):
    out = tmp_path_factory.mktemp("voe") / "pairs2d"
    config = V.VoEConfig(**TINY, scenarios=("seen",), num_pairs=6, seed=3)  # one pair of each kind
    V.generate_pairs(out, config, progress=False)
    return out, config


@pytest.fixture(scope="module")
def pairs_3d(tmp_path_factory):
    out = tmp_path_factory.mktemp("voe") / "pairs3d"
    kinds = tuple(k for k in V.KINDS if k not in V.KINDS_2D_ONLY)
    config = V.VoEConfig(**TINY, scenarios=("movi_a", "tower_3d"), kinds=kinds, num_pairs=5, seed=1)
    V.generate_pairs(out, config, progress=False)
    return out, config


def _check_pairs(pairs):
    for p in pairs:
        e = p["event_frame"]
        assert np.array_equal(p["possible_rgb"][:e], p["impossible_rgb"][:e]), p["kind"]
        assert (p["possible_rgb"][e:] != p["impossible_rgb"][e:]).any(-1).sum() >= V.MIN_CHANGED_PIXELS
        assert np.array_equal(p["possible_states"][:e], p["impossible_states"][:e])
        spec = {**p["spec"], "_voe_other": p["details"].get("other", -1)}
        assert (
            V.violation_check(p["kind"], spec, p["possible_states"], p["impossible_states"], e, p["body"])
            == ""
        )


def _kind_claims(p):
    """What each kind claims, checked on the stored states directly."""
    dims = p["dims"]
    up = dims - 1
    e, body = p["event_frame"], p["body"]
    poss, imp = p["possible_states"], p["impossible_states"]
    floor = V._floor_level(p["spec"])
    if p["kind"] == "through_floor":
        assert poss[:, body, up].min() >= floor - (5.0 if dims == 2 else 0.05)  # the real body stays up
        assert imp[e:, body, up].min() < floor  # the impossible one sinks below the floor
    elif p["kind"] == "fall_upward":
        g = V._gravity(p["spec"])[up]
        v = V.VELOCITY_UP[dims]
        dyn = V._dynamic(p["spec"])
        assert np.sign(imp[-1, dyn, v].mean() - imp[e - 1, dyn, v].mean()) == -np.sign(g)
    elif p["kind"] == "teleport":
        jump = np.linalg.norm(imp[e, body, :dims] - poss[e, body, :dims])
        assert jump > (100 if dims == 2 else 0.5)
        assert np.allclose(
            imp[e:, body, :dims] - poss[e:, body, :dims],
            imp[e, body, :dims] - poss[e, body, :dims],
            atol=1e-3,
        )
    elif p["kind"] == "vanish":
        assert np.abs(imp[e:, body, :dims]).max() > 1e3
        colour_changed = (p["possible_rgb"][e:] != p["impossible_rgb"][e:]).any(-1)
        assert colour_changed.any()
    elif p["kind"] == "through_object":
        other = p["details"]["other"]
        d = np.linalg.norm(imp[e:, body, :2] - imp[e:, other, :2], axis=-1).min()
        d_real = np.linalg.norm(poss[:, body, :2] - poss[:, other, :2], axis=-1).min()
        assert d < d_real
    elif p["kind"] == "size_change":
        assert p["details"]["scale"] in (V.GROW, V.SHRINK)


def test_2d_pairs_identical_before_the_event_and_violating_after(pairs_2d):
    out, config = pairs_2d
    manifest, pairs = V.load_pairs(out)
    assert sorted(p["kind"] for p in pairs) == sorted(V.KINDS)
    assert manifest["num_pairs"] == 6 and all(p["dims"] == 2 for p in pairs)
    lo, hi = config.event_range()
    assert all(lo <= p["event_frame"] <= hi for p in pairs)
    _check_pairs(pairs)
    for p in pairs:
        _kind_claims(p)


def test_3d_pairs_identical_before_the_event_and_violating_after(pairs_3d):
    _, pairs = V.load_pairs(pairs_3d[0])
    assert {p["dims"] for p in pairs} == {3} and len({p["kind"] for p in pairs}) == 5
    _check_pairs(pairs)
    for p in pairs:
        _kind_claims(p)


def test_pairs_are_deterministic_and_resume(tmp_path, pairs_2d):
    out, config = pairs_2d
    again = tmp_path / "again"
    V.generate_pairs(again, config, progress=False)
    for shard in sorted((out / "shards").iterdir()):
        assert (again / "shards" / shard.name).read_bytes() == shard.read_bytes()
    (again / "manifest.json").unlink()
    (again / V.shard_name(0)).unlink()
    V.generate_pairs(again, config, progress=False)  # resumes: the missing shard comes back the same
    assert json.loads((again / "manifest.json").read_text()) == json.loads(
        (out / "manifest.json").read_text()
    )


def test_voe_pairs_cli_bad_input_one_line(tmp_path, capsys):
    from physworld.cli import main

    for argv, needle in (
        (["--kinds", "wobble"], "--kinds wobble: choose from"),
        (["--scenarios", "nowhere"], "unknown scenario type 'nowhere'"),
        (["--kinds", "through_object", "--scenarios", "3d"], "needs 2D scenario types"),
    ):
        assert main(["voe-pairs", "--out", str(tmp_path / "x"), "--pairs", "2", "--quiet", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err


# ---------------------------------------------------------------- scores


def test_ridge_recovers_a_linear_map():
    from physworld.evaluation.intuitive_physics import r2_scores, ridge_fit, ridge_predict

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    w = rng.normal(size=(6, 2))
    y = x @ w + 3.0
    fit = ridge_fit(x, y, 1e-6)
    assert np.allclose(fit[:-1], w, atol=1e-3) and np.allclose(fit[-1], 3.0, atol=1e-3)
    assert np.all(r2_scores(y, ridge_predict(fit, x)) > 0.999)
    assert np.all(r2_scores(y, np.zeros_like(y) + y.mean(0)) == 0.0)


def test_causal_tokens_agree_before_the_event(pairs_2d):
    import torch

    from physworld.evaluation.intuitive_physics import causal_tokens, load_models, pixel_tokens

    torch.set_num_threads(1)
    _, pairs = V.load_pairs(pairs_2d[0])
    models = load_models("random")
    info = models["info"]
    p = next(q for q in pairs if q["event_frame"] >= 2 * info["tubelet"])
    both = np.stack([p["possible_rgb"], p["impossible_rgb"]])
    z = causal_tokens(models["random"]["target"], both, info)
    k = p["event_frame"] // info["tubelet"]
    assert z.shape[:4] == (2, 8 // info["tubelet"], *info["grid"][1:])
    assert np.array_equal(z[0, :k], z[1, :k])  # the encoder never sees frames past its step
    assert not np.allclose(z[0, k:], z[1, k:])
    px = pixel_tokens(both, info)
    assert np.array_equal(px[0, :k], px[1, :k]) and not np.array_equal(px[0, k:], px[1, k:])


def test_voe_cli_scores_every_model_and_refuses_bad_input(tmp_path, pairs_2d, capsys):
    import torch

    from physworld.cli import main

    torch.set_num_threads(1)
    out = tmp_path / "voe.json"
    assert (
        main(["voe", "--checkpoint", "random", "--pairs", str(pairs_2d[0]), "--output", str(out), "--quiet"])
        == 0
    )
    result = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "| types | kind | pairs |" in printed
    assert set(result["models"]) == {"random_ridge", "random_predictor", "pixel_ridge", "pixel_extrapolate"}
    for rows in result["models"].values():
        assert rows["all/all"]["pairs"] == 6 and 0.0 <= rows["all/all"]["accuracy"] <= 1.0
        assert sum(rows[f"all/{k}"]["pairs"] for k in V.KINDS) == 6
    # one line for a missing folder, a missing checkpoint, and pairs of the wrong image size
    bad = tmp_path / "odd"
    V.generate_pairs(
        bad,
        V.VoEConfig(resolution=40, frames=8, scenarios=("tower",), kinds=("teleport",), num_pairs=1),
        progress=False,
    )
    for argv, needle in (
        (["--pairs", str(tmp_path / "none")], "no such folder"),
        (["--pairs", str(pairs_2d[0]), "--checkpoint", str(tmp_path / "no.safetensors")], "no such file"),
        (["--pairs", str(bad)], "pairs are 40 x 40 px, the encoder takes 16 x 16"),
    ):
        args = ["voe", "--checkpoint", "random", "--quiet", *argv]
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err, err


def test_probe_cli_reports_r2_per_target(tmp_path, capsys):
    import torch

    from physworld.cli import main
    from physworld.data import clips as C
    from physworld.data.generate import GenerateConfig, generate

    torch.set_num_threads(1)
    root = tmp_path / "ds"
    generate(
        GenerateConfig(
            ("billiards", "head_on"), num_scenes_per_type=4, frames_per_scene=40, seed=2, scenes_per_shard=8
        ),
        root,
        num_workers=1,
        progress=False,
    )
    C.render_clips(
        root, C.ClipConfig(resolution=16, frames=4, fps=15, captions=False), num_workers=1, progress=False
    )
    out = tmp_path / "probe.json"
    assert (
        main(
            [
                "probe",
                "--checkpoint",
                "random",
                "--clips-dir",
                str(root / "clips"),
                "--output",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert set(result["r2"]) == {"random", "pixel"}
    for r2 in result["r2"].values():
        assert {"x", "y", "vx", "vy", "log_mass_rel", "friction", "restitution"} <= set(r2)
    assert result["test_clips"] == 2 and "| features |" in capsys.readouterr().out
    assert main(["probe", "--checkpoint", "random", "--clips-dir", str(tmp_path / "nope"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no such folder" in err and "\n" not in err


def test_voe_and_probe_on_a_trained_vjepa_checkpoint(tmp_path, pairs_2d, capsys):
    """A vjepa recipe checkpoint (tiny config, a few steps) is scored with its own predictor too."""
    import torch

    from physworld.cli import main
    from physworld.data import clips as C
    from physworld.data.generate import GenerateConfig, generate

    torch.set_num_threads(1)
    data = tmp_path / "train"
    generate(
        GenerateConfig(
            ("billiards", "head_on"), num_scenes_per_type=3, frames_per_scene=40, seed=4, scenes_per_shard=8
        ),
        data,
        num_workers=1,
        progress=False,
    )
    C.render_clips(
        data, C.ClipConfig(resolution=16, frames=4, fps=15, captions=False), num_workers=1, progress=False
    )
    run = tmp_path / "run"
    assert main(["train", "vjepa", "--config", "configs/vjepa/tiny.yaml", f"data.train_dir={data}", f"train.output_dir={run}",
                 "train.max_steps=2", "train.tensorboard=false", "data.val_clips=2"]) == 0  # fmt: skip
    ckpt = run / "checkpoints" / "latest.safetensors"
    out = tmp_path / "voe.json"
    assert (
        main(["voe", "--checkpoint", str(ckpt), "--pairs", str(pairs_2d[0]), "--output", str(out), "--quiet"])
        == 0
    )
    models = json.loads(out.read_text())["models"]
    assert {"vjepa_predictor", "vjepa_ridge", "random_predictor", "random_ridge"} <= set(models)
    assert (
        main(
            [
                "probe",
                "--checkpoint",
                str(ckpt),
                "--clips-dir",
                str(data / "clips"),
                "--output",
                str(tmp_path / "p.json"),
                "--quiet",
            ]
        )
        == 0
    )
    assert set(json.loads((tmp_path / "p.json").read_text())["r2"]) == {"vjepa", "random", "pixel"}
    capsys.readouterr()
