"""The dataset store and `physworld generate`: lossless, deterministic, resumable, and checked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from physworld.cli import main
from physworld.data.generate import GenerateConfig, generate, make_record, scene_plan, scene_seed
from physworld.data.store import Dataset, StoreError, records_to_table, table_to_records

SMALL = dict(
    scenario_types=("collision", "pendulum"), num_scenes_per_type=6, frames_per_scene=30, scenes_per_shard=5
)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_tree(got: Path, want: Path) -> None:
    """Byte-identical directories, failing with the file names that differ (not megabytes of bytes)."""
    a, b = tree_bytes(got), tree_bytes(want)
    assert sorted(a) == sorted(b), f"extra: {sorted(set(a) - set(b))}, missing: {sorted(set(b) - set(a))}"
    assert [f for f in a if a[f] != b[f]] == []


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "small"
    generate(GenerateConfig(**SMALL, seed=3), root, num_workers=1, progress=False)
    return root


def test_records_round_trip_losslessly():
    recs = [
        make_record(i, t, d, 100 + i, 25)
        for i, (t, d) in enumerate([("billiards", 5), ("bowling", 1), ("head_on", 3)])
    ]
    back = table_to_records(records_to_table(recs))
    for a, b in zip(recs, back, strict=True):
        assert a["states"].dtype == b["states"].dtype == np.float32
        assert a["states"].tobytes() == b["states"].tobytes()
        assert a["spec"] == b["spec"]
        for k in a["events"]:
            assert np.array_equal(a["events"][k], b["events"][k])
        assert {k: a[k] for k in ("scene_id", "seed", "scenario_type", "category", "difficulty")} == {
            k: b[k] for k in ("scene_id", "seed", "scenario_type", "category", "difficulty")
        }


def test_dataset_lookup_by_id_matches_resimulation(small_dataset):
    ds = Dataset(small_dataset)
    config = GenerateConfig(**SMALL, seed=3)
    assert len(ds) == config.num_scenes == 36
    assert sorted(ds.scene_ids) == list(range(36))
    for scene_id in (0, 17, 35):
        rec = ds.scene(scene_id)
        t, d, seed = scene_plan(config, scene_id)
        assert (rec["scenario_type"], rec["difficulty"], rec["seed"]) == (t, d, seed)
        fresh = make_record(scene_id, t, d, seed, config.frames_per_scene)
        assert rec["states"].tobytes() == fresh["states"].tobytes()
    with pytest.raises(KeyError):
        ds.scene(999)
    pendulums = list(ds.iter_scenes(scenario_types=["pendulum"], difficulties=[1, 2]))
    assert {r["scenario_type"] for r in pendulums} == {"pendulum"}
    assert {r["difficulty"] for r in pendulums} == {1, 2}


def test_difficulties_cycle_and_seeds_differ_across_base_seeds():
    config = GenerateConfig(**SMALL)
    diffs = [scene_plan(config, i)[1] for i in range(config.num_scenes)]
    assert set(diffs) == {1, 2, 3, 4, 5}
    assert scene_seed(0, "billiards", 0) != scene_seed(1, "billiards", 0)
    assert scene_seed(0, "billiards", 1) != scene_seed(1, "billiards", 0)


def test_readable_without_physworld(small_dataset):
    """Plain pyarrow gets [body][frame] float32 tracks and the spec as JSON."""
    table = pq.read_table(sorted((small_dataset / "shards").glob("*.parquet"))[0])
    row = table.slice(0, 1).to_pylist()[0]
    x = np.asarray(row["x"], dtype=np.float32)
    assert x.shape == (row["num_bodies"], row["num_frames"])
    spec = json.loads(row["spec"])
    assert x[:, 0].tolist() == pytest.approx([b["position"][0] for b in spec["bodies"]])
    card = (small_dataset / "README.md").read_text()
    assert "shards/*.parquet" in card


def test_byte_identical_for_one_and_two_workers(tmp_path, small_dataset):
    two = tmp_path / "two"
    generate(GenerateConfig(**SMALL, seed=3), two, num_workers=2, progress=False)
    assert_same_tree(two, small_dataset)


def _cli(*args):
    return [sys.executable, "-m", "physworld.cli", "generate", *args]


def test_resumes_after_sigkill_without_loss_or_duplicates(tmp_path):
    args = [
        "--scenario-types",
        "collision",
        "--num-scenes-per-type",
        "12",
        "--frames-per-scene",
        "200",
        "--scenes-per-shard",
        "3",
        "--seed",
        "11",
        "--quiet",
    ]
    ref = tmp_path / "ref"
    subprocess.run(_cli("--output-dir", str(ref), "--num-workers", "1", *args), check=True)
    out = tmp_path / "out"
    kills = 0
    # Kill at several points: as soon as the run starts, and after the 3rd and 9th of 20 shards.
    for shards_before_kill in (0, 3, 9):
        proc = subprocess.Popen(
            _cli("--output-dir", str(out), "--num-workers", "2", *args), start_new_session=True
        )
        while proc.poll() is None and len(list(out.glob("shards/shard-*.parquet"))) < shards_before_kill:
            time.sleep(0.002)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    # Half-written temporaries from killed writers (atomic_write's naming, and a pid-named one) must
    # neither survive nor count, whether or not the kills above happened to leave one.
    (out / "shards" / ".shard-00001.k3j9x_2a.tmp.parquet").write_bytes(b"PAR1 half a shard")
    (out / "shards" / ".shard-00001.parquet.999.tmp").write_bytes(b"PAR1 half a shard")
    (out / ".manifest.q8w7e6r5.tmp.json").write_bytes(b'{"half": ')
    subprocess.run(_cli("--output-dir", str(out), "--num-workers", "2", *args), check=True)
    assert kills >= 1, "the run finished before it could be killed; make it longer"
    assert_same_tree(out, ref)
    ids = Dataset(out).scene_ids
    assert sorted(ids) == list(range(60)) and len(set(ids)) == len(ids)


def test_corrupted_shard_is_detected(tmp_path, small_dataset, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    shard = sorted((copy / "shards").glob("*.parquet"))[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert Dataset(copy).verify_checksums() == [
        f"{shard}: sha256 does not match the manifest (corrupted or modified)"
    ]
    assert main(["validate", "--data-dir", str(copy)]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["validate", "--data-dir", str(small_dataset)]) == 0


def test_refuses_a_directory_holding_another_dataset(tmp_path, small_dataset, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    with pytest.raises(StoreError, match="holds a different dataset.*seed: existing 3, requested 4"):
        generate(GenerateConfig(**SMALL, seed=4), copy, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert (
        main(
            [
                "generate",
                "--output-dir",
                str(other),
                "--scenario-types",
                "pong",
                "--num-scenes-per-type",
                "1",
                "--quiet",
            ]
        )
        == 2
    )
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--scenario-types", "pingpong"], "unknown scenario type 'pingpong'"),
        (["--difficulty-range", "4", "2"], "--difficulty-range 4 2"),
        (["--num-scenes-per-type", "0"], "--num-scenes-per-type must be at least 1"),
        (["--frames-per-scene", "0"], "--frames-per-scene must be at least 1"),
    ],
)
def test_bad_flags_give_one_line_errors(tmp_path, capsys, argv, message):
    code = main(["generate", "--output-dir", str(tmp_path / "x"), "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


def test_missing_dataset_error_names_the_file(tmp_path, capsys):
    assert main(["validate", "--data-dir", str(tmp_path)]) == 2
    assert f"{tmp_path}/manifest.json: no manifest" in capsys.readouterr().err
    from physworld.data.store import Dataset

    with pytest.raises(StoreError, match="no manifest"):
        Dataset(tmp_path)


def test_hugging_face_datasets_reads_the_store(small_dataset, tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(str(small_dataset), split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 36
    row = ds[0]
    rec = Dataset(small_dataset).scene(row["scene_id"])
    assert (
        np.asarray(row["x"], dtype=np.float32).T.tobytes()
        == np.ascontiguousarray(rec["states"][:, :, 0]).tobytes()
    )
