"""Rendering speed: physworld.data.render against the simulator, and against Pillow's ImageDraw.

All in one run, on the same scenes (every registered scenario type, `--scenes-per-type` seeds at
difficulty 3; types whose scenario function is still a placeholder or fails are listed and skipped):
  simulate  physworld.worlds.engine.simulate(spec, --frames): frames per second of trajectory.
  numpy     render_frames(spec, states, W, H): RGB uint8 and int16 masks, exact pixel-centre coverage.
  pillow    a reference renderer with PIL.ImageDraw drawing the same shapes into an RGB image and an
            'I' (int32) mask image per frame, static geometry pre-drawn once per scene. Not exact
            (Pillow's own rasterisation rules), kept only to compare speed.
Frames per second count rendered frames (RGB and mask together) at 128x128 and 256x256; the ratio
column is render fps / simulate fps (above 1: rendering keeps up with simulation on one core).
Each timing is the median of --repeats runs.

    python bench/bench_render.py [--scenes-per-type 2] [--frames 120] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from physworld.data import render
from physworld.worlds import registry
from physworld.worlds.engine import simulate

SIZES = ((128, 128), (256, 256))


def pillow_render(spec, states, width, height):
    """Reference renderer with PIL.ImageDraw: (rgb [F, H, W, 3], masks [F, H, W]); speed comparison only."""
    from PIL import Image, ImageDraw

    sx, sy = width / render.WORLD_WIDTH, height / render.WORLD_HEIGHT

    def px(x, y):
        return (x * sx - 0.5, (render.WORLD_HEIGHT - y) * sy - 0.5)

    bg_rgb = Image.new("RGB", (width, height), render.BACKGROUND)
    bg_mask = Image.new("I", (width, height), 0)
    for target, fill in ((ImageDraw.Draw(bg_rgb), render.STATIC_COLOR), (ImageDraw.Draw(bg_mask), -1)):
        for s in spec["statics"]:
            if s["kind"] == "segment":
                target.line([px(*s["a"]), px(*s["b"])], fill=fill, width=max(1, round(2 * s["radius"] * sx)))
            elif s["kind"] == "poly":
                target.polygon([px(*v) for v in s["vertices"]], fill=fill)
            else:
                (cx, cy), r = s["center"], s["radius"]
                target.ellipse([px(cx - r, cy + r), px(cx + r, cy - r)], fill=fill)
    colors = [tuple(int(v) for v in c) for c in render.body_colors(len(spec["bodies"]))]
    local = []
    for b in spec["bodies"]:
        if b["shape"] == "box":
            hw, hh = b["width"] / 2, b["height"] / 2
            local.append(np.array([(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]))
        elif b["shape"] == "poly":
            local.append(np.asarray(b["vertices"], dtype=np.float64))
        else:
            local.append(None)
    joints = [c for c in spec["constraints"] if "anchor_a" in c]
    rgb = np.empty((len(states), height, width, 3), dtype=np.uint8)
    masks = np.empty((len(states), height, width), dtype=np.int16)
    for f, frame in enumerate(states):
        im, mk = bg_rgb.copy(), bg_mask.copy()
        d_im, d_mk = ImageDraw.Draw(im), ImageDraw.Draw(mk)
        for c in joints:
            ends = []
            for side in ("a", "b"):
                ax, ay = c["anchor_" + side]
                i = c[side]
                if i >= 0:
                    x, y, th = frame[i, :3]
                    co, si = np.cos(th), np.sin(th)
                    ax, ay = x + co * ax - si * ay, y + si * ax + co * ay
                ends.append(px(ax, ay))
            d_im.line(ends, fill=render.JOINT_COLOR, width=1)
        for i, b in enumerate(spec["bodies"]):
            x, y, th = (float(v) for v in frame[i, :3])
            if local[i] is None:
                r = b["radius"]
                box = [px(x - r, y + r), px(x + r, y - r)]
                d_im.ellipse(box, fill=colors[i])
                d_mk.ellipse(box, fill=i + 1)
                d_im.line([px(x, y), px(x + r * np.cos(th), y + r * np.sin(th))], fill=(0, 0, 0), width=1)
            else:
                co, si = np.cos(th), np.sin(th)
                u, v = local[i][:, 0], local[i][:, 1]
                pts = [px(a, b_) for a, b_ in zip(x + co * u - si * v, y + si * u + co * v, strict=True)]
                d_im.polygon(pts, fill=colors[i])
                d_mk.polygon(pts, fill=i + 1)
        rgb[f] = np.asarray(im)
        masks[f] = np.asarray(mk)
    return rgb, masks


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes-per-type", type=int, default=2)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-pillow", action="store_true", help="skip the Pillow reference renderer")
    args = ap.parse_args()

    scenes, skipped = [], {}
    for name in registry.SCENARIOS:
        for seed in range(args.scenes_per_type):
            try:
                spec = registry.make_spec(name, 3, seed)
            except Exception as exc:  # a colleague's placeholder or a scenario still being written
                skipped[name] = f"{type(exc).__name__}: {exc}"
                continue
            scenes.append((name, spec))
    if not scenes:
        raise SystemExit("no scenario produced a scene; nothing to measure")
    n_frames = len(scenes) * (args.frames + 1)

    trajectories = []

    def run_simulate():
        trajectories.clear()
        trajectories.extend(simulate(spec, args.frames)["states"] for _, spec in scenes)

    per_type_sim: dict[str, float] = {}
    sim_time = median_time(run_simulate, args.repeats)
    for name, spec in scenes:  # per type, once, for the breakdown
        t0 = time.perf_counter()
        simulate(spec, args.frames)
        per_type_sim[registry.CATEGORY_OF[name]] = per_type_sim.get(registry.CATEGORY_OF[name], 0.0) + (
            time.perf_counter() - t0
        )
    sim_fps = n_frames / sim_time

    renderers = {"numpy": render.render_frames}
    if not args.no_pillow:
        renderers["pillow (reference)"] = pillow_render
    rows = []
    per_type_render: dict[tuple, float] = {}
    for w, h in SIZES:
        for label, fn in renderers.items():

            def run(fn=fn, w=w, h=h):
                for (_, spec), states in zip(scenes, trajectories, strict=True):
                    fn(spec, states, w, h)

            run()  # warm-up
            t = median_time(run, args.repeats)
            rows.append((label, f"{w}x{h}", n_frames / t, 1e3 * t / len(scenes), n_frames / t / sim_fps))
        for (name, spec), states in zip(scenes, trajectories, strict=True):
            t0 = time.perf_counter()
            render.render_frames(spec, states, w, h)
            key = (registry.CATEGORY_OF[name], w)
            per_type_render[key] = per_type_render.get(key, 0.0) + time.perf_counter() - t0

    types = sorted({name for name, _ in scenes}, key=list(registry.SCENARIOS).index)
    print(
        f"{len(scenes)} scenes ({len(types)} types x {args.scenes_per_type} seeds, difficulty 3), "
        f"{args.frames + 1} frames each, median of {args.repeats}; numpy {np.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    if skipped:
        print("skipped types: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()))
    print()
    print("| what | size | frames/s | ms per scene | render fps / simulate fps |")
    print("|---|---|---:|---:|---:|")
    print(f"| simulate (engine.simulate) | - | {sim_fps:,.0f} | {1e3 * sim_time / len(scenes):.1f} | - |")
    for label, size, fps, ms, ratio in rows:
        print(f"| render, {label} | {size} | {fps:,.0f} | {ms:.1f} | {ratio:.1f} |")
    print()
    print("Per category (numpy renderer, one pass): frames/s")
    print()
    print("| category | scenes | simulate | render 128x128 | render 256x256 | ratio 128 | ratio 256 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for cat in registry.CATEGORIES:
        count = sum(registry.CATEGORY_OF[name] == cat for name, _ in scenes)
        if not count:
            continue
        frames = count * (args.frames + 1)
        sim = frames / per_type_sim[cat]
        r128, r256 = frames / per_type_render[(cat, 128)], frames / per_type_render[(cat, 256)]
        print(
            f"| {cat} | {count} | {sim:,.0f} | {r128:,.0f} | {r256:,.0f} | {r128 / sim:.1f} | {r256 / sim:.1f} |"
        )


if __name__ == "__main__":
    main()
