"""The Q-Former captioner beside a text-only baseline and the majority answer, on held-out clips.

Generates 2D scenes with clips, captions and questions (a training set of the seen types; a
validation set of other scenes of those types plus scenario types never trained on), trains the
captioner (configs/captioner/small.yaml: frozen random V-JEPA encoder, frozen tiny GPT-2 pre-trained
on the training text) and, with the same LM, config, seed and number of steps, the text-only baseline
(`model.use_video=false`: the Q-Former sees zeros instead of the video). Then scores both on the
validation clips: event and object precision/recall of the captions against the event logs, and
question accuracy per type beside the majority answer per template; seen and held-out types apart.

    python bench/bench_captioner.py          # about 5 CPU minutes (20 minutes on a loaded 2-core machine)
    python bench/bench_captioner.py --steps 60 --scenes-per-type 6   # a quick look
    python bench/bench_captioner.py --encoder-checkpoint runs/vjepa/checkpoints/latest.safetensors
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from physworld.data import clips as C
from physworld.data.generate import GenerateConfig, generate
from physworld.fileio import atomic_write_json
from physworld.recipes import captioner as R
from physworld.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SEEN = ("billiards", "head_on", "bowling", "projectile", "dominos")
HELD_OUT = ("explosion", "pyramid")
TYPES = ("descriptive", "explanatory", "predictive", "counterfactual", "all")


def make_data(root: Path, types, scenes: int, seed: int, clip: C.ClipConfig, frames: int) -> Path:
    if not (root / "clips" / "manifest.json").exists():
        config = GenerateConfig(
            scenario_types=tuple(types), num_scenes_per_type=scenes, frames_per_scene=frames, seed=seed,
            scenes_per_shard=64,
        )  # fmt: skip
        generate(config, root, num_workers=1, progress=False)
        C.render_clips(root, clip, num_workers=1, progress=False)
    return root


def train(work: Path, name: str, overrides: list[str]) -> tuple[dict, float]:
    out = work / name
    cfg = load_config(
        ROOT / "configs" / "captioner" / "small.yaml", R.RecipeConfig, [f"train.output_dir={out}", *overrides]
    )
    t0 = time.process_time()
    R.train(cfg, progress=True)
    return json.loads((out / "metrics.json").read_text()), time.process_time() - t0


def fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def table(video: dict, blind: dict) -> list[str]:
    lines = []
    for split in ("seen", "held_out"):
        if split not in video["val"]:
            continue
        v, b = video["val"][split], blind["val"][split]
        lines.append(f"\n{split} types ({v['clips']} clips)")
        lines.append("| caption | event P | event R | object P | object R | object count |")
        lines.append("|---|---|---|---|---|---|")
        for label, m in (("captioner", v), ("text-only", b)):
            c = m["caption"]
            lines.append(
                f"| {label} | {fmt(c['event_precision'])} | {fmt(c['event_recall'])} | {fmt(c['object_precision'])} "
                f"| {fmt(c['object_recall'])} | {fmt(c['object_count_accuracy'])} |"
            )
        lines.append("| QA accuracy | " + " | ".join(TYPES) + " |")
        lines.append("|---" * (len(TYPES) + 1) + "|")
        for label, qa in (
            ("captioner", v["qa"]),
            ("text-only", b["qa"]),
            ("majority", v["qa_majority_baseline"]),
        ):
            cells = [f"{qa[t]['accuracy']:.3f} ({qa[t]['questions']})" if t in qa else "-" for t in TYPES]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def verdict(video: dict, blind: dict) -> list[str]:
    out = []
    for split in ("seen", "held_out"):
        if split not in video["val"]:
            continue
        v, b = video["val"][split], blind["val"][split]
        qa_v, qa_b = v["qa"]["all"]["accuracy"], b["qa"]["all"]["accuracy"]
        qa_m = v["qa_majority_baseline"]["all"]["accuracy"]
        ev_v = [v["caption"][k] or 0.0 for k in ("event_precision", "event_recall")]
        ev_b = [b["caption"][k] or 0.0 for k in ("event_precision", "event_recall")]
        out.append(
            f"{split}: QA {qa_v:.3f} vs text-only {qa_b:.3f} and majority {qa_m:.3f}: the captioner "
            + ("beats" if qa_v > qa_b else "does NOT beat")
            + " the text-only baseline"
            + ("" if qa_v > qa_m else " and does NOT beat the majority answer")
            + f"; caption events P/R {ev_v[0]:.3f}/{ev_v[1]:.3f} vs text-only {ev_b[0]:.3f}/{ev_b[1]:.3f}: "
            + ("better" if sum(ev_v) > sum(ev_b) else "NOT better")
        )
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench_captioner")
    p.add_argument("--scenes-per-type", type=int, default=32, help="training scenes per seen type")
    p.add_argument("--val-scenes-per-type", type=int, default=8)
    p.add_argument("--steps", type=int, default=400, help="optimizer steps of each of the two runs")
    p.add_argument("--lm-steps", type=int, default=1500, help="pre-training steps of the tiny LM")
    p.add_argument("--encoder-checkpoint", default=None, help="a vjepa checkpoint (default: random encoder)")
    p.add_argument("--fresh", action="store_true", help="delete earlier runs in --work-dir first")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    work = args.work_dir
    if args.fresh:
        for name in ("captioner", "text_only"):
            shutil.rmtree(work / name, ignore_errors=True)
    clip = C.ClipConfig(resolution=64, frames=16, fps=10)  # 1.6 s of each scene
    train_dir = make_data(work / "train", SEEN, args.scenes_per_type, 1, clip, 100)
    val_dir = make_data(work / "val", SEEN + HELD_OUT, args.val_scenes_per_type, 2, clip, 100)
    common = [
        f"data.train_dir={train_dir}", f"data.val_dir={val_dir}", f"train.max_steps={args.steps}",
        f"optim.warmup_steps={min(50, args.steps // 5)}", f"lm.tiny.steps={args.lm_steps}", "train.threads=1",
    ]  # fmt: skip
    if args.encoder_checkpoint:
        common.append(f"encoder.checkpoint={args.encoder_checkpoint}")
    video, t_video = train(work, "captioner", common)
    blind, t_blind = train(
        work, "text_only", [*common, "model.use_video=false", f"lm.path={work / 'captioner' / 'lm'}"]
    )
    lines = [
        f"train: {video['train_clips']} clips of {', '.join(SEEN)} ({video['train_examples']} examples); "
        f"held-out types: {', '.join(HELD_OUT)}; {args.steps} steps each; encoder "
        f"{args.encoder_checkpoint or 'random (frozen)'}; CPU s: captioner {t_video:.0f}, text-only {t_blind:.0f}",
        *table(video, blind),
        "",
        *verdict(video, blind),
        "",
        "samples (captioner | reference):",
        *[f"  {s['scenario_type']}: {s['caption']} | {s['reference']}" for s in video["val"]["samples"][:4]],
    ]
    print("\n".join(lines))
    atomic_write_json(work / "results.json", {"captioner": video, "text_only": blind, "summary": lines})


if __name__ == "__main__":
    main()
