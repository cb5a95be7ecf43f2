"""Recipe: a SimCLR vision backbone on drawer_open's rendered frames, frozen after training.

    physworld pipeline run configs/pipeline/drawer_open.yaml --only simclr     (this step alone)

  1. load every episode's frames; whole episodes go to validation (data.episodes.split_episodes)
  2. per step: a batch of `batch_size` frames, two augmentations each (crop, colour jitter, noise),
     NT-Xent with the other 2B - 2 views of the batch as negatives (+ the optional reconstruction head);
     warmup + cosine LR, NaN/Inf guard, clipping; `checkpoints/latest` every `checkpoint_every` steps
  3. freeze: `encoder.safetensors` holds the encoder alone, marked frozen
  4. score: a ridge linear probe from frozen pooled features to the drawer handle position and the
     gripper position (train episodes -> validation episodes, R^2), beside the same probe on the same
     architecture left at its random initialisation

A killed run resumes from `checkpoints/latest` (model, optimizer, RNG and augmentation generator), so it
ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from physworld.data.episodes import load_all, split_episodes
from physworld.fileio import atomic_write_json
from physworld.models.simclr import SimCLR, SimCLRConfig, augment
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
from physworld.worlds.drawer_open import drawer_opening

ENCODER_FILE = "encoder.safetensors"


@dataclass
class SimCLRRecipeConfig:
    model: SimCLRConfig = field(default_factory=SimCLRConfig)
    steps: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float = 1.0
    checkpoint_every: int = 100
    val_fraction: float = 0.2
    probe_ridge: float = 1e-2
    seed: int = 0


def frames_tensor(frames: np.ndarray) -> torch.Tensor:
    # uint8 [N, H, W, 3] -> float [N, 3, H, W] in [0, 1]
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def embed(encoder, frames: np.ndarray, batch: int = 256) -> np.ndarray:
    encoder.eval()
    out = [encoder(frames_tensor(frames[i : i + batch])).numpy() for i in range(0, len(frames), batch)]
    return np.concatenate(out).astype(np.float64)


def ridge_probe(train_x, train_y, val_x, val_y, ridge: float) -> dict:
    """Closed-form ridge regression on standardised features; R^2 per target column on validation."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    xt = np.hstack([(train_x - mean) / std, np.ones((len(train_x), 1))])
    xv = np.hstack([(val_x - mean) / std, np.ones((len(val_x), 1))])
    reg = ridge * len(xt) * np.eye(xt.shape[1])
    reg[-1, -1] = 0.0
    w = np.linalg.solve(xt.T @ xt + reg, xt.T @ train_y)
    pred = xv @ w
    ss_res = ((pred - val_y) ** 2).sum(0)
    ss_tot = ((val_y - val_y.mean(0)) ** 2).sum(0) + 1e-12
    return {"r2": (1 - ss_res / ss_tot).tolist(), "rmse": np.sqrt(((pred - val_y) ** 2).mean(0)).tolist()}


def probe_targets(states: np.ndarray) -> dict[str, np.ndarray]:
    """What the probe reads back from a frame's features: the drawer (its x, which varies between
    episodes, and how far it is open) and the gripper (hand xyz), in metres."""
    return {
        "drawer_x_opening": np.stack([states[:, 4], drawer_opening(states)], 1),
        "gripper_xyz": states[:, 0:3],
    }


def probe_scores(encoder, train_eps, val_eps, ridge: float) -> dict:
    def xy(eps):
        frames = np.concatenate([e["frames"] for e in eps])
        states = np.concatenate([e["states"] for e in eps])
        return embed(encoder, frames), states

    tx, ts = xy(train_eps)
    vx, vs = xy(val_eps)
    train_targets, val_targets = probe_targets(ts), probe_targets(vs)
    out = {}
    for name in train_targets:
        r = ridge_probe(tx, train_targets[name], vx, val_targets[name], ridge)
        # R^2 only where the validation set varies (more than 1 mm): a constant column has no R^2
        varying = [i for i in range(val_targets[name].shape[1]) if val_targets[name][:, i].std() > 1e-3]
        r2_mean = float(np.mean([r["r2"][i] for i in varying])) if varying else None
        out[name] = {"r2_mean": r2_mean, "r2": r["r2"], "rmse_m": r["rmse"]}
    return out


def run(cfg: SimCLRRecipeConfig, data_dir, out_dir, progress: bool = True) -> dict:
    out = Path(out_dir)
    seed_everything(cfg.seed)
    episodes = load_all(data_dir, keys=("frames", "states"))
    train_eps, val_eps = split_episodes(episodes, cfg.val_fraction)
    if not train_eps or not val_eps:
        raise ValueError(
            f"simclr: need episodes for training and validation, got {len(episodes)} episodes in all"
        )
    frames = np.concatenate([e["frames"] for e in train_eps])
    if cfg.batch_size > len(frames):
        raise ValueError(
            f"simclr.batch_size {cfg.batch_size} is larger than the {len(frames)} training frames"
        )

    model = SimCLR(cfg.model)
    random_encoder = SimCLR(cfg.model).encoder  # the baseline: the same initial weights, never trained
    random_encoder.load_state_dict(model.encoder.state_dict())
    last_loss = None
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    ckpts = CheckpointManager(out / "checkpoints")
    step = 0
    if (latest := ckpts.latest_path()) is not None:
        meta = restore(load_checkpoint(latest), model, optimizer, extra_generators={"augment": gen})
        step = meta["step"]  # random_encoder kept the initial weights: it was copied before the restore
    guard = NonFiniteGuard()
    logger = MetricLogger(out, tensorboard=False, resume_step=step)
    bar = progress_bar(cfg.steps, initial=step, desc="simclr", disable=not progress)
    model.train()
    while step < cfg.steps:
        set_lr(optimizer, cosine_with_warmup(step, min(cfg.warmup_steps, cfg.steps), cfg.steps, cfg.lr))
        idx = torch.randperm(len(frames), generator=gen)[: cfg.batch_size]
        clean = frames_tensor(frames[idx.numpy()])
        losses = model.loss(augment(clean, gen), augment(clean, gen), clean)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if guard.check(losses["loss"], model):
            clip_gradients(model, cfg.grad_clip)
            optimizer.step()
        step += 1
        bar.update(1)
        if step % 10 == 0 or step == cfg.steps:
            logger.log(
                step, **{k: float(v.detach()) for k, v in losses.items()}, lr=optimizer.param_groups[0]["lr"]
            )
        last_loss = float(losses["loss"].detach())
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            ckpts.save_latest(model, optimizer, step=step, config=cfg, extra_generators={"augment": gen})
    bar.close()
    logger.close()

    encoder = model.encoder.eval().requires_grad_(False)  # frozen from here on
    save_checkpoint(
        out / ENCODER_FILE,
        encoder,
        rng=False,
        step=step,
        config=cfg,
        extra={"frozen": True, "recipe": "simclr"},
    )
    metrics = {
        "steps": step,
        "train_frames": int(len(frames)),
        "val_frames": int(sum(len(e["frames"]) for e in val_eps)),
        "final_loss": last_loss,
        "probe": probe_scores(encoder, train_eps, val_eps, cfg.probe_ridge),
        "baseline_random_encoder_probe": probe_scores(
            random_encoder.eval(), train_eps, val_eps, cfg.probe_ridge
        ),
        "bad_steps": guard.bad_steps_total,
    }
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def load_encoder(step_dir) -> torch.nn.Module:
    """The frozen encoder a simclr step wrote (eval mode, no gradients)."""
    from physworld.models.simclr import Encoder
    from physworld.training.config import config_from_dict

    ckpt = load_checkpoint(Path(step_dir) / ENCODER_FILE)
    cfg = config_from_dict(ckpt.meta["config"], SimCLRRecipeConfig)
    encoder = Encoder(cfg.model)
    restore(ckpt, encoder, rng=False)
    return encoder.eval().requires_grad_(False)
