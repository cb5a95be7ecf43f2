"""`physworld validate` finds each kind of damage inflicted on a copy of a small dataset, and passes a clean one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from physworld.cli import main
from physworld.data.generate import GenerateConfig, generate
from physworld.data.store import shard_bytes, table_to_records
from physworld.data.validate import validate

CONFIG = GenerateConfig(
    scenario_types=("collision",), num_scenes_per_type=4, frames_per_scene=40, scenes_per_shard=6
)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate") / "clean"
    generate(CONFIG, root, progress=False)
    return root


@pytest.fixture
def copy(tmp_path, clean):
    dst = tmp_path / "copy"
    shutil.copytree(clean, dst)
    return dst


def shard(root, k=1):
    return root / "shards" / f"shard-{k:05d}.parquet"


def rewrite_shard(root, k, edit):
    """Decode a shard, let `edit` change its records, and write it back as a valid Parquet file."""
    import pyarrow.parquet as pq

    records = table_to_records(pq.read_table(shard(root, k)))
    edit(records)
    shard(root, k).write_bytes(shard_bytes(records))


def checks(report):
    return {(f.check, f.scene_id, f.frame, f.body) for f in report.findings}


def test_clean_dataset_passes_every_check(clean, capsys):
    report = validate(clean, check_physics=True, resimulate="all")
    assert report.ok, report.findings
    assert report.num_scenes == 20
    assert main(["validate", "--data-dir", str(clean), "--check-physics", "--quiet"]) == 0
    assert "OK: 0 error(s)" in capsys.readouterr().out


def test_truncated_shard(copy):
    data = shard(copy).read_bytes()
    shard(copy).write_bytes(data[: len(data) // 2])
    report = validate(copy)
    assert not report.ok
    messages = [f.message for f in report.findings if f.file == "shards/shard-00001.parquet"]
    # Refused by its size before anything reads it (the size is in the manifest beside the sha256).
    assert any(f"is {len(data) // 2} bytes, the manifest says {len(data)}" in m for m in messages)
    assert any(f.check == "coverage" and "missing" in f.message for f in report.findings)


def test_flipped_bytes(copy):
    data = bytearray(shard(copy, 0).read_bytes())
    for i in range(100, len(data) - 100, 997):
        data[i] ^= 0x5A
    shard(copy, 0).write_bytes(bytes(data))
    report = validate(copy)
    assert not report.ok
    assert any(f.file == "shards/shard-00000.parquet" and "sha256" in f.message for f in report.findings)


def test_duplicated_scene_under_another_id(copy):
    def dup(records):
        clone = dict(records[1], scene_id=records[0]["scene_id"] + 1000)
        records.append(clone)

    rewrite_shard(copy, 0, dup)
    report = validate(copy, resimulate="none")
    dups = [f for f in report.findings if f.check == "duplicates"]
    assert len(dups) == 1 and dups[0].scene_id == 1000 and "identical content to scene 1" in dups[0].message


def test_altered_frame_is_located(copy):
    def alter(records):
        records[2]["states"][17, 1, 0] += np.float32(0.25)  # one x, one body, one frame

    rewrite_shard(copy, 1, alter)
    report = validate(copy, resimulate="all")
    assert not report.ok
    det = [f for f in report.findings if f.check == "determinism"]
    assert len(det) == 1
    assert (det[0].scene_id, det[0].frame, det[0].body) == (8, 17, 1)
    assert "x" in det[0].message


def test_deleted_file(copy):
    shard(copy, 2).unlink()
    report = validate(copy)
    assert ("files", None, None, None) in checks(report)
    assert any("missing" in f.message and f.file == "shards/shard-00002.parquet" for f in report.findings)
    assert any(f.check == "coverage" and "ids 12, 13, 14, 15, 16, 17" in f.message for f in report.findings)


def test_nan_and_physics_damage_are_located(copy):
    def damage(records):
        records[0]["states"][5, 0, 1] = np.nan
        # Teleport a body far outside the world from frame 30 on.
        records[3]["states"][30:, 0, 0] = 5000.0

    rewrite_shard(copy, 0, damage)
    report = validate(copy, check_physics=True, resimulate="none")
    found = checks(report)
    assert ("scenes", 0, 5, 0) in found
    assert ("physics", 3, 30, 0) in found


def test_json_report_and_exit_status(copy, tmp_path, capsys):
    shard(copy, 1).unlink()
    out = tmp_path / "report.json"
    assert main(["validate", "--data-dir", str(copy), "--json", str(out), "--quiet"]) == 1
    text = capsys.readouterr().out
    assert "FAILED" in text and "shards/shard-00001.parquet" in text
    report = json.loads(out.read_text())
    assert report["ok"] is False and report["num_scenes"] == 14
    assert {"check", "message", "file", "scene_id", "frame", "body"} <= set(report["findings"][0])


def test_damaged_manifest_is_a_finding_not_a_crash(copy):
    (copy / "manifest.json").write_text("{not json")
    report = validate(copy)
    assert not report.ok and report.findings[0].file == "manifest.json"


def test_jsonl_layout_is_validated_too(tmp_path):
    from physworld.data.jsonl import write_scene_file
    from physworld.data.store import Dataset

    src = tmp_path / "jsonl"
    generate(CONFIG, tmp_path / "store", progress=False)
    for record in Dataset(tmp_path / "store").iter_scenes():
        write_scene_file(record, src)
    assert validate(src, resimulate="all").ok
    victim = sorted(src.glob("bowling/scene_*.jsonl"))[0]
    lines = victim.read_text().splitlines()
    lines[3] = lines[3][:40]  # a damaged frame line
    victim.write_text("\n".join(lines) + "\n")
    report = validate(src)
    assert not report.ok
    bad = [f for f in report.findings if f.file == f"bowling/{victim.name}"]
    assert bad and "line 4" in bad[0].message


def test_the_guides_own_files_validate(tmp_path):
    from pathlib import Path

    guide = Path(__file__).parent / "data" / "physicsllmengine"
    report = validate(guide, check_physics=True)
    assert report.num_scenes == 8
    assert not [f for f in report.findings if f.check in ("scenes", "files", "duplicates")]
