"""`physworld validate`: can this dataset be trusted?

Works on the columnar store and on guide 001's JSONL layout. Damage is a finding, never a crash:
every check catches what it can go wrong on and reports it with its location (file, scene id,
frame, body). Checks, in order:

  files        manifest and index readable; every shard present, its sha256 as the manifest says,
               readable as Parquet with the store's schema; no unlisted shard files
  scenes       every row decodes; counts, frame numbers and spec agree; no NaN or infinite values
  coverage     every scene id the generation config promises is present, and only once
  duplicates   no two scene ids hold identical content (spec and trajectory)
  determinism  re-simulating from the stored seed (or, for imported scenes, nothing) reproduces
               the stored spec and trajectory bit for bit; a sample by default, all with --resimulate all
  physics      (--check-physics) overlap at spawn, penetration beyond tolerance, bodies leaving a
               world their scenario keeps them in, energy drift where the scenario conserves energy
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from physworld.data.store import (
    FIELDS_BY_DIMS,
    INDEX,
    MANIFEST,
    SCHEMA_BY_DIMS,
    SHARD_DIR,
    canonical_json,
    table_to_records,
)
from physworld.fileio import sha256_file
from physworld.worlds.engine import simulate
from physworld.worlds.spec import PENETRATION_TOLERANCE

ENERGY_DRIFT_TOLERANCE = 0.01  # relative, for scenes whose scenario says they conserve energy
PENETRATION_FRAMES = 10  # check penetration every this many frames
# m; 3D contacts are solved once shapes touch, so a body landing at 5 m/s first sinks up to one
# 240 Hz step (2 cm) into the floor before it is pushed out (bench/bench_substeps_3d.py)
RUNNING_PENETRATION_3D = 0.03


@dataclass
class Finding:
    check: str
    message: str
    file: str | None = None
    scene_id: int | None = None
    scenario_type: str | None = None
    frame: int | None = None
    body: int | None = None
    severity: str = "error"

    def where(self) -> str:
        parts = [self.file]
        if self.scene_id is not None:
            parts.append(f"scene {self.scene_id}")
        if self.frame is not None:
            parts.append(f"frame {self.frame}")
        if self.body is not None:
            parts.append(f"body {self.body}")
        return ", ".join(p for p in parts if p)


@dataclass
class Report:
    data_dir: str
    layout: str
    num_scenes: int = 0
    findings: list = None
    per_type: dict = None
    checks_run: list = None

    def __post_init__(self):
        self.findings = self.findings or []
        self.per_type = self.per_type or defaultdict(lambda: {"scenes": 0, "errors": 0, "warnings": 0})
        self.checks_run = self.checks_run or []

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)
        key = finding.scenario_type or "(dataset)"
        self.per_type[key]["errors" if finding.severity == "error" else "warnings"] += 1

    def to_json(self) -> dict:
        return {
            "data_dir": self.data_dir,
            "layout": self.layout,
            "ok": self.ok,
            "num_scenes": self.num_scenes,
            "checks": self.checks_run,
            "per_type": dict(self.per_type),
            "findings": [asdict(f) for f in self.findings],
        }


# ---------------------------------------------------------------- per-scene checks


def _content_hash(record: dict) -> str:
    h = hashlib.sha256(canonical_json(record["spec"]).encode())
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
    return out


def check_determinism(record: dict, where: str) -> list[Finding]:
    """Re-simulate a scene and compare bit for bit; the first differing frame and body located."""
    from physworld.worlds.registry import ALL_SCENARIOS, make_spec

    sid, st = record["scene_id"], record["scenario_type"]
    spec = record["spec"]
    if spec.get("imported") or spec.get("prediction"):
        return []  # simulated by another engine, or predicted by a model: nothing to reproduce
    out = []
    if st in ALL_SCENARIOS:
        try:
            fresh_spec = make_spec(st, record["difficulty"], record["seed"])
        except Exception as e:  # a damaged row can hold anything; report it, keep going
            return [Finding("determinism", f"cannot rebuild the spec from its seed: {e}", where, sid, st)]
        if canonical_json(fresh_spec) != canonical_json(spec):
            out.append(
                Finding("determinism", "stored spec differs from the one its seed generates", where, sid, st)
            )
    try:
        states = simulate(spec, record["states"].shape[0] - 1)["states"]
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
) -> None:
    """Shared by both layouts: `scenes` yields (where, record) or (where, Finding)."""
    from tqdm.auto import tqdm

    seen_ids: dict[int, str] = {}
    by_hash: dict[str, int] = {}
    pending = []  # records kept for the determinism sample, chosen after the walk
    ids_by_type: dict[str, list[int]] = defaultdict(list)
    for where, item in tqdm(scenes, desc="validate", unit="scene", disable=not progress):
        if isinstance(item, Finding):
            report.add(item)
            continue
        record = item
        sid, st = record["scene_id"], record["scenario_type"]
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
            for f in check_determinism(record, where):
                report.add(f)
        elif resimulate == "sample" and len(ids_by_type[st]) <= sample_per_type:
            pending.append((where, record))
    for where, record in pending:
        for f in check_determinism(record, where):
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


def _store_scenes(root: Path, manifest: dict):
    listed = set()
    for entry in manifest.get("shards", []):
        name = entry.get("file", "?")
        listed.add(name)
        path = root / name
        if not path.exists():
            yield name, Finding("files", "shard listed in the manifest is missing", name)
            continue
        if sha256_file(path) != entry.get("sha256"):
            yield (
                name,
                Finding(
                    "files", "sha256 does not match the manifest (corrupted, truncated or modified)", name
                ),
            )
        try:
            pf = pq.ParquetFile(path)
            if not pf.schema_arrow.equals(SCHEMA_BY_DIMS.get(manifest.get("dims", 2), SCHEMA_BY_DIMS[2])):
                yield name, Finding("files", "schema differs from the store's", name)
                continue
            groups = range(pf.num_row_groups)
        except Exception as e:
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
    if shard_dir.exists():
        for path in sorted(shard_dir.glob("*.parquet")):
            name = f"{SHARD_DIR}/{path.name}"
            if name not in listed:
                yield (
                    name,
                    Finding("files", "shard file not listed in the manifest", name, severity="warning"),
                )


def validate_store(root: Path, report: Report, **kw) -> None:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except Exception as e:
        report.add(
            Finding("files", f"manifest unreadable: {e}; regenerate or rerun the generate command", MANIFEST)
        )
        return
    report.checks_run.append("files")
    index_entry = manifest.get("index", {})
    index_path = root / index_entry.get("file", INDEX)
    if not index_path.exists():
        report.add(Finding("files", "index missing", INDEX))
    elif sha256_file(index_path) != index_entry.get("sha256"):
        report.add(Finding("files", "sha256 does not match the manifest", INDEX))
    else:
        try:
            pq.read_table(index_path)
        except (OSError, pa.ArrowException) as e:
            report.add(Finding("files", f"index unreadable: {e}", INDEX))
    config = manifest.get("config", {})
    frames = config.get("frames_per_scene")
    expected = None
    if "num_scenes_per_type" in config and "scenario_types" in config:
        expected = set(range(config["num_scenes_per_type"] * len(config["scenario_types"])))
    _check_scenes(
        report, _store_scenes(root, manifest), frames + 1 if frames else None, expected_ids=expected, **kw
    )


def _jsonl_scenes(root: Path):
    from physworld.data.jsonl import JsonlError, read_scene_lines

    files = sorted(root.glob("*/scene_*.jsonl"))
    if not files:
        yield str(root), Finding("files", "no */scene_*.jsonl files")
    for path in files:
        name = str(path.relative_to(root))
        try:
            lines = path.read_text().splitlines()
            yield name, read_scene_lines(lines, source=str(path))
        except (JsonlError, OSError, UnicodeDecodeError) as e:
            yield name, Finding("scenes", str(e), name, scenario_type=path.parent.name)


def validate_jsonl(root: Path, report: Report, **kw) -> None:
    config = {}
    if (root / "generation.json").exists():
        try:
            config = json.loads((root / "generation.json").read_text())
        except json.JSONDecodeError as e:
            report.add(Finding("files", f"generation.json unreadable: {e}", "generation.json"))
    frames = config.get("frames_per_scene")
    expected = None
    if "num_scenes_per_type" in config and "scenario_types" in config:
        expected = set(range(config["num_scenes_per_type"] * len(config["scenario_types"])))
    _check_scenes(report, _jsonl_scenes(root), frames + 1 if frames else None, expected_ids=expected, **kw)


def validate(
    data_dir,
    check_physics: bool = False,
    resimulate: str = "sample",
    sample_per_type: int = 2,
    progress: bool = False,
) -> Report:
    """Validate a dataset directory (store or JSONL layout); returns a Report, never raises on damage."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    if resimulate not in ("none", "sample", "all"):
        raise ValueError(f"--resimulate must be none, sample or all, got {resimulate!r}")
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
    for st in sorted(report.per_type):
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
