"""Clips: ground truth that agrees with the states, stored deterministically, resumably, checked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from physworld.cli import main
from physworld.data import clips as C
from physworld.data.clip_view import ClipDataset, collate_clips, prepare_clips
from physworld.data.generate import GenerateConfig, generate, make_record
from physworld.data.store import Dataset
from physworld.data.validate import validate
from physworld.fileio import sha256_file
from tests.test_generate_store import assert_same_tree

SMALL = dict(
    scenario_types=("collision", "pendulum"), num_scenes_per_type=2, frames_per_scene=20, scenes_per_shard=4
)
TINY = C.ClipConfig(resolution=32, frames=4, fps=15)  # stride 4: frames 0, 4, 8, 12; flow to 16


@pytest.fixture(scope="module")
def clip_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips") / "ds"
    generate(GenerateConfig(**SMALL, seed=5), root, num_workers=1, progress=False)
    C.render_clips(root, TINY, num_workers=1, progress=False)
    return root


def test_clip_streams_agree_with_the_states(clip_dataset):
    ds = Dataset(clip_dataset)
    clips = list(C.Clips(clip_dataset / "clips").iter_clips())
    assert [c["scene_id"] for c in clips] == ds.scene_ids == list(range(len(ds)))
    for clip in clips:
        rec = ds.scene(clip["scene_id"])
        assert clip["frame_indices"].tolist() == [0, 4, 8, 12]
        assert clip["states"].tobytes() == rec["states"][[0, 4, 8, 12]].tobytes()
        assert clip["rgb"].shape == (4, 32, 32, 3) and clip["rgb"].dtype == np.uint8
        assert clip["segmentation"].shape == (4, 32, 32) and clip["depth"] is None
        # Counts and boxes are those of the segmentation.
        for t in range(4):
            for i in range(clip["states"].shape[1]):
                where = np.argwhere(clip["segmentation"][t] == i + 1)
                assert clip["visible_pixels"][t, i] == len(where)
                if len(where):
                    assert clip["bboxes"][t, i].tolist() == [*where.min(0), *where.max(0)]
                else:
                    assert clip["bboxes"][t, i].tolist() == [-1, -1, -1, -1]


def test_captions_describe_what_the_clip_shows(clip_dataset):
    from physworld.data.captions import describe_scene

    ds = Dataset(clip_dataset)
    for clip in list(C.Clips(clip_dataset / "clips").iter_clips())[:3]:
        want = describe_scene(ds.scene(clip["scene_id"]), horizon_frames=12)  # the last clip frame
        assert clip["caption"] == want and want["caption"]


def test_every_fully_visible_centre_is_inside_its_mask():
    """Project each body's centre with the clip's camera: it falls in its own mask (a 64 px clip)."""
    from physworld.data.validate_clips import project_centres

    checked = 0
    for t, d in (("billiards", 3), ("tower", 2), ("pendulum", 1), ("dominos", 4)):
        rec = dict(make_record(0, t, d, 7, 40), scene_id=0)
        clip = dict(C.render_clip(rec, C.ClipConfig(resolution=64, frames=8, fps=12)), scene_id=0)
        centre = project_centres(clip)
        scale = min(clip["camera"]["scale"])
        for f, i in zip(*np.nonzero(clip["visible_fraction"] >= 0.99), strict=True):
            col, row = np.floor(centre[f, i]).astype(int)
            if _thinnest(rec["spec"]["bodies"][i]) * scale >= 2:  # at least 2 px across: exact
                assert clip["segmentation"][f, row, col] == i + 1, (t, f, i)
            else:  # thinner than 2 px (a domino at 64 px): its centre may fall between pixel centres
                assert (clip["segmentation"][f, row - 1 : row + 2, col - 1 : col + 2] == i + 1).any(), (
                    t,
                    f,
                    i,
                )
            checked += 1
    assert checked > 50


def _thinnest(body: dict) -> float:
    if body["shape"] == "circle":
        return 2 * body["radius"]
    if body["shape"] == "box":
        return min(body["width"], body["height"])
    v = np.asarray(body["vertices"])
    return float(min(np.ptp(v[:, 0]), np.ptp(v[:, 1])))


def test_flow_moves_pixels_onto_their_body_in_the_next_frame():
    """Follow each ball pixel's centre along its flow: it lands inside the same ball at the next clip
    frame (exactly, in world coordinates), and a ball that does not turn moves every pixel by its
    centre's shift."""
    rec = dict(make_record(0, "billiards", 4, 3, 130), scene_id=0)
    clip = C.render_clip(rec, C.ClipConfig(resolution=128, frames=24, fps=12))
    seg, flow, cam = clip["segmentation"].astype(int), clip["flow"], clip["camera"]
    states, idx = rec["states"].astype(np.float64), np.arange(25) * 5
    bodies = rec["spec"]["bodies"]
    assert all(b["shape"] == "circle" for b in bodies)
    checked = 0
    for t in range(24):
        rows, cols = np.nonzero((seg[t] >= 1) & (seg[t] < C.SEG_STATIC))
        body = seg[t, rows, cols] - 1
        col2 = cols + 0.5 + flow[t, rows, cols, 0]
        row2 = rows + 0.5 + flow[t, rows, cols, 1]
        x = col2 / cam["scale"][0]
        y = cam["world_height"] - (row2 - cam["pad_rows"]) / cam["scale"][1]
        centre = states[idx[t + 1], body, :2]
        radius = np.array([bodies[i]["radius"] for i in body])
        assert np.all(np.hypot(x - centre[:, 0], y - centre[:, 1]) <= radius * (1 + 1e-5)), t
        checked += len(rows)
    assert checked > 1000
    # Pure translation: a ball's pixels all move by the projected shift of its centre.
    cam, states = clip["camera"], rec["states"]
    idx = np.arange(25) * 5
    for i in range(states.shape[1]):
        for t in range(23):
            px = np.nonzero(seg[t] == i + 1)
            if not len(px[0]):
                continue
            shift = C.project_2d(states[idx[t + 1], i, :2], cam) - C.project_2d(states[idx[t], i, :2], cam)
            turn = states[idx[t + 1], i, 2] - states[idx[t], i, 2]
            if abs(turn) < 1e-9:
                assert np.allclose(flow[t][px], shift, atol=1e-3)
    # Background and static pixels carry no flow.
    assert np.all(flow[seg == 0] == 0) and np.all(flow[seg == C.SEG_STATIC] == 0)


def test_one_and_two_workers_write_identical_bytes(tmp_path, clip_dataset):
    copy = tmp_path / "ds"
    shutil.copytree(clip_dataset, copy, ignore=shutil.ignore_patterns("clips"))
    C.render_clips(copy, TINY, num_workers=2, progress=False)
    assert_same_tree(copy / "clips", clip_dataset / "clips")


def _render_cli(data_dir, *extra):
    return [
        sys.executable,
        "-m",
        "physworld.cli",
        "render-clips",
        "--data-dir",
        str(data_dir),
        "--quiet",
        *extra,
    ]


def test_resumes_after_sigkill_without_loss_or_duplicates(tmp_path):
    root = tmp_path / "ds"
    generate(
        GenerateConfig(
            ("billiards",), num_scenes_per_type=10, frames_per_scene=48, scenes_per_shard=1, seed=2
        ),
        root,
        progress=False,
    )
    flags = ["--resolution", "64", "--frames", "12", "--fps", "15"]
    ref = tmp_path / "ref"
    subprocess.run(_render_cli(root, "--clips-dir", str(ref), "--num-workers", "1", *flags), check=True)
    out = root / "clips"
    kills = 0
    for shards_before_kill in (0, 2, 6):
        proc = subprocess.Popen(_render_cli(root, "--num-workers", "2", *flags), start_new_session=True)
        while proc.poll() is None and len(list(out.glob("shards/clips-*.parquet"))) < shards_before_kill:
            time.sleep(0.002)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    (out / "shards" / ".clips-00003.k3j9x_2a.tmp.parquet").write_bytes(b"PAR1 half a shard")
    subprocess.run(_render_cli(root, "--num-workers", "2", *flags), check=True)
    assert kills >= 1, "the run finished before it could be killed; make it longer"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_clips"] == 10
    # The same bytes as an uninterrupted run (the folder name is not part of any file).
    assert_same_tree(out, ref)


def _rewrite_shard(clips_dir: Path, k: int, edit) -> Path:
    """Apply `edit` to shard k's decoded rows, write it back and fix its checksum, as a careless
    tool would; returns the shard path."""
    path = clips_dir / C.clip_shard_name(k)
    rows = pq.read_table(path).to_pylist()
    edit(rows)
    for r in rows:
        for key in (
            "frame_indices",
            "depth",
            "flow",
            "visible_pixels",
            "visible_fraction",
            "bboxes",
            "states",
        ):
            r[key] = np.asarray(r[key])
    path.write_bytes(C.clip_shard_bytes(rows))
    manifest = json.loads((clips_dir / "manifest.json").read_text())
    manifest["shards"][k]["sha256"] = sha256_file(path)
    (clips_dir / "manifest.json").write_text(json.dumps(manifest))
    return path


def test_validate_finds_and_locates_damage(tmp_path, clip_dataset, capsys):
    assert validate(clip_dataset, resimulate="none").ok
    copy = tmp_path / "ds"
    shutil.copytree(clip_dataset, copy)
    clips_dir = copy / "clips"

    # A mask shifted away from its bodies: checksums fine, the masks check locates it.
    def shift_masks(rows):
        seg = np.stack([C.decode_png(f["bytes"]) for f in rows[1]["segmentation"]])
        seg = np.roll(seg, 8, axis=2)
        rows[1]["segmentation"] = [{"bytes": C.encode_png(f), "path": None} for f in seg]

    _rewrite_shard(clips_dir, 0, shift_masks)
    report = validate(copy, resimulate="none")
    assert not report.ok
    checks = {(f.check, f.scene_id) for f in report.findings}
    assert ("masks", 1) in checks and ("clips", 1) in checks  # boxes disagree too

    # A flipped byte in a shard: named by file, exit status 1.
    shard = clips_dir / C.clip_shard_name(0)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert main(["validate", "--data-dir", str(copy), "--resimulate", "none", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "clips/shards/clips-00000.parquet: sha256 does not match the clips manifest" in out

    # A truncated PNG frame: located by scene and frame.
    copy2 = tmp_path / "ds2"
    shutil.copytree(clip_dataset, copy2)

    def truncate(rows):
        rows[2]["rgb"][3] = {"bytes": rows[2]["rgb"][3]["bytes"][:40], "path": None}

    _rewrite_shard(copy2 / "clips", 0, truncate)
    report = validate(copy2, resimulate="none")
    bad = [f for f in report.findings if f.check == "clips"]
    assert bad and (bad[0].scene_id, bad[0].frame) == (2, 3) and "rgb frame does not decode" in bad[0].message

    # An interrupted render (no manifest) is a finding that says what to run.
    (copy2 / "clips" / "manifest.json").unlink()
    report = validate(copy2, resimulate="none")
    assert any("rerun physworld render-clips" in f.message for f in report.findings)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--resolution", "33"], "--clip-resolution 33: must be even"),
        (["--resolution", "8"], "--clip-resolution 8: need a whole number of pixels in [16, 1024]"),
        (["--frames", "0"], "--clip-frames 0: need a whole number in [1, 1000]"),
        (["--fps", "7"], "--clip-fps 7: must divide the simulation's 60 frames/s"),
        (["--fps", "-1"], "--clip-fps -1: need a positive number"),
        (["--frames", "24", "--fps", "12"], "use --clip-frames 4 or a higher --clip-fps"),
    ],
)
def test_bad_clip_flags_give_one_line_and_keep_what_exists(tmp_path, clip_dataset, capsys, flags, message):
    before = {p: p.read_bytes() for p in (clip_dataset / "clips").rglob("*") if p.is_file()}
    assert main(["render-clips", "--data-dir", str(clip_dataset), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in (clip_dataset / "clips").rglob("*") if p.is_file()} == before


def test_other_settings_in_a_clips_folder_are_refused(clip_dataset, capsys):
    before = sha256_file(clip_dataset / "clips" / C.clip_shard_name(0))
    assert (
        main(
            [
                "render-clips",
                "--data-dir",
                str(clip_dataset),
                "--resolution",
                "64",
                "--frames",
                "4",
                "--fps",
                "15",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "holds other clips" in err and "--clips-dir" in err
    assert sha256_file(clip_dataset / "clips" / C.clip_shard_name(0)) == before


def test_generate_with_clips_checks_flags_before_simulating(tmp_path, capsys):
    out = tmp_path / "g"
    argv = ["generate", "--output-dir", str(out), "--scenario-types", "pong", "--num-scenes-per-type", "1"]
    assert main([*argv, "--frames-per-scene", "30", "--with-clips", "--quiet"]) == 2
    assert "--frames-per-scene" in capsys.readouterr().err and not out.exists()
    unknown = ["generate", "--output-dir", str(out), "--scenario-types", "movi_z", "--with-clips", "--quiet"]
    assert main(unknown) == 2
    assert "unknown scenario type 'movi_z'" in capsys.readouterr().err and not out.exists()
    assert (
        main(
            [
                *argv,
                "--frames-per-scene",
                "16",
                "--with-clips",
                "--clip-resolution",
                "32",
                "--clip-frames",
                "4",
                "--clip-fps",
                "15",
                "--num-workers",
                "1",
                "--no-clip-captions",
                "--quiet",
            ]
        )
        == 0
    )
    clips = C.Clips(out / "clips")
    assert clips.manifest["num_clips"] == 1 and clips.manifest["clip"]["captions"] is False
    assert next(clips.iter_clips())["caption"] is None


def test_clip_view_serves_the_stored_clips(clip_dataset):
    view = prepare_clips(clip_dataset, progress=False)
    assert prepare_clips(clip_dataset, progress=False) == view  # up to date: returns at once
    ds = ClipDataset(view)
    clips = list(C.Clips(clip_dataset / "clips").iter_clips())
    assert len(ds) == len(clips)
    for i in (0, len(ds) - 1):
        item = ds[i]
        assert item["scene_id"] == clips[i]["scene_id"]
        for key in ("rgb", "flow", "states", "bboxes", "visible_pixels", "visible_fraction"):
            assert np.array_equal(item[key].numpy(), clips[i][key]), key
        assert np.array_equal(item["segmentation"].numpy(), clips[i]["segmentation"])
    batch = collate_clips([ds[0], ds[1]])
    assert batch["rgb"].shape == (2, 4, 32, 32, 3) and len(batch["states"]) == 2
    rgb_only = ClipDataset(view, streams=("rgb",))[1]
    assert set(rgb_only) == {"scene_id", "scenario_type", "difficulty", "rgb"}
    assert np.array_equal(rgb_only["rgb"].numpy(), clips[1]["rgb"])
    with pytest.raises(C.ClipError, match=r"streams \['depth'\]: not in this view"):
        ClipDataset(view, streams=("rgb", "depth"))
    assert main(["prepare-clips", str(clip_dataset), "--quiet"]) == 0


def test_hugging_face_datasets_opens_the_clips(clip_dataset, tmp_path):
    datasets = pytest.importorskip("datasets")
    hf = datasets.load_dataset(str(clip_dataset / "clips"), split="train", cache_dir=str(tmp_path / "hf"))
    assert len(hf) == len(Dataset(clip_dataset)) == 12
    row = hf[1]
    clip = list(C.Clips(clip_dataset / "clips").iter_clips())[1]
    assert np.array_equal(np.stack([np.asarray(im) for im in row["rgb"]]), clip["rgb"])
    assert np.array_equal(np.stack([np.asarray(im) for im in row["segmentation"]]), clip["segmentation"])
    assert (
        np.asarray(row["flow"], dtype=np.float32).reshape(clip["flow"].shape).tobytes()
        == clip["flow"].tobytes()
    )


def test_png_round_trip_is_lossless():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 18, 3), dtype=np.uint8)
    seg = rng.integers(0, 65536, (16, 18)).astype(np.uint16)
    assert np.array_equal(C.decode_png(C.encode_png(rgb)), rgb)
    assert np.array_equal(C.decode_png(C.encode_png(seg)), seg)
    assert C.encode_png(rgb) == C.encode_png(rgb.copy())


# ---------------------------------------------------------------- 3D

TINY_3D = C.ClipConfig(resolution=48, frames=6, fps=12, captions=False)  # 3D: 24 frames/s, stride 2


@pytest.fixture(scope="module")
def clip_3d():
    pytest.importorskip("pybullet")
    rec = dict(make_record(0, "movi_b", 4, 11, 12), scene_id=0)
    return rec, dict(C.render_clip(rec, TINY_3D), scene_id=0, scenario_type="movi_b")


def test_3d_clip_streams_and_camera(clip_3d):
    from physworld.data.render3d import project_points
    from physworld.data.validate_clips import check_masks

    rec, clip = clip_3d
    n = rec["states"].shape[1]
    assert clip["rgb"].shape == (6, 48, 48, 3) and clip["depth"].shape == (6, 48, 48)
    assert clip["states"].tobytes() == rec["states"][::2][:6].tobytes()
    assert clip["camera"]["kind"] == "pinhole_3d" and np.asarray(clip["camera"]["extrinsics"]).shape == (4, 4)
    assert clip["visible_pixels"].sum() > 0 and (clip["visible_fraction"] <= 1).all()
    assert check_masks(clip, "clip") == []
    # Each body centre in view projects into (or next to) its own mask.
    centre = project_points(clip["states"][..., :3], clip["camera"])
    inside = 0
    for t, i in zip(*np.nonzero(clip["visible_fraction"] > 0.9), strict=True):
        col, row = np.floor(centre[t, i]).astype(int)
        inside += clip["segmentation"][t, row, col] == i + 1
    assert inside > 0.9 * (clip["visible_fraction"] > 0.9).sum()
    assert set(np.unique(clip["segmentation"])) <= {0, C.SEG_STATIC, *range(1, n + 1)}
    # Rendering is deterministic.
    again = C.render_clip(rec, TINY_3D)
    for key in ("rgb", "depth", "segmentation", "flow"):
        assert again[key].tobytes() == clip[key].tobytes(), key


def _unproject(clip, t, rows, cols, flow=None):
    """World points of pixel centres (moved along the flow when given, keeping the moved depth)."""
    cam = clip["camera"]
    k, ext = np.asarray(cam["intrinsics"]), np.asarray(cam["extrinsics"])
    u, v = cols + 0.5, rows + 0.5
    z = clip["depth"][t, rows, cols].astype(np.float64)
    pts = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], -1)
    return (pts - ext[:3, 3]) @ ext[:3, :3]


def _distance_to_surface(points, body, state):
    """How far points lie from a body's surface, in units of its size (0 = on the surface)."""
    from physworld.data.render3d import _rotations

    local = (points - state[:3]) @ _rotations(state[3:7])
    if body["shape"] == "sphere":
        return np.abs(np.linalg.norm(local, axis=1) / body["radius"] - 1)
    if body["shape"] == "box":
        half = 0.5 * np.asarray(body["size"])
        return np.abs(np.abs(local / half).max(axis=1) - 1)
    r, h = body["radius"], 0.5 * body["height"]  # cylinder: on the side or on a cap
    return np.minimum(np.abs(np.hypot(local[:, 0], local[:, 1]) / r - 1) + np.maximum(np.abs(local[:, 2]) / h - 1, 0),
                      np.abs(np.abs(local[:, 2]) / h - 1) + np.maximum(np.hypot(local[:, 0], local[:, 1]) / r - 1, 0))  # fmt: skip


def test_3d_depth_and_flow_follow_the_bodies(clip_3d):
    """Unprojected body pixels lie on their body's surface (depth and camera agree), and moved by the
    body's rigid motion they lie on its surface in the next clip frame, where the flow projects them."""
    from physworld.data.render3d import _rotations, project_points

    rec, clip = clip_3d
    states, bodies = rec["states"].astype(np.float64), rec["spec"]["bodies"]
    idx = np.arange(7) * 2
    err_now, err_next, checked = [], [], 0
    for t in range(6):
        seg = clip["segmentation"][t].astype(int)
        rows, cols = np.nonzero((seg >= 1) & (seg < C.SEG_STATIC))
        world = _unproject(clip, t, rows, cols)
        for i in np.unique(seg[rows, cols]) - 1:
            sel = seg[rows, cols] == i + 1
            s0, s1 = states[idx[t], i], states[idx[t + 1], i]
            err_now.append(_distance_to_surface(world[sel], bodies[i], s0))
            moved = (world[sel] - s0[:3]) @ _rotations(s0[3:7]) @ _rotations(s1[3:7]).T + s1[:3]
            err_next.append(_distance_to_surface(moved, bodies[i], s1))
            uv = project_points(moved, clip["camera"])
            got = np.stack([cols[sel] + 0.5, rows[sel] + 0.5], -1) + clip["flow"][t, rows[sel], cols[sel]]
            assert np.allclose(got, uv, atol=1e-3)
            checked += sel.sum()
    # Tessellated shapes and pixel-edge depth samples sit within a few percent of the true surface.
    assert checked > 200
    assert np.median(np.concatenate(err_now)) < 0.02 and np.median(np.concatenate(err_next)) < 0.02


def test_3d_dataset_clips_validate_and_match_worker_counts(tmp_path):
    pytest.importorskip("pybullet")
    root = tmp_path / "ds3"
    generate(
        GenerateConfig(("movi_a",), num_scenes_per_type=3, frames_per_scene=12, scenes_per_shard=2, seed=1),
        root,
        progress=False,
    )
    C.render_clips(root, TINY_3D, num_workers=1, progress=False)
    C.render_clips(root, TINY_3D, clips_dir=root / "two", num_workers=2, progress=False)
    assert_same_tree(root / "two", root / "clips")
    report = validate(root, resimulate="none")
    assert report.ok and "clips" in report.checks_run, [f.message for f in report.findings]
    view = ClipDataset(prepare_clips(root, progress=False))
    assert view[0]["depth"].shape == (6, 48, 48) and view[0]["states"].shape[-1] == 13
    assert next(C.Clips(root / "clips").iter_clips())["caption"] is None  # captions=False


def test_bad_3d_camera_is_one_clear_error():
    pytest.importorskip("pybullet")
    rec = dict(make_record(0, "movi_a", 1, 2, 12), scene_id=4)
    rec["spec"]["camera"]["fov"] = 0.0
    with pytest.raises(C.ClipError, match=r"scene 4 \(movi_a\): bad camera in its spec: camera.fov"):
        C.render_clip(rec, TINY_3D)
    rec["spec"]["camera"] = dict(rec["spec"]["camera"], fov=40.0, target=rec["spec"]["camera"]["position"])
    with pytest.raises(C.ClipError, match="position and target coincide"):
        C.render_clip(rec, TINY_3D)


def test_gallery_renders_3d_types(tmp_path):
    pytest.importorskip("pybullet")
    import imageio.v3 as iio

    from physworld.data.gallery import render_gallery

    paths = render_gallery(tmp_path, ["movi_a", "pong"], difficulty=2, frames=12, width=48, progress=False)
    assert [p.name for p in paths] == ["movi_a.gif", "pong.gif", "gallery.png"]
    frames = iio.imread(tmp_path / "movi_a.gif")
    assert frames.shape[1:3] == (48, 48) and len(np.unique(frames.reshape(-1, frames.shape[-1]), axis=0)) > 8


def test_a_damaged_clip_file_stops_prepare_with_one_line(tmp_path, clip_dataset, capsys):
    copy = tmp_path / "ds"
    shutil.copytree(clip_dataset, copy, ignore=shutil.ignore_patterns("view"))
    shard = copy / "clips" / C.clip_shard_name(1)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # truncated
    assert main(["prepare-clips", str(copy), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{shard}: does not decode" in err and "physworld validate" in err and "Traceback" not in err
    assert not (copy / "clips" / "view" / "meta.json").exists()
