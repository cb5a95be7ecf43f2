"""`physworld validate` for clips: every clips folder of a dataset (a folder holding clips.json).

Checks, each a Finding with its location (clip shard file, scene id, frame, body), never a crash:

  files      clips manifest present (else the render was interrupted), made from the dataset's
             current shards, every clip shard present, its sha256 as the manifest says, readable with
             the clip schema, one clip per scene of its state shard in the same order
  clips      frame count, size and frame indices as the clip config says; every PNG frame decodes to
             the right shape (a damaged frame is located); the stored per-frame states equal the
             dataset's states at those frames bit for bit; visible pixel counts and boxes agree with
             the segmentation
  masks      masks agree with the states: every fully visible body's centre, projected with the clip's
             camera, falls inside its own mask (within one pixel, for sub-pixel bodies)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from physworld.data import clips as C
from physworld.data.findings import Finding, Report
from physworld.data.store import MANIFEST as STORE_MANIFEST
from physworld.data.store import table_to_records
from physworld.fileio import sha256_file

FULLY_VISIBLE = 0.99  # visible_fraction above which a body's centre must be inside its own mask


def clip_folders(root: Path) -> list[Path]:
    return sorted(p.parent for p in Path(root).glob(f"*/{C.CONFIG}"))


def project_centres(clip: dict) -> np.ndarray:
    """Continuous pixel (col, row) of every body's centre: float64 [T, N, 2] (NaN behind a 3D camera)."""
    cam, states = clip["camera"], clip["states"].astype(np.float64)
    if cam["kind"] == "orthographic_2d":
        return C.project_2d(states[..., :2], cam)
    from physworld.data.render3d import project_points

    return project_points(states[..., :3], cam)


def check_masks(clip: dict, where: str) -> list[Finding]:
    seg = clip["segmentation"]
    t_len, h, w = seg.shape
    centre = project_centres(clip)
    full = clip["visible_fraction"] >= FULLY_VISIBLE
    bad = []
    for t, i in zip(*np.nonzero(full), strict=True):
        c, r = centre[t, i]
        if not (np.isfinite(c) and np.isfinite(r)):
            bad.append((t, i, "projects to no pixel"))
            continue
        col, row = int(np.floor(c)), int(np.floor(r))
        window = seg[t, max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2]
        if not (window == i + 1).any():
            found = int(seg[t, row, col]) if 0 <= row < h and 0 <= col < w else None
            bad.append((t, i, f"centre at pixel ({row}, {col}) holds label {found}, not its own {i + 1}"))
    if not bad:
        return []
    t, i, why = bad[0]
    return [
        Finding(
            "masks",
            f"{len(bad)} fully visible body-frame(s) whose centre is outside their mask; first: {why}",
            where,
            clip["scene_id"],
            clip["scenario_type"],
            int(t),
            int(i),
        )
    ]


def check_clip(clip: dict, record: dict, config: C.ClipConfig, where: str) -> list[Finding]:
    sid, st = clip["scene_id"], clip["scenario_type"]
    out = []

    def bad(message, frame=None, body=None):
        out.append(Finding("clips", message, where, sid, st, frame, body))

    if clip["scene_id"] != record["scene_id"]:
        bad(f"clip of scene {clip['scene_id']} where the state shard has scene {record['scene_id']}")
        return out
    res = config.resolution
    if clip["rgb"].shape != (config.frames, res, res, 3):
        bad(
            f"rgb frames have shape {clip['rgb'].shape}, the clip config says ({config.frames}, {res}, {res}, 3)"
        )
        return out
    try:
        want = C.frame_plan(record, config)[:-1]
    except C.ClipError as e:
        bad(str(e))
        return out
    if not np.array_equal(clip["frame_indices"], want):
        bad(f"frame indices {clip['frame_indices'].tolist()} differ from the plan {want.tolist()}")
        return out
    states = np.ascontiguousarray(record["states"][want], dtype=np.float32)
    if (
        states.shape != clip["states"].shape
        or (states.view(np.uint32) != clip["states"].view(np.uint32)).any()
    ):
        diff = np.argwhere(states != clip["states"]) if states.shape == clip["states"].shape else [[0, 0]]
        bad("stored per-frame states differ from the dataset's", int(diff[0][0]), int(diff[0][1]))
    counts, boxes = C.boxes_and_counts(clip["segmentation"], clip["states"].shape[1])
    if not np.array_equal(counts, clip["visible_pixels"]) or not np.array_equal(boxes, clip["bboxes"]):
        t, i = np.argwhere((counts != clip["visible_pixels"]) | (boxes != clip["bboxes"]).any(-1))[0]
        bad("visible pixel counts or boxes disagree with the segmentation", int(t), int(i))
    out += check_masks(clip, where)
    return out


def _decode_frames(table, where: str, config: C.ClipConfig) -> tuple[list, list[Finding]]:
    """Decode a row group's clips; a frame that does not decode is a finding, not a crash."""
    findings = []
    try:
        return C.decode_table(table), findings
    except Exception:
        pass
    # Locate the damaged frame(s).
    meta = table.select(["scene_id", "scenario_type"]).to_pylist()
    for i, m in enumerate(meta):
        for stream in ("rgb", "segmentation"):
            for t, frame in enumerate(table.column(stream)[i].as_py() or []):
                try:
                    C.decode_png(frame["bytes"])
                except Exception as e:
                    findings.append(
                        Finding(
                            "clips",
                            f"{stream} frame does not decode: {e}",
                            where,
                            m["scene_id"],
                            m["scenario_type"],
                            t,
                        )
                    )
    if not findings:
        findings.append(Finding("clips", "row group does not decode", where))
    return [], findings


def validate_clip_folder(root: Path, folder: Path, report: Report, progress: bool = False) -> None:
    from tqdm.auto import tqdm

    name = str(folder.relative_to(root))
    try:
        clip_config = json.loads((folder / C.CONFIG).read_text())
        config = C.ClipConfig(**clip_config["clip"])
    except Exception as e:
        report.add(
            Finding(
                "files",
                f"clip config unreadable ({e}); delete the folder and render again",
                f"{name}/{C.CONFIG}",
            )
        )
        return
    mpath = folder / C.MANIFEST
    if not mpath.exists():
        report.add(
            Finding(
                "files",
                f"no clips manifest: rendering was interrupted; rerun physworld render-clips --data-dir {root}",
                name,
            )
        )
        return
    try:
        manifest = json.loads(mpath.read_text())
        source = json.loads((root / STORE_MANIFEST).read_text())
    except Exception as e:
        report.add(
            Finding(
                "files", f"clips manifest unreadable ({e}); render the clips again", f"{name}/{C.MANIFEST}"
            )
        )
        return
    if manifest.get("source_shards_sha256") != C._source_key(source):
        report.add(
            Finding(
                "files",
                "clips were rendered from other scenes than the dataset holds now; render them again",
                name,
            )
        )
        return
    listed = set()
    for k, entry in enumerate(manifest.get("shards", [])):
        where = f"{name}/{entry.get('file')}"
        listed.add(entry.get("file"))
        path = folder / entry.get("file", "?")
        if not path.exists():
            report.add(
                Finding("files", "clip shard listed in the manifest is missing; rerun render-clips", where)
            )
            continue
        if sha256_file(path) != entry.get("sha256"):
            report.add(
                Finding(
                    "files",
                    "sha256 does not match the clips manifest (corrupted, truncated or modified)",
                    where,
                )
            )
        try:
            pf = pq.ParquetFile(path)
            if not pf.schema_arrow.remove_metadata().equals(C.SCHEMA):
                report.add(Finding("files", "schema differs from the clip schema", where))
                continue
            records = table_to_records(pq.read_table(root / source["shards"][k]["file"]))
        except Exception as e:
            report.add(Finding("files", f"not readable: {e}", where))
            continue
        if pf.metadata.num_rows != len(records):
            report.add(
                Finding(
                    "files",
                    f"{pf.metadata.num_rows} clips for {len(records)} scenes in its state shard",
                    where,
                )
            )
            continue
        row = 0
        for g in tqdm(range(pf.num_row_groups), desc=f"validate {name}", disable=not progress, leave=False):
            try:
                table = pf.read_row_group(g)
            except Exception as e:
                report.add(Finding("files", f"row group {g} does not read: {e}", where))
                row += pf.metadata.row_group(g).num_rows
                continue
            clips, problems = _decode_frames(table, where, config)
            for f in problems:
                report.add(f)
            for clip in clips:
                for f in check_clip(clip, records[row], config, where):
                    report.add(f)
                row += 1
            if not clips:
                row += table.num_rows
    for path in sorted((folder / C.SHARD_DIR).glob("*.parquet")):
        rel = f"{C.SHARD_DIR}/{path.name}"
        if rel not in listed:
            report.add(
                Finding("files", "clip shard not listed in the manifest", f"{name}/{rel}", severity="warning")
            )


def validate_clips(root, report: Report, progress: bool = False) -> None:
    """Add the checks of every clips folder under a dataset directory to `report`."""
    folders = clip_folders(Path(root))
    if folders:
        report.checks_run.append("clips")
    for folder in folders:
        validate_clip_folder(Path(root), folder, report, progress)
