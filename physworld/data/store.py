"""The dataset store: sharded, zstd-compressed Parquet with a manifest and a scene index.

Layout of a dataset directory:

    manifest.json            format version, engine, generation config, per-shard sha256
    index.parquet            one row per scene: scene_id, scenario_type, category, difficulty,
                             seed, num_bodies, shard, row  (lookup without reading trajectories)
    shards/shard-00000.parquet ...
    README.md                a Hugging Face dataset card whose `configs` point at shards/*.parquet

One Parquet row is one scene. Trajectories are stored losslessly as float32, one column per state
field (x, y, angle, vx, vy, angular_velocity), each a list of per-body tracks indexed
[body][frame], frame 0 being the initial state. That layout plus Parquet's BYTE_STREAM_SPLIT
encoding compresses smooth tracks far better than frame-major rows (bench/bench_storage.py).
The full scene spec (world, statics, bodies, constraints) is a canonical JSON string in `spec`.
A dataset holds one dimensionality (manifest `dims`): 3D scenes (PyBullet, spec3d.py) store the
columns x, y, z, qx, qy, qz, qw, vx, vy, vz, wx, wy, wz in place of the 2D six, the same way.

Any Parquet reader works without physworld:

    import pyarrow.parquet as pq, numpy as np
    row = pq.read_table("shards/shard-00000.parquet").slice(0, 1).to_pylist()[0]
    x = np.array(row["x"])           # [bodies, frames]

Every file is written to a temporary name, fsynced and renamed, so a reader or a resumed run never
sees half a file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import physworld
from physworld.fileio import atomic_write_bytes, atomic_write_json, sha256_file
from physworld.worlds.bullet import ENGINE_3D, STATE_FIELDS_3D
from physworld.worlds.engine import ENGINE, STATE_FIELDS

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INDEX = "index.parquet"
SHARD_DIR = "shards"
ROWS_PER_GROUP = 8  # scenes per Parquet row group: the unit read when looking up one scene
ZSTD_LEVEL = 3  # higher levels save ~3% space for 2-7x the write time (bench/bench_storage.py)

_TRACKS = pa.list_(pa.list_(pa.float32()))


def _schema(state_fields) -> pa.Schema:
    return pa.schema(
        [
            ("scene_id", pa.int64()),
            ("seed", pa.int64()),
            ("scenario_type", pa.string()),
            ("category", pa.string()),
            ("difficulty", pa.int8()),
            ("num_frames", pa.int32()),  # including the initial frame
            ("num_bodies", pa.int32()),
            ("spec", pa.string()),
            *[(f, _TRACKS) for f in state_fields],
            ("event_frame", pa.list_(pa.int32())),
            ("event_body_a", pa.list_(pa.int32())),  # -1 is the static world
            ("event_body_b", pa.list_(pa.int32())),
            ("event_impulse", pa.list_(pa.float32())),
        ]
    )


SCHEMA = _schema(STATE_FIELDS)
SCHEMA_3D = _schema(STATE_FIELDS_3D)
FIELDS_BY_DIMS = {2: STATE_FIELDS, 3: STATE_FIELDS_3D}
SCHEMA_BY_DIMS = {2: SCHEMA, 3: SCHEMA_3D}


def _fields_of(records: list[dict]) -> tuple[str, ...]:
    """The state fields of a batch of records, which must all have one dimensionality."""
    widths = {r["states"].shape[-1] for r in records}
    if len(widths) > 1:
        raise StoreError("a shard cannot mix 2D and 3D scenes; generate them into separate datasets")
    width = widths.pop() if widths else len(STATE_FIELDS)
    return STATE_FIELDS_3D if width == len(STATE_FIELDS_3D) else STATE_FIELDS


def _table_fields(table: pa.Table) -> tuple[str, ...]:
    return STATE_FIELDS_3D if "qw" in table.column_names else STATE_FIELDS


INDEX_COLUMNS = ["scene_id", "scenario_type", "category", "difficulty", "seed", "num_bodies"]


class StoreError(Exception):
    """A dataset directory that is missing, damaged or not what was asked for; the message says
    which file and what to do."""


# ---------------------------------------------------------------- atomic writes


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


# ---------------------------------------------------------------- records <-> Arrow


def records_to_table(records: list[dict]) -> pa.Table:
    """Scene records (see generate.py) to an Arrow table with SCHEMA (SCHEMA_3D for 3D scenes),
    built column-wise in numpy."""
    state_fields = _fields_of(records)
    n_frames = [r["states"].shape[0] for r in records]
    n_bodies = [r["states"].shape[1] for r in records]
    body_counts = np.array([0, *n_bodies], dtype=np.int64)
    scene_offsets = pa.array(np.cumsum(body_counts), type=pa.int32())
    track_offsets = np.concatenate([[0], np.cumsum(np.repeat(n_frames, n_bodies), dtype=np.int64)]).astype(
        np.int32
    )
    columns = {
        "scene_id": pa.array([r["scene_id"] for r in records], pa.int64()),
        "seed": pa.array([r["seed"] for r in records], pa.int64()),
        "scenario_type": pa.array([r["scenario_type"] for r in records], pa.string()),
        "category": pa.array([r["category"] for r in records], pa.string()),
        "difficulty": pa.array([r["difficulty"] for r in records], pa.int8()),
        "num_frames": pa.array(n_frames, pa.int32()),
        "num_bodies": pa.array(n_bodies, pa.int32()),
        "spec": pa.array([canonical_json(r["spec"]) for r in records], pa.string()),
    }
    for k, field in enumerate(state_fields):
        # [frames, bodies] -> [bodies, frames]: one contiguous track per body
        values = np.concatenate([np.ascontiguousarray(r["states"][:, :, k].T).ravel() for r in records])
        tracks = pa.ListArray.from_arrays(pa.array(track_offsets), pa.array(values, pa.float32()))
        columns[field] = pa.ListArray.from_arrays(scene_offsets, tracks)
    for name, key, typ in (
        ("event_frame", "frame", pa.int32()),
        ("event_body_a", "body_a", pa.int32()),
        ("event_body_b", "body_b", pa.int32()),
        ("event_impulse", "impulse", pa.float32()),
    ):
        columns[name] = pa.array([np.asarray(r["events"][key]) for r in records], pa.list_(typ))
    return pa.table(columns, schema=SCHEMA_3D if state_fields == STATE_FIELDS_3D else SCHEMA)


def table_to_records(table: pa.Table) -> list[dict]:
    """The inverse of records_to_table (states come back as float32 [frames, bodies, 6], or
    [frames, bodies, 13] for 3D scenes)."""
    out = []
    state_fields = _table_fields(table)
    meta = table.select(
        ["scene_id", "seed", "scenario_type", "category", "difficulty", "num_frames", "num_bodies", "spec"]
    ).to_pylist()
    sizes = np.array([m["num_frames"] * m["num_bodies"] for m in meta], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    # flatten() honours list offsets (unlike .values on a slice), giving each column's values in scene order
    fields = [
        table.column(f).combine_chunks().flatten().flatten().to_numpy(zero_copy_only=False)
        for f in state_fields
    ]
    events = {}
    for k in ("frame", "body_a", "body_b", "impulse"):
        col = table.column(f"event_{k}").combine_chunks()
        lengths = col.value_lengths().to_numpy(zero_copy_only=False)
        events[k] = np.split(col.flatten().to_numpy(zero_copy_only=False), np.cumsum(lengths)[:-1])
    for i, m in enumerate(meta):
        nf, nb = m["num_frames"], m["num_bodies"]
        states = np.empty((nf, nb, len(state_fields)), dtype=np.float32)
        for k, values in enumerate(fields):
            states[:, :, k] = values[starts[i] : starts[i + 1]].reshape(nb, nf).T
        out.append(
            {
                "scene_id": m["scene_id"],
                "seed": m["seed"],
                "scenario_type": m["scenario_type"],
                "category": m["category"],
                "difficulty": m["difficulty"],
                "spec": json.loads(m["spec"]),
                "states": states,
                "events": {k: parts[i] for k, parts in events.items()},
            }
        )
    return out


def shard_bytes(records: list[dict]) -> bytes:
    """One shard's Parquet bytes. Deterministic: same records, same pyarrow version, same bytes."""
    state_fields = _fields_of(records)
    buf = io.BytesIO()
    pq.write_table(
        records_to_table(records),
        buf,
        row_group_size=ROWS_PER_GROUP,
        compression="zstd",
        compression_level=ZSTD_LEVEL,
        use_dictionary=["scenario_type", "category"],
        use_byte_stream_split=[f"{f}.list.element.list.element" for f in state_fields]
        + ["event_impulse.list.element"],
        write_statistics=["scene_id", "difficulty", "scenario_type"],
    )
    return buf.getvalue()


def shard_name(k: int) -> str:
    return f"{SHARD_DIR}/shard-{k:05d}.parquet"


# ---------------------------------------------------------------- finishing a dataset


def finalize(root: Path, config: dict, shard_files: list[str]) -> dict:
    """Hash every shard, build the scene index and write index, dataset card and manifest (last,
    so a manifest's presence means the dataset is complete)."""
    root = Path(root)
    shards, index_parts = [], []
    for k, name in enumerate(shard_files):
        path = root / name
        pf = pq.ParquetFile(path)
        meta = pf.read(columns=INDEX_COLUMNS)
        index_parts.append(
            meta.append_column("shard", pa.array(np.full(meta.num_rows, k, np.int32))).append_column(
                "row", pa.array(np.arange(meta.num_rows, dtype=np.int32))
            )
        )
        shards.append(
            {
                "file": name,
                "sha256": sha256_file(path),
                "bytes": path.stat().st_size,
                "num_scenes": meta.num_rows,
            }
        )
    index = (
        pa.concat_tables(index_parts)
        if index_parts
        else pa.table({c: pa.array([], SCHEMA.field(c).type) for c in INDEX_COLUMNS})
    )
    buf = io.BytesIO()
    pq.write_table(index, buf, compression="zstd")
    atomic_write_bytes(root / INDEX, buf.getvalue())
    types = index.column("scenario_type").to_pylist() if index.num_rows else []
    counts = {t: types.count(t) for t in dict.fromkeys(types)}
    dims = config.get("dims", 2)
    units = (
        {"length": "m", "time": "s", "angle": "rad", "z_axis": "up", "quaternion": "xyzw"}
        if dims == 3
        else {"length": "px (1 px = 1 cm)", "time": "s", "angle": "rad", "y_axis": "up"}
    )
    manifest = {
        "format": "physworld-scenes",
        "format_version": FORMAT_VERSION,
        "physworld_version": physworld.__version__,
        "engine": ENGINE_3D if dims == 3 else ENGINE,
        "dims": dims,
        "state_fields": list(FIELDS_BY_DIMS[dims]),
        "units": units,
        "config": config,
        "num_scenes": index.num_rows,
        "scenes_per_type": counts,
        "index": {"file": INDEX, "sha256": sha256_file(root / INDEX)},
        "shards": shards,
    }
    atomic_write_bytes(root / "README.md", _dataset_card(manifest).encode())
    atomic_write_json(root / MANIFEST, manifest)
    return manifest


def write_dataset(root, records: Iterable[dict], config: dict, scenes_per_shard: int = 64) -> dict:
    """Write records (in order) as a complete dataset: shards, then index, card and manifest.

    For datasets that arrive as a stream (imports); generated datasets go through generate.py,
    which adds parallelism and resuming on top of the same shard format.
    """
    root = Path(root)
    if (root / MANIFEST).exists() or ((root / SHARD_DIR).exists() and any((root / SHARD_DIR).iterdir())):
        raise StoreError(f"{root} already holds a dataset; choose a new --output-dir")
    (root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    files, batch = [], []
    for record in records:
        batch.append(record)
        if len(batch) == scenes_per_shard:
            files.append(shard_name(len(files)))
            atomic_write_bytes(root / files[-1], shard_bytes(batch))
            batch = []
    if batch:
        files.append(shard_name(len(files)))
        atomic_write_bytes(root / files[-1], shard_bytes(batch))
    return finalize(root, config, files)


def _dataset_card(manifest: dict) -> str:
    types = ", ".join(manifest["scenes_per_type"]) or "none"
    return (
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: shards/*.parquet\n---\n"
        f"# physworld scenes\n\n{manifest['num_scenes']} scenes ({types}) simulated with {manifest['engine']}.\n"
        "One row per scene; state columns hold per-body float32 tracks indexed [body][frame]. "
        "See manifest.json for the generation config and checksums.\n"
    )


# ---------------------------------------------------------------- reading


class Dataset:
    """A finished dataset directory: its manifest, index and scenes, read on demand."""

    def __init__(self, root):
        self.root = Path(root)
        path = self.root / MANIFEST
        if not path.exists():
            raise StoreError(
                f"{path}: no manifest. Is {self.root} a physworld dataset? If a generate run "
                "was interrupted, rerun the same command to finish it."
            )
        try:
            self.manifest = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise StoreError(f"{path}: manifest is not valid JSON ({e}); regenerate the dataset") from e
        version = self.manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise StoreError(f"{path}: format_version {version!r}, this physworld reads {FORMAT_VERSION}")
        try:
            self.index = pq.read_table(self.root / INDEX)
        except (OSError, pa.ArrowException) as e:
            raise StoreError(f"{self.root / INDEX}: cannot read the scene index ({e})") from e
        ids = self.index.column("scene_id").to_numpy()
        self._order = np.argsort(ids, kind="stable")
        self._sorted_ids = ids[self._order]
        self._files: dict[int, pq.ParquetFile] = {}

    def __len__(self) -> int:
        return self.index.num_rows

    @property
    def dims(self) -> int:
        """2 (pymunk scenes, states [frames, bodies, 6]) or 3 (PyBullet, [frames, bodies, 13])."""
        return int(self.manifest.get("dims", 2))

    @property
    def scene_ids(self) -> list[int]:
        return self.index.column("scene_id").to_pylist()

    def _shard(self, k: int) -> pq.ParquetFile:
        if k not in self._files:
            self._files[k] = pq.ParquetFile(self.root / self.manifest["shards"][k]["file"])
        return self._files[k]

    def scene(self, scene_id: int) -> dict:
        """One scene by id, reading only the row group that holds it."""
        return self.scenes([scene_id])[0]

    def scenes(self, scene_ids) -> list[dict]:
        """Scenes by id, in the order asked, decoding each row group that holds any of them once."""
        where = []
        for scene_id in scene_ids:
            pos = int(np.searchsorted(self._sorted_ids, scene_id))
            if pos >= len(self._sorted_ids) or self._sorted_ids[pos] != scene_id:
                raise KeyError(f"scene {scene_id} is not in {self.root}")
            i = int(self._order[pos])
            row = self.index.column("row")[i].as_py()
            where.append((self.index.column("shard")[i].as_py(), row // ROWS_PER_GROUP, row % ROWS_PER_GROUP))
        groups = {}
        for shard, group, _ in where:
            if (shard, group) not in groups:
                groups[shard, group] = table_to_records(self._shard(shard).read_row_group(group))
        return [groups[shard, group][offset] for shard, group, offset in where]

    def iter_scenes(
        self, scenario_types: Iterable[str] | None = None, difficulties: Iterable[int] | None = None
    ) -> Iterator[dict]:
        """Scenes in storage order, optionally filtered, reading one row group at a time."""
        types = set(scenario_types) if scenario_types is not None else None
        diffs = set(difficulties) if difficulties is not None else None
        for k in range(len(self.manifest["shards"])):
            pf = self._shard(k)
            for g in range(pf.num_row_groups):
                for rec in table_to_records(pf.read_row_group(g)):
                    if (types is None or rec["scenario_type"] in types) and (
                        diffs is None or rec["difficulty"] in diffs
                    ):
                        yield rec

    def verify_checksums(self) -> list[str]:
        """Shards and index whose bytes no longer match the manifest, as readable problems."""
        problems = []
        entries = [dict(s) for s in self.manifest["shards"]] + [dict(self.manifest["index"])]
        for entry in entries:
            path = self.root / entry["file"]
            if not path.exists():
                problems.append(f"{path}: missing")
            elif sha256_file(path) != entry["sha256"]:
                problems.append(f"{path}: sha256 does not match the manifest (corrupted or modified)")
        return problems
