"""Recipe: ConvGRU forward dynamics in the frozen SimCLR encoder's feature space.

  physworld pipeline run configs/pipeline/drawer_open.yaml --only dynamics   (needs data and simclr)

1. encode every frame once with the frozen encoder into feature maps [N, C, h, w]
2. per step: a batch of windows (features_t .. features_{t+K}, actions_t .. actions_{t+K-1}) from
   training episodes; loss = K-step open-loop prediction MSE + smoothness (hidden-map change);
   warmup + cosine LR, NaN/Inf guard, clipping, `checkpoints/latest` every `checkpoint_every` steps
3. score on validation episodes: k-step feature error for k = 1..K, beside the copy-last-frame
   baseline (features_{t+k} predicted as features_t), both relative to the features' variance
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from physworld.data.episodes import load_all, split_episodes
from physworld.fileio import atomic_write_json
from physworld.models.convgru import ConvGRUConfig, ConvGRUDynamics
from physworld.recipes.simclr import frames_tensor, load_encoder
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

MODEL_FILE = "dynamics.safetensors"


@dataclass
class DynamicsRecipeConfig:
    model: ConvGRUConfig = field(default_factory=ConvGRUConfig)
    horizon: int = 5  # K: steps predicted open loop in training and scored in evaluation
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 50
    grad_clip: float = 1.0
    checkpoint_every: int = 100
    val_fraction: float = 0.2
    seed: int = 0


@torch.no_grad()
def encode_episodes(encoder, episodes, batch: int = 256) -> list[torch.Tensor]:
    out = []
    for e in episodes:
        f = e["frames"]
        out.append(
            torch.cat([encoder.feature_map(frames_tensor(f[i : i + batch])) for i in range(0, len(f), batch)])
        )
    return out


def window_index(features: list[torch.Tensor], horizon: int) -> np.ndarray:
    """(episode, start) of every window of horizon + 1 observations."""
    return np.array(
        [(e, t) for e, f in enumerate(features) for t in range(len(f) - horizon)], dtype=np.int64
    ).reshape(-1, 2)


def gather(features, actions, index, horizon):
    f = torch.stack([features[e][t : t + horizon + 1] for e, t in index])  # [B, K+1, C, h, w]
    a = torch.stack([torch.from_numpy(actions[e][t : t + horizon]) for e, t in index])  # [B, K, A]
    return f, a


@torch.no_grad()
def k_step_errors(model, features, actions, horizon: int, batch: int = 256) -> dict:
    index = window_index(features, horizon)
    model_err = torch.zeros(horizon)
    copy_err = torch.zeros(horizon)
    for i in range(0, len(index), batch):
        f, a = gather(features, actions, index[i : i + batch], horizon)
        preds, _ = model.rollout(f[:, 0], a)
        model_err += (preds - f[:, 1:]).pow(2).mean(dim=(2, 3, 4)).sum(0)
        copy_err += (f[:, :1] - f[:, 1:]).pow(2).mean(dim=(2, 3, 4)).sum(0)
    n = max(len(index), 1)
    variance = float(torch.cat(features).var())
    return {
        "windows": int(len(index)),
        "model_mse": (model_err / n).tolist(),
        "copy_last_mse": (copy_err / n).tolist(),
        "model_relative": (model_err / n / variance).tolist(),
        "copy_last_relative": (copy_err / n / variance).tolist(),
    }


def run(cfg: DynamicsRecipeConfig, data_dir, encoder_dir, out_dir, progress: bool = True) -> dict:
    out = Path(out_dir)
    seed_everything(cfg.seed)
    encoder = load_encoder(encoder_dir)
    episodes = load_all(data_dir, keys=("frames", "actions"))
    train_eps, val_eps = split_episodes(episodes, cfg.val_fraction)
    train_f, val_f = encode_episodes(encoder, train_eps), encode_episodes(encoder, val_eps)
    train_a = [e["actions"].astype(np.float32) for e in train_eps]
    val_a = [e["actions"].astype(np.float32) for e in val_eps]
    if cfg.model.feature_channels != train_f[0].shape[1]:
        raise ValueError(
            f"dynamics.model.feature_channels is {cfg.model.feature_channels} but the encoder gives {train_f[0].shape[1]}"
        )
    index = window_index(train_f, cfg.horizon)
    if len(index) == 0 or not val_f:
        raise ValueError(f"dynamics: no training windows of horizon {cfg.horizon} or no validation episodes")

    model = ConvGRUDynamics(cfg.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    ckpts = CheckpointManager(out / "checkpoints")
    step = 0
    if (latest := ckpts.latest_path()) is not None:
        step = restore(load_checkpoint(latest), model, optimizer, extra_generators={"batches": gen})["step"]
    guard = NonFiniteGuard()
    logger = MetricLogger(out, tensorboard=False, resume_step=step)
    bar = progress_bar(cfg.steps, initial=step, desc="dynamics", disable=not progress)
    last = {}
    while step < cfg.steps:
        set_lr(optimizer, cosine_with_warmup(step, min(cfg.warmup_steps, cfg.steps), cfg.steps, cfg.lr))
        pick = torch.randint(len(index), (cfg.batch_size,), generator=gen).numpy()
        f, a = gather(train_f, train_a, index[pick], cfg.horizon)
        losses = model.loss(f, a)
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
    model.eval()
    save_checkpoint(out / MODEL_FILE, model, rng=False, step=step, config=cfg, extra={"recipe": "dynamics"})
    metrics = {
        "steps": step,
        "final": last,
        "val": k_step_errors(model, val_f, val_a, cfg.horizon),
        "bad_steps": guard.bad_steps_total,
    }
    atomic_write_json(out / "metrics.json", metrics)
    return metrics
