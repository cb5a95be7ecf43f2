"""The drawer_open pipeline on the tiny config: every step, success.json, nothing rerun when nothing
changed, resume after an interruption, dry-run, and bad input as one line with nothing written.
Also the episode store (resumable, deterministic) and the LeRobotDataset v3 export's layout."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
pytest.importorskip("metaworld")
pytest.importorskip("stable_baselines3")

from physworld import cli  # noqa: E402
from physworld import pipeline as pl  # noqa: E402

TINY = Path(__file__).resolve().parents[1] / "configs" / "pipeline" / "tiny.yaml"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "run"
    assert cli.main(["pipeline", "run", str(TINY), f"out_dir={out}", "--quiet"]) == 0
    return out


def test_every_step_runs_and_success_lists_checksums(finished):
    success = json.loads((finished / "success.json").read_text())
    assert set(success["steps"]) == set(pl.STEPS)
    for step, entry in success["steps"].items():
        assert entry["files"], step
        for rel, digest in entry["files"].items():
            assert pl.sha256_file(finished / step / rel) == digest
    results = json.loads((finished / "evaluation" / "results.json").read_text())
    assert set(results["policies"]) == {"multi_objective_sac", "sb3_sac", "expert", "random"}
    assert results["policies"]["expert"]["episodes"] == 2
    report = (finished / "evaluation" / "report.md").read_text()
    assert "copy-last (baseline)" in report and "random encoder (baseline)" in report


def test_a_second_run_reruns_nothing(finished, capsys):
    before = {
        p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file() and p.name != "success.json"
    }
    assert cli.main(["pipeline", "run", str(TINY), f"out_dir={finished}", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(" current " in line for line in lines[:6]), lines
    after = {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file() and p.name != "success.json"}
    assert before == after


def test_dry_run_writes_nothing(finished, tmp_path, capsys):
    out = tmp_path / "fresh"
    assert cli.main(["pipeline", "run", str(TINY), f"out_dir={out}", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "data        run      never finished" in text and "nothing was run" in text
    assert not out.exists()
    # a changed section reruns that step and, only after it, the steps reading it
    assert (
        cli.main(["pipeline", "run", str(TINY), f"out_dir={finished}", "--dry-run", "segmenter.lr=0.01"]) == 0
    )
    text = capsys.readouterr().out
    assert "segmenter   run      config section" in text and "simclr      current" in text
    assert "evaluation  run      after segmenter" in text


def _one_line_error(capsys, argv):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    out = tmp_path / "never"
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(TINY.read_text().replace("steps: [data,", "steps: [dat,"))
    assert "unknown step 'dat'" in _one_line_error(capsys, ["pipeline", "run", str(cfg), f"out_dir={out}"])
    err = _one_line_error(capsys, ["pipeline", "run", str(TINY), f"out_dir={out}", "--skip", "data"])
    assert "needs the outputs of 'data'" in err
    assert "unknown step" in _one_line_error(
        capsys, ["pipeline", "run", str(TINY), f"out_dir={out}", "--only", "sim"]
    )

    def missing():
        raise ModuleNotFoundError(
            'metaworld is not installed; the drawer_open task needs the robot extra: pip install -e ".[robot]"'
        )

    monkeypatch.setattr("physworld.worlds.drawer_open.require_robot_packages", missing)
    assert "metaworld is not installed" in _one_line_error(
        capsys, ["pipeline", "run", str(TINY), f"out_dir={out}"]
    )
    assert not out.exists()


def test_interrupted_step_resumes_to_the_same_weights(finished, tmp_path, monkeypatch, capsys):
    from safetensors.torch import load_file

    from physworld.recipes import segmenter

    out = tmp_path / "resumed"
    out.mkdir()
    shutil.copytree(finished / "data", out / "data")
    original = segmenter.CheckpointManager.save_latest
    calls = {"n": 0}

    def save_then_die(self, *args, **kwargs):
        original(self, *args, **kwargs)
        calls["n"] += 1
        raise KeyboardInterrupt

    monkeypatch.setattr(segmenter.CheckpointManager, "save_latest", save_then_die)
    assert cli.main(["pipeline", "run", str(TINY), f"out_dir={out}", "--only", "segmenter", "--quiet"]) == 130
    assert calls["n"] == 1 and (out / "segmenter" / "running.json").exists()
    assert not (out / "segmenter" / "step.json").exists()
    monkeypatch.setattr(segmenter.CheckpointManager, "save_latest", original)
    capsys.readouterr()
    assert cli.main(["pipeline", "run", str(TINY), f"out_dir={out}", "--only", "segmenter", "--quiet"]) == 0
    assert "segmenter   resume" in capsys.readouterr().out
    a = load_file(str(out / "segmenter" / "segmenter.safetensors"))
    b = load_file(str(finished / "segmenter" / "segmenter.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert not (out / "success.json").exists()  # only one step ran: no success marker


def test_episode_store_resumes_with_identical_bytes(finished, tmp_path):
    from physworld.data.episodes import build_episodes
    from physworld.fileio import sha256_file

    cfg = pl.load_pipeline_config(TINY)
    out = tmp_path / "data"
    shutil.copytree(finished / "data" / "episodes", out / "episodes")
    victim = out / "episodes" / "ep_000003.safetensors"
    victim.unlink()
    manifest = build_episodes(cfg.data, out, progress=False)
    assert sha256_file(victim) == sha256_file(finished / "data" / "episodes" / victim.name)
    kinds = [e["kind"] for e in manifest["episodes"]]
    assert kinds == ["expert", "expert", "noisy", "random", "random"]
    assert (
        all(e["success"] for e in manifest["episodes"] if e["kind"] == "expert")
        or cfg.data.env.max_steps < 90
    )


def test_lerobot_v3_layout(finished):
    import imageio.v3 as iio
    import pyarrow.parquet as pq

    root = finished / "data" / "lerobot"
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    data = pq.read_table(root / info["data_path"].format(chunk_index=0, file_index=0)).to_pydict()
    episodes = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert len(data["index"]) == info["total_frames"] == sum(e["length"] for e in episodes)
    assert len(episodes) == info["total_episodes"]
    for e in episodes:
        rows = range(e["dataset_from_index"], e["dataset_to_index"])
        assert {data["episode_index"][i] for i in rows} == {e["episode_index"]}
        assert [data["frame_index"][i] for i in rows] == list(range(e["length"]))
        assert data["next.done"][rows[-1]]
    key = "observation.images.top"
    for name in info["features"]:
        if info["features"][name]["dtype"] != "video":
            assert name in data
    video = root / info["video_path"].format(video_key=key, chunk_index=0, file_index=0)
    frames = iio.imread(video, index=None, plugin="FFMPEG")
    assert len(frames) == info["total_frames"]
    assert list(frames.shape[1:]) == info["features"][key]["shape"]
    from physworld.data.episodes import load_episode

    stored = np.concatenate(
        [
            load_episode(finished / "data" / f"episodes/ep_{e['episode_index']:06d}.safetensors")["frames"][
                :-1
            ]
            for e in episodes
        ]
    )
    assert np.abs(frames.astype(int) - stored).mean() < 10  # H.264 is lossy, but the same pictures in order
    tasks = pq.read_table(root / "meta" / "tasks.parquet").to_pylist()
    assert tasks == [{"task_index": 0, "task": "open the drawer"}]
