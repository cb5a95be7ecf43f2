"""Recipe: train MotionSSM (text -> motion, models/motion_ssm.py) with or without the PhysicsSSM gate.

    physworld train motion --config configs/motion/tiny.yaml [key=value ...]
    physworld train motion --config configs/motion/small.yaml model.gate=false train.output_dir=runs/motion_nogate
    physworld train motion --config configs/motion/small.yaml data.source=humanml3d data.root=/path/to/HumanML3D

Steps, top to bottom:
  1. load and validate the config, save it resolved beside the outputs
  2. the data: the DeepMimic fixture (data/motion.py; a fixture, not KIT-ML/HumanML3D) or a
     HumanML3D/KIT-ML folder; feature statistics and the word vocabulary from the training windows
  3. the model and optimizer; resume from checkpoints/latest if present (same config and data only)
  4. optimizer steps: a batch of windows and one phrasing each, drawn from one seeded generator (saved
     in the checkpoint), the loss (reconstruction + lambda x physics terms through forward kinematics),
     NaN/Inf guard, clipping, warmup + cosine; log (JSONL, TensorBoard), validate on the held-out
     windows with their held-out phrasings, checkpoint (`latest`, `best` by validation loss)

Resuming restores model, optimizer, the data generator and the step: a run killed at any moment ends
with the same weights, bit for bit on CPU, as one never interrupted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from physworld.data.motion import build_vocab, feature_points, load_dataset
from physworld.fileio import atomic_write_json, remove_stale_temporaries
from physworld.models.motion_ssm import MotionSSM, MotionSSMConfig
from physworld.training.checkpoint import CheckpointManager, check_resume, restore
from physworld.training.common import OptimConfig, TrainConfig, check_schedule
from physworld.training.config import config_to_dict, load_config, save_config
from physworld.training.loop_utils import (
    NonFiniteGuard,
    TooManyBadSteps,
    clip_gradients,
    cosine_with_warmup,
    progress_bar,
    seed_everything,
    set_deterministic,
    set_lr,
)
from physworld.training.metrics import MetricLogger

RECIPE = "motion"


@dataclass
class DataConfig:
    source: str = "deepmimic"  # deepmimic: the fixture from pybullet's clips; humanml3d: data.root's folder
    root: str | None = None  # HumanML3D / KIT-ML folder (new_joints/, texts/, train.txt, test.txt)
    window: int = 32  # frames per motion (must equal model.frames)
    fps: float = 20.0  # the fixture's frame rate (HumanML3D: 20, KIT-ML: 12.5, from the data)
    stride: int = 4  # frames between training window starts
    heldout_fraction: float = 0.25  # fixture: the share of each clip's window starts held out
    batch_size: int = 16
    val_windows: int = 256  # held-out windows scored at each evaluation (the first ones, fixed)


@dataclass
class RecipeConfig:
    train: TrainConfig
    data: DataConfig = field(default_factory=DataConfig)
    model: MotionSSMConfig = field(default_factory=MotionSSMConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self):
        if self.data.window != self.model.frames:
            raise ValueError(
                f"data.window ({self.data.window}) must equal model.frames ({self.model.frames}); set both"
            )
        for name in ("batch_size", "val_windows", "stride", "window"):
            if getattr(self.data, name) < 1:
                raise ValueError(f"data.{name} must be at least 1")
        if not 0 < self.data.heldout_fraction < 1:
            raise ValueError(
                f"data.heldout_fraction must be between 0 and 1, got {self.data.heldout_fraction}"
            )
        if self.data.source not in ("deepmimic", "humanml3d"):
            raise ValueError(f"data.source must be deepmimic or humanml3d, got {self.data.source!r}")
        if self.data.source == "humanml3d" and not self.data.root:
            raise ValueError(
                "data.source=humanml3d needs data.root: the folder holding new_joints/, texts/ and train.txt"
            )
        if not self.data.fps > 0:
            raise ValueError(f"data.fps must be positive, got {self.data.fps}")
        check_schedule(self.optim, self.train)


def data_identity(cfg: RecipeConfig) -> dict:
    return {"data_config": config_to_dict(cfg.data), "model_config": config_to_dict(cfg.model)}


def feature_stats(features: np.ndarray) -> dict:
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    # a floor on the std: constant features (a joint that never moves) must not blow up the loss
    return {"mean": flat.mean(0).astype(np.float32), "std": np.maximum(flat.std(0), 1e-2).astype(np.float32)}


def draw_batch(part: dict, size: int, generator: torch.Generator) -> tuple[list[str], torch.Tensor]:
    """`size` windows and one of each window's phrasings, drawn with `generator` (nothing else)."""
    idx = torch.randint(len(part["features"]), (size,), generator=generator).tolist()
    pick = torch.randint(1 << 30, (size,), generator=generator).tolist()
    texts = [part["texts"][i][k % len(part["texts"][i])] for i, k in zip(idx, pick, strict=True)]
    return texts, torch.as_tensor(part["features"][idx])


@torch.no_grad()
def evaluate(model: MotionSSM, part: dict, count: int, batch_size: int) -> dict:
    """Held-out loss and joint position error (mm) of the gated output, first phrasing per window."""
    model.eval()
    n = min(count, len(part["features"]))
    loss_sum, err_sum = 0.0, 0.0
    joints = model.skeleton["joints"]
    for i in range(0, n, batch_size):
        texts = [part["texts"][k][0] for k in range(i, min(i + batch_size, n))]
        target = torch.as_tensor(part["features"][i : i + len(texts)])
        text_input = model.encode_text(texts)
        loss_sum += float(model.loss(text_input, target)) * len(texts)
        pred = feature_points(model(text_input)["motion"], model.skeleton)[..., joints, :]
        true = feature_points(target, model.skeleton)[..., joints, :]
        err_sum += float((pred - true).norm(dim=-1).mean(dim=(1, 2)).sum()) * 1000
    model.train()
    return {"val_loss": loss_sum / n, "val_mpjpe_mm": err_sum / n}


def train(cfg: RecipeConfig, progress: bool = True) -> dict:
    out = Path(cfg.train.output_dir)
    ckpts = CheckpointManager(out / "checkpoints")
    identity = data_identity(cfg)
    resumed = check_resume(ckpts.directory, RECIPE, identity, out)  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    remove_stale_temporaries(ckpts.directory)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    set_deterministic(cfg.train.deterministic)

    data = load_dataset(
        cfg.data.source,
        cfg.data.root,
        cfg.data.window,
        cfg.data.fps,
        cfg.data.stride,
        cfg.data.heldout_fraction,
    )
    train_part, test_part, skeleton = data["train"], data["test"], data["skeleton"]
    if len(train_part["features"]) < cfg.data.batch_size:
        raise ValueError(
            f"{len(train_part['features'])} training windows, fewer than data.batch_size={cfg.data.batch_size}; lower it"
        )
    vocab = build_vocab(train_part["texts"])
    model = MotionSSM(cfg.model, skeleton, vocab, feature_stats(train_part["features"]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    generator = torch.Generator().manual_seed(cfg.train.seed + 1)
    guard = NonFiniteGuard(cfg.train.max_bad_steps)
    run_info = {
        "recipe": RECIPE,
        **identity,
        "skeleton": skeleton,
        "vocab": vocab,
        "fps": float(data["fps"]),
        "data_note": data["note"],
        "train_windows": len(train_part["features"]),
        "heldout_windows": len(test_part["features"]),
    }
    step, best = 0, float("inf")
    if resumed is not None:
        meta = restore(resumed, model, optimizer, rng=True, extra_generators={"data": generator})
        state = meta["extra"]["train_state"]
        step, best = state["step"], state["best"]
        guard.load_state_dict(state["guard"])
    logger = MetricLogger(
        out,
        tensorboard=cfg.train.tensorboard,
        wandb_project=cfg.train.wandb_project,
        wandb_config=config_to_dict(cfg),
        resume_step=step if resumed is not None else None,
    )

    def save(kind: str, metric: float | None = None):
        extra = dict(run_info, train_state={"step": step, "best": best, "guard": guard.state_dict()})
        kwargs = dict(
            model=model, optimizer=optimizer, step=step, extra=extra, extra_generators={"data": generator}
        )
        if kind == "latest":
            ckpts.save_latest(**kwargs)
        elif kind == "best":
            ckpts.save_best(metric, **kwargs)

    bar = progress_bar(total=cfg.train.max_steps, initial=step, desc="train motion") if progress else None
    model.train()
    t_last, windows_since = time.perf_counter(), 0
    try:
        while step < cfg.train.max_steps:
            optimizer.zero_grad(set_to_none=True)
            loss_total, terms_total = 0.0, {}
            for _ in range(cfg.optim.grad_accum):
                texts, target = draw_batch(train_part, cfg.data.batch_size, generator)
                loss, terms = model.loss(model.encode_text(texts), target, terms=True)
                (loss / cfg.optim.grad_accum).backward()
                loss_total += float(loss.detach()) / cfg.optim.grad_accum
                for name, value in terms.items():
                    terms_total[name] = (
                        terms_total.get(name, 0.0) + float(value.detach()) / cfg.optim.grad_accum
                    )
                windows_since += len(texts)
            if not guard.check(torch.tensor(loss_total), model):
                # a non-finite loss or gradient: skip the update; TooManyBadSteps after max_bad_steps in a row
                optimizer.zero_grad(set_to_none=True)
                logger.log(step, skipped_nonfinite=guard.bad_steps_total)
                continue
            grad_norm = clip_gradients(model, cfg.optim.grad_clip)
            lr = cosine_with_warmup(
                step, cfg.optim.warmup_steps, cfg.train.max_steps, cfg.optim.lr, cfg.optim.min_lr_ratio
            )
            set_lr(optimizer, lr)
            optimizer.step()
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_total:.4f}")
            if step % cfg.train.log_every == 0 or step == cfg.train.max_steps:
                now = time.perf_counter()
                logger.log(
                    step,
                    loss=loss_total,
                    **{f"loss_{k}": v for k, v in terms_total.items()},
                    lr=lr,
                    grad_norm=grad_norm,
                    windows_per_s=windows_since / max(now - t_last, 1e-9),
                )
                t_last, windows_since = now, 0
            if step % cfg.train.eval_every == 0 or step == cfg.train.max_steps:
                metrics = evaluate(model, test_part, cfg.data.val_windows, cfg.data.batch_size)
                logger.log(step, **metrics)
                if metrics["val_loss"] < best:
                    best = metrics["val_loss"]
                    save("best", metric=best)
            if step % cfg.train.save_every == 0 or step == cfg.train.max_steps:
                save("latest")
    except TooManyBadSteps as e:
        logger.close()
        raise RuntimeError(
            f"stopped after {cfg.train.max_bad_steps} non-finite steps in a row at step {step}; "
            f"the last good checkpoint is {ckpts.latest_path()}. Lower optim.lr or model.physics_weight."
        ) from e
    finally:
        if bar is not None:
            bar.close()
    logger.close()
    summary = {
        "steps": step,
        "best_val_loss": best,
        "output_dir": str(out),
        "latest": str(ckpts.latest_path()),
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def main(config_path: str, overrides: list[str], progress: bool = True) -> dict:
    return train(load_config(config_path, RecipeConfig, overrides), progress=progress)
