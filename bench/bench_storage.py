"""Bytes per body-frame: the Parquet store against guide 001's JSONL layout of the same scenes.

One run generates a dataset (all 35 types by default), measures the store's shard bytes, exports the
same scenes in the guide's JSONL layout (lossless float32, as `physworld export-jsonl` writes it) and
measures those bytes, and re-encodes the same records with other Parquet settings to show why the
store uses per-field [body][frame] tracks with BYTE_STREAM_SPLIT and zstd level 3. For context it
also reports the guide's own files in tests/data (other scenes, 4-decimal rounding, so lossy).

    python bench/bench_storage.py [--scenes-per-type 6]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from physworld.data.generate import GenerateConfig, generate
from physworld.data.jsonl import scene_to_lines
from physworld.data.store import Dataset, records_to_table, shard_bytes
from physworld.worlds.engine import STATE_FIELDS


def parquet_size(table, **kw) -> tuple[int, float]:
    buf = io.BytesIO()
    t0 = time.perf_counter()
    pq.write_table(table, buf, row_group_size=8, **kw)
    return len(buf.getvalue()), time.perf_counter() - t0


def frame_major_table(records):
    """The obvious alternative layout: one flat float32 list per scene in [frame, body, field] order."""
    return pa.table({"states": pa.array([r["states"].ravel() for r in records], pa.list_(pa.float32()))})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes-per-type", type=int, default=6)
    ap.add_argument("--frames", type=int, default=200)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="physworld-storage-"))
    try:
        config = GenerateConfig(
            scenario_types=("all",), num_scenes_per_type=args.scenes_per_type, frames_per_scene=args.frames
        )
        manifest = generate(config, work / "store", num_workers=2, progress=False)
        records = list(Dataset(work / "store").iter_scenes())
        body_frames = sum(r["states"].shape[0] * r["states"].shape[1] for r in records)
        store_bytes = sum(s["bytes"] for s in manifest["shards"])
        t0 = time.perf_counter()
        jsonl_bytes = sum(len(("\n".join(scene_to_lines(r)) + "\n").encode()) for r in records)
        jsonl_s = time.perf_counter() - t0

        print(
            f"# {len(records)} scenes ({args.scenes_per_type} per type x 35 types), {body_frames} body-frames"
        )
        print("| encoding | bytes per body-frame | vs guide JSONL (lossless) |")
        print("|---|---|---|")
        rows = [
            ("physworld store (shards as written)", store_bytes),
            ("guide JSONL layout, lossless float32 (export-jsonl)", jsonl_bytes),
        ]
        state_only = records_to_table(records).select(list(STATE_FIELDS))
        bss = [f"{f}.list.element.list.element" for f in STATE_FIELDS]
        for name, table, kw in [
            (
                "state columns only: [body][frame] tracks, byte-stream-split, zstd 3",
                state_only,
                dict(
                    compression="zstd", compression_level=3, use_dictionary=False, use_byte_stream_split=bss
                ),
            ),
            (
                "state columns only: same, zstd 9",
                state_only,
                dict(
                    compression="zstd", compression_level=9, use_dictionary=False, use_byte_stream_split=bss
                ),
            ),
            (
                "state columns only: same, no byte-stream-split, zstd 3",
                state_only,
                dict(compression="zstd", compression_level=3, use_dictionary=False),
            ),
            (
                "state only: frame-major flat list, zstd 3",
                frame_major_table(records),
                dict(compression="zstd", compression_level=3, use_dictionary=False),
            ),
            ("raw float32 state (24 bytes)", None, None),
        ]:
            if table is None:
                rows.append((name, 24 * body_frames))
                continue
            size, secs = parquet_size(table, **kw)
            rows.append((f"{name} (encode {secs * 1e3:.0f} ms)", size))
        for name, size in rows:
            print(f"| {name} | {size / body_frames:.2f} | 1/{jsonl_bytes / size:.1f} |")
        t0 = time.perf_counter()
        shard_bytes(records)
        print(
            f"\nencode times for all {len(records)} scenes: store {1e3 * (time.perf_counter() - t0):.0f} ms, "
            f"JSONL {1e3 * jsonl_s:.0f} ms"
        )
        guide = sorted(
            Path(__file__).resolve().parents[1].glob("tests/data/physicsllmengine/*/scene_*.jsonl")
        )
        if guide:
            gb = sum(p.stat().st_size for p in guide)
            gbf = 0
            for p in guide:
                lines = p.read_text().splitlines()
                gbf += len(lines) * json.loads(lines[0])["object_count"]
            print(
                f"context: the guide project's own files (8 other scenes, 4 decimals, lossy): "
                f"{gb / gbf:.1f} bytes per body-frame"
            )
        print(
            f"store / guide JSONL (lossless) = 1/{jsonl_bytes / store_bytes:.1f}; "
            f"mean bodies per scene {np.mean([r['states'].shape[1] for r in records]):.1f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
