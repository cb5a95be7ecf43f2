"""`physworld validate`: can this dataset be trusted?

Works on the columnar store and on guide 001's JSONL layout. Damage is a finding, never a crash:
every check catches what it can go wrong on and reports it with its location (file, scene id,
frame, body). Checks, in order:

  files        manifest readable, of the supported format_version, every field of the right type,
               its manifest_sha256 matching its content, its counts agreeing; index and every shard a
               regular file of the manifest's size (nothing else is read: a directory or a link to
               /dev/zero is a finding, never a hang) and sha256, readable as Parquet with the store's
               schema and row-group layout; no unlisted shard files. In the JSONL layout, every file
               the export marker or generation.json promises present, each in its type's folder and
               named by its scene id
  index        index rows in storage order and each the same scene (id, type, category, difficulty,
               seed, body count) as the shard row it points at; scenes_per_type as the index counts;
               for generated datasets, every row's type, difficulty and seed as the config's plan
  scenes       every row decodes; counts, frame numbers and spec agree; no NaN or infinite values;
               category as the type's; contact events possible (frames, bodies, impulses)
  coverage     every scene id the generation config promises is present, and only once
  duplicates   no two scene ids hold identical content (spec and trajectory)
  determinism  re-simulating from the stored seed (or, for imported scenes, nothing) reproduces
               the stored spec, trajectory and contact events bit for bit; a sample by default, all
               with --resimulate all
  physics      (--check-physics) overlap at spawn, penetration beyond tolerance, bodies leaving a
               world their scenario keeps them in, energy drift where the scenario conserves energy
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from physworld.data.findings import Finding, Report
from physworld.data.store import (
    FIELDS_BY_DIMS,
    INDEX,
    INDEX_COLUMNS,
    INDEX_LIMIT,
    MANIFEST,
    MANIFEST_LIMIT,
    SCHEMA_BY_DIMS,
    SHARD_DIR,
    UNITS_BY_DIMS,
    index_problems,
    manifest_consistency_problems,
    manifest_structure_problems,
    regular_file_problem,
    shard_layout_problem,
    table_to_records,
)
from physworld.fileio import sha256_file
from physworld.worlds.engine import simulate
from physworld.worlds.spec import PENETRATION_TOLERANCE

ENERGY_DRIFT_TOLERANCE = 0.01  # relative, for scenes whose scenario says they conserve energy
PENETRATION_FRAMES = 10  # check penetration every this many frames
JSONL_LIMIT = 1 << 30  # bytes; a scene file larger than this is refused, not read
# m; 3D contacts are solved once shapes touch, so a body landing at 5 m/s first sinks up to one
# 240 Hz step (2 cm) into the floor before it is pushed out (bench/bench_substeps_3d.py)
RUNNING_PENETRATION_3D = 0.03


# ---------------------------------------------------------------- per-scene checks


def _canonical(obj) -> str:
    """canonical_json that also takes what a damaged spec may hold (NaN), so comparing never crashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _content_hash(record: dict) -> str:
    h = hashlib.sha256(_canonical(record["spec"]).encode())
    h.update(np.ascontiguousarray(record["states"]).tobytes())
    return h.hexdigest()


def _field_name(states: np.ndarray, field: int) -> str:
    """The name of state column `field` of a 2D ([.., 6]) or 3D ([.., 13]) trajectory."""
    fields = FIELDS_BY_DIMS[3] if states.shape[-1] == len(FIELDS_BY_DIMS[3]) else FIELDS_BY_DIMS[2]
    return fields[field] if field < len(fields) else f"column {field}"


def check_scene_values(record: dict, where: str, frames_expected: int | None) -> list[Finding]:
    out = []
    sid, st = record["scene_id"], record["scenario_type"]
    states = record["states"]
    if frames_expected is not None and states.shape[0] != frames_expected:
        out.append(
            Finding(
                "scenes", f"{states.shape[0]} frames, the config promises {frames_expected}", where, sid, st
            )
        )
    if not isinstance(record["spec"], dict) or not isinstance(record["spec"].get("bodies", []), list):
        return out + [
            Finding("scenes", "spec is not a scene spec object with a list of bodies", where, sid, st)
        ]
    if len(record["spec"].get("bodies", [])) != states.shape[1]:
        out.append(
            Finding(
                "scenes",
                f"spec lists {len(record['spec'].get('bodies', []))} bodies, trajectory has "
                f"{states.shape[1]}",
                where,
                sid,
                st,
            )
        )
    bad = ~np.isfinite(states)
    if bad.any():
        frame, body, field = (int(v) for v in np.argwhere(bad)[0])
        out.append(
            Finding(
                "scenes",
                f"{int(bad.sum())} non-finite values, first in {_field_name(states, field)}",
                where,
                sid,
                st,
                frame,
                body,
            )
        )
    problem = _events_problem(record["events"], *states.shape[:2])
    if problem:
        out.append(Finding("scenes", f"contact events: {problem}", where, sid, st))
    return out


def _events_problem(events: dict, num_frames: int, num_bodies: int) -> str | None:
    """What makes a scene's contact events impossible for its trajectory, or None: columns of
    different lengths, frames outside [1, frames - 1] or out of order, bodies outside [-1, bodies)
    or a pair not written (a, b) with a <= b, impulses negative or not finite."""
    frame, a, b, impulse = (np.asarray(events[k]) for k in ("frame", "body_a", "body_b", "impulse"))
    if not len(frame) == len(a) == len(b) == len(impulse):
        return f"columns of lengths {len(frame)}, {len(a)}, {len(b)}, {len(impulse)}"
    if len(frame) == 0:
        return None
    checks = [
        ((frame < 1) | (frame >= num_frames), f"frame outside [1, {num_frames - 1}]"),
        (np.concatenate([[False], np.diff(frame) < 0]), "frames out of order"),
        ((a < -1) | (a >= num_bodies) | (b < -1) | (b >= num_bodies), f"body outside [-1, {num_bodies})"),
        (a > b, "pair not ordered body_a <= body_b"),
        (~np.isfinite(impulse) | (impulse < 0), "impulse negative or not finite"),
    ]
    for bad, what in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            return f"{what} (event {i}: frame {frame[i]}, bodies {a[i]}, {b[i]}, impulse {impulse[i]})"
    return None


def check_determinism(record: dict, where: str, param_shift: str = "none") -> list[Finding]:
    """Re-simulate a scene and compare bit for bit; the first differing frame and body located.
    `param_shift`: the dataset's generate --param-shift, applied to the spec rebuilt from the seed."""
    from physworld.worlds.registry import ALL_SCENARIOS, make_spec
    from physworld.worlds.shift import shift_params

    sid, st = record["scene_id"], record["scenario_type"]
    spec = record["spec"]
    if not isinstance(spec, dict):
        return []  # reported by check_scene_values
    if spec.get("imported") or spec.get("prediction"):
        return []  # simulated by another engine, or predicted by a model: nothing to reproduce
    out = []
    if st in ALL_SCENARIOS:
        try:
            fresh_spec = shift_params(
                make_spec(st, record["difficulty"], record["seed"]), param_shift, record["seed"]
            )
        except Exception as e:  # a damaged row can hold anything; report it, keep going
            return [Finding("determinism", f"cannot rebuild the spec from its seed: {e}", where, sid, st)]
        if _canonical(fresh_spec) != _canonical(spec):
            out.append(
                Finding("determinism", "stored spec differs from the one its seed generates", where, sid, st)
            )
    try:
        run = simulate(spec, record["states"].shape[0] - 1)
        states = run["states"]
    except Exception as e:
        return out + [Finding("determinism", f"stored spec does not simulate: {e}", where, sid, st)]
    if states.shape != record["states"].shape:
        return out + [
            Finding(
                "determinism",
                f"re-simulation has shape {states.shape}, stored {record['states'].shape}",
                where,
                sid,
                st,
            )
        ]
    diff = states.view(np.uint32) != record["states"].view(np.uint32)
    if diff.any():
        frame, body, field = (int(v) for v in np.argwhere(diff)[0])
        out.append(
            Finding(
                "determinism",
                f"re-simulation differs first in {_field_name(states, field)}: stored "
                f"{record['states'][frame, body, field]!r}, simulated "
                f"{states[frame, body, field]!r}",
                where,
                sid,
                st,
                frame,
                body,
            )
        )
    else:
        for key in ("frame", "body_a", "body_b", "impulse"):
            stored, fresh = np.asarray(record["events"][key]), np.asarray(run["events"][key])
            if stored.shape != fresh.shape or stored.tobytes() != fresh.astype(stored.dtype).tobytes():
                out.append(
                    Finding(
                        "determinism",
                        f"contact events differ from the re-simulation ({key}: {len(stored)} stored, "
                        f"{len(fresh)} simulated)",
                        where,
                        sid,
                        st,
                    )
                )
                break
    return out


def check_physics(record: dict, where: str) -> list[Finding]:
    from physworld.worlds.checks import escaped_bodies, max_penetration, spawn_problems, total_energy

    sid, st, spec, states = record["scene_id"], record["scenario_type"], record["spec"], record["states"]
    out = []
    three_d = spec.get("world", {}).get("dims", 2) == 3
    tolerance, unit = (RUNNING_PENETRATION_3D, "m") if three_d else (PENETRATION_TOLERANCE, "px")
    try:
        for problem in spawn_problems(spec):
            out.append(Finding("physics", f"at spawn: {problem}", where, sid, st, 0))
        worst, worst_frame = 0.0, 0
        for f in range(0, states.shape[0], PENETRATION_FRAMES):
            depth = max_penetration(spec, states[f])
            if depth > worst:
                worst, worst_frame = depth, f
        if worst > tolerance:
            out.append(
                Finding(
                    "physics",
                    f"penetration {worst:.3g} {unit} exceeds {tolerance} {unit}",
                    where,
                    sid,
                    st,
                    worst_frame,
                )
            )
        if spec.get("expect", {}).get("contained"):
            for frame, body in escaped_bodies(spec, states, margin=0.05 if three_d else 5.0):
                out.append(
                    Finding(
                        "physics", "body left the world its scenario keeps it in", where, sid, st, frame, body
                    )
                )
        if spec.get("expect", {}).get("conserves_energy"):
            e = total_energy(spec, states)
            scale = max(abs(e[0]), 1e-9)
            drift = np.abs(e - e[0]) / scale
            if drift.max() > ENERGY_DRIFT_TOLERANCE:
                out.append(
                    Finding(
                        "physics",
                        f"energy drifts by {100 * drift.max():.2f}% (tolerance "
                        f"{100 * ENERGY_DRIFT_TOLERANCE:g}%)",
                        where,
                        sid,
                        st,
                        int(drift.argmax()),
                    )
                )
    except Exception as e:
        out.append(Finding("physics", f"could not check physics: {e}", where, sid, st))
    return out


def _sample_ids(ids_by_type: dict[str, list[int]], per_type: int) -> set[int]:
    """The first `per_type` ids of each type: deterministic, and spread over types."""
    return {i for ids in ids_by_type.values() for i in sorted(ids)[:per_type]}


# ---------------------------------------------------------------- dataset walks


def _check_scenes(
    report: Report,
    scenes,
    frames_expected,
    resimulate: str,
    sample_per_type: int,
    physics: bool,
    expected_ids: set[int] | None,
    progress: bool,
    total: int | None = None,
    param_shift: str = "none",
) -> None:
    """Shared by both layouts: `scenes` yields (where, record) or (where, Finding); `total` is the
    number of scenes the layout promises, for the progress bar."""
    from tqdm.auto import tqdm

    seen_ids: dict[int, str] = {}
    by_hash: dict[str, int] = {}
    pending = []  # records kept for the determinism sample, chosen after the walk
    ids_by_type: dict[str, list[int]] = defaultdict(list)
    bar = tqdm(total=total, desc="validate", unit="scene", disable=not progress, dynamic_ncols=True)
    for where, item in scenes:
        if isinstance(item, Finding):
            report.add(item)
            continue
        bar.update(1)
        record = item
        sid, st = record["scene_id"], record["scenario_type"]
        nulls = [
            k for k in ("scene_id", "seed", "scenario_type", "category", "difficulty") if record[k] is None
        ]
        if nulls:
            report.add(Finding("scenes", f"null {', '.join(nulls)}", where, sid, st))
            continue
        report.num_scenes += 1
        report.per_type[st]["scenes"] += 1
        if sid in seen_ids:
            report.add(Finding("coverage", f"scene id also stored in {seen_ids[sid]}", where, sid, st))
        seen_ids[sid] = where
        digest = _content_hash(record)
        if digest in by_hash:
            report.add(Finding("duplicates", f"identical content to scene {by_hash[digest]}", where, sid, st))
        else:
            by_hash[digest] = sid
        for f in check_scene_values(record, where, frames_expected):
            report.add(f)
        if physics:
            for f in check_physics(record, where):
                report.add(f)
        ids_by_type[st].append(sid)
        if resimulate == "all":
            for f in check_determinism(record, where, param_shift):
                report.add(f)
        elif resimulate == "sample" and len(ids_by_type[st]) <= sample_per_type:
            pending.append((where, record))
    bar.close()
    for where, record in pending:
        for f in check_determinism(record, where, param_shift):
            report.add(f)
    if expected_ids is not None:
        missing = sorted(expected_ids - set(seen_ids))
        extra = sorted(set(seen_ids) - expected_ids)
        if missing:
            report.add(Finding("coverage", f"{len(missing)} scene(s) missing: ids {_ranges(missing)}"))
        if extra:
            report.add(
                Finding(
                    "coverage", f"{len(extra)} scene(s) the config does not produce: ids {_ranges(extra)}"
                )
            )


def _ranges(ids: list[int], limit: int = 20) -> str:
    shown = ", ".join(map(str, ids[:limit]))
    return shown + (f" ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def _generation_config(config, report: Report, file: str):
    """The GenerateConfig a generation config describes, or None (with a finding when it is a
    generation config that does not parse); imported datasets have none."""
    from physworld.data.generate import GenerateConfig

    fields = [f.name for f in dataclasses.fields(GenerateConfig)]
    if not isinstance(config, dict) or not any(k in config for k in fields):
        return None  # imported scenes, a model's predictions: no plan to check against
    try:
        optional = ("param_shift", "split")  # written only when not the default
        values = {k: config[k] for k in fields if k not in optional}
        values.update({k: config[k] for k in optional if k in config})
        bad = [
            k
            for k in ("num_scenes_per_type", "seed", "frames_per_scene", "scenes_per_shard")
            if not _is_int(values[k])
        ]
        if bad:
            raise ValueError(f"{', '.join(bad)} must be integers, got {[values[k] for k in bad]}")
        rng = values["difficulty_range"]
        if not (isinstance(rng, list) and len(rng) == 2 and all(_is_int(v) for v in rng)):
            raise ValueError(f"difficulty_range must be two integers, got {rng!r}")
        if not (
            isinstance(values["scenario_types"], list)
            and all(isinstance(t, str) for t in values["scenario_types"])
        ):
            raise ValueError(f"scenario_types must be a list of names, got {values['scenario_types']!r}")
        values["scenario_types"] = tuple(values["scenario_types"])
        values["difficulty_range"] = tuple(rng)
        parsed = GenerateConfig(**values)
    except KeyError as e:
        report.add(Finding("files", f"config lacks {e.args[0]!r}, which generation configs hold", file))
        return None
    except (ValueError, TypeError) as e:
        report.add(Finding("files", f"config is not a valid generation config: {e}", file))
        return None
    if list(parsed.scenario_types) != config["scenario_types"]:
        report.add(
            Finding(
                "files", f"config scenario_types {config['scenario_types']} are not resolved type names", file
            )
        )
        return None
    # The rest of what generate writes: nothing missing, added or changed (the engine aside, which
    # names whatever version simulated the data).
    written = dict(parsed.to_dict(), format=config.get("format"), engine=config.get("engine"))
    if config.get("format") not in ("parquet", "jsonl") or not isinstance(config.get("engine"), str):
        report.add(Finding("files", "config: format or engine is not what generate writes", file))
    differ = sorted(k for k in set(written) | set(config) if written.get(k) != config.get(k))
    if differ:
        detail = "; ".join(f"{k}: {config.get(k)!r}, generate writes {written.get(k)!r}" for k in differ)
        report.add(Finding("files", f"config differs from what generate writes ({detail})", file))
    return parsed


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _plan_findings(report: Report, gen, manifest: dict, index_rows: list[dict] | None) -> bool:
    """A generated dataset is fully decided by its config: check the manifest's counts, the shard
    layout and every index row (type, difficulty, seed at its scene id) against that plan. False when
    the config does not even produce the manifest's number of scenes (then nothing else is compared)."""
    from physworld.data.generate import scene_plan, shard_scene_ids

    if manifest["num_scenes"] != gen.num_scenes:
        report.add(
            Finding(
                "files",
                f"num_scenes {manifest['num_scenes']}, the config produces {gen.num_scenes}",
                MANIFEST,
            )
        )
        return False  # the plan is not this dataset's (and may be any size): nothing to pair up
    planned = {t: gen.num_scenes_per_type for t in gen.scenario_types}
    if manifest["scenes_per_type"] != planned:
        report.add(
            Finding(
                "files",
                f"scenes_per_type {manifest['scenes_per_type']} is not what the config produces {planned}",
                MANIFEST,
            )
        )
    sizes = [len(shard_scene_ids(gen, k)) for k in range(gen.num_shards)]
    listed = [s["num_scenes"] for s in manifest["shards"]]
    if listed != sizes:
        report.add(
            Finding("files", f"shards hold {listed[:8]} scenes, the config's layout is {sizes[:8]}", MANIFEST)
        )
    if index_rows is None:
        return True
    wrong = 0
    for i, row in enumerate(index_rows):
        if row["scene_id"] != i:
            want = None
        else:
            want = scene_plan(gen, i)
        got = (row["scenario_type"], row["difficulty"], row["seed"])
        if want is None or got != want:
            wrong += 1
            if wrong <= 5:
                expect = f"scene {i}" if want is None else f"type, difficulty, seed {want}"
                report.add(
                    Finding(
                        "index",
                        f"row {i} holds scene {row['scene_id']} with type, difficulty, seed {got}; the config "
                        f"puts {expect} there",
                        INDEX,
                        row["scene_id"],
                        row["scenario_type"],
                    )
                )
    if wrong > 5:
        report.add(Finding("index", f"{wrong - 5} more rows disagree with the config's plan", INDEX))
    return True


def _read_json(root: Path, name: str, report: Report, limit: int = MANIFEST_LIMIT):
    """A small JSON file, read only if it is a regular file within `limit`; None with a finding if not."""
    problem = regular_file_problem(root / name, limit=limit)
    if problem:
        report.add(Finding("files", f"{name} {problem}", name))
        return None
    try:
        return json.loads((root / name).read_bytes())
    except (ValueError, OSError) as e:
        report.add(
            Finding("files", f"{name} unreadable: {e}; regenerate or rerun the generate command", name)
        )
        return None


def _read_index(root: Path, manifest: dict, report: Report) -> pa.Table | None:
    entry = manifest["index"]
    path = root / INDEX
    problem = regular_file_problem(path, size=entry.get("bytes"), limit=INDEX_LIMIT)
    if problem:
        report.add(Finding("files", f"index {problem}", INDEX))
        return None
    if sha256_file(path) != entry["sha256"]:
        report.add(Finding("files", "sha256 does not match the manifest", INDEX))
    try:
        index = pq.read_table(path)
        problems = index_problems(index, manifest)
        ids = index.column("scene_id").to_pylist() if "scene_id" in index.column_names else []
        index.to_pylist()  # everything later reads it so: a value that does not decode is found here
    except Exception as e:  # a damaged file can fail anywhere in the reader; report it
        report.add(Finding("files", f"index unreadable: {type(e).__name__}: {e}", INDEX))
        return None
    for row, message in problems:
        report.add(Finding("index", message, INDEX, ids[row] if row is not None and row < len(ids) else None))
    if problems and problems[0][0] is None and problems[0][1].startswith(("columns", "column types")):
        return None
    return index


def _shard_rows_findings(name: str, table: pa.Table, index_rows: dict, k: int) -> list[Finding]:
    """Every row of shard k against the index row that points at it, and its category against its type."""
    from physworld.worlds.registry import CATEGORY_OF

    out = []
    rows = table.select(INDEX_COLUMNS).to_pylist()
    for r, got in enumerate(rows):
        want = index_rows.get((k, r))
        sid, st = got["scene_id"], got["scenario_type"]
        if want is None:
            out.append(Finding("index", f"row {r} has no index row pointing at it", name, sid, st))
            continue
        diff = [c for c in INDEX_COLUMNS if got[c] != want[c]]
        if diff:
            detail = "; ".join(f"{c}: shard {got[c]!r}, index {want[c]!r}" for c in diff)
            out.append(Finding("index", f"row {r} disagrees with index.parquet ({detail})", name, sid, st))
        if st in CATEGORY_OF and got["category"] != CATEGORY_OF[st]:
            out.append(
                Finding(
                    "scenes",
                    f"category {got['category']!r}, type {st} belongs to {CATEGORY_OF[st]!r}",
                    name,
                    sid,
                    st,
                )
            )
    return out


def _store_scenes(root: Path, manifest: dict, index: pa.Table | None):
    index_rows = {}
    if index is not None:
        for row in index.to_pylist():
            index_rows[row["shard"], row["row"]] = row
    listed = set()
    for k, entry in enumerate(manifest["shards"]):
        name = entry["file"]
        listed.add(name)
        path = root / name
        problem = regular_file_problem(path)
        if problem:
            # Never read: a directory, a device such as /dev/zero, a FIFO.
            yield name, Finding("files", f"shard {problem}; not read", name)
            continue
        size = path.stat().st_size
        if size != entry["bytes"]:
            yield name, Finding("files", f"is {size} bytes, the manifest says {entry['bytes']}", name)
            if size > 2 * entry["bytes"] + (64 << 20):
                continue  # read what is there to locate the damage, but only within a bound
        if sha256_file(path) != entry["sha256"]:
            yield (
                name,
                Finding(
                    "files", "sha256 does not match the manifest (corrupted, truncated or modified)", name
                ),
            )
        try:
            pf = pq.ParquetFile(path)
            dims = manifest.get("dims", 2)
            problem = shard_layout_problem(pf, entry["num_scenes"], dims)
            if problem:
                yield name, Finding("files", problem, name)
                if not pf.schema_arrow.equals(SCHEMA_BY_DIMS[dims]):
                    continue
            if index is not None:
                for f in _shard_rows_findings(name, pf.read(columns=INDEX_COLUMNS), index_rows, k):
                    yield name, f
            groups = range(pf.num_row_groups)
        except Exception as e:  # a damaged file can fail anywhere in the reader; report it
            yield name, Finding("files", f"not a readable Parquet file: {e}", name)
            continue
        for g in groups:
            try:
                records = table_to_records(pf.read_row_group(g))
            except Exception as e:
                yield name, Finding("scenes", f"row group {g} does not decode: {e}", name)
                continue
            yield from ((name, r) for r in records)
    shard_dir = root / SHARD_DIR
    if shard_dir.is_dir():
        for path in sorted(shard_dir.glob("*.parquet")):
            name = f"{SHARD_DIR}/{path.name}"
            if name not in listed:
                yield (
                    name,
                    Finding("files", "shard file not listed in the manifest", name, severity="warning"),
                )


def validate_store(root: Path, report: Report, **kw) -> None:
    manifest = _read_json(root, MANIFEST, report)
    if manifest is None:
        return
    report.checks_run.append("files")
    report.checks_run.append("index")
    problems = manifest_structure_problems(manifest)
    for problem in problems:
        report.add(Finding("files", problem, MANIFEST))
    if problems:
        return  # nothing else in it can be relied on to find the rest
    for problem in manifest_consistency_problems(manifest):
        report.add(Finding("files", problem, MANIFEST))
    units = UNITS_BY_DIMS[manifest.get("dims", 2)]
    if manifest.get("units") != units or not isinstance(manifest.get("physworld_version"), str):
        report.add(
            Finding(
                "files", f"units or physworld_version are not what physworld writes (units {units})", MANIFEST
            )
        )
    if "manifest_sha256" not in manifest:
        report.add(
            Finding(
                "files",
                "no manifest_sha256 (written before physworld recorded one): edits of the manifest are "
                "found only where they disagree with the index, shards or config",
                MANIFEST,
                severity="warning",
            )
        )
    index = _read_index(root, manifest, report)
    index_rows = None
    if index is not None:
        index_rows = index.sort_by([("shard", "ascending"), ("row", "ascending")]).to_pylist()
    gen = _generation_config(manifest["config"], report, MANIFEST)
    expected = None
    frames = None
    if gen is not None and manifest.get("engine") != manifest["config"].get("engine"):
        report.add(Finding("files", "engine differs from the engine its config names", MANIFEST))
    if gen is not None and _plan_findings(report, gen, manifest, index_rows):
        expected = set(range(gen.num_scenes))
        frames = gen.frames_per_scene + 1
    _check_scenes(
        report,
        _store_scenes(root, manifest, index),
        frames,
        expected_ids=expected,
        total=manifest["num_scenes"],
        param_shift=gen.param_shift if gen is not None else "none",
        **kw,
    )


def _expected_jsonl_files(root: Path, report: Report) -> dict[str, tuple[int, str]] | None:
    """{relative path: (scene id, type)} of every file the tree should hold, from the marker its
    writer left (export-jsonl's EXPORT_MARKER, or generate's generation.json); None without one."""
    from physworld.data.generate import scene_plan
    from physworld.data.jsonl import EXPORT_MARKER

    if (root / EXPORT_MARKER).exists():
        marker = _read_json(root, EXPORT_MARKER, report)
        per_type = marker.get("scene_ids") if isinstance(marker, dict) else None
        if not isinstance(per_type, dict) or not all(
            isinstance(ids, list) and all(_is_int(i) and i >= 0 for i in ids) for ids in per_type.values()
        ):
            if marker is not None:
                report.add(Finding("files", "scene_ids: expected {type: [ids]}", EXPORT_MARKER))
            return None
        return {f"{t}/scene_{i:08d}.jsonl": (i, t) for t, ids in per_type.items() for i in ids}
    if (root / "generation.json").exists():
        config = _read_json(root, "generation.json", report)
        gen = _generation_config(config, report, "generation.json")
        if gen is None:
            return None
        present = sum(1 for _ in root.glob("*/scene_*.jsonl"))
        if gen.num_scenes > present + 100_000:  # never enumerate an absurd plan
            report.add(
                Finding(
                    "coverage",
                    f"generation.json promises {gen.num_scenes} scenes; {present} files are here",
                    "generation.json",
                )
            )
            return None
        out = {}
        for i in range(gen.num_scenes):
            t = scene_plan(gen, i)[0]
            out[f"{t}/scene_{i:08d}.jsonl"] = (i, t)
        return out
    return None


def _jsonl_scenes(root: Path, files: list[Path], expected: dict | None):
    from physworld.data.jsonl import JsonlError, read_scene_lines

    if not files:
        yield str(root), Finding("files", "no */scene_*.jsonl files")
    for path in files:
        name = str(path.relative_to(root))
        folder = path.parent.name
        problem = regular_file_problem(path, limit=JSONL_LIMIT)
        if problem:
            yield name, Finding("files", problem, name, scenario_type=folder)
            continue
        if expected is not None and name not in expected:
            yield (
                name,
                Finding(
                    "files", "a scene file its export or generation did not write", name, scenario_type=folder
                ),
            )
        try:
            with open(path, encoding="utf-8", newline="") as fh:
                record = read_scene_lines(fh, source=str(path))
        except (JsonlError, OSError, UnicodeDecodeError) as e:
            yield name, Finding("scenes", str(e), name, scenario_type=folder)
            continue
        if record["scenario_type"] != folder:
            yield (
                name,
                Finding(
                    "files",
                    f"holds a scene of type {record['scenario_type']!r} in the folder of {folder!r} (moved?)",
                    name,
                    record["scene_id"],
                    record["scenario_type"],
                ),
            )
        if path.name != f"scene_{record['scene_id']:08d}.jsonl":
            yield (
                name,
                Finding(
                    "files",
                    f"holds scene {record['scene_id']}, its name says another (renamed?)",
                    name,
                    record["scene_id"],
                    record["scenario_type"],
                ),
            )
        yield name, record
    if expected is not None:
        present = {str(p.relative_to(root)) for p in files}
        for name, (sid, t) in sorted(expected.items()):
            if name not in present:
                yield name, Finding("files", "scene file missing (deleted or moved?)", name, sid, t)


def validate_jsonl(root: Path, report: Report, **kw) -> None:
    report.checks_run.append("files")
    expected_files = _expected_jsonl_files(root, report)
    gen = None
    if (root / "generation.json").exists():
        quiet = Report("", "")  # its findings were reported by _expected_jsonl_files
        gen = _generation_config(_read_json(root, "generation.json", quiet), quiet, "generation.json")
    frames = gen.frames_per_scene + 1 if gen is not None else None
    expected = {sid for sid, _ in expected_files.values()} if expected_files is not None else None
    files = sorted(root.glob("*/scene_*.jsonl"))
    _check_scenes(
        report,
        _jsonl_scenes(root, files, expected_files),
        frames,
        expected_ids=expected,
        total=len(files),
        param_shift=gen.param_shift if gen is not None else "none",
        **kw,
    )


def validate(
    data_dir,
    check_physics: bool = False,
    resimulate: str = "sample",
    sample_per_type: int = 2,
    progress: bool = False,
) -> Report:
    """Validate a dataset directory (store or JSONL layout); returns a Report, never raises on damage.
    FileNotFoundError / ValueError mean a user mistake (no dataset there, a bad option); anything else
    escaping is a bug in validate itself (the CLI exits 3 for it)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    if resimulate not in ("none", "sample", "all"):
        raise ValueError(f"--resimulate must be none, sample or all, got {resimulate!r}")
    if not _is_int(sample_per_type) or sample_per_type < 0:
        raise ValueError(f"--sample-per-type must be 0 or more, got {sample_per_type!r}")
    layout = "store" if (root / MANIFEST).exists() or (root / SHARD_DIR).exists() else "jsonl"
    if layout == "jsonl" and not any(root.glob("*/scene_*.jsonl")):
        raise FileNotFoundError(
            f"{root / MANIFEST}: no manifest, and no */scene_*.jsonl files either; point "
            "--data-dir at a physworld dataset or a guide-layout JSONL tree"
        )
    report = Report(str(root), layout)
    kw = dict(
        resimulate=resimulate, sample_per_type=sample_per_type, physics=check_physics, progress=progress
    )
    report.checks_run += ["scenes", "coverage", "duplicates"]
    if resimulate != "none":
        report.checks_run.append(f"determinism ({resimulate})")
    if check_physics:
        report.checks_run.append("physics")
    if layout == "store":
        validate_store(root, report, **kw)
        from physworld.data.validate_clips import validate_clips  # clips folders beside the store

        validate_clips(root, report, progress=progress)
    else:
        validate_jsonl(root, report, **kw)
    return report


def format_report(report: Report, verbose: bool = False) -> str:
    lines = [
        f"{report.data_dir} ({report.layout} layout): {report.num_scenes} scenes; checks: "
        f"{', '.join(report.checks_run)}"
    ]
    lines.append(f"{'scenario type':22s} {'scenes':>7s} {'errors':>7s} {'warnings':>9s}")
    for st in sorted(report.per_type, key=str):
        c = report.per_type[st]
        if verbose or c["errors"] or c["warnings"] or st != "(dataset)":
            lines.append(f"{st:22s} {c['scenes']:7d} {c['errors']:7d} {c['warnings']:9d}")
    for f in report.findings:
        lines.append(f"{f.severity.upper():7s} [{f.check}] {f.where()}: {f.message}")
    errors = sum(f.severity == "error" for f in report.findings)
    lines.append(
        ("OK" if report.ok else "FAILED") + f": {errors} error(s), {len(report.findings) - errors} warning(s)"
    )
    return "\n".join(lines)
