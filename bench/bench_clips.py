"""Clips: speed of 3D clip rendering against a bare PyBullet loop, workers, bytes per stream, and the
clip view against a small video model. Everything compared is measured side by side in one run.

1. speed  3D clips per second on one core at --resolution (RGB + depth + segmentation, and the rest of a
          stored clip: flow, visibility, boxes, PNG encoding; captions off, they are timed apart) for
          the same scenes as a bare PyBullet loop: connect, build the world, then for each clip frame
          step the physics and call getCameraImage (TinyRenderer, same size and camera). Both
          simulate exactly the frames the clip needs. Runs alternate scene by scene; medians of
          --repeats. Captions (describe_scene: events, then re-simulations for predictive and
          counterfactual answers) are timed on the same scenes.
2. workers render_clips on one 3D dataset with 1 and 2 worker processes (the machine is shared: as
          measured).
3. bytes  bytes per clip of every stored stream (Parquet column chunks after zstd), against the raw
          uint8 RGB frames, for 2D and 3D scenes; and H.264 MP4 (libx264, one thread) and PNG level 9
          for RGB beside the stored PNG level 6, with whether x264's bytes repeat across runs.
4. view   ClipDataset + DataLoader clips per second (uint8 frames to float tensors) against a tiny 3D
          conv net's training steps per second on the same clips (torch, one thread each).

    python bench/bench_clips.py [--scenes 6] [--resolution 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from physworld.data import clips as C
from physworld.data.generate import GenerateConfig, generate, make_record, scene_seed

TYPES_3D = ("movi_a", "movi_b", "tower_3d", "billiards_3d")
TYPES_2D = ("billiards", "tower", "pendulum", "dominos")


def bare_pybullet(spec: dict, clip_frames: int, stride: int, res: int) -> None:
    """What a hand-written loop does: simulate and grab a TinyRenderer image at every clip frame."""
    from physworld.data.render3d import _gl_matrices, camera_3d
    from physworld.worlds.bullet import build_world, connect

    w = spec["world"]
    p, client = connect(w)
    try:
        build_world(p, client, spec)
        view, proj = _gl_matrices(camera_3d(spec["camera"], res, res))
        for t in range(clip_frames + 1):  # the clip's frames and the flow's target, as physworld
            if t:
                for _ in range(stride * w["substeps"]):
                    p.stepSimulation(physicsClientId=client)
            if t < clip_frames:
                p.getCameraImage(
                    res, res, view, proj, renderer=p.ER_TINY_RENDERER, shadow=0, physicsClientId=client
                )
    finally:
        p.disconnect(physicsClientId=client)


def physworld_clip(scenario_type, seed, config: C.ClipConfig, frames: int) -> dict:
    record = make_record(0, scenario_type, 3, seed, frames)
    clip = C.render_clip(record, config)
    C.clip_shard_bytes([C.clip_row(record, clip, captions=False)])
    return record


def speed(args) -> dict:
    config = C.ClipConfig(resolution=args.resolution, frames=24, fps=12, captions=False)
    stride = config.stride(24.0)
    frames = config.frames_needed(24.0)
    scenes = [(t, scene_seed(0, t, k)) for t in TYPES_3D for k in range(max(1, args.scenes // len(TYPES_3D)))]
    ours, bare, caps = [], [], []
    for t, seed in scenes:
        physworld_clip(t, seed, config, frames)  # warm up (imports, first client)
        break
    for t, seed in scenes:
        spec = make_record(0, t, 3, seed, 1)["spec"]
        o, b = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            bare_pybullet(spec, config.frames, stride, args.resolution)
            b.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            record = physworld_clip(t, seed, config, frames)
            o.append(time.perf_counter() - t0)
        ours.append(statistics.median(o))
        bare.append(statistics.median(b))
        clip = {"frame_indices": np.arange(config.frames) * stride}
        t0 = time.perf_counter()
        C._describe(record, clip)
        caps.append(time.perf_counter() - t0)
    n = len(scenes)
    return {
        "scenes": n,
        "physworld_clips_per_s": n / sum(ours),
        "bare_clips_per_s": n / sum(bare),
        "ratio": sum(bare) / sum(ours),
        "captions_s_per_clip": sum(caps) / n,
    }


def workers(args, root: Path) -> dict:
    data = root / "ds3"
    generate(
        GenerateConfig(
            TYPES_3D, num_scenes_per_type=max(2, args.scenes // 2), frames_per_scene=48, scenes_per_shard=1
        ),
        data,
        num_workers=2,
        progress=False,
    )
    config = C.ClipConfig(resolution=args.resolution, frames=24, fps=12, captions=False)
    out = {}
    for n in (1, 2, 1, 2):
        target = root / f"clips_{n}"
        shutil.rmtree(target, ignore_errors=True)
        t0 = time.perf_counter()
        m = C.render_clips(data, config, clips_dir=target, num_workers=n, progress=False)
        out.setdefault(n, []).append(time.perf_counter() - t0)
    clips = m["num_clips"]
    t1, t2 = min(out[1]), min(out[2])
    return {"clips": clips, "one": clips / t1, "two": clips / t2, "speedup": t1 / t2, "cores": os.cpu_count()}


def _stream_bytes(path: Path) -> dict:
    meta = pq.ParquetFile(path).metadata
    sizes: dict[str, int] = {}
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        for c in range(rg.num_columns):
            col = rg.column(c)
            name = col.path_in_schema.split(".")[0]
            sizes[name] = sizes.get(name, 0) + col.total_compressed_size
    return sizes


def _mp4_bytes(rgb: np.ndarray, threads: int = 1) -> bytes:
    import imageio.v2 as iio2

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.mp4")
        writer = iio2.get_writer(
            path, format="FFMPEG", mode="I", fps=12, codec="libx264", pixelformat="yuv420p",
            macro_block_size=1, ffmpeg_log_level="error", output_params=["-threads", str(threads)],
        )  # fmt: skip
        for f in rgb:
            writer.append_data(f)
        writer.close()
        return Path(path).read_bytes()


def storage(args, root: Path) -> dict:
    from PIL import Image

    config = C.ClipConfig(resolution=args.resolution, frames=24, fps=12, captions=True)
    out = {}
    for label, types, rate in (("2D", TYPES_2D, 60.0), ("3D", TYPES_3D, 24.0)):
        records, rows, rgbs = [], [], []
        for t in types:
            rec = dict(
                make_record(0, t, 3, scene_seed(1, t, 0), config.frames_needed(rate)), scene_id=len(records)
            )
            clip = C.render_clip(rec, config)
            records.append(rec)
            rows.append(C.clip_row(rec, clip))
            rgbs.append(clip["rgb"])
        path = root / f"{label}.parquet"
        path.write_bytes(C.clip_shard_bytes(rows))
        n = len(rows)
        sizes = {k: v / n for k, v in _stream_bytes(path).items()}
        mp4 = [_mp4_bytes(r) for r in rgbs]
        stable = all(_mp4_bytes(r) == m for r, m in zip(rgbs, mp4, strict=True))
        same_threads2 = all(_mp4_bytes(r, threads=2) == m for r, m in zip(rgbs, mp4, strict=True))

        def png(frames, level):
            total = 0
            for f in frames:
                buf = io.BytesIO()
                Image.fromarray(f).save(buf, format="PNG", compress_level=level)
                total += len(buf.getvalue())
            return total

        out[label] = {
            "sizes": sizes,
            "raw_rgb": float(np.mean([r.nbytes for r in rgbs])),
            "mp4": float(np.mean([len(m) for m in mp4])),
            "png6": float(np.mean([png(r, 6) for r in rgbs])),
            "png9": float(np.mean([png(r, 9) for r in rgbs])),
            "mp4_stable": stable,
            "mp4_threads2_same": same_threads2,
            "file": path.stat().st_size / n,
        }
    return out


def view(args, root: Path) -> dict:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from physworld.data.clip_view import ClipDataset, collate_clips, prepare_clips

    torch.set_num_threads(1)
    data = root / "ds2"
    generate(
        GenerateConfig(TYPES_2D, num_scenes_per_type=4, frames_per_scene=120, scenes_per_shard=4),
        data,
        num_workers=2,
        progress=False,
    )
    C.render_clips(
        data, C.ClipConfig(resolution=args.resolution, captions=False), num_workers=2, progress=False
    )
    view_dir = prepare_clips(data, progress=False)
    batch = 4

    def rate(ds):
        def epoch():
            n = 0
            for b in DataLoader(ds, batch_size=batch, shuffle=True, collate_fn=collate_clips, num_workers=0):
                x = b["rgb"].permute(0, 4, 1, 2, 3).float().div_(255)  # [B, 3, T, H, W], what a model eats
                n += len(x)
            return n

        epoch()
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < 3.0:
            n += epoch()
        return n / (time.perf_counter() - t0)

    ds = ClipDataset(view_dir)
    load_all = rate(ds)
    load_rgb = rate(ClipDataset(view_dir, streams=("rgb", "states")))

    model = nn.Sequential(  # a tiny video model: three strided 3D convolutions and a linear head
        nn.Conv3d(3, 16, 3, stride=(1, 2, 2), padding=1), nn.ReLU(),
        nn.Conv3d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv3d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.stack([ds[i]["rgb"] for i in range(batch)]).permute(0, 4, 1, 2, 3).float() / 255
    y = torch.zeros(batch, dtype=torch.long)

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    steps = 0
    while time.perf_counter() - t0 < 3.0:
        step()
        steps += 1
    model_rate = steps * batch / (time.perf_counter() - t0)
    params = sum(p.numel() for p in model.parameters())
    return {"all": load_all, "rgb": load_rgb, "model": model_rate, "params": params, "clips": len(ds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=8, help="3D scenes timed (spread over the types)")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parts", default="speed,workers,bytes,view", help="comma-separated subset to run")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared); {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        if "speed" in parts:
            report_speed(args)
        if "workers" in parts:
            report_workers(args, root)
        if "bytes" in parts:
            report_bytes(args, root)
        if "view" in parts:
            report_view(args, root)


def report_speed(args) -> None:
    s = speed(args)
    print(
        f"\n## 3D clip speed, one core, {args.resolution}x{args.resolution}, 24 frames at 12 fps ({s['scenes']} scenes)\n"
    )
    print("| pipeline | clips/s | ratio to bare |\n|---|---:|---:|")
    print(f"| bare PyBullet: step + getCameraImage (RGB, depth, seg) | {s['bare_clips_per_s']:.2f} | 1.00 |")
    print(
        f"| physworld clip (simulate, render, flow, visibility, encode) | {s['physworld_clips_per_s']:.2f} | {s['ratio']:.2f} |"
    )
    print(
        f"\ncaptions and questions (describe_scene, re-simulations): {s['captions_s_per_clip']:.2f} s per clip"
    )


def report_workers(args, root) -> None:
    w = workers(args, root)
    print(f"\n## render_clips workers ({w['clips']} 3D clips, {w['cores']} cores, shared)\n")
    print("| workers | clips/s | speed-up |\n|---:|---:|---:|")
    print(f"| 1 | {w['one']:.2f} | 1.00 |\n| 2 | {w['two']:.2f} | {w['speedup']:.2f} |")


def report_bytes(args, root) -> None:
    st = storage(args, root)
    print(
        f"\n## bytes per clip, {args.resolution}x{args.resolution}, 24 frames (mean of {len(TYPES_2D)} scenes each)\n"
    )
    print("| stream | 2D bytes | 2D / raw RGB | 3D bytes | 3D / raw RGB |\n|---|---:|---:|---:|---:|")
    raw2, raw3 = st["2D"]["raw_rgb"], st["3D"]["raw_rgb"]
    print(f"| raw uint8 RGB frames (reference) | {raw2:,.0f} | 1.000 | {raw3:,.0f} | 1.000 |")
    for k in (
        "rgb",
        "segmentation",
        "depth",
        "flow",
        "states",
        "visible_pixels",
        "visible_fraction",
        "bboxes",
        "caption",
    ):
        a, b = st["2D"]["sizes"].get(k, 0), st["3D"]["sizes"].get(k, 0)
        print(f"| {k} (stored) | {a:,.0f} | {a / raw2:.3f} | {b:,.0f} | {b / raw3:.3f} |")
    print(
        f"| whole clip shard / clip | {st['2D']['file']:,.0f} | {st['2D']['file'] / raw2:.3f} | {st['3D']['file']:,.0f} | {st['3D']['file'] / raw3:.3f} |"
    )
    for k, name in (
        ("png6", "RGB as PNG level 6 (as stored, before the shard's zstd)"),
        ("png9", "RGB as PNG level 9, before zstd (not stored)"),
        ("mp4", "RGB as H.264 MP4 (not stored, lossy)"),
    ):
        a, b = st["2D"][k], st["3D"][k]
        print(f"| {name} | {a:,.0f} | {a / raw2:.3f} | {b:,.0f} | {b / raw3:.3f} |")
    print(
        f"\nx264 bytes identical across two one-thread encodes: 2D {st['2D']['mp4_stable']}, 3D "
        f"{st['3D']['mp4_stable']}; one thread vs two: 2D {st['2D']['mp4_threads2_same']}, 3D "
        f"{st['3D']['mp4_threads2_same']}"
    )


def report_view(args, root) -> None:
    v = view(args, root)
    print(f"\n## clip view vs a tiny video model ({v['clips']} clips, one thread each)\n")
    print("| what | clips/s | ratio to the model |\n|---|---:|---:|")
    print(
        f"| ClipDataset, every stream (rgb, seg, flow, states, boxes...) | {v['all']:,.0f} | {v['all'] / v['model']:.0f}x |"
    )
    print(f"| ClipDataset, streams=(rgb, states) | {v['rgb']:,.0f} | {v['rgb'] / v['model']:.0f}x |")
    print(
        f"| tiny 3D conv net ({v['params']:,} params), one AdamW step per batch of 4 | {v['model']:.1f} | 1x |"
    )


if __name__ == "__main__":
    main()
