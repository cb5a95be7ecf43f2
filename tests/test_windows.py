"""The training view (physworld/data/windows.py) against docs/GRAPH_BATCH.md and the dataset store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from physworld.data import windows as W
from physworld.data.generate import GenerateConfig, generate
from physworld.data.store import Dataset, finalize, shard_bytes, table_to_records

TYPES = ("pendulum", "billiards", "tower", "pong", "orbit", "projectile", "seesaw", "plinko")
FRAMES = 30
SMALL = dict(scenario_types=TYPES, num_scenes_per_type=2, frames_per_scene=FRAMES, scenes_per_shard=5)
GUIDE_FILES = Path(__file__).parent / "data" / "physicsllmengine"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("windows") / "ds"
    generate(GenerateConfig(**SMALL, seed=5), root, progress=False)
    return root


@pytest.fixture(scope="module")
def prepared(data_dir) -> Path:
    return W.prepare(data_dir, progress=False)


@pytest.fixture(scope="module")
def records(data_dir) -> list[dict]:
    return list(Dataset(data_dir).iter_scenes())


def scene_of(prepared: Path, records, scenario_type: str, difficulty: int | None = None) -> tuple[int, dict]:
    """(prepared scene index, record) of the first scene of a type."""
    for i, rec in enumerate(records):
        if rec["scenario_type"] == scenario_type and difficulty in (None, rec["difficulty"]):
            return i, rec
    raise LookupError(scenario_type)


# ---------------------------------------------------------------- prepared arrays


def test_prepared_arrays_reproduce_the_store(prepared, records):
    assert prepared.name == "windows"
    meta = json.loads((prepared / "meta.json").read_text())
    states = np.load(prepared / "states.npy")
    scenes = np.load(prepared / "scenes.npy")
    scenes_float = np.load(prepared / "scenes_float.npy")
    c = {f: k for k, f in enumerate(meta["fields"]["scenes"])}
    assert len(scenes) == len(records) == 2 * len(TYPES) == meta["num_scenes"]
    assert states.dtype == np.float32 and states.shape == (
        sum(r["states"][0].size // 6 * (FRAMES + 1) for r in records),
        6,
    )
    assert set(meta["scenario_types"]) == set(TYPES)
    for i, rec in enumerate(records):
        row = scenes[i]
        nf, nb = rec["states"].shape[:2]
        assert (row[c["scene_id"]], row[c["num_frames"]], row[c["num_bodies"]]) == (
            rec["scene_id"],
            FRAMES + 1,
            nb,
        )
        assert row[c["difficulty"]] == rec["difficulty"]
        assert meta["scenario_types"][row[c["scenario_type"]]] == rec["scenario_type"]
        assert row[c["substeps"]] == rec["spec"]["world"]["substeps"]
        assert scenes_float[i].tolist() == [rec["spec"]["world"]["dt"], *rec["spec"]["world"]["gravity"]]
        off = row[c["state_offset"]]
        got = states[off : off + nf * nb].reshape(nf, nb, 6)
        assert got.tobytes() == rec["states"].tobytes()  # bit for bit
        static = W.scene_arrays(rec["spec"])
        for name, key in (
            ("body", "body_offset"),
            ("statics", "static_offset"),
            ("joint_kind", "joint_offset"),
        ):
            arr = np.load(prepared / f"{name}.npy")
            assert np.array_equal(arr[row[c[key]] : row[c[key]] + len(static[name])], static[name])
    # scenes are contiguous and in storage order
    assert np.array_equal(
        scenes[1:, c["state_offset"]], np.cumsum(scenes[:, c["num_frames"]] * scenes[:, c["num_bodies"]])[:-1]
    )


def test_imported_guide_dataset_prepares(tmp_path):
    from physworld.data.jsonl import import_jsonl

    import_jsonl(GUIDE_FILES, tmp_path / "guide", progress=False)
    out = W.prepare(tmp_path / "guide", tmp_path / "guide_windows", progress=False)
    ds = W.WindowDataset(out, history=2)
    recs = list(Dataset(tmp_path / "guide").iter_scenes())
    assert len(ds) == sum(r["states"].shape[0] - 2 for r in recs)
    states = np.load(out / "states.npy")
    assert states.tobytes() == b"".join(r["states"].tobytes() for r in recs)


def test_window_count_and_range(prepared, records):
    for history in (1, 3, FRAMES):
        ds = W.WindowDataset(prepared, history=history)
        assert len(ds) == sum(r["states"].shape[0] - history for r in records)
        scene, t = ds.locate(np.arange(len(ds)))
        for i in range(len(records)):
            ts = t[scene == i]
            assert ts.tolist() == list(range(history - 1, FRAMES))  # t in [history - 1, num_frames - 2]
    assert len(W.WindowDataset(prepared, history=FRAMES + 1)) == 0
    with pytest.raises(ValueError, match="history"):
        W.WindowDataset(prepared, history=0)
    with pytest.raises(IndexError):
        W.WindowDataset(prepared, history=3)[10**6]


def test_sample_matches_the_store(prepared, records):
    k = 4
    ds = W.WindowDataset(prepared, history=k)
    rng = np.random.default_rng(0)
    for index in [0, len(ds) - 1, *rng.integers(0, len(ds), 20).tolist()]:
        s = ds[index]
        scene, t = int(s["scene"]), int(s["t"])
        rec = records[scene]
        st = rec["states"]
        n = st.shape[1]
        expected = {
            "history": (np.float32, (n, k, 6)),
            "target": (np.float32, (n, 3)),
            "next": (np.float32, (n, 6)),
            "body": (np.float32, (n, 11)),
            "statics": (np.float32, None),
            "joint_index": (np.int64, None),
            "joint_kind": (np.int64, None),
            "joint_anchor": (np.float32, None),
            "gravity": (np.float32, (2,)),
            "dt": (np.float32, ()),
            "substeps": (np.int64, ()),
            "scene": (np.int64, ()),
            "t": (np.int64, ()),
        }
        assert set(s) == set(expected)
        for key, (dtype, shape) in expected.items():
            assert s[key].dtype == dtype, key
            if shape is not None:
                assert s[key].shape == shape, key
        assert np.array_equal(s["history"], st[t - k + 1 : t + 1].transpose(1, 0, 2))
        assert np.array_equal(s["next"], st[t + 1])
        dt = rec["spec"]["world"]["dt"]
        want = (st[t + 1, :, 3:6].astype(np.float64) - st[t, :, 3:6]) / dt
        np.testing.assert_allclose(s["target"], want, rtol=1e-6, atol=1e-4)
        assert float(s["dt"]) == np.float32(dt)
        static = W.scene_arrays(rec["spec"])
        for key in ("body", "statics", "joint_index", "joint_kind", "joint_anchor", "gravity", "substeps"):
            assert np.array_equal(s[key], static[key]), key
        assert s["history"].flags.writeable and s["history"].flags.c_contiguous  # copied out of the memmap


def test_graph_from_scene_matches_the_dataset(prepared, records):
    k = 3
    ds = W.WindowDataset(prepared, history=k)
    s = ds[57]
    rec = records[int(s["scene"])]
    t = int(s["t"])
    g = W.graph_from_scene(
        rec["spec"], rec["states"][t - k + 1 : t + 1], rec["states"][t + 1], scene=int(s["scene"]), t=t
    )
    assert set(g) == set(s)
    for key in s:
        assert g[key].dtype == s[key].dtype, key
        assert np.array_equal(g[key], s[key]), key
    blank = W.graph_from_scene(rec["spec"], rec["states"][:k])
    assert not blank["next"].any() and not blank["target"].any() and int(blank["t"]) == k - 1
    with pytest.raises(ValueError, match="history_states"):
        W.graph_from_scene(
            rec["spec"], rec["states"][:k, :1] if rec["states"].shape[1] > 1 else rec["states"][:k, :0]
        )


# ---------------------------------------------------------------- static graph parts


def test_body_features_match_the_spec(prepared, records):
    assert W.BODY_FEATURES == (
        "is_circle", "is_box", "is_poly", "radius", "width", "height",
        "mass", "moment", "friction", "elasticity", "kinematic",
    )  # fmt: skip
    f = {name: k for k, name in enumerate(W.BODY_FEATURES)}
    ds = W.WindowDataset(prepared, history=1)
    for scenario_type in ("billiards", "tower", "pong"):
        i, rec = scene_of(prepared, records, scenario_type)
        window = int(np.flatnonzero(ds.locate(np.arange(len(ds)))[0] == i)[0])
        body = ds[window]["body"]
        for b, row in zip(rec["spec"]["bodies"], body, strict=True):
            assert row[f["is_circle"]] + row[f["is_box"]] + row[f["is_poly"]] == 1
            if b["shape"] == "circle":
                assert row[f["is_circle"]] == 1 and row[f["radius"]] == np.float32(b["radius"])
                assert row[f["width"]] == row[f["height"]] == np.float32(2 * b["radius"])
            elif b["shape"] == "box":
                assert row[f["is_box"]] == 1
                assert (row[f["width"]], row[f["height"]]) == (
                    np.float32(b["width"]),
                    np.float32(b["height"]),
                )
                assert row[f["radius"]] == pytest.approx(0.5 * np.hypot(b["width"], b["height"]), rel=1e-6)
            assert row[f["kinematic"]] == float(b["kinematic"])
            assert (row[f["friction"]], row[f["elasticity"]]) == (
                np.float32(b["friction"]),
                np.float32(b["elasticity"]),
            )
            if b["kinematic"]:
                assert row[f["mass"]] == row[f["moment"]] == 0
            else:
                assert (row[f["mass"]], row[f["moment"]]) == (np.float32(b["mass"]), np.float32(b["moment"]))
        kinematic = body[:, f["kinematic"]] == 1
        if scenario_type == "pong":  # two paddles, kinematic, and a dynamic ball
            assert kinematic.sum() == 2 and (~kinematic).sum() >= 1
            assert np.all(body[kinematic, f["is_box"]] == 1)
        else:
            assert not kinematic.any()
    poly = W.scene_arrays(
        {"world": {"gravity": [0, -981], "dt": 1 / 60, "substeps": 8}, "statics": [], "constraints": [],
         "bodies": [{"shape": "poly", "vertices": [[-3, -1], [4, -1], [0, 2]], "mass": 1, "moment": 2,
                     "friction": 0.5, "elasticity": 0.1, "kinematic": False}]}
    )["body"][0]  # fmt: skip
    assert poly[f["is_poly"]] == 1 and (poly[f["width"]], poly[f["height"]]) == (7, 3)
    assert poly[f["radius"]] == pytest.approx(np.hypot(4, 1))


def test_statics_are_capsules(records):
    for scenario_type, kind in (("seesaw", "poly"), ("plinko", "circle")):
        spec = next(r["spec"] for r in records if r["scenario_type"] == scenario_type)
        statics = W.scene_arrays(spec)["statics"]
        assert statics.dtype == np.float32 and statics.shape[1] == 7
        expected = []
        for s in spec["statics"]:
            fe = [s["friction"], s["elasticity"]]
            if s["kind"] == "segment":
                expected.append([*s["a"], *s["b"], s["radius"], *fe])
            elif s["kind"] == "poly":
                v = s["vertices"]
                expected += [[*v[j], *v[(j + 1) % len(v)], 0.0, *fe] for j in range(len(v))]
            else:
                expected.append([*s["center"], *s["center"], s["radius"], *fe])
        assert any(s["kind"] == kind for s in spec["statics"])
        np.testing.assert_array_equal(statics, np.array(expected, dtype=np.float32))
    seesaw = next(r["spec"] for r in records if r["scenario_type"] == "seesaw")
    tri = next(s for s in seesaw["statics"] if s["kind"] == "poly")["vertices"]
    statics = W.scene_arrays(seesaw)["statics"]
    edges = statics[statics[:, 4] == 0]  # the fulcrum's three edges, radius 0, closing the loop
    assert len(edges) == 3 and np.array_equal(edges[-1, 2:4], np.float32(tri[0]))
    plinko = next(r["spec"] for r in records if r["scenario_type"] == "plinko")
    rows = W.scene_arrays(plinko)["statics"]
    pegs = rows[(rows[:, 0] == rows[:, 2]) & (rows[:, 1] == rows[:, 3])]  # a = b = centre
    centres = [s["center"] for s in plinko["statics"] if s["kind"] == "circle"]
    assert np.array_equal(pegs[:, :2], np.float32(centres)) and np.all(pegs[:, 4] > 0)


def test_pendulum_joints_attach_to_the_world(prepared, records):
    ds = W.WindowDataset(prepared, history=2, scenario_types=["pendulum"])
    s = ds[0]
    spec = records[int(s["scene"])]["spec"]
    assert len(spec["constraints"]) >= 1 and s["joint_index"].shape == (len(spec["constraints"]), 2)
    assert (s["joint_index"] == -1).any()
    for c, idx, kind, anchor in zip(
        spec["constraints"], s["joint_index"], s["joint_kind"], s["joint_anchor"], strict=True
    ):
        assert idx.tolist() == [c["a"], c["b"]]
        assert W.JOINT_KINDS[kind] == c["kind"]
        if c["kind"] in ("motor", "rotary_limit"):
            assert not anchor.any()
        else:
            assert anchor.tolist() == np.float32([*c["anchor_a"], *c["anchor_b"]]).tolist()
    seesaw = W.WindowDataset(prepared, history=2, scenario_types=["seesaw"])[0]
    assert W.JOINT_KINDS[seesaw["joint_kind"][1]] == "rotary_limit" and not seesaw["joint_anchor"][1].any()


# ---------------------------------------------------------------- batching


def test_collate_offsets_joints_and_builds_batch_vectors(prepared):
    ds = W.WindowDataset(prepared, history=2)
    scene_of_window = ds.locate(np.arange(len(ds)))[0]
    types = np.array(ds.meta["scenario_types"])[
        ds.scenes[scene_of_window, W.SCENE_FIELDS.index("scenario_type")]
    ]
    picks = [
        int(np.flatnonzero(types == t)[0]) for t in ("billiards", "pendulum", "seesaw", "tower", "pendulum")
    ]
    samples = [ds[i] for i in picks]
    n = [len(s["body"]) for s in samples]
    assert len(set(n)) > 1  # different body counts
    b = W.collate_graphs(samples)
    assert b["num_graphs"] == 5
    assert b["history"].shape == (sum(n), 2, 6) and b["history"].dtype == torch.float32
    assert b["batch"].tolist() == [g for g, k in enumerate(n) for _ in range(k)]
    assert b["statics_batch"].tolist() == [g for g, s in enumerate(samples) for _ in range(len(s["statics"]))]
    assert b["joint_batch"].tolist() == [
        g for g, s in enumerate(samples) for _ in range(len(s["joint_kind"]))
    ]
    offsets = np.cumsum([0, *n[:-1]])
    expected = np.concatenate(
        [np.where(s["joint_index"] >= 0, s["joint_index"] + offsets[g], -1) for g, s in enumerate(samples)]
    )
    assert b["joint_index"].dtype == torch.int64 and np.array_equal(b["joint_index"].numpy(), expected)
    assert (b["joint_index"] == -1).any()
    # every non-world joint end points at a node of its own graph
    ends = b["joint_index"][b["joint_index"] >= 0]
    owner = b["joint_batch"][:, None].expand(-1, 2)[b["joint_index"] >= 0]
    assert torch.equal(b["batch"][ends], owner)
    for key, dtype, shape in (
        ("statics", torch.float32, (sum(len(s["statics"]) for s in samples), 7)),
        ("joint_kind", torch.int64, (len(expected),)),
        ("joint_anchor", torch.float32, (len(expected), 4)),
        ("gravity", torch.float32, (5, 2)),
        ("dt", torch.float32, (5,)),
        ("substeps", torch.int64, (5,)),
        ("scene", torch.int64, (5,)),
        ("t", torch.int64, (5,)),
    ):
        assert b[key].dtype == dtype and tuple(b[key].shape) == shape, key
    assert torch.equal(b["body"], torch.from_numpy(np.concatenate([s["body"] for s in samples])))
    # a graph without statics or joints still collates
    bare = dict(samples[0], statics=np.zeros((0, 7), np.float32), joint_index=np.zeros((0, 2), np.int64),
                joint_kind=np.zeros(0, np.int64), joint_anchor=np.zeros((0, 4), np.float32))  # fmt: skip
    one = W.collate_graphs([bare])
    assert one["statics"].shape == (0, 7) and one["joint_index"].shape == (0, 2)


def test_filtering_by_type_and_difficulty(prepared, records):
    for difficulty in (1, 2):
        ds = W.WindowDataset(prepared, history=3, difficulties=[difficulty])
        scenes = ds.locate(np.arange(len(ds)))[0]
        assert {records[i]["difficulty"] for i in scenes} == {difficulty}
        assert len(ds) == sum(r["states"].shape[0] - 3 for r in records if r["difficulty"] == difficulty)
    ds = W.WindowDataset(prepared, history=3, scenario_types=["pong", "orbit"], difficulties=[2])
    got = {(records[i]["scenario_type"], records[i]["difficulty"]) for i in ds.locate(np.arange(len(ds)))[0]}
    assert got == {("pong", 2), ("orbit", 2)}
    constraint = W.WindowDataset(prepared, history=3, scenario_types=["constraint"])  # a category
    assert {records[i]["scenario_type"] for i in constraint.scene_indices} == {"pendulum", "seesaw"}
    with pytest.raises(ValueError, match="no_such_type"):
        W.WindowDataset(prepared, history=3, scenario_types=["no_such_type"])
    assert len(W.WindowDataset(prepared, history=3, difficulties=[5])) == 0


# ---------------------------------------------------------------- ordering and loading


def test_epoch_sampler_is_a_resumable_permutation():
    a = list(W.EpochSampler(100, seed=7, epoch=0))
    assert sorted(a) == list(range(100)) and a != list(range(100))
    assert a == list(W.EpochSampler(100, seed=7, epoch=0))
    assert a != list(W.EpochSampler(100, seed=7, epoch=1))
    assert a != list(W.EpochSampler(100, seed=8, epoch=0))
    tail = W.EpochSampler(100, seed=7, epoch=0, start=37)
    assert list(tail) == a[37:] and len(tail) == 63
    assert list(W.EpochSampler(100, seed=7, start=100)) == []
    s = W.EpochSampler(100, seed=7)
    s.set_epoch(1, start=5)
    assert list(s) == list(W.EpochSampler(100, seed=7, epoch=1))[5:]
    with pytest.raises(ValueError):
        W.EpochSampler(10, seed=0, start=11)


def test_dataloader_workers_give_the_same_batches(prepared):
    ds = W.WindowDataset(prepared, history=3)

    def batches(workers, start=0):
        loader = DataLoader(
            ds,
            batch_size=16,
            sampler=W.EpochSampler(len(ds), seed=3, epoch=2, start=start),
            num_workers=workers,
            collate_fn=W.collate_graphs,
        )
        return list(loader)

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == -(-len(ds) // 16)
    for a, b in zip(serial, parallel, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if key == "num_graphs":
                assert a[key] == b[key]
            else:
                assert torch.equal(a[key], b[key]), key
    resumed = batches(0, start=5 * 16)  # resuming after 5 batches yields the rest of the epoch
    assert all(
        torch.equal(a["scene"], b["scene"]) and torch.equal(a["t"], b["t"])
        for a, b in zip(serial[5:], resumed, strict=True)
    )


# ---------------------------------------------------------------- staleness and interruption


def test_prepare_skips_when_up_to_date_and_redoes_when_the_dataset_changes(
    data_dir, prepared, tmp_path, monkeypatch
):
    def boom(*args, **kwargs):
        raise AssertionError("prepare read scenes although the preparation is up to date")

    with monkeypatch.context() as m:
        m.setattr(Dataset, "iter_scenes", boom)
        assert W.prepare(data_dir, progress=False) == prepared

    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    assert len(W.WindowDataset(copy / "windows", history=2)) == len(W.WindowDataset(prepared, history=2))
    # Change one scene: a new shard (new sha256) and a new manifest.
    manifest = json.loads((copy / "manifest.json").read_text())
    shard = copy / manifest["shards"][0]["file"]
    recs = table_to_records(pq.read_table(shard))
    recs[0]["states"] = recs[0]["states"] + np.float32(1.0)
    shard.write_bytes(shard_bytes(recs))
    finalize(copy, manifest["config"], [s["file"] for s in manifest["shards"]])
    with pytest.raises(W.PreparedError, match="stale") as e:
        W.WindowDataset(copy / "windows", history=2)
    assert str(copy / "windows") in str(e.value) and "prepare" in str(e.value)
    out = W.prepare(copy, progress=False)
    states = np.load(out / "states.npy")
    new = table_to_records(pq.read_table(shard))[0]["states"]
    assert states[: new.size // 6].tobytes() == new.tobytes()
    assert len(W.WindowDataset(out, history=2)) > 0


def test_interrupted_prepare_is_redone(data_dir, tmp_path):
    out = tmp_path / "prep"
    W.prepare(data_dir, out, progress=False)
    reference = (out / "states.npy").read_bytes()
    # A run killed before meta.json: partial files and a leftover temporary file.
    (out / "meta.json").unlink()
    (out / "states.npy").write_bytes(reference[: len(reference) // 2])
    (out / ".states.npy.999.tmp").write_bytes(b"junk")
    (out / ".body.a1b2c3d4.tmp.npy").write_bytes(b"junk")  # atomic_write's naming
    with pytest.raises(W.PreparedError, match="not a prepared") as e:
        W.WindowDataset(out, history=2)
    assert str(out) in str(e.value) and "prepare" in str(e.value)
    W.prepare(data_dir, out, progress=False)
    assert (out / "states.npy").read_bytes() == reference
    assert not list(out.glob(".*.tmp*"))
    assert len(W.WindowDataset(out, history=2)) > 0


def test_unprepared_directory_says_what_to_run(data_dir, tmp_path):
    with pytest.raises(W.PreparedError, match="prepare") as e:
        W.WindowDataset(tmp_path / "nothing", history=2)
    assert str(tmp_path / "nothing") in str(e.value)
    with pytest.raises(W.PreparedError, match="prepare"):
        W.load_stats(tmp_path / "nothing")


# ---------------------------------------------------------------- statistics


def test_statistics(prepared, records):
    stats = W.load_stats(prepared)
    assert set(stats) == set(W.STAT_KEYS)
    for v in stats.values():
        assert v.dtype == np.float32 and v.shape == (3,)
    # prepare's whole-dataset statistics are those of every history-1 window
    full = W.compute_stats(W.WindowDataset(prepared, history=1), max_windows=None)
    for key in W.STAT_KEYS:
        np.testing.assert_allclose(full[key], stats[key], rtol=1e-5, atol=1e-6)
    # and those of a direct computation from the store
    vel, acc = [], []
    for rec in records:
        dyn = [not b["kinematic"] for b in rec["spec"]["bodies"]]
        v = rec["states"][:, dyn, 3:6].astype(np.float64)
        vel.append(v[:-1].reshape(-1, 3))
        acc.append((np.diff(v, axis=0) / rec["spec"]["world"]["dt"]).reshape(-1, 3))
    vel, acc = np.concatenate(vel), np.concatenate(acc)
    np.testing.assert_allclose(stats["velocity_mean"], vel.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats["velocity_std"], np.maximum(vel.std(0), W.STD_FLOOR), rtol=1e-5)
    np.testing.assert_allclose(stats["accel_mean"], acc.mean(0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(stats["accel_std"], np.maximum(acc.std(0), W.STD_FLOOR), rtol=1e-5)
    # a sample is deterministic per seed and close to the whole
    ds = W.WindowDataset(prepared, history=3)
    a = W.compute_stats(ds, max_windows=200, seed=1)
    assert all(np.array_equal(a[k], W.compute_stats(ds, max_windows=200, seed=1)[k]) for k in a)
    assert not np.array_equal(
        a["velocity_mean"], W.compute_stats(ds, max_windows=200, seed=2)["velocity_mean"]
    )
    assert np.all(a["velocity_std"] > 0) and np.all(a["accel_std"] > 0)
    # a constant quantity gets the floor, not zero
    orbit = W.compute_stats(W.WindowDataset(prepared, history=1, scenario_types=["orbit"]), max_windows=None)
    assert np.all(orbit["accel_std"] >= W.STD_FLOOR) and np.all(orbit["velocity_std"] >= W.STD_FLOOR)


# ---------------------------------------------------------------- the integration rule


def test_integration_rule_reproduces_the_simulator_in_free_flight(prepared, records):
    """A projectile before its first contact moves under gravity alone: integrating the window's target
    from history[-1] with GRAPH_BATCH.md's rule gives the simulator's next position to 1e-3 px."""
    ds = W.WindowDataset(prepared, history=2, scenario_types=["projectile"])
    scene, t = ds.locate(np.arange(len(ds)))
    checked = 0
    worst = {0.0: 0.0, 0.5: 0.0}  # other values of c, to show the check can fail
    for index in range(len(ds)):
        rec = records[scene[index]]
        s = ds[index]
        for i, b in enumerate(rec["spec"]["bodies"]):
            onsets = rec["events"]["frame"][(rec["events"]["body_a"] == i) | (rec["events"]["body_b"] == i)]
            first_contact = onsets.min() if len(onsets) else FRAMES + 1
            if b["shape"] != "circle" or t[index] + 1 >= first_contact:
                continue
            state = s["history"][i, -1].astype(np.float64)
            nxt = W.integrate(state, s["target"][i].astype(np.float64), float(s["dt"]), int(s["substeps"]))
            np.testing.assert_allclose(nxt[:3], s["next"][i, :3], rtol=0, atol=1e-3)
            np.testing.assert_allclose(nxt[3:], s["next"][i, 3:], rtol=0, atol=1e-3)
            assert s["target"][i, 1] == pytest.approx(-981.0, abs=0.05)
            dv = s["target"][i].astype(np.float64) * float(s["dt"])
            for c in worst:
                wrong = state[:3] + float(s["dt"]) * (state[3:] + c * dv)
                worst[c] = max(worst[c], np.abs(wrong - s["next"][i, :3]).max())
            checked += 1
    assert checked >= 20
    assert min(worst.values()) > 1e-2  # c = 0 or 1/2 misses by far more than the tolerance
    # the torch path agrees with the numpy path, with per-node dt and substeps
    b = W.collate_graphs([ds[0], ds[1]])
    node_dt, node_k = b["dt"][b["batch"]], b["substeps"][b["batch"]]
    got = W.integrate(b["history"][:, -1].double(), b["target"].double(), node_dt.double(), node_k)
    want = W.integrate(b["history"][:, -1].numpy().astype(np.float64), b["target"].numpy().astype(np.float64),
                       node_dt.numpy().astype(np.float64), node_k.numpy())  # fmt: skip
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
