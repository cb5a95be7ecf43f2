"""Recipe: a U-Net segmenter on drawer_open's rendered frames and MuJoCo's segmentation, focal + dice.

  physworld pipeline run configs/pipeline/drawer_open.yaml --only segmenter   (needs data)

1. frames and masks (classes: worlds.drawer_open.SEGMENT_CLASSES) from every episode; whole episodes
   go to validation
2. per step: a batch of frames (random horizontal shifts of a few pixels as augmentation), focal +
   dice loss, warmup + cosine LR, NaN/Inf guard, clipping, `checkpoints/latest` regularly
3. score on validation episodes: per-class F1 and IoU, beside a colour-threshold baseline (per class
   an RGB box, the 2nd..98th percentile of that class's training pixels; a pixel inside the robot's
   box is robot, else inside the drawer's box is drawer, else background)
4. the F1 gate: `gate.json` says whether the macro F1 over the foreground classes reaches
   `f1_gate` (0.85 by default); `load_segmenter` refuses a model whose gate did not pass, so nothing
   downstream uses a segmenter that has not earned it
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from physworld.data.episodes import load_all, split_episodes
from physworld.fileio import atomic_write_json
from physworld.models.unet import UNet, UNetConfig
from physworld.recipes.simclr import frames_tensor
from physworld.training.checkpoint import CheckpointManager, load_checkpoint, restore, save_checkpoint
from physworld.training.loop_utils import (
    NonFiniteGuard,
    clip_gradients,
    cosine_with_warmup,
    progress_bar,
    seed_everything,
    set_lr,
)
from physworld.training.metrics import MetricLogger
from physworld.worlds.drawer_open import SEGMENT_CLASSES

MODEL_FILE = "segmenter.safetensors"
GATE_FILE = "gate.json"


@dataclass
class SegmenterRecipeConfig:
    model: UNetConfig = field(default_factory=UNetConfig)
    steps: int = 1000
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 50
    grad_clip: float = 1.0
    checkpoint_every: int = 100
    val_fraction: float = 0.2
    f1_gate: float = 0.85
    max_shift: int = 4
    seed: int = 0


def confusion(pred: np.ndarray, target: np.ndarray, classes: int) -> np.ndarray:
    return np.bincount(
        target.ravel().astype(np.int64) * classes + pred.ravel(), minlength=classes * classes
    ).reshape(classes, classes)


def scores(conf: np.ndarray) -> dict:
    tp = np.diag(conf).astype(np.float64)
    fp, fn = conf.sum(0) - tp, conf.sum(1) - tp
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    iou = tp / np.maximum(tp + fp + fn, 1)
    return {
        "f1": dict(zip(SEGMENT_CLASSES, f1.tolist(), strict=True)),
        "iou": dict(zip(SEGMENT_CLASSES, iou.tolist(), strict=True)),
        "macro_f1_foreground": float(f1[1:].mean()),
        "mean_iou_foreground": float(iou[1:].mean()),
        "pixel_accuracy": float(tp.sum() / max(conf.sum(), 1)),
    }


def fit_colour_boxes(frames: np.ndarray, masks: np.ndarray) -> dict:
    pixels, labels = frames.reshape(-1, 3), masks.ravel()
    boxes = {}
    for c in (1, 2):
        sel = pixels[labels == c]
        if len(sel):
            boxes[c] = (np.percentile(sel, 2, axis=0), np.percentile(sel, 98, axis=0))
    return boxes


def colour_threshold(frames: np.ndarray, boxes: dict) -> np.ndarray:
    out = np.zeros(frames.shape[:-1], dtype=np.int64)
    for c in (2, 1):  # robot last: it wins where the boxes overlap
        if c in boxes:
            lo, hi = boxes[c]
            out[np.all((frames >= lo) & (frames <= hi), axis=-1)] = c
    return out


@torch.no_grad()
def predict(model, frames: np.ndarray, batch: int = 64) -> np.ndarray:
    model.eval()
    return np.concatenate(
        [model(frames_tensor(frames[i : i + batch])).argmax(1).numpy() for i in range(0, len(frames), batch)]
    )


def run(cfg: SegmenterRecipeConfig, data_dir, out_dir, progress: bool = True) -> dict:
    out = Path(out_dir)
    seed_everything(cfg.seed)
    episodes = load_all(data_dir, keys=("frames", "masks"))
    train_eps, val_eps = split_episodes(episodes, cfg.val_fraction)
    if not train_eps or not val_eps:
        raise ValueError("segmenter: need episodes for training and validation")
    frames = np.concatenate([e["frames"] for e in train_eps])
    masks = np.concatenate([e["masks"] for e in train_eps]).astype(np.int64)
    if masks.max() >= cfg.model.num_classes:
        raise ValueError(
            f"segmenter.model.num_classes is {cfg.model.num_classes} but the masks hold class {masks.max()}"
        )

    model = UNet(cfg.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    ckpts = CheckpointManager(out / "checkpoints")
    step = 0
    if (latest := ckpts.latest_path()) is not None:
        step = restore(load_checkpoint(latest), model, optimizer, extra_generators={"batches": gen})["step"]
    guard = NonFiniteGuard()
    logger = MetricLogger(out, tensorboard=False, resume_step=step)
    bar = progress_bar(cfg.steps, initial=step, desc="segmenter", disable=not progress)
    last = {}
    model.train()
    while step < cfg.steps:
        set_lr(optimizer, cosine_with_warmup(step, min(cfg.warmup_steps, cfg.steps), cfg.steps, cfg.lr))
        pick = torch.randint(len(frames), (cfg.batch_size,), generator=gen).numpy()
        x, y = frames_tensor(frames[pick]), torch.from_numpy(masks[pick])
        shift = int(torch.randint(-cfg.max_shift, cfg.max_shift + 1, (1,), generator=gen))
        x, y = torch.roll(x, shift, dims=3), torch.roll(y, shift, dims=2)
        losses = model.loss(x, y)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if guard.check(losses["loss"], model):
            clip_gradients(model, cfg.grad_clip)
            optimizer.step()
        step += 1
        bar.update(1)
        last = {k: float(v.detach()) for k, v in losses.items()}
        if step % 10 == 0 or step == cfg.steps:
            logger.log(step, **last)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            ckpts.save_latest(model, optimizer, step=step, config=cfg, extra_generators={"batches": gen})
    bar.close()
    logger.close()

    val_frames = np.concatenate([e["frames"] for e in val_eps])
    val_masks = np.concatenate([e["masks"] for e in val_eps]).astype(np.int64)
    k = cfg.model.num_classes
    model_scores = scores(confusion(predict(model, val_frames), val_masks, k))
    baseline = scores(confusion(colour_threshold(val_frames, fit_colour_boxes(frames, masks)), val_masks, k))
    passed = model_scores["macro_f1_foreground"] >= cfg.f1_gate
    save_checkpoint(
        out / MODEL_FILE,
        model,
        rng=False,
        step=step,
        config=cfg,
        extra={"recipe": "segmenter", "gate_passed": passed},
    )
    gate = {
        "f1_gate": cfg.f1_gate,
        "val_macro_f1_foreground": model_scores["macro_f1_foreground"],
        "passed": passed,
    }
    atomic_write_json(out / GATE_FILE, gate)
    metrics = {
        "steps": step,
        "final": last,
        "val": model_scores,
        "baseline_colour_threshold": baseline,
        "gate": gate,
        "bad_steps": guard.bad_steps_total,
    }
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


class SegmenterGateError(RuntimeError):
    """The segmenter's validation F1 did not reach its gate: it is not to be used downstream."""


def load_segmenter(step_dir) -> UNet:
    """The trained U-Net, only if its validation F1 passed the gate (else SegmenterGateError)."""
    from physworld.training.config import config_from_dict

    step_dir = Path(step_dir)
    gate = json.loads((step_dir / GATE_FILE).read_text())
    if not gate["passed"]:
        raise SegmenterGateError(
            f"{step_dir}: segmenter validation F1 {gate['val_macro_f1_foreground']:.3f} is below its gate "
            f"{gate['f1_gate']}; train longer (segmenter.steps) or lower segmenter.f1_gate"
        )
    ckpt = load_checkpoint(step_dir / MODEL_FILE)
    model = UNet(config_from_dict(ckpt.meta["config"], SegmenterRecipeConfig).model)
    restore(ckpt, model, rng=False)
    return model.eval().requires_grad_(False)
