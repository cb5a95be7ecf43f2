"""JSONL import/export: the guide's own files import, our exports round-trip bit for bit, and
malformed files fail with a message that names the file and line."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from physworld.data.generate import make_record
from physworld.data.jsonl import (
    JsonlError,
    _f32_strings,
    iter_scene_files,
    read_scene_file,
    read_scene_lines,
    scene_to_lines,
    write_scene_file,
)
from physworld.worlds import spec as S
from physworld.worlds.engine import build_space, simulate

GUIDE_DIR = Path(__file__).parent / "data" / "physicsllmengine"
GUIDE_FILES = sorted(GUIDE_DIR.glob("*/scene_*.jsonl"))
GUIDE_TYPES = {
    "angry_birds",
    "billiards",
    "bowling",
    "newtons_cradle",
    "pendulum",
    "pong",
    "projectile",
    "tower",
}
ROUND_TRIP_TYPES = ("billiards", "bowling", "head_on", "projectile", "explosion")
FRAMES = 60


def _guide_lines(name: str) -> list[str]:
    return next(GUIDE_DIR.glob(f"{name}/scene_*.jsonl")).read_text().splitlines()


def _record(scenario_type: str, difficulty: int = 3, seed: int = 11, frames: int = FRAMES) -> dict:
    return make_record(1000 + seed, scenario_type, difficulty, seed, frames)


def _assert_same_record(back: dict, record: dict) -> None:
    assert back["states"].dtype == np.float32
    assert back["states"].shape == record["states"].shape
    assert back["states"].tobytes() == record["states"].tobytes()
    assert back["spec"] == record["spec"]
    for key in ("frame", "body_a", "body_b", "impulse"):
        assert back["events"][key].dtype == record["events"][key].dtype, key
        assert back["events"][key].tobytes() == record["events"][key].tobytes(), key
    for key in ("scene_id", "seed", "scenario_type", "category", "difficulty"):
        assert back[key] == record[key], key


# ---------------------------------------------------------------- the guide's own files


def test_all_eight_guide_types_are_present():
    assert {p.parent.name for p in GUIDE_FILES} == GUIDE_TYPES
    assert [p.parent.name for p in iter_scene_files(GUIDE_DIR)] == sorted(GUIDE_TYPES)


@pytest.mark.parametrize("path", GUIDE_FILES, ids=lambda p: p.parent.name)
def test_guide_file_imports(path):
    lines = path.read_text().splitlines()
    header, frame1, last = json.loads(lines[0]), json.loads(lines[1]), json.loads(lines[-1])
    record = read_scene_file(path)
    n = header["object_count"]
    states = record["states"]

    assert states.shape == (201, n, 6) and states.dtype == np.float32
    assert record["scene_id"] == int(path.stem.removeprefix("scene_"))
    assert record["seed"] == header["seed"]
    assert record["scenario_type"] == path.parent.name == header["scenario_type"]
    assert record["category"] == header["scenario_category"]
    assert record["difficulty"] == header["difficulty"]
    assert all(len(record["events"][k]) == 0 for k in record["events"])

    # Frame k is the file's line k+1, to float32 precision.
    for k, frame in ((1, frame1), (200, last)):
        for j, o in enumerate(frame["objects"]):
            expected = [
                o["position"]["x"],
                o["position"]["y"],
                o["angle"],
                o["velocity"]["x"],
                o["velocity"]["y"],
                o["angular_velocity"],
            ]
            assert states[k, j].tolist() == np.float32(expected).tolist(), (k, j)
    # The initial frame is the header's positions, angle 0.
    for j, o in enumerate(header["objects"]):
        assert states[0, j, :3].tolist() == np.float32([o["position"]["x"], o["position"]["y"], 0.0]).tolist()

    spec = record["spec"]
    assert len(spec["bodies"]) == n and len(spec["statics"]) == len(header["static_geometry"])
    assert spec["world"]["dt"] == header["timestep"] and spec["world"]["substeps"] == 1
    assert spec["world"]["gravity"] == [header["gravity"]["x"], header["gravity"]["y"]]
    assert spec["expect"] == {"contained": False, "conserves_energy": False, "conserves_momentum": False}
    assert all(s["kind"] == "segment" and s["radius"] == 0.0 for s in spec["statics"])
    for body, o in zip(spec["bodies"], header["objects"], strict=True):
        assert body["mass"] == o["material"]["mass"] and body["moment"] > 0
        assert body["shape"] == {"circle": "circle", "rectangle": "box"}[o["type"]]
    build_space(spec)  # the rebuilt spec is a valid scene


@pytest.mark.parametrize("path", GUIDE_FILES, ids=lambda p: p.parent.name)
def test_guide_initial_velocity_is_estimated_and_documented(path):
    record = read_scene_file(path)
    spec, states = record["spec"], record["states"]
    imported = spec["imported"]
    assert imported["source"] == "physicsllmengine"
    assert imported["initial_velocity"] == "estimated"
    assert "gravity" in imported["estimate"]
    g, dt = np.array(spec["world"]["gravity"]), spec["world"]["dt"]
    moved = np.abs(states[1, :, :2] - states[0, :, :2]).max(axis=1) > 1e-4
    assert imported["estimated_bodies"] == np.flatnonzero(moved).tolist()
    for j, body in enumerate(spec["bodies"]):
        v0 = states[1, j, 3:5] - g * dt if moved[j] else np.zeros(2)
        np.testing.assert_allclose(body["velocity"], v0, rtol=0, atol=1e-3)
        assert states[0, j, 3:5].tolist() == np.float32(body["velocity"]).tolist()
        assert body["angle"] == 0.0 and body["angular_velocity"] == 0.0
    # pymunk moves a body with its old velocity, then adds gravity: stepping the rebuilt scene one
    # frame lands on the file's frame 1 (to its 4-decimal rounding). Velocities too, except where the
    # guide's world-origin pins differ from the pins it actually simulated.
    one = simulate(spec, 1)["states"][1]
    np.testing.assert_allclose(one[:, :2], states[1, :, :2], rtol=0, atol=2e-4)
    if not spec["constraints"]:
        np.testing.assert_allclose(one[:, 3:], states[1, :, 3:], rtol=0, atol=2e-4)


def test_estimated_velocities_in_angry_birds():
    record = read_scene_file(next(GUIDE_DIR.glob("angry_birds/*.jsonl")))
    bodies = record["spec"]["bodies"]
    assert record["spec"]["imported"]["estimated_bodies"] == [16, 17]  # the two birds
    assert all(b["velocity"] == [0.0, 0.0] for b in bodies[:16])  # the structure starts at rest
    assert bodies[16]["velocity"] == pytest.approx([497.8819, 278.5762 + 981 / 60])


@pytest.mark.parametrize("name", ["pendulum", "newtons_cradle"])
def test_guide_pins_keep_the_world_origin_anchor(name):
    spec = read_scene_lines(_guide_lines(name), source=f"{name}.jsonl")["spec"]
    assert spec["constraints"], "pins were dropped"
    for i, c in enumerate(spec["constraints"]):
        assert c == {"kind": "pin", "a": -1, "b": i, "anchor_a": [0.0, 0.0], "anchor_b": [0.0, 0.0]}


def test_guide_scene_id_falls_back_to_the_seed():
    record = read_scene_lines(_guide_lines("billiards"), source="somewhere/billiards_copy.jsonl")
    assert record["scene_id"] == record["seed"] == 1000000


# ---------------------------------------------------------------- our own export


@pytest.mark.parametrize("scenario_type", ROUND_TRIP_TYPES)
def test_physworld_scene_round_trips_bit_for_bit(scenario_type, tmp_path):
    record = _record(scenario_type)
    lines = scene_to_lines(record)
    assert len(lines) == FRAMES + 1 and all("\n" not in line for line in lines)
    _assert_same_record(read_scene_lines(lines, source="memory"), record)

    path = write_scene_file(record, tmp_path)
    assert path == tmp_path / scenario_type / f"scene_{record['scene_id']:08d}.jsonl"
    assert path.read_text() == "\n".join(lines) + "\n"
    _assert_same_record(read_scene_file(path), record)


def test_round_trip_carries_contact_events():
    record = _record("bowling")
    assert len(record["events"]["frame"]) > 0, "fixture scene should have contacts"
    lines = scene_to_lines(record)
    with_events = [json.loads(line) for line in lines[1:] if '"events"' in line]
    assert sum(len(f["events"]) for f in with_events) == len(record["events"]["frame"])
    assert {f["frame"] for f in with_events} == set(record["events"]["frame"].tolist())
    if -1 in record["events"]["body_a"]:
        assert any(e["body_a"] == "static" for f in with_events for e in f["events"])


def test_export_header_carries_the_initial_state():
    record = _record("projectile")
    lines = scene_to_lines(record)
    header = json.loads(lines[0])
    spec = record["spec"]
    assert header["type"] == "scene_header" and header["object_count"] == len(spec["bodies"])
    assert header["scene_id"] == record["scene_id"] and header["frame_count"] == FRAMES
    assert header["physworld"] == spec
    assert header["gravity"] == {"x": spec["world"]["gravity"][0], "y": spec["world"]["gravity"][1]}
    assert any(b["velocity"] != [0.0, 0.0] for b in spec["bodies"]), "projectiles are launched"
    for o, b in zip(header["objects"], spec["bodies"], strict=True):
        assert o["velocity"] == {"x": b["velocity"][0], "y": b["velocity"][1]}
        assert o["position"] == {"x": b["position"][0], "y": b["position"][1]}
        assert o["angle"] == b["angle"] and o["angular_velocity"] == b["angular_velocity"]
        assert o["moment"] == b["moment"] and o["material"]["mass"] == b["mass"]
        assert o["type"] in ("circle", "rectangle", "polygon")
    segment = header["static_geometry"][0]
    assert {"p1", "p2", "radius", "surface_velocity", "friction", "elasticity"} <= set(segment)
    frame = json.loads(lines[1])
    assert frame["frame"] == 1
    assert re.fullmatch(
        r"Frame 1: (\d+ of \d+ objects are moving|All objects are (in motion|at rest))\.",
        frame["description"],
    )
    assert set(frame["objects"][0]) == {
        "id",
        "type",
        "position",
        "velocity",
        "angle",
        "angular_velocity",
        "material",
    }


def _every_kind_record(frames: int = 30) -> dict:
    """A hand-built scene with every body shape, static kind and constraint kind."""
    spec = S.new_spec("every kind")
    spec["statics"] = S.arena() + [
        S.static_poly([(300, 100), (360, 100), (330, 150)]),
        S.static_circle((600, 200), 20),
        S.segment((100, 300), (250, 250), radius=2.0, surface_velocity=(30, 0)),
    ]
    spec["bodies"] = [
        S.circle((200, 400), 10, mass=2.0, velocity=(50, 0)),
        S.box((260, 400), 30, 20, mass=1.5, angle=0.3, angular_velocity=1.0),
        S.poly((400, 420), [(-15, -10), (15, -10), (0, 15)], mass=1.0, velocity=(-20, 40)),
        S.circle((500, 400), 8, mass=1.0, group=3),
        S.circle((530, 400), 8, mass=1.0, group=3),
        S.box((650, 450), 60, 10, kinematic=True),
    ]
    spec["bodies"][5]["controller"] = {"kind": "oscillate", "axis": "y", "amplitude": 20.0, "period": 1.0}
    spec["constraints"] = [
        S.pin(-1, 0, (200, 500), (0, 0)),
        S.pivot(0, 1, (10, 0), (-15, 0)),
        S.slide(1, 2, (0, 0), (0, 0), 50, 150),
        S.spring(3, 4, (0, 0), (0, 0), 30, 200, 5),
        S.motor(-1, 2, 1.5),  # unlimited max_force (None)
        S.rotary_limit(3, 4, -0.5, 0.5),
    ]
    run = simulate(spec, frames)
    return {
        "scene_id": 7,
        "seed": 7,
        "scenario_type": "custom",
        "category": "complex",
        "difficulty": 1,
        "spec": spec,
        "states": run["states"],
        "events": run["events"],
    }


def test_every_shape_static_and_constraint_round_trips():
    record = _every_kind_record()
    lines = scene_to_lines(record)
    _assert_same_record(read_scene_lines(lines, source="memory"), record)
    header = json.loads(lines[0])
    assert [o["type"] for o in header["objects"]] == [
        "circle",
        "rectangle",
        "polygon",
        "circle",
        "circle",
        "rectangle",
    ]
    assert header["objects"][5]["kinematic"] is True and "kinematic" not in header["objects"][0]
    assert [s["type"] for s in header["static_geometry"][-3:]] == ["polygon", "circle", "segment"]
    assert [c["type"] for c in header["constraints"]] == [
        "PinJoint",
        "PivotJoint",
        "SlideJoint",
        "DampedSpring",
        "SimpleMotor",
        "RotaryLimitJoint",
    ]
    assert header["constraints"][0]["body_a"] == "static" and header["constraints"][4]["max_force"] is None


def test_guide_style_header_alone_rebuilds_geometry_and_constraints():
    """Without the "physworld" key the file is read as the guide's layout: what our header adds to it
    (initial state, moments, every static and constraint kind) is enough to rebuild those parts."""
    record = _every_kind_record()
    lines = scene_to_lines(record)
    header = json.loads(lines[0])
    del header["physworld"]
    back = read_scene_lines([json.dumps(header)] + lines[1:], source="scene_00000007.jsonl")
    spec, original = back["spec"], record["spec"]
    assert back["states"].tobytes() == record["states"].tobytes()
    assert back["spec"]["imported"]["initial_velocity"] == "header"
    assert spec["statics"] == original["statics"]
    assert spec["constraints"] == original["constraints"]
    for got, want in zip(spec["bodies"], original["bodies"], strict=True):
        want = {k: v for k, v in want.items() if k != "controller"}
        assert got == want


def test_float32_strings_are_exact_and_short():
    rng = np.random.default_rng(0)
    specials = np.array(
        [
            0.0,
            -0.0,
            1.0,
            -1.0,
            60.0,
            0.1,
            1e-7,
            -2.5e-12,
            1e-45,
            1.17549435e-38,
            3.4028235e38,
            -3.4028235e38,
            16777217.0,
            123456.789,
        ],
        dtype=np.float32,
    )
    values = np.concatenate(
        [
            specials,
            rng.normal(0, 300, 5000).astype(np.float32),
            (rng.normal(0, 1, 2000) * 10.0 ** rng.integers(-30, 30, 2000)).astype(np.float32),
        ]
    )
    strings = _f32_strings(values)
    back = np.array([json.loads(s) for s in strings], dtype=np.float64).astype(np.float32)
    assert back.view(np.uint32).tolist() == values.view(np.uint32).tolist()  # -0.0 keeps its sign
    assert strings[:6] == ["0", "-0.0", "1", "-1", "60", "0.1"]
    assert max(len(s) for s in strings) <= 15
    with pytest.raises(ValueError, match="non-finite"):
        _f32_strings(np.array([1.0, math.nan], dtype=np.float32))


# ---------------------------------------------------------------- malformed input


def _expect_error(lines, line_number: int, *patterns: str) -> str:
    with pytest.raises(JsonlError) as info:
        read_scene_lines(lines, source="bad/scene_00000001.jsonl")
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith(f"bad/scene_00000001.jsonl, line {line_number}:"), message
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    return message


def test_truncated_last_line():
    lines = _guide_lines("pendulum")
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    _expect_error(lines, 201, "truncated", "regenerate or re-download")


def test_truncated_last_line_from_a_file_object(tmp_path):
    path = tmp_path / "pong" / "scene_00000003.jsonl"
    path.parent.mkdir()
    text = "\n".join(_guide_lines("pong")) + "\n"
    path.write_text(text[:-40])
    with pytest.raises(JsonlError, match=r"scene_00000003.jsonl, line 201: .*no final newline.*truncated"):
        read_scene_file(path)


def test_bad_json_on_line_3():
    lines = _guide_lines("pendulum")
    lines[2] = lines[2].replace('"frame": 2,', '"frame": 2', 1)
    _expect_error(lines, 3, "not valid JSON", "column")


def test_missing_header():
    _expect_error(_guide_lines("pendulum")[1:], 1, "missing header", "frame line")


def test_empty_file():
    _expect_error([], 1, "empty")


def test_frame_with_a_missing_object():
    lines = _guide_lines("tower")
    frame = json.loads(lines[5])
    del frame["objects"][4]
    lines[5] = json.dumps(frame)
    _expect_error(lines, 6, "frame 5 lists 8 objects but the header has 9")


def test_frame_with_a_changed_object_id():
    lines = _guide_lines("tower")
    frame = json.loads(lines[7])
    frame["objects"][4]["id"] = 99
    lines[7] = json.dumps(frame)
    _expect_error(lines, 8, r"object id 99 is not in the header \(missing: \[4\]\)")


def test_frame_numbers_not_consecutive():
    lines = _guide_lines("pong")
    del lines[10]
    _expect_error(lines, 11, "not consecutive: expected frame 10, found 11")


def test_missing_field_is_named():
    lines = _guide_lines("billiards")
    frame = json.loads(lines[4])
    del frame["objects"][2]["velocity"]
    lines[4] = json.dumps(frame)
    _expect_error(lines, 5, r"missing field 'objects\[2\]\.velocity'")
    header = json.loads(lines[0])
    del header["timestep"]
    _expect_error([json.dumps(header)] + lines[1:], 1, "missing field 'timestep'")  # reported before line 5


def test_our_export_cut_at_a_line_boundary_is_truncated():
    lines = scene_to_lines(_record("head_on", frames=20))
    _expect_error(lines[:15], 15, "promises 20 frames", "truncated")


# ---------------------------------------------------------------- files on disk


def test_write_is_atomic_and_files_are_listed_in_order(tmp_path):
    a, b = _record("projectile", seed=2, frames=5), _record("billiards", seed=1, frames=5)
    pa, pb = write_scene_file(a, tmp_path), write_scene_file(b, tmp_path)
    write_scene_file(a, tmp_path)  # replacing an existing file is fine
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["billiards", "projectile", pb.name, pa.name]
    assert list(iter_scene_files(tmp_path)) == [pb, pa]
    with pytest.raises(FileNotFoundError, match="no scene files"):
        iter_scene_files(tmp_path / "billiards")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        iter_scene_files(tmp_path / "missing")
    with pytest.raises(ValueError, match="scenario_type"):
        write_scene_file({**a, "scenario_type": "../x"}, tmp_path)


def test_cli_generate_jsonl_import_export_round_trip(tmp_path):
    """generate --format jsonl, import-jsonl into a store, export-jsonl back: the same files."""
    from physworld.cli import main
    from physworld.data.store import Dataset

    base = [
        "--scenario-types",
        "head_on",
        "projectile",
        "--num-scenes-per-type",
        "2",
        "--frames-per-scene",
        "30",
        "--quiet",
    ]
    assert main(["generate", "--output-dir", str(tmp_path / "j"), "--format", "jsonl", *base]) == 0
    assert main(["generate", "--output-dir", str(tmp_path / "p"), *base]) == 0
    files = sorted(p.relative_to(tmp_path / "j") for p in (tmp_path / "j").glob("*/scene_*.jsonl"))
    assert len(files) == 4
    assert (
        main(
            [
                "import-jsonl",
                "--input-dir",
                str(tmp_path / "j"),
                "--output-dir",
                str(tmp_path / "s"),
                "--quiet",
            ]
        )
        == 0
    )
    imported, generated = Dataset(tmp_path / "s"), Dataset(tmp_path / "p")
    for sid in generated.scene_ids:
        a, b = imported.scene(sid), generated.scene(sid)
        assert a["states"].tobytes() == b["states"].tobytes() and a["spec"] == b["spec"]
    assert (
        main(
            [
                "export-jsonl",
                "--data-dir",
                str(tmp_path / "p"),
                "--output-dir",
                str(tmp_path / "e"),
                "--quiet",
            ]
        )
        == 0
    )
    for f in files:
        assert (tmp_path / "e" / f).read_bytes() == (tmp_path / "j" / f).read_bytes()


def test_cli_imports_the_guides_own_files(tmp_path, capsys):
    from physworld.cli import main
    from physworld.data.store import Dataset

    assert (
        main(["import-jsonl", "--input-dir", str(GUIDE_DIR), "--output-dir", str(tmp_path / "s"), "--quiet"])
        == 0
    )
    ds = Dataset(tmp_path / "s")
    assert len(ds) == 8 and set(ds.manifest["scenes_per_type"]) == {
        p.name for p in GUIDE_DIR.iterdir() if p.is_dir()
    }
    assert (
        main(["import-jsonl", "--input-dir", str(tmp_path / "nothing"), "--output-dir", str(tmp_path / "t")])
        == 2
    )
    assert "not a directory" in capsys.readouterr().err
