"""Recipe: train the Visual Expert on labelled clips (supervised: states, parameters, masks).

    physworld train visual-expert --config configs/visual_expert/quickstart.yaml [key=value ...]

The loop is written out here, top to bottom:

  1. load and validate the config; check the clips fit the model (size, frame rate, 2D/3D)
  2. read the clip labels (parameters from the scene specs, cameras) and the training windows;
     set the model's normalisation (mean, std of each state field and parameter) from them, and start
     its state readout as least squares from the true masks' geometry (VisualExpert.fit_readout)
  3. build model and optimizer; resume from checkpoints/latest if present
  4. optimizer steps: Hungarian matching of slots to bodies (no gradient), then the matched losses
     (state per field normalised, parameters, mask BCE + dice, existence), NaN/Inf guard, clipping,
     warmup + cosine; log, validate, checkpoint
  5. `latest` throughout, `best` by validation loss

Resuming restores model, optimizer, RNG states and the data position (epoch, sample), so a run killed
at any moment ends with the same weights, bit for bit on CPU, as one never interrupted.

train.device (cpu | cuda | auto): the model, its losses and the batches go there; the Hungarian
matching stays on CPU (scipy; one copy of the outputs per batch), checkpoints hold CPU tensors.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from physworld.data import clips as C
from physworld.data.clip_labels import ClipWindows, check_clips_fit, clip_labels, collate_windows
from physworld.data.splits import require_split
from physworld.data.windows import EpochSampler
from physworld.fileio import atomic_write_json, check_output_path, remove_stale_temporaries
from physworld.models.visual_expert import (
    RECIPE,
    VisualExpert,
    VisualExpertConfig,
    check_config,
    hungarian_match,
    masks_from_segmentation,
)
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
from physworld.worlds.registry import resolve_types

# ---------------------------------------------------------------- config


@dataclass
class DataConfig:
    train_dir: str  # a dataset with clips (physworld generate --with-clips, or render-clips)
    val_dir: str | None = None  # a dataset with clips to validate on; None: `best` = `latest`
    scenario_types: tuple[str, ...] = ("all",)  # which of the dataset's types to train on
    batch_size: int = 8
    window_stride: int = 4  # clip frames between the starts of two training windows of one clip
    val_windows: int = 64  # validation windows scored each evaluation (the first ones, in order)
    readout_windows: int = 256  # training windows the state readout's least-squares start is fitted on
    num_workers: int = (
        0  # DataLoader worker processes; 0 reads in the loop (windows are memory-mapped arrays)
    )


@dataclass
class VisionTrainConfig(TrainConfig):
    # cpu | cuda | auto (cuda when available). Checkpoints hold CPU tensors either way; bit-identical
    # resume is promised on CPU only (CUDA kernels are not all deterministic).
    device: str = "cpu"

    def validate(self):
        super().validate()
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"train.device must be cpu, cuda or auto, got {self.device!r}")


@dataclass
class LossConfig:
    state: float = 1.0  # smooth L1 of normalised fields; angle 1 - cos, quaternion 1 - |dot|
    params: float = 0.5
    mask_bce: float = 1.0
    mask_dice: float = 1.0
    exist: float = 0.5
    match_mask: float = 1.0  # Hungarian cost weights: 1 - mask dice, position error / std, 1 - p(exists)
    match_position: float = 1.0
    match_exist: float = 0.5


@dataclass
class RecipeConfig:
    data: DataConfig
    train: VisionTrainConfig
    model: VisualExpertConfig = field(default_factory=VisualExpertConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def validate(self):
        for name in ("batch_size", "window_stride", "val_windows", "readout_windows"):
            if getattr(self.data, name) < 1:
                raise ValueError(f"data.{name} must be at least 1, got {getattr(self.data, name)}")
        if self.data.num_workers < 0:
            raise ValueError(f"data.num_workers must be at least 0, got {self.data.num_workers}")
        resolve_types(self.data.scenario_types)
        check_config(self.model)
        if self.train.curriculum_stages:
            raise ValueError(
                "train.curriculum_stages: the visual-expert recipe has no curriculum; set it to 0"
            )
        for name, value in vars(self.loss).items():
            if not value >= 0:
                raise ValueError(f"loss.{name} must be at least 0, got {value}")
        check_schedule(self.optim, self.train)


# ---------------------------------------------------------------- data


def load_windows(data_dir, cfg: RecipeConfig, stride: int, progress: bool = False) -> ClipWindows:
    """The dataset's clips as model windows, refusing clips the model cannot read (one line)."""
    clips_dir = Path(data_dir) / C.DEFAULT_SUBDIR
    labels = clip_labels(data_dir, progress=progress)
    m = cfg.model
    check_clips_fit(labels["meta"], m.dims, m.image_size, m.frames, m.fps, clips_dir)
    present = set(labels["scenario_types"])
    types = [t for t in resolve_types(cfg.data.scenario_types) if t in present]
    if not types:
        raise ValueError(f"{data_dir}: no clips of data.scenario_types {list(cfg.data.scenario_types)}")
    return ClipWindows(labels, m.frames, stride, scenario_types=types)


def normalisation(windows: ClipWindows, dims: int) -> dict:
    """Mean and std of each state field (every body, every frame of the selected clips) and of each
    parameter (dynamic bodies), in world units."""
    labels, chosen = windows.labels, sorted({i for i, _ in windows.windows})
    states = [windows.clips[i]["states"].reshape(-1, 6 if dims == 2 else 13).numpy() for i in chosen]
    states = np.concatenate(states) if states else np.zeros((1, 6 if dims == 2 else 13), np.float32)
    params = [labels["params"][i][labels["dynamic"][i]] for i in chosen]
    params = np.concatenate(params) if params else np.zeros((1, 3), np.float32)
    if len(params) == 0:
        params = np.zeros((1, 3), np.float32)
    return {
        "state_mean": states.mean(0).tolist(),
        "state_std": states.std(0).tolist(),
        "param_mean": params.mean(0).tolist(),
        "param_std": params.std(0).tolist(),
    }


def batches(dataset: ClipWindows, batch_size: int, seed: int, position: dict, num_workers: int = 0):
    """Endless batches in a fixed order by (seed, epoch, sample); `position` advances as they are taken."""
    if len(dataset) < batch_size:
        raise ValueError(
            f"{len(dataset)} training windows, fewer than one batch of {batch_size}; generate more scenes or "
            "lower data.batch_size"
        )
    while True:
        sampler = EpochSampler(len(dataset), seed=seed, epoch=position["epoch"], start=position["sample"])
        loader = DataLoader(
            dataset,
            batch_sampler=torch.utils.data.BatchSampler(sampler, batch_size, drop_last=True),
            collate_fn=collate_windows,
            num_workers=num_workers,
        )
        for batch in loader:
            position["sample"] += batch_size
            yield batch
        position["epoch"] += 1
        position["sample"] = 0


def resolve_device(name: str) -> torch.device:
    """train.device as a torch.device; cuda asked for and absent is one line."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "train.device=cuda: torch sees no CUDA device (a CPU build of torch, or no GPU); "
            "use train.device=cpu or auto"
        )
    return torch.device(name)


def to_device(batch: dict, device: torch.device) -> dict:
    """The batch's tensors (and lists of per-clip tensors) on `device`; everything else as it is."""

    def move(v):
        if isinstance(v, torch.Tensor):
            return v.to(device, non_blocking=True)
        if isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
            return [t.to(device, non_blocking=True) for t in v]
        return v

    return {k: move(v) for k, v in batch.items()}


def step_losses(model: VisualExpert, batch: dict, w: LossConfig, device: torch.device):
    """(outputs, losses) of one CPU batch: the Hungarian matching runs on CPU (scipy), the model and
    the losses on `device`."""
    out = model(batch["frames"].to(device, non_blocking=True))
    masks = targets(model, batch)  # on CPU, from the CPU batch
    matches = match(model, out, batch, masks, w)
    if device.type != "cpu":
        batch, masks = to_device(batch, device), [m.to(device, non_blocking=True) for m in masks]
    return out, compute_losses(model, out, batch, masks, matches, w)


# ---------------------------------------------------------------- losses


def targets(model: VisualExpert, batch: dict) -> list[torch.Tensor]:
    """Ground-truth masks at the model's mask size, per clip [T, N, h, w]."""
    return [
        masks_from_segmentation(s, st.shape[1], model.mask_size)
        for s, st in zip(batch["segmentation"], batch["states"], strict=True)
    ]


def match(model: VisualExpert, out: dict, batch: dict, masks: list, loss: LossConfig):
    return hungarian_match(
        out,
        batch["states"],
        masks,
        state_std=model.state_std,
        weights=(loss.match_mask, loss.match_position, loss.match_exist),
    )


def compute_losses(
    model: VisualExpert, out: dict, batch: dict, masks: list, matches: list, w: LossConfig
) -> dict:
    """The matched losses, each a mean over what it covers; 'total' is their weighted sum."""
    dims = model.config.dims
    pred_n, tgt_n, param_err, exist_tgt = [], [], [], torch.zeros_like(out["exist_logit"])
    mask_logits = out["mask_logits"]  # [B, T, K, h, w]
    mask_tgt = torch.zeros_like(mask_logits)
    dice = []
    for b, (slots, bodies) in enumerate(matches):
        if len(slots) == 0:
            continue
        exist_tgt[b, slots] = 1.0
        pred_n.append(out["state_normalised"][b, slots])  # [M, T, S]
        tgt_n.append(model.normalise_state(batch["states"][b][:, bodies].transpose(0, 1)))
        dyn = batch["dynamic"][b][bodies]
        if dyn.any():
            diff = (out["params"][b, slots][dyn] - batch["params"][b][bodies][dyn]) / model.param_std
            param_err.append(F.smooth_l1_loss(diff, torch.zeros_like(diff), reduction="none").mean(-1))
        gt = masks[b][:, bodies]  # [T, M, h, w]
        mask_tgt[b][:, slots] = gt
        p = torch.sigmoid(mask_logits[b][:, slots]).flatten(2)  # [T, M, h*w]
        g = gt.flatten(2)
        num = 2 * (p * g).sum((0, 2)) + 1.0
        den = p.sum((0, 2)) + g.sum((0, 2)) + 1.0
        dice.append(1 - num / den)
    zero = out["exist_logit"].sum() * 0.0
    parts = {"state": zero, "params": zero, "mask_dice": zero}
    if pred_n:
        pred, tgt = torch.cat(pred_n), torch.cat(tgt_n)  # [M, T, S]
        if dims == 2:
            lin = [0, 1, 3, 4, 5]
            rot = (1 - torch.cos(pred[..., 2] - tgt[..., 2])).mean()
        else:
            lin = [0, 1, 2, 7, 8, 9, 10, 11, 12]
            rot = (1 - (pred[..., 3:7] * tgt[..., 3:7]).sum(-1).abs()).mean()
        parts["state"] = F.smooth_l1_loss(pred[..., lin], tgt[..., lin]) + rot
        parts["mask_dice"] = torch.cat(dice).mean()
    if param_err:
        parts["params"] = torch.cat(param_err).mean()
    parts["mask_bce"] = F.binary_cross_entropy_with_logits(mask_logits, mask_tgt)
    parts["exist"] = F.binary_cross_entropy_with_logits(out["exist_logit"], exist_tgt)
    parts["total"] = (
        w.state * parts["state"]
        + w.params * parts["params"]
        + w.mask_bce * parts["mask_bce"]
        + w.mask_dice * parts["mask_dice"]
        + w.exist * parts["exist"]
    )
    return parts


@torch.no_grad()
def validate(
    model: VisualExpert, val_batches: list, w: LossConfig, device: str | torch.device = "cpu"
) -> dict:
    """Mean validation loss and the matched bodies' position error in world units."""
    model.eval()
    total, err, count = 0.0, 0.0, 0
    pos = slice(0, model.config.dims)
    for batch in val_batches:
        out = model(batch["frames"].to(device))
        masks = targets(model, batch)
        matches = match(model, out, batch, masks, w)
        total += float(
            compute_losses(model, out, to_device(batch, device), [m.to(device) for m in masks], matches, w)[
                "total"
            ]
        )
        state = out["state"].cpu()
        for b, (slots, bodies) in enumerate(matches):
            d = state[b, slots][..., pos] - batch["states"][b][:, bodies].transpose(0, 1)[..., pos]
            err += float(d.norm(dim=-1).sum())
            count += d.shape[0] * d.shape[1]
    model.train()
    return {"val_loss": total / max(len(val_batches), 1), "val_position_error": err / max(count, 1)}


# ---------------------------------------------------------------- the recipe


def train(cfg: RecipeConfig, progress: bool = True) -> dict:
    out_dir = Path(cfg.train.output_dir)
    check_output_path(out_dir, "train.output_dir")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    # On a GPU a kernel without a deterministic version warns instead of stopping the run.
    set_deterministic(cfg.train.deterministic, warn_only=device.type != "cpu")

    # Supervised training reads labels: a split generated with --split unlabelled is refused here.
    require_split(cfg.data.train_dir, "labelled", "data.train_dir")
    dataset = load_windows(cfg.data.train_dir, cfg, cfg.data.window_stride, progress=progress)
    train_types = sorted({dataset.labels["scenario_types"][i] for i, _ in dataset.windows})
    stats = normalisation(dataset, cfg.model.dims)
    val_batches = []
    if cfg.data.val_dir:
        val = load_windows(cfg.data.val_dir, cfg, cfg.model.frames, progress=False)
        items = [val[j] for j in range(min(len(val), cfg.data.val_windows))]
        size = cfg.data.batch_size
        val_batches = [collate_windows(items[i : i + size]) for i in range(0, len(items), size)]

    model = VisualExpert(cfg.model)
    model.set_normalisation(**stats)
    # The state readout starts as least squares from the true masks' geometry (first windows, in order).
    sample = [dataset[j] for j in range(min(len(dataset), cfg.data.readout_windows))]
    model.fit_readout(
        [
            masks_from_segmentation(it["segmentation"], it["states"].shape[1], model.mask_size)
            for it in sample
        ],
        [it["states"] for it in sample],
    )
    model.to(device)  # after the CPU least-squares start; the optimizer is built on the moved weights
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    ckpts = CheckpointManager(out_dir / "checkpoints")
    clips_manifest = C.Clips(Path(cfg.data.train_dir) / C.DEFAULT_SUBDIR).manifest
    run_info = {
        "recipe": RECIPE,
        "model_config": config_to_dict(cfg.model),
        "train_dir": str(cfg.data.train_dir),
        "train_scenario_types": train_types,
        "train_clip_shards": [s["sha256"] for s in clips_manifest["shards"]],
        "normalisation": stats,
        "param_mean": stats["param_mean"],  # the mean-parameter baseline
    }
    identity = {k: run_info[k] for k in ("model_config", "train_scenario_types", "train_clip_shards")}
    step, best = 0, float("inf")
    position = {"epoch": 0, "sample": 0}
    resumed = check_resume(ckpts.directory, RECIPE, identity, out_dir)
    if resumed is not None:
        meta = restore(resumed, model, optimizer, rng=True)
        state = meta["extra"]["train_state"]
        step, position, best = state["step"], state["position"], state["best"]
        if step >= cfg.train.max_steps:
            summary = {
                "steps": step,
                "best_val_loss": best if val_batches else None,
                "output_dir": str(out_dir),
            }
            summary["latest"] = str(resumed.path)
            if not (out_dir / "summary.json").exists():
                atomic_write_json(out_dir / "summary.json", summary)
            return dict(summary, reused=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    remove_stale_temporaries(ckpts.directory)
    tensorboard = cfg.train.tensorboard
    if tensorboard and importlib.util.find_spec("tensorboard") is None:
        print("note: the tensorboard package is absent; TensorBoard scalars are off (metrics.jsonl has them)")
        tensorboard = False
    logger = MetricLogger(
        out_dir,
        tensorboard=tensorboard,
        wandb_project=cfg.train.wandb_project,
        wandb_config=config_to_dict(cfg),
        resume_step=step if resumed is not None else None,
    )
    guard = NonFiniteGuard(cfg.train.max_bad_steps)

    def save(kind: str, metric: float | None = None):
        extra = dict(run_info, train_state={"step": step, "position": dict(position), "best": best})
        if kind == "latest":
            ckpts.save_latest(model=model, optimizer=optimizer, extra=extra)
        else:
            ckpts.save_best(metric, model=model, optimizer=optimizer, extra=extra)

    stream = batches(dataset, cfg.data.batch_size, cfg.train.seed, position, cfg.data.num_workers)
    bar = (
        progress_bar(total=cfg.train.max_steps, initial=step, desc="train visual-expert")
        if progress
        else None
    )
    model.train()
    t_last, windows_since = time.perf_counter(), 0
    try:
        while step < cfg.train.max_steps:
            optimizer.zero_grad(set_to_none=True)
            loss_total, parts_total = 0.0, {}
            for _ in range(cfg.optim.grad_accum):
                batch = next(stream)
                _, parts = step_losses(model, batch, cfg.loss, device)
                (parts["total"] / cfg.optim.grad_accum).backward()
                loss_total += float(parts["total"].detach()) / cfg.optim.grad_accum
                for k, v in parts.items():
                    parts_total[k] = parts_total.get(k, 0.0) + float(v.detach()) / cfg.optim.grad_accum
                windows_since += len(batch["clip"])
            if not guard.check(torch.tensor(loss_total), model):
                # A non-finite loss or gradient: skip the update, keep the weights (TooManyBadSteps
                # after max_bad_steps in a row).
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
                    lr=lr,
                    grad_norm=grad_norm,
                    windows_per_s=windows_since / max(now - t_last, 1e-9),
                    epoch=position["epoch"],
                    **{("loss" if k == "total" else f"loss_{k}"): v for k, v in parts_total.items()},
                )
                t_last, windows_since = now, 0
            if val_batches and (step % cfg.train.eval_every == 0 or step == cfg.train.max_steps):
                metrics = validate(model, val_batches, cfg.loss, device)
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
            f"the last good checkpoint is {ckpts.latest_path()}. Lower optim.lr or check the data."
        ) from e
    finally:
        if bar is not None:
            bar.close()
    if not val_batches:
        save("best", metric=float("nan"))
    logger.close()
    summary = {
        "steps": step,
        "best_val_loss": best if val_batches else None,
        "output_dir": str(out_dir),
        "latest": str(ckpts.latest_path()),
    }
    atomic_write_json(out_dir / "summary.json", summary)
    return summary


def main(config_path: str, overrides: list[str], progress: bool = True) -> dict:
    return train(load_config(config_path, RecipeConfig, overrides), progress=progress)
