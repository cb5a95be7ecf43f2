"""Damaged datasets through the command line: every damage is found and located (exit 1), every
mistake is one line (exit 2), validate's own failures are told apart (exit 3), nothing hangs, no
traceback, and nothing already written is lost.

"Checksum-consistent" edits recompute every checksum the manifest holds (shards, index and the
manifest's own manifest_sha256) after the edit, as a careless tool or a hostile one would: they must
still be found, by the cross-checks between manifest, config, index and shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from physworld.cli import main
from physworld.data.generate import GenerateConfig, generate
from physworld.data.store import manifest_digest, shard_bytes, table_to_records
from physworld.fileio import sha256_file

CONFIG = GenerateConfig(
    scenario_types=("pendulum", "billiards"), num_scenes_per_type=6, frames_per_scene=30, scenes_per_shard=6
)
TINY = os.path.join(os.path.dirname(__file__), "..", "configs", "physics_expert", "tiny.yaml")


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "clean"
    generate(CONFIG, root, progress=False)
    return root


@pytest.fixture
def copy(tmp_path, clean):
    dst = tmp_path / "copy"
    shutil.copytree(clean, dst)
    return dst


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    assert len(err.strip().splitlines()) <= 1, err  # one line at most
    return code, out, err


def validate(capsys, root, *extra) -> tuple[int, str]:
    code, out, err = cli(capsys, "validate", "--data-dir", root, "--quiet", *extra)
    return code, out


def shard(root, k=0):
    return root / "shards" / f"shard-{k:05d}.parquet"


def tree_digest(root) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def manifest(root) -> dict:
    return json.loads((root / "manifest.json").read_text())


def write_manifest(root, m: dict, rehash: bool = True) -> None:
    if rehash:
        m["manifest_sha256"] = manifest_digest(m)
    (root / "manifest.json").write_text(json.dumps(m, indent=2))


def rehash(root) -> None:
    """Recompute every checksum and size in the manifest from the files as they now are."""
    m = manifest(root)
    for entry in m["shards"]:
        path = root / entry["file"]
        if path.is_file():
            entry["sha256"], entry["bytes"] = sha256_file(path), path.stat().st_size
    m["index"]["sha256"] = sha256_file(root / "index.parquet")
    m["index"]["bytes"] = (root / "index.parquet").stat().st_size
    write_manifest(root, m)


def rewrite_shard(root, k, edit, **write_kw) -> None:
    records = table_to_records(pq.read_table(shard(root, k)))
    edit(records)
    if write_kw:
        from physworld.data.store import records_to_table

        pq.write_table(records_to_table(records), shard(root, k), **write_kw)
    else:
        shard(root, k).write_bytes(shard_bytes(records))


def edit_index(root, edit) -> None:
    table = pq.read_table(root / "index.parquet")
    rows = table.to_pylist()
    edit(rows)
    pq.write_table(
        pa.Table.from_pylist(rows, schema=table.schema), root / "index.parquet", compression="zstd"
    )


def prepare(capsys, root) -> tuple[int, str]:
    """What training runs first on its data directory."""
    code, _, err = cli(capsys, "prepare", root, "--quiet")
    return code, err


# ---------------------------------------------------------------- bytes: flips, truncation, missing


def test_clean_copy_passes_and_validate_writes_nothing(capsys, copy):
    before = tree_digest(copy)
    assert validate(capsys, copy, "--resimulate", "all")[0] == 0
    assert tree_digest(copy) == before


def test_byte_flip_is_refused_by_every_reader_naming_the_shard(capsys, copy, checkpoint, tmp_path):
    data = bytearray(shard(copy, 1).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit: may well decode to other numbers
    shard(copy, 1).write_bytes(bytes(data))
    code, out = validate(capsys, copy)
    assert code == 1 and "shards/shard-00001.parquet" in out and "sha256" in out
    code, err = prepare(capsys, copy)
    assert code == 1 and "shard-00001.parquet: sha256 does not match" in err and "physworld validate" in err
    assert not (copy / "windows" / "meta.json").exists()
    code, _, err = cli(
        capsys, "export-jsonl", "--data-dir", copy, "--output-dir", copy.parent / "out", "--quiet"
    )
    assert code == 1 and "shard-00001.parquet" in err
    code, _, err = cli(
        capsys,
        "evaluate",
        "--checkpoint",
        checkpoint,
        "--val-dir",
        copy,
        "--output-dir",
        tmp_path / "eval",
        "--no-render",
        "--quiet",
    )
    assert code == 1 and "shard-00001.parquet: sha256 does not match" in err


def test_truncated_shard(capsys, copy):
    data = shard(copy, 0).read_bytes()
    shard(copy, 0).write_bytes(data[: len(data) // 3])
    code, out = validate(capsys, copy)
    assert code == 1 and f"is {len(data) // 3} bytes, the manifest says {len(data)}" in out
    assert "scene(s) missing: ids 0, 1, 2, 3, 4, 5" in out
    code, err = prepare(capsys, copy)
    assert code == 1 and "truncated" in err


def test_missing_shard(capsys, copy):
    shard(copy, 1).unlink()
    code, out = validate(capsys, copy)
    assert code == 1 and "shards/shard-00001.parquet: shard missing" in out
    assert prepare(capsys, copy)[0] == 1


def test_index_row_pointing_at_a_shard_that_does_not_exist(capsys, copy):
    def point_away(rows):
        rows[3]["shard"] = 7

    edit_index(copy, point_away)
    rehash(copy)
    code, out = validate(capsys, copy)
    assert code == 1 and "index.parquet, scene 3: row 3 (scene 3) points at shard 7 row 3" in out
    code, err = prepare(capsys, copy)
    assert code == 1 and "index.parquet" in err


# ---------------------------------------------------------------- checksum-consistent edits


def test_scenes_per_type_edited_to_one_type(capsys, copy):
    m = manifest(copy)
    m["scenes_per_type"] = {"pendulum": 6}
    write_manifest(copy, m)
    code, out = validate(capsys, copy)
    assert code == 1 and "scenes_per_type" in out and "manifest.json" in out
    code, err = prepare(capsys, copy)  # training would silently drop billiards: refused instead
    assert code == 1 and "scenes_per_type" in err


def test_manifest_edit_without_its_checksum(capsys, copy):
    m = manifest(copy)
    m["engine"] = "something else"
    write_manifest(copy, m, rehash=False)
    code, out = validate(capsys, copy)
    assert code == 1 and "manifest_sha256 does not match" in out
    assert prepare(capsys, copy)[0] == 1


def test_format_version_2_is_unsupported_everywhere(capsys, copy):
    m = manifest(copy)
    m["format_version"] = 2
    write_manifest(copy, m)
    code, out = validate(capsys, copy)
    assert code == 1 and "format_version 2 is not supported" in out
    code, err = prepare(capsys, copy)
    assert code == 2 and "format_version 2 is not supported" in err


def test_config_seed_edited(capsys, copy):
    m = manifest(copy)
    m["config"]["seed"] = 99
    write_manifest(copy, m)
    code, out = validate(capsys, copy, "--resimulate", "none")
    assert code == 1 and "the config puts type, difficulty, seed" in out


def test_two_index_rows_swapped(capsys, copy):
    def swap(rows):
        rows[2], rows[8] = rows[8], rows[2]

    edit_index(copy, swap)
    rehash(copy)
    code, out = validate(capsys, copy)
    assert code == 1 and "rows reordered or edited" in out
    assert prepare(capsys, copy)[0] == 1


def test_scene_ids_swapped_in_the_index_only(capsys, copy):
    def swap(rows):
        rows[2]["scene_id"], rows[8]["scene_id"] = rows[8]["scene_id"], rows[2]["scene_id"]

    edit_index(copy, swap)
    rehash(copy)
    code, out = validate(capsys, copy)
    assert code == 1 and "shards/shard-00000.parquet, scene 2: row 2 disagrees with index.parquet" in out
    code, err = prepare(capsys, copy)
    assert code == 1 and "the index says" in err


def test_shard_re_encoded_with_another_row_group_size(capsys, copy):
    rewrite_shard(copy, 1, lambda records: None, row_group_size=2, compression="zstd")
    rehash(copy)
    code, out = validate(capsys, copy, "--resimulate", "none")
    assert code == 1 and "row groups of [2, 2, 2] scenes" in out
    code, err = prepare(capsys, copy)
    assert code == 1 and "re-encoded" in err


def test_changed_contact_events(capsys, copy):
    def louder(records):
        r = next(r for r in records if len(r["events"]["impulse"]))
        r["events"]["impulse"] = r["events"]["impulse"] * np.float32(2)

    rewrite_shard(copy, 0, louder)
    rehash(copy)
    code, out = validate(capsys, copy, "--resimulate", "all")
    assert code == 1 and "contact events differ from the re-simulation (impulse" in out

    edited = []

    def impossible(records):
        r = next(r for r in records if len(r["events"]["frame"]))
        r["events"]["frame"] = np.full_like(r["events"]["frame"], 999)
        edited.append(r["scene_id"])

    rewrite_shard(copy, 0, impossible)
    rehash(copy)
    code, out = validate(capsys, copy, "--resimulate", "none")
    assert code == 1 and f"scene {edited[0]}: contact events: frame outside [1, 30]" in out


def test_changed_category(capsys, copy):
    def recategorise(records):
        records[0]["category"] = "ramp"

    rewrite_shard(copy, 0, recategorise)

    def index_too(rows):
        rows[0]["category"] = "ramp"

    edit_index(copy, index_too)
    rehash(copy)
    code, out = validate(capsys, copy, "--resimulate", "none")
    assert code == 1 and "scene 0: category 'ramp', type pendulum belongs to 'constraint'" in out


def test_changed_event_columns(capsys, copy):
    table = pq.read_table(shard(copy, 0))
    table = table.drop_columns(["event_impulse"])
    pq.write_table(table, shard(copy, 0))
    rehash(copy)
    code, out = validate(capsys, copy)
    assert code == 1 and "schema differs from the store's" in out
    assert prepare(capsys, copy)[0] == 1


def test_old_manifest_without_its_checksum_still_reads(capsys, copy):
    m = manifest(copy)
    del m["manifest_sha256"], m["index"]["bytes"]
    write_manifest(copy, m, rehash=False)
    code, out = validate(capsys, copy)
    assert code == 0 and "WARNING" in out and "no manifest_sha256" in out
    assert prepare(capsys, copy)[0] == 0


# ---------------------------------------------------------------- NaN in a shard


@pytest.fixture
def nan_copy(copy):
    def poison(records):
        records[2]["states"][7, 1, 3] = np.nan  # scene 2, frame 7, body 1, vx

    rewrite_shard(copy, 0, poison)
    rehash(copy)
    return copy


def test_nan_is_located_by_validate_and_prepare(capsys, nan_copy):
    code, out = validate(capsys, nan_copy, "--resimulate", "none")
    assert code == 1 and "shards/shard-00000.parquet, scene 2, frame 7, body 1" in out
    code, err = prepare(capsys, nan_copy)
    assert code == 1
    assert "scene 2 (pendulum)" in err and "field vx at frame 7, body 1" in err


@pytest.fixture(scope="module")
def checkpoint(clean, tmp_path_factory):
    """A PhysicsExpert trained two steps on a copy of the clean dataset (the clean one stays unprepared)."""
    root = tmp_path_factory.mktemp("trained")
    shutil.copytree(clean, root / "train")
    argv = ["train", "physics-expert", "--quiet", "--config", TINY, f"train.output_dir={root / 'run'}"]
    assert main([*argv, f"data.train_dir={root / 'train'}", "train.max_steps=2"]) == 0
    return root / "run" / "checkpoints" / "latest.safetensors"


def test_nan_stops_training_and_evaluation_naming_scene_field_frame(capsys, checkpoint, nan_copy, tmp_path):
    run = tmp_path / "run"
    args = ["train", "physics-expert", "--quiet", "--config", TINY, f"train.output_dir={run}"]
    code, _, err = cli(capsys, *args, f"data.train_dir={nan_copy}", "train.max_steps=2")
    assert code == 1 and "scene 2 (pendulum)" in err and "field vx at frame 7" in err
    code, _, err = cli(
        capsys,
        "evaluate",
        "--checkpoint",
        checkpoint,
        "--val-dir",
        nan_copy,
        "--output-dir",
        tmp_path / "eval",
        "--max-scenes-per-type",
        "3",
        "--no-render",
        "--quiet",
    )
    assert code == 1 and "scene 2 (pendulum)" in err and "field vx at frame 7" in err


# ---------------------------------------------------------------- a manifest of the wrong shape


@pytest.mark.parametrize(
    "edit, message, readers_exit",
    [
        (lambda m: m.update(shards="oops"), "shards: expected a list, got str", 1),
        (lambda m: m.update(config=None), "config: expected an object, got None", 1),
        (lambda m: m.update(num_scenes="12"), "num_scenes: expected a count, got '12'", 1),
        (lambda m: m["shards"][0].update(bytes="13417"), "shards[0].bytes: expected a count", 1),
        # Readers do not use the generation config (only validate checks scenes against it).
        (lambda m: m["config"].update(num_scenes_per_type="6"), "num_scenes_per_type must be integers", 0),
        (lambda m: m.update(index=[]), "index: expected", 1),
        (
            lambda m: m["config"].update(num_scenes_per_type=10**18),
            "the config produces 2000000000000000000",
            0,
        ),
        (lambda m: m["shards"][0].update(num_scenes=10**18), "is not the shards' total", 1),
        (lambda m: m.clear(), "format None, expected 'physworld-scenes'", 1),
    ],
)
def test_wrong_types_in_the_manifest_are_findings(capsys, copy, edit, message, readers_exit):
    m = manifest(copy)
    edit(m)
    write_manifest(copy, m)
    code, out = validate(capsys, copy)
    assert code == 1 and message in out and "manifest.json" in out
    assert prepare(capsys, copy)[0] == readers_exit


def test_manifest_that_is_not_an_object(capsys, copy):
    (copy / "manifest.json").write_text("[1, 2]")
    assert validate(capsys, copy)[0] == 1
    assert prepare(capsys, copy)[0] == 1


def test_shard_that_is_a_directory(capsys, copy):
    shard(copy, 0).unlink()
    shard(copy, 0).mkdir()
    code, out = validate(capsys, copy)
    assert code == 1 and "shards/shard-00000.parquet: shard is a directory" in out
    code, err = prepare(capsys, copy)
    assert code == 1 and "is a directory" in err


@pytest.mark.parametrize("verb", ["validate", "prepare"])
def test_shard_linked_to_dev_zero_does_not_hang(copy, verb):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    shard(copy, 1).unlink()
    os.symlink("/dev/zero", shard(copy, 1))
    argv = ["validate", "--data-dir", str(copy)] if verb == "validate" else ["prepare", str(copy)]
    proc = subprocess.run(
        [sys.executable, "-m", "physworld.cli", *argv, "--quiet"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "not a regular file" in proc.stdout + proc.stderr


def test_internal_error_has_its_own_exit_status(capsys, copy, monkeypatch):
    import physworld.data.validate as V

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(V, "check_scene_values", broken)
    code, _, err = cli(capsys, "validate", "--data-dir", copy, "--quiet")
    assert code == 3 and "internal error: RuntimeError: a bug" in err


def test_validate_mistakes_exit_2(capsys, copy, tmp_path):
    assert cli(capsys, "validate", "--data-dir", tmp_path / "none", "--quiet")[0] == 2
    code, _, err = cli(capsys, "validate", "--data-dir", copy, "--sample-per-type", "-1", "--quiet")
    assert code == 2 and "--sample-per-type" in err


def test_validate_progress_bar_has_a_total(copy, capsys):
    assert main(["validate", "--data-dir", str(copy)]) == 0
    err = capsys.readouterr().err
    assert "12/12" in err


# ---------------------------------------------------------------- the JSONL layout


def test_export_into_another_export_is_refused_and_loses_nothing(capsys, clean, tmp_path):
    out = tmp_path / "export"
    assert cli(capsys, "export-jsonl", "--data-dir", clean, "--output-dir", out, "--quiet")[0] == 0
    before = tree_digest(out)
    assert cli(capsys, "export-jsonl", "--data-dir", clean, "--output-dir", out, "--quiet")[0] == 0  # resumes
    assert tree_digest(out) == before
    other = tmp_path / "other"
    generate(
        GenerateConfig(scenario_types=("pong",), num_scenes_per_type=2, frames_per_scene=10),
        other,
        progress=False,
    )
    code, _, err = cli(capsys, "export-jsonl", "--data-dir", other, "--output-dir", out, "--quiet")
    assert code == 2 and "holds an export of another dataset" in err
    assert tree_digest(out) == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = cli(capsys, "export-jsonl", "--data-dir", clean, "--output-dir", mine, "--quiet")
    assert code == 2 and "not empty" in err and (mine / "notes.txt").read_text() == "keep me"
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


@pytest.fixture(scope="module")
def exported(clean, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported") / "jsonl"
    assert main(["export-jsonl", "--data-dir", str(clean), "--output-dir", str(out), "--quiet"]) == 0
    return out


@pytest.fixture
def jsonl_copy(exported, tmp_path):
    dst = tmp_path / "jsonl"
    shutil.copytree(exported, dst)
    return dst


def test_exported_tree_validates(capsys, jsonl_copy):
    assert validate(capsys, jsonl_copy, "--resimulate", "all")[0] == 0


def test_jsonl_file_moved_to_another_types_folder(capsys, jsonl_copy):
    (jsonl_copy / "pendulum" / "scene_00000000.jsonl").rename(
        jsonl_copy / "billiards" / "scene_00000000.jsonl"
    )
    code, out = validate(capsys, jsonl_copy, "--resimulate", "none")
    assert code == 1
    assert "billiards/scene_00000000.jsonl, scene 0: holds a scene of type 'pendulum'" in out
    assert "pendulum/scene_00000000.jsonl, scene 0: scene file missing" in out


def test_jsonl_file_deleted(capsys, jsonl_copy):
    (jsonl_copy / "billiards" / "scene_00000005.jsonl").unlink()
    code, out = validate(capsys, jsonl_copy, "--resimulate", "none")
    assert code == 1 and "billiards/scene_00000005.jsonl, scene 5: scene file missing" in out


def test_generated_jsonl_tree_deleted_file(capsys, tmp_path):
    root = tmp_path / "gen"
    generate(CONFIG, root, progress=False, fmt="jsonl")
    assert validate(capsys, root, "--resimulate", "none")[0] == 0
    (root / "pendulum" / "scene_00000002.jsonl").unlink()
    code, out = validate(capsys, root, "--resimulate", "none")
    assert code == 1 and "pendulum/scene_00000002.jsonl, scene 2: scene file missing" in out


def test_generation_json_promising_absurdly_many_scenes(capsys, tmp_path):
    root = tmp_path / "gen"
    generate(CONFIG, root, progress=False, fmt="jsonl")
    config = json.loads((root / "generation.json").read_text())
    config["num_scenes_per_type"] = 10**18
    (root / "generation.json").write_text(json.dumps(config))
    code, out = validate(capsys, root, "--resimulate", "none")
    assert code == 1 and "generation.json promises 2000000000000000000 scenes; 12 files are here" in out


def test_jsonl_scene_that_is_a_directory(capsys, jsonl_copy):
    (jsonl_copy / "pendulum" / "scene_00000099.jsonl").mkdir()
    code, out = validate(capsys, jsonl_copy, "--resimulate", "none")
    assert code == 1 and "pendulum/scene_00000099.jsonl: is a directory" in out


def test_jsonl_tree_given_where_a_store_is_expected(capsys, exported, checkpoint, tmp_path):
    code, err = prepare(capsys, exported)
    assert code == 2 and f"physworld import-jsonl --input-dir {exported} --output-dir" in err
    code, _, err = cli(
        capsys,
        "evaluate",
        "--checkpoint",
        checkpoint,
        "--val-dir",
        exported,
        "--output-dir",
        tmp_path / "eval",
        "--quiet",
    )
    assert code == 2 and "import-jsonl" in err, err
