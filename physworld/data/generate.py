"""Parallel, deterministic, resumable dataset generation.

The dataset is a fixed list of scenes decided by the config alone: for i in range(scenes per type),
for each type in order, scene_id = its position in that list, difficulty cycles through the range,
and the scene's seed is derived from (base seed, type, i). Consecutive scenes form shards; a worker
simulates one shard and writes it atomically. So the bytes of every file depend only on the
config, never on --num-workers or on where a previous run was killed, and a rerun skips the shards
that exist and writes the rest.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from physworld.data.splits import check_split_name
from physworld.data.store import (
    FORMAT_VERSION,
    MANIFEST,
    SHARD_DIR,
    StoreError,
    finalize,
    shard_bytes,
    shard_name,
)
from physworld.fileio import atomic_write_bytes, atomic_write_json, remove_stale_temporaries
from physworld.worlds.bullet import ENGINE_3D
from physworld.worlds.engine import ENGINE, simulate
from physworld.worlds.registry import CATEGORY_OF, DIFFICULTIES, dims_of, make_spec, resolve_types
from physworld.worlds.shift import check_shift, shift_params

CONFIG = "generation.json"  # written first: identifies the dataset a directory is being filled with


@dataclass(frozen=True)
class GenerateConfig:
    scenario_types: tuple[str, ...]
    num_scenes_per_type: int = 100
    seed: int = 0
    frames_per_scene: int = 200
    difficulty_range: tuple[int, int] = (1, 5)
    scenes_per_shard: int = 64
    param_shift: str = "none"  # worlds/shift.py: none, heavier, slipperier, bouncier, ood
    split: str = "labelled"  # data/splits.py: "unlabelled" marks scenes whose labels a fine-tune may not read

    def __post_init__(self):
        object.__setattr__(self, "scenario_types", tuple(resolve_types(self.scenario_types)))
        check_shift(self.param_shift)
        check_split_name(self.split, "--split")
        if self.param_shift != "none" and self.dims != 2:
            raise ValueError(
                "--param-shift applies to 2D scenario types only (3D bodies use named materials)"
            )
        by_dims = {d: [t for t in self.scenario_types if dims_of(t) == d] for d in (2, 3)}
        if by_dims[2] and by_dims[3]:
            raise ValueError(
                f"--scenario-types mixes 2D types ({', '.join(by_dims[2][:3])}...) and 3D types "
                f"({', '.join(by_dims[3][:3])}...); a dataset holds one dimensionality, so generate "
                "them into two --output-dir (3D: --scenario-types 3d, seen3d, heldout3d or 3D names)"
            )
        lo, hi = self.difficulty_range
        if not (DIFFICULTIES[0] <= lo <= hi <= DIFFICULTIES[-1]):
            raise ValueError(
                f"--difficulty-range {lo} {hi}: need {DIFFICULTIES[0]} <= min <= max <= {DIFFICULTIES[-1]}"
            )
        if self.num_scenes_per_type < 1:
            raise ValueError(f"--num-scenes-per-type must be at least 1, got {self.num_scenes_per_type}")
        if self.frames_per_scene < 1:
            raise ValueError(f"--frames-per-scene must be at least 1, got {self.frames_per_scene}")
        if self.scenes_per_shard < 1:
            raise ValueError(f"--scenes-per-shard must be at least 1, got {self.scenes_per_shard}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"--seed must be in [0, 2**63), got {self.seed}")

    @property
    def dims(self) -> int:
        return dims_of(self.scenario_types[0]) if self.scenario_types else 2

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["scenario_types"] = list(self.scenario_types)
        d["difficulty_range"] = list(self.difficulty_range)
        d["format_version"] = FORMAT_VERSION
        d["engine"] = ENGINE
        if self.dims == 3:  # 2D configs stay exactly as before, so existing runs still resume
            d["engine"] = ENGINE_3D
            d["dims"] = 3
        for key, default in (("param_shift", "none"), ("split", "labelled")):  # the same for these two
            if d[key] == default:
                del d[key]
        return d

    @property
    def num_scenes(self) -> int:
        return self.num_scenes_per_type * len(self.scenario_types)

    @property
    def num_shards(self) -> int:
        return -(-self.num_scenes // self.scenes_per_shard)


def scene_seed(base_seed: int, scenario_type: str, i: int) -> int:
    """A 63-bit seed for the i-th scene of a type. Distinct base seeds give unrelated scenes, so a
    train and a validation set generated with different --seed never share a scene."""
    state = np.random.SeedSequence([base_seed, zlib.crc32(scenario_type.encode()), i]).generate_state(
        2, np.uint32
    )
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def scene_plan(config: GenerateConfig, scene_id: int) -> tuple[str, int, int]:
    """(scenario_type, difficulty, seed) of a scene id."""
    n_types = len(config.scenario_types)
    i, t = divmod(scene_id, n_types)
    scenario_type = config.scenario_types[t]
    lo, hi = config.difficulty_range
    difficulty = lo + i % (hi - lo + 1)
    return scenario_type, difficulty, scene_seed(config.seed, scenario_type, i)


def make_record(
    scene_id: int, scenario_type: str, difficulty: int, seed: int, frames: int, param_shift: str = "none"
) -> dict:
    spec = shift_params(make_spec(scenario_type, difficulty, seed), param_shift, seed)
    run = simulate(spec, frames)
    return {
        "scene_id": scene_id,
        "seed": seed,
        "scenario_type": scenario_type,
        "category": CATEGORY_OF[scenario_type],
        "difficulty": difficulty,
        "spec": spec,
        "states": run["states"],
        "events": run["events"],
    }


def shard_scene_ids(config: GenerateConfig, k: int) -> range:
    first = k * config.scenes_per_shard
    return range(first, min(first + config.scenes_per_shard, config.num_scenes))


def jsonl_path(root: Path, scenario_type: str, scene_id: int) -> Path:
    return root / scenario_type / f"scene_{scene_id:08d}.jsonl"


def _shard_done(config: GenerateConfig, k: int, root: Path, fmt: str) -> bool:
    if fmt == "parquet":
        return (root / shard_name(k)).exists()
    return all(jsonl_path(root, scene_plan(config, i)[0], i).exists() for i in shard_scene_ids(config, k))


def shard_payload(config: GenerateConfig, k: int) -> bytes:
    """The bytes of Parquet shard k: a function of the config and k alone, wherever it runs."""
    ids = shard_scene_ids(config, k)
    return shard_bytes(
        [make_record(i, *scene_plan(config, i), config.frames_per_scene, config.param_shift) for i in ids]
    )


def build_shard(config: GenerateConfig, k: int, root: Path, fmt: str = "parquet") -> int:
    """Simulate shard k and write it atomically; returns its number of scenes.

    In the JSONL layout every scene is its own file, written atomically, so a resumed shard
    simulates only the scenes whose files are missing."""
    ids = shard_scene_ids(config, k)
    if fmt == "parquet":
        atomic_write_bytes(root / shard_name(k), shard_payload(config, k))
        return len(ids)
    from physworld.data.jsonl import write_scene_file

    for i in ids:
        scenario_type, difficulty, seed = scene_plan(config, i)
        if not jsonl_path(root, scenario_type, i).exists():
            written = write_scene_file(
                make_record(i, scenario_type, difficulty, seed, config.frames_per_scene, config.param_shift),
                root,
            )
            assert written == jsonl_path(root, scenario_type, i), written
    return len(ids)


def _worker(args) -> tuple[int, int]:
    config, k, root, fmt = args
    return k, build_shard(config, k, root, fmt)


def prepare_output_dir(root: Path, config: dict) -> None:
    """Make `root` ready for `config`: new, or holding an unfinished or finished run of the same
    config. Anything else is refused so no other dataset is overwritten."""
    root.mkdir(parents=True, exist_ok=True)
    existing = root / CONFIG
    if existing.exists():
        try:
            old = json.loads(existing.read_text())
        except json.JSONDecodeError as e:
            raise StoreError(
                f"{existing}: unreadable ({e}); delete the directory or choose another --output-dir"
            ) from e
        if old != config:
            diff = [k for k in sorted(set(old) | set(config)) if old.get(k) != config.get(k)]
            detail = "; ".join(f"{k}: existing {old.get(k)!r}, requested {config.get(k)!r}" for k in diff)
            raise StoreError(
                f"{root} holds a different dataset ({detail}). Rerun with the same arguments to "
                "resume it, or choose another --output-dir."
            )
        return
    if any(not p.name.startswith(".") for p in root.iterdir()):
        raise StoreError(
            f"{root} is not empty and holds no physworld generation run; choose an empty or new --output-dir"
        )
    atomic_write_json(existing, config)


def generate(
    config: GenerateConfig,
    output_dir,
    num_workers: int = 1,
    progress: bool = True,
    fmt: str = "parquet",
    ray_address: str | None = None,
    ray_nodes: dict | None = None,
) -> dict:
    """Generate (or finish generating) a dataset; returns its manifest (the config, for JSONL).

    fmt "parquet" writes the columnar store; "jsonl" writes guide 001's layout,
    <output_dir>/<type>/scene_<id>.jsonl, a header line then one line per frame.
    ray_address ("auto", "local" or HOST:PORT) runs the shards as Ray tasks (physworld/data/
    ray_shards.py) with the same bytes; `ray_nodes`, if given, receives tasks per node id.
    """
    if fmt not in ("parquet", "jsonl"):
        raise ValueError(f"format must be parquet or jsonl, got {fmt!r}")
    if ray_address and fmt != "parquet":
        raise ValueError("--ray writes the Parquet store only; drop --format jsonl (export-jsonl converts)")
    if fmt == "jsonl" and config.dims == 3:
        raise ValueError(
            "--format jsonl holds 2D scenes only (guide 001's layout); use --format parquet for 3D"
        )
    root = Path(output_dir)
    config_dict = dict(config.to_dict(), format=fmt)
    prepare_output_dir(root, config_dict)
    if fmt == "parquet":
        (root / SHARD_DIR).mkdir(exist_ok=True)
    for pattern in (".*.tmp*", "*/.*.tmp*"):  # the manifest's and index's, then the shards'
        remove_stale_temporaries(root, pattern)

    todo = [k for k in range(config.num_shards) if not _shard_done(config, k, root, fmt)]
    done_scenes = config.num_scenes - sum(
        min(config.scenes_per_shard, config.num_scenes - k * config.scenes_per_shard) for k in todo
    )
    bar = tqdm(
        total=config.num_scenes,
        initial=done_scenes,
        unit="scene",
        desc="generate",
        disable=not progress,
        smoothing=0.1,
        dynamic_ncols=True,
    )
    try:
        if ray_address and todo:
            from physworld.data.ray_shards import connect, run_shards

            ray = connect(ray_address, num_cpus=num_workers)

            def write(index: int, data: bytes) -> None:
                atomic_write_bytes(root / shard_name(todo[index]), data)
                bar.update(len(shard_scene_ids(config, todo[index])))

            nodes = run_shards(ray, shard_payload, len(todo), lambda i: (config, todo[i]), write)
            if ray_nodes is not None:
                ray_nodes.update(nodes)
        elif num_workers <= 1 or len(todo) <= 1:
            for k in todo:
                bar.update(build_shard(config, k, root, fmt))
        else:
            # fork keeps start-up cheap; workers share nothing but their arguments.
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
            with ctx.Pool(min(num_workers, len(todo))) as pool:
                for _, n in pool.imap_unordered(_worker, [(config, k, root, fmt) for k in todo]):
                    bar.update(n)
    finally:
        bar.close()
    if fmt == "jsonl":
        return config_dict
    shard_files = [shard_name(k) for k in range(config.num_shards)]
    manifest_path = root / MANIFEST
    if manifest_path.exists() and not todo:
        return json.loads(manifest_path.read_text())
    return finalize(root, config_dict, shard_files)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
