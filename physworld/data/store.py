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

import hashlib
import io
import json
import os
import stat
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


UNITS = {"length": "px (1 px = 1 cm)", "time": "s", "angle": "rad", "y_axis": "up"}
UNITS_3D = {"length": "m", "time": "s", "angle": "rad", "z_axis": "up", "quaternion": "xyzw"}
UNITS_BY_DIMS = {2: UNITS, 3: UNITS_3D}
MANIFEST_LIMIT = 64 << 20  # bytes; no manifest comes near this, and nothing larger is read
INDEX_LIMIT = 1 << 30  # the same bound for an index written before manifests recorded its size


class StoreError(Exception):
    """A dataset directory that is missing, damaged or not what was asked for; the message says
    which file and what to do."""


class DataDamageError(StoreError):
    """A dataset whose files no longer say what the manifest promises (checksums, index, values):
    damage found while reading, exit status 1 at the command line; the message names the file
    (and scene, field, frame where there is one) and says to run `physworld validate`."""


# ---------------------------------------------------------------- atomic writes


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


# ---------------------------------------------------------------- integrity of what is read


def manifest_digest(manifest: dict) -> str:
    """sha256 over the manifest's canonical JSON without its own `manifest_sha256` entry: an edit of
    any field (scenes_per_type, config, checksums) that does not also recompute it is found."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def regular_file_problem(path: Path, size: int | None = None, limit: int | None = None) -> str | None:
    """Why `path` must not be read (missing, not a regular file, a size other than `size`, larger than
    `limit`), or None. Checked before every read of a dataset file, so a directory, a FIFO or a link
    to /dev/zero is refused instead of hanging or crashing the reader."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        return f"is {kind}"
    if size is not None and st.st_size != size:
        return f"is {st.st_size} bytes, the manifest says {size} (truncated, extended or replaced)"
    if limit is not None and st.st_size > limit:
        return f"is {st.st_size} bytes, more than the {limit} a file of this kind may be"
    return None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_sha256(v) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def manifest_problems(manifest) -> list[str]:
    """What in a parsed manifest readers cannot rely on, one readable problem each (empty if none):
    its structure and types, then (only if those hold) its own consistency."""
    return manifest_structure_problems(manifest) or manifest_consistency_problems(manifest)


def manifest_structure_problems(manifest) -> list[str]:
    """The format, version, and the type of every field readers use; empty if all hold."""
    if not isinstance(manifest, dict):
        return [f"expected a JSON object, got {type(manifest).__name__}"]
    problems = []
    if manifest.get("format") != "physworld-scenes":
        problems.append(f"format {manifest.get('format')!r}, expected 'physworld-scenes'")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        problems.append(
            f"format_version {version!r} is not supported: this physworld reads format {FORMAT_VERSION} "
            "(use the physworld version that wrote it, or regenerate the dataset)"
        )
        return problems
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        problems.append(f"shards: expected a list, got {type(shards).__name__}")
    else:
        for k, entry in enumerate(shards):
            if not isinstance(entry, dict):
                problems.append(f"shards[{k}]: expected an object, got {type(entry).__name__}")
                continue
            if entry.get("file") != shard_name(k):
                problems.append(f"shards[{k}].file: expected {shard_name(k)!r}, got {entry.get('file')!r}")
            if not _is_sha256(entry.get("sha256")):
                problems.append(f"shards[{k}].sha256: expected 64 hex digits, got {entry.get('sha256')!r}")
            for key in ("bytes", "num_scenes"):
                if not _is_int(entry.get(key)) or entry[key] < 0:
                    problems.append(f"shards[{k}].{key}: expected a count, got {entry.get(key)!r}")
    index = manifest.get("index")
    if not isinstance(index, dict) or index.get("file") != INDEX or not _is_sha256(index.get("sha256")):
        problems.append(f"index: expected {{'file': {INDEX!r}, 'sha256': <64 hex digits>}}, got {index!r}")
    elif "bytes" in index and (not _is_int(index["bytes"]) or index["bytes"] < 0):
        problems.append(f"index.bytes: expected a count, got {index['bytes']!r}")
    if not _is_int(manifest.get("num_scenes")) or manifest["num_scenes"] < 0:
        problems.append(f"num_scenes: expected a count, got {manifest.get('num_scenes')!r}")
    per_type = manifest.get("scenes_per_type")
    if not isinstance(per_type, dict) or not all(_is_int(v) for v in per_type.values()):
        problems.append(f"scenes_per_type: expected {{type: count}}, got {per_type!r}")
    if not isinstance(manifest.get("config"), dict):
        problems.append(f"config: expected an object, got {manifest.get('config')!r}")
    dims = manifest.get("dims", 2)  # manifests written before 3D worlds have no dims: 2D
    if dims not in FIELDS_BY_DIMS or isinstance(dims, bool):
        problems.append(f"dims: expected 2 or 3, got {dims!r}")
    elif manifest.get("state_fields") != list(FIELDS_BY_DIMS[dims]):
        fields = list(FIELDS_BY_DIMS[dims])
        problems.append(f"state_fields: expected {fields} for {dims}D, got {manifest.get('state_fields')!r}")
    return problems


def manifest_consistency_problems(manifest: dict) -> list[str]:
    """For a manifest whose structure holds: its scene counts agree, and its manifest_sha256 (where
    it has one: manifests written before it existed have none) matches its content."""
    problems = []
    shards = manifest["shards"]
    if sum(s["num_scenes"] for s in shards) != manifest["num_scenes"]:
        problems.append(
            f"num_scenes {manifest['num_scenes']} is not the shards' total {sum(s['num_scenes'] for s in shards)}"
        )
    try:
        digest = manifest_digest(manifest)
    except ValueError:
        return problems + ["holds NaN or infinity, which no manifest physworld writes does"]
    if "manifest_sha256" in manifest and manifest["manifest_sha256"] != digest:
        problems.append(
            "manifest_sha256 does not match the manifest's content: it was edited after it was written"
        )
    return problems


def index_problems(index: pa.Table, manifest: dict) -> list[tuple[int | None, str]]:
    """(index row or None, problem) for every way the scene index disagrees with the manifest: its
    columns, its row count, storage order (row i is the i-th scene of the shards, as `finalize`
    writes it), unique scene ids, and the manifest's scenes_per_type. Reads no shard."""
    want = [*INDEX_COLUMNS, "shard", "row"]
    if index.column_names != want:
        return [(None, f"columns {index.column_names}, expected {want}")]
    types = {c: (SCHEMA.field(c).type if c in SCHEMA.names else pa.int32()) for c in want}
    wrong = [c for c in want if index.schema.field(c).type != types[c]]
    if wrong:
        return [(None, f"column types of {', '.join(wrong)} differ from the store's")]
    listed = sum(s["num_scenes"] for s in manifest["shards"])
    if index.num_rows != manifest["num_scenes"] or index.num_rows != listed:
        # Checked first and alone: the counts below may be anything, and rows cannot be paired up.
        return [
            (
                None,
                f"{index.num_rows} rows, the manifest lists {manifest['num_scenes']} scenes "
                f"({listed} in its shards)",
            )
        ]
    problems = []
    expected_shard = np.repeat(
        np.arange(len(manifest["shards"]), dtype=np.int64), [s["num_scenes"] for s in manifest["shards"]]
    )
    expected_row = np.concatenate(
        [np.arange(s["num_scenes"], dtype=np.int64) for s in manifest["shards"]] or [np.zeros(0, np.int64)]
    )
    shard = index.column("shard").to_numpy(zero_copy_only=False)
    row = index.column("row").to_numpy(zero_copy_only=False)
    n = min(len(shard), len(expected_shard))
    off = np.flatnonzero((shard[:n] != expected_shard[:n]) | (row[:n] != expected_row[:n]))
    ids = index.column("scene_id").to_numpy(zero_copy_only=False)
    for i in off[:5].tolist():
        problems.append(
            (
                i,
                f"row {i} (scene {ids[i]}) points at shard {shard[i]} row {row[i]}; in storage order it "
                f"would be shard {expected_shard[i]} row {expected_row[i]} (rows reordered or edited)",
            )
        )
    if len(off) > 5:
        problems.append((None, f"{len(off) - 5} more rows out of storage order"))
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        problems.append((None, f"scene ids listed more than once: {unique[counts > 1][:10].tolist()}"))
    types_col = index.column("scenario_type").to_pylist()
    counted = {t: types_col.count(t) for t in dict.fromkeys(types_col)}
    if counted != manifest["scenes_per_type"]:
        problems.append(
            (
                None,
                f"the manifest's scenes_per_type {manifest['scenes_per_type']} is not what the index holds "
                f"{counted}",
            )
        )
    return problems


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
    manifest = {
        "format": "physworld-scenes",
        "format_version": FORMAT_VERSION,
        "physworld_version": physworld.__version__,
        "engine": ENGINE_3D if dims == 3 else ENGINE,
        "dims": dims,
        "state_fields": list(FIELDS_BY_DIMS[dims]),
        "units": UNITS_BY_DIMS[dims],
        "config": config,
        "num_scenes": index.num_rows,
        "scenes_per_type": counts,
        "index": {"file": INDEX, "sha256": sha256_file(root / INDEX), "bytes": (root / INDEX).stat().st_size},
        "shards": shards,
    }
    # Integrity of the manifest itself; manifests written before it lack the entry and are still read.
    manifest["manifest_sha256"] = manifest_digest(manifest)
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


def shard_layout_problem(pf: pq.ParquetFile, num_scenes: int, dims: int = 2) -> str | None:
    """What in an opened shard's metadata breaks scene lookups, or None: the schema, the row count the
    manifest lists, and ROWS_PER_GROUP rows in every row group but the last (lookups compute a
    scene's row group as row // ROWS_PER_GROUP)."""
    if not pf.schema_arrow.equals(SCHEMA_BY_DIMS[dims]):
        return "schema differs from the store's (columns, types or event columns changed)"
    if pf.metadata.num_rows != num_scenes:
        return f"{pf.metadata.num_rows} scenes, the manifest lists {num_scenes}"
    sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
    expected = [ROWS_PER_GROUP] * (num_scenes // ROWS_PER_GROUP) + (
        [num_scenes % ROWS_PER_GROUP] if num_scenes % ROWS_PER_GROUP else []
    )
    if sizes != expected:
        return (
            f"row groups of {sizes[:6]}{'...' if len(sizes) > 6 else ''} scenes, the store writes "
            f"{ROWS_PER_GROUP} per group (re-encoded?)"
        )
    return None


def nonfinite_problem(record: dict) -> str | None:
    """Where a scene's states first hold NaN or infinity (scene, field, frame, body), or None."""
    states = record["states"]
    bad = ~np.isfinite(states)
    if not bad.any():
        return None
    frame, body, field = (int(v) for v in np.argwhere(bad)[0])
    fields = STATE_FIELDS_3D if states.shape[-1] == len(STATE_FIELDS_3D) else STATE_FIELDS
    return (
        f"scene {record['scene_id']} ({record['scenario_type']}) has {int(bad.sum())} non-finite state "
        f"value(s), the first {states[frame, body, field]} in field {fields[field]} at frame {frame}, "
        f"body {body}"
    )


class Dataset:
    """A finished dataset directory: its manifest, index and scenes, read on demand.

    What is verified when (README "What is verified when"): on opening, the manifest's structure and
    its manifest_sha256, the index's checksum and its agreement with the manifest (storage order,
    counts, scenes_per_type); on first reading a shard, its size, its sha256 (unless verify=False),
    its row count, schema and row-group layout; on every scene read, that it is the scene the index
    names and that its states are finite. A mismatch raises DataDamageError naming the file."""

    def __init__(self, root, verify: bool = True):
        self.root = Path(root)
        self.verify = verify
        path = self.root / MANIFEST
        problem = regular_file_problem(path, limit=MANIFEST_LIMIT)
        if problem == "missing":
            raise StoreError(self._no_manifest_message(path))
        if problem:
            raise DataDamageError(f"{path} {problem}; {self._validate_hint()}")
        try:
            self.manifest = json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataDamageError(f"{path}: manifest is not valid JSON ({e}); regenerate the dataset") from e
        problems = manifest_problems(self.manifest)
        if problems:
            if "format_version" in problems[0]:
                raise StoreError(f"{path}: {problems[0]}")
            raise DataDamageError(f"{path}: {'; '.join(problems[:3])}; {self._validate_hint()}")
        index_path = self.root / INDEX
        entry = self.manifest["index"]
        problem = regular_file_problem(index_path, size=entry.get("bytes"), limit=INDEX_LIMIT)
        if problem:
            raise DataDamageError(f"{index_path} {problem}; {self._validate_hint()}")
        if verify and sha256_file(index_path) != entry["sha256"]:
            raise DataDamageError(
                f"{index_path}: sha256 does not match the manifest (corrupted or modified); {self._validate_hint()}"
            )
        try:
            self.index = pq.read_table(index_path)
            problems = index_problems(self.index, self.manifest)
        except (OSError, pa.ArrowException, ValueError) as e:
            raise DataDamageError(
                f"{index_path}: cannot read the scene index ({e}); {self._validate_hint()}"
            ) from e
        if problems:
            raise DataDamageError(
                f"{index_path}: {'; '.join(p for _, p in problems[:2])}; {self._validate_hint()}"
            )
        ids = self.index.column("scene_id").to_numpy()
        self._order = np.argsort(ids, kind="stable")
        self._sorted_ids = ids[self._order]
        self._files: dict[int, pq.ParquetFile] = {}
        self._index_rows: list[dict] | None = None

    def _validate_hint(self) -> str:
        return (
            f"the dataset is damaged: run `physworld validate --data-dir {self.root}` for the whole picture"
        )

    def _no_manifest_message(self, path: Path) -> str:
        if any(self.root.glob("*/scene_*.jsonl")):
            return (
                f"{self.root} holds scenes in guide 001's JSONL layout, not a physworld dataset store; "
                f"import it first: physworld import-jsonl --input-dir {self.root} "
                f"--output-dir {self.root.with_name(self.root.name + '-store')}"
            )
        if not self.root.is_dir():
            return f"{self.root}: no such dataset directory; check the path or run `physworld generate` first"
        return (
            f"{path}: no manifest. Is {self.root} a physworld dataset? If a generate run "
            "was interrupted, rerun the same command to finish it."
        )

    def __len__(self) -> int:
        return self.index.num_rows

    @property
    def dims(self) -> int:
        """2 (pymunk scenes, states [frames, bodies, 6]) or 3 (PyBullet, [frames, bodies, 13])."""
        return int(self.manifest.get("dims", 2))

    @property
    def scene_ids(self) -> list[int]:
        return self.index.column("scene_id").to_pylist()

    def shard_file(self, k: int) -> pq.ParquetFile:
        """Shard k, verified on first use: a regular file of the manifest's size and sha256 (the
        file is hashed once per Dataset; bench/bench_verify.py measures the cost), with the store's
        schema, the manifest's row count and ROWS_PER_GROUP rows per row group (scene lookups rely
        on it)."""
        if k not in self._files:
            entry = self.manifest["shards"][k]
            path = self.root / entry["file"]
            problem = regular_file_problem(path, size=entry["bytes"])
            if problem:
                raise DataDamageError(f"{path} {problem}; {self._validate_hint()}")
            if self.verify and sha256_file(path) != entry["sha256"]:
                raise DataDamageError(
                    f"{path}: sha256 does not match the manifest (corrupted or modified); {self._validate_hint()}"
                )
            try:
                pf = pq.ParquetFile(path)
            except (OSError, pa.ArrowException) as e:
                raise DataDamageError(
                    f"{path}: not a readable Parquet file ({e}); {self._validate_hint()}"
                ) from e
            problem = shard_layout_problem(pf, entry["num_scenes"], self.dims)
            if problem:
                raise DataDamageError(f"{path}: {problem}; {self._validate_hint()}")
            self._files[k] = pf
        return self._files[k]

    def _decode(self, k: int, group: int) -> list[dict]:
        """Row group `group` of shard k as records; DataDamageError if it does not decode (only
        possible where the shard's checksum passed, i.e. it was rewritten and re-hashed)."""
        pf = self.shard_file(k)
        try:
            return table_to_records(pf.read_row_group(group))
        except (OSError, pa.ArrowException, ValueError, KeyError, IndexError, TypeError) as e:
            path = self.root / self.manifest["shards"][k]["file"]
            raise DataDamageError(
                f"{path}: row group {group} does not decode ({type(e).__name__}: {e}); {self._validate_hint()}"
            ) from e

    def _checked(self, k: int, records: list[dict], rows: Iterable[int]) -> list[dict]:
        """`records` read from shard k at `rows`, after checking each is the scene the index names there
        and that its states are finite."""
        if self._index_rows is None:
            self._index_rows = self.index.select(INDEX_COLUMNS).to_pylist()
        first = sum(s["num_scenes"] for s in self.manifest["shards"][:k])
        path = self.root / self.manifest["shards"][k]["file"]
        for rec, row in zip(records, rows, strict=True):
            expected = self._index_rows[first + row]
            for column in INDEX_COLUMNS:
                got = rec["states"].shape[1] if column == "num_bodies" else rec[column]
                if got != expected[column]:
                    raise DataDamageError(
                        f"{path}: row {row} holds scene {rec['scene_id']} with {column} {got!r}, the index "
                        f"says {expected[column]!r}; {self._validate_hint()}"
                    )
            # A model's predictions (evaluate's predictions/ store) may diverge: only data must be finite.
            problem = (
                None
                if isinstance(rec["spec"], dict) and "prediction" in rec["spec"]
                else nonfinite_problem(rec)
            )
            if problem:
                raise DataDamageError(f"{path}: {problem}; {self._validate_hint()}")
        return records

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
                records = self._decode(shard, group)
                start = group * ROWS_PER_GROUP
                groups[shard, group] = self._checked(shard, records, range(start, start + len(records)))
        return [groups[shard, group][offset] for shard, group, offset in where]

    def iter_scenes(
        self, scenario_types: Iterable[str] | None = None, difficulties: Iterable[int] | None = None
    ) -> Iterator[dict]:
        """Scenes in storage order, optionally filtered, reading one row group at a time."""
        types = set(scenario_types) if scenario_types is not None else None
        diffs = set(difficulties) if difficulties is not None else None
        for k in range(len(self.manifest["shards"])):
            pf = self.shard_file(k)
            for g in range(pf.num_row_groups):
                records = self._decode(k, g)
                start = g * ROWS_PER_GROUP
                for rec in self._checked(k, records, range(start, start + len(records))):
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
            problem = regular_file_problem(path, size=entry.get("bytes"))
            if problem:
                problems.append(f"{path} {problem}")
            elif sha256_file(path) != entry["sha256"]:
                problems.append(f"{path}: sha256 does not match the manifest (corrupted or modified)")
        return problems


def present_types(data_dir, requested) -> list[str]:
    """The requested scenario types (names, categories, `seen`, ...) that the dataset at data_dir
    holds, in the library's order; ValueError naming what it holds when it holds none of them."""
    from physworld.worlds.registry import resolve_types

    present = Dataset(data_dir).manifest["scenes_per_type"]
    types = [t for t in resolve_types(requested) if t in present]
    if not types:
        raise ValueError(
            f"{data_dir} holds none of the requested scenario types {list(requested)}; "
            f"it has {', '.join(present)}"
        )
    return types
