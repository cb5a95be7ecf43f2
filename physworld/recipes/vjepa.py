"""Recipe: V-JEPA pre-training on rendered clips (latent prediction of masked spatio-temporal regions).

    physworld train vjepa --config configs/vjepa/tiny.yaml data.train_dir=DATA [key=value ...]
    torchrun --nproc_per_node 2 -m physworld.recipes.vjepa --config configs/vjepa/tiny.yaml ...

DATA is a dataset with clips (`physworld generate ... --with-clips` or `physworld render-clips`). The
loop is written out here; the model, masks and loss are in physworld/models/vjepa.py. Steps:

  1. load and validate the config; decode the clips once into the memory-mapped clip view (rgb only)
  2. build the context encoder + predictor (transformers' V-JEPA 2 layers) and the EMA target encoder;
     resume from checkpoints/latest if present
  3. per step: a global batch of clips, a random window of model.frames frames from each (resized to
     model.image_size), a seeded mask (3D multi-block tubes; with causality.enabled, a share of the steps
     hides whole future tubelet steps instead), the latent loss (+ the trajectory term), NaN/Inf guard,
     clipping, warmup + cosine LR, AdamW, then the EMA update of the target encoder (momentum from
     objective.ema_start to objective.ema_end over the run)
  4. collapse watch: the std of the features over batch and tokens and the effective rank of the target
     features are logged beside the loss (metrics.jsonl, TensorBoard, the progress bar); the run stops with
     a message when they stay under collapse.* for collapse.patience steps in a row
  5. `latest` every train.save_every steps; at the end `pretrained/` (transformers' save_pretrained of a
     VJEPA2Model: target encoder + predictor) and summary.json; with data.val_dir, validation (the loss on
     fixed masks, and next-step latent prediction against copying the last step)

Resuming restores model, target encoder, optimizer, RNG states, the mask and crop generators and the
data position, so a killed run ends with the same weights, bit for bit on CPU, as one never interrupted.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from physworld.fileio import atomic_write_json, check_output_path, remove_stale_temporaries
from physworld.models.vjepa import (
    RECIPE_ID,
    VJEPA,
    VJEPAConfig,
    causal_masks,
    config_from_hf,
    gather_tokens,
    load_hf_model,
    multiblock_masks,
    target_features,
)
from physworld.training import distributed
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

# ---------------------------------------------------------------- config


@dataclass
class DataConfig:
    train_dir: str  # a dataset with clips (physworld generate --with-clips, or physworld render-clips)
    clips_dir: str | None = None  # default <train_dir>/clips
    val_dir: str | None = None  # a dataset with clips to validate on; None: no validation
    batch_size: int = 8  # the global batch (split over torchrun's processes)
    num_workers: int = 0
    val_clips: int = 32  # validation clips scored each evaluation (the first ones)


@dataclass
class MaskConfig:
    blocks: int = 4  # spatial blocks per clip, each a tube over every tubelet step
    scale: tuple[float, float] = (0.15, 0.3)  # each block's share of the frame's area
    aspect: tuple[float, float] = (0.75, 1.5)


@dataclass
class ObjectiveConfig:
    loss: Literal["l1", "l2"] = "l1"
    ema_start: float = 0.996  # target encoder momentum at step 0, raised linearly to ema_end
    ema_end: float = 1.0


@dataclass
class CausalityConfig:
    """The temporal causality loss: predictions of future latents from past frames only."""

    enabled: bool = False  # needs model.causal: true (block-causal attention in time)
    fraction: float = 0.5  # share of steps whose mask hides whole future tubelet steps (else multi-block)
    min_context_steps: int = 1  # tubelet steps always in the context of a causal step
    trajectory_weight: float = 0.1  # weight of the latent-acceleration term on causal steps (>= 3 steps)


@dataclass
class CollapseConfig:
    """Stop when the representation collapses: both numbers under their floor for `patience` steps."""

    min_std: float = 0.02  # feature std over batch and tokens (layer-normed; about 1 when healthy)
    min_effective_rank: float = 1.5  # of the target features (1 = every token on one line)
    patience: int = 20  # consecutive collapsed steps before the run stops
    check_after: int = 0  # steps before the watch starts


@dataclass
class VJEPATrainConfig(TrainConfig):
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast where the device supports it
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    gradient_checkpointing: bool = False  # recompute each block's activations in backward
    # start from a pretrained VJEPA2Model (a save_pretrained directory, or a hub id where the hub is
    # reachable) instead of a random init; its architecture must equal model.*
    init_from: str | None = None

    def validate(self):
        super().validate()
        if self.curriculum_stages:
            raise ValueError("train.curriculum_stages: the vjepa recipe has no curriculum; set it to 0")


@dataclass
class RecipeConfig:
    data: DataConfig
    train: VJEPATrainConfig
    model: VJEPAConfig = field(default_factory=VJEPAConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    causality: CausalityConfig = field(default_factory=CausalityConfig)
    collapse: CollapseConfig = field(default_factory=CollapseConfig)

    def validate(self):
        for name in ("batch_size", "val_clips"):
            if getattr(self.data, name) < 1:
                raise ValueError(f"data.{name} must be at least 1, got {getattr(self.data, name)}")
        if self.data.num_workers < 0:
            raise ValueError(f"data.num_workers must be at least 0, got {self.data.num_workers}")
        if self.mask.blocks < 1:
            raise ValueError(f"mask.blocks must be at least 1, got {self.mask.blocks}")
        for name in ("scale", "aspect"):
            lo, hi = getattr(self.mask, name)
            if not 0 < lo <= hi or (name == "scale" and hi > 1):
                raise ValueError(f"mask.{name} must be [low, high] with 0 < low <= high, got [{lo}, {hi}]")
        o = self.objective
        if not 0 <= o.ema_start <= o.ema_end <= 1:
            raise ValueError(
                f"objective.ema_start and ema_end need 0 <= start <= end <= 1, got {o.ema_start}, {o.ema_end}"
            )
        c = self.causality
        if c.enabled and not self.model.causal:
            raise ValueError(
                "causality.enabled needs block-causal attention in time: set model.causal=true as well"
            )
        if not 0 <= c.fraction <= 1:
            raise ValueError(f"causality.fraction must be in [0, 1], got {c.fraction}")
        if c.trajectory_weight < 0:
            raise ValueError(f"causality.trajectory_weight must be at least 0, got {c.trajectory_weight}")
        steps = self.model.frames // self.model.tubelet
        if c.enabled and c.fraction > 0 and steps < 2:
            raise ValueError(
                f"causality needs at least 2 tubelet steps; model.frames={self.model.frames} with "
                f"tubelet {self.model.tubelet} gives {steps}: raise model.frames"
            )
        if self.collapse.patience < 1:
            raise ValueError(f"collapse.patience must be at least 1, got {self.collapse.patience}")
        check_schedule(self.optim, self.train)


class RepresentationCollapsed(TooManyBadSteps):
    """The features stayed collapsed for collapse.patience steps in a row (the run stops itself)."""


# ---------------------------------------------------------------- data


def open_clips(data_dir, clips_dir=None, progress: bool = False):
    """The rgb stream of a dataset's clips (decoded once into the clip view); one clear line if absent."""
    from physworld.data.clip_view import ClipDataset, prepare_clips

    clips = Path(clips_dir) if clips_dir else Path(data_dir) / "clips"
    if not clips.is_dir():
        raise ValueError(
            f"{data_dir}: no clips at {clips}; render them with `physworld render-clips {data_dir}` "
            "(or generate with --with-clips), or set data.clips_dir"
        )
    with distributed.main_first():  # rank 0 decodes the view, the others then read it
        view = prepare_clips(data_dir, clips_dir=clips, progress=progress and distributed.is_main())
    return ClipDataset(view, streams=("rgb",))


def frames_of(rgb: torch.Tensor, offsets: torch.Tensor, frames: int, size: int) -> torch.Tensor:
    """uint8 clips [B, T, H, W, 3] -> float [B, frames, 3, size, size] in [0, 1], the window of `frames`
    frames from each clip's offset."""
    idx = offsets[:, None] + torch.arange(frames)[None, :]  # [B, frames]
    x = torch.stack([rgb[b, idx[b]] for b in range(rgb.shape[0])]).permute(0, 1, 4, 2, 3).float() / 255.0
    if x.shape[-1] != size or x.shape[-2] != size:
        b, t = x.shape[:2]
        x = F.interpolate(x.flatten(0, 1), size=(size, size), mode="bilinear", antialias=True)
        x = x.view(b, t, 3, size, size)
    return x


def batches(dataset, cfg: RecipeConfig, position: dict):
    """Endless local batches of uint8 rgb in a fixed seeded order; `position` (epoch, sample) advances
    as batches are taken, so a checkpoint records where the data stands."""
    from physworld.data.clip_view import collate_clips
    from physworld.data.windows import EpochSampler

    if len(dataset) < cfg.data.batch_size:
        raise ValueError(
            f"{cfg.data.train_dir}: {len(dataset)} clips, fewer than one batch of {cfg.data.batch_size}; "
            "render more clips or lower data.batch_size"
        )
    seed = cfg.train.seed
    while True:
        sampler = EpochSampler(len(dataset), seed=seed, epoch=position["epoch"], start=position["sample"])
        loader = DataLoader(
            dataset,
            batch_sampler=distributed.shard_batches(sampler, cfg.data.batch_size),
            num_workers=cfg.data.num_workers,
            collate_fn=collate_clips,
            generator=torch.Generator().manual_seed(seed + position["epoch"]),
        )
        for batch in loader:
            position["sample"] += cfg.data.batch_size
            yield batch["rgb"]
        position["epoch"] += 1
        position["sample"] = 0


def draw_masks(cfg: RecipeConfig, batch: int, grid, gen: torch.Generator):
    """(context_ids, target_ids, causal) for the GLOBAL batch, from the mask generator: every process
    draws the same masks and keeps its rows, so a run on N processes sees a one-process run's masks."""
    c = cfg.causality
    causal = c.enabled and c.fraction > 0 and float(torch.rand((), generator=gen)) < c.fraction
    if causal:
        ctx, tgt, _ = causal_masks(batch, grid, gen, c.min_context_steps)
    else:
        ctx, tgt = multiblock_masks(batch, grid, gen, cfg.mask.blocks, cfg.mask.scale, cfg.mask.aspect)
    return ctx, tgt, causal


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device=cuda but torch sees no CUDA device; use train.device=cpu or auto")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    """bf16 autocast where asked (fp32 otherwise); refuses a device without bf16."""
    if precision != "bf16":
        return contextlib.nullcontext()
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("train.precision=bf16: this GPU has no bf16; use train.precision=fp32")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def build_model(cfg: RecipeConfig) -> VJEPA:
    """A random init from model.*, or the weights of train.init_from (a VJEPA2Model) when given."""
    if not cfg.train.init_from:
        return VJEPA(cfg.model)
    hf = load_hf_model(cfg.train.init_from)
    theirs = config_from_hf(hf.config)
    fields = (
        "image_size",
        "tubelet",
        "patch",
        "dim",
        "depth",
        "heads",
        "pred_dim",
        "pred_depth",
        "pred_heads",
    )
    differ = [f"model.{f}={getattr(cfg.model, f)} (it has {getattr(theirs, f)})" for f in fields
              if getattr(theirs, f) != getattr(cfg.model, f)]  # fmt: skip
    if differ:
        raise ValueError(
            f"train.init_from={cfg.train.init_from}: another architecture: {'; '.join(differ)}; set model.* to its"
        )
    return VJEPA(cfg.model, hf_model=hf)


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def next_step_prediction(model: VJEPA, frames: torch.Tensor) -> dict:
    """How well the predictor predicts the next tubelet step's latents from the past steps alone, in the
    model's own target space: for every k, context = steps < k, target = step k. Errors are mean squared
    errors divided by the targets' variance. Content-free baselines beside it: `mean` predicts every
    token as the mean target vector of the clips, `position_mean` as the mean over the clips at that token's
    position; `copy_last` predicts step k's latents as step k-1's. A predictor that has learned nothing
    from its context scores about `mean`. The acceleration error compares the second differences of
    [observed..., predicted] with the targets'."""
    model.eval()
    grid = model.encoder.grid_of(frames)
    gt, gh, gw = grid
    per = gh * gw
    b = frames.shape[0]
    z = target_features(model, frames)  # [B, N, D]
    var = z.var(dim=(0, 1)).mean().clamp_min(1e-12)
    mean = z.mean(dim=(0, 1), keepdim=True)  # [1, 1, D]
    position_mean = z.mean(dim=0, keepdim=True).expand_as(z)  # [B, N, D]
    errs, copies, accel, means, position_means = [], [], [], [], []
    for k in range(1, gt):
        ctx = torch.arange(k * per).unsqueeze(0).expand(b, -1)
        tgt = torch.arange(k * per, (k + 1) * per).unsqueeze(0).expand(b, -1)
        pred = model.predictor(model.encoder(frames, ctx), ctx, tgt, grid).float()
        truth = gather_tokens(z, tgt)
        prev = gather_tokens(z, tgt - per)
        errs.append(float((pred - truth).pow(2).mean() / var))
        copies.append(float((prev - truth).pow(2).mean() / var))
        means.append(float((mean - truth).pow(2).mean() / var))
        position_means.append(float((gather_tokens(position_mean, tgt) - truth).pow(2).mean() / var))
        if k >= 2:
            before = gather_tokens(z, tgt - 2 * per)
            acc_pred, acc_true = pred - 2 * prev + before, truth - 2 * prev + before
            accel.append(float((acc_pred - acc_true).pow(2).mean() / acc_true.pow(2).mean().clamp_min(1e-12)))
    model.train()
    out = {
        "next_step_error": float(np.mean(errs)) if errs else float("nan"),
        "copy_last_error": float(np.mean(copies)) if copies else float("nan"),
        "mean_error": float(np.mean(means)) if means else float("nan"),
        "position_mean_error": float(np.mean(position_means)) if position_means else float("nan"),
    }
    out["next_step_vs_copy"] = out["next_step_error"] / max(out["copy_last_error"], 1e-12)
    out["latent_accel_error"] = float(np.mean(accel)) if accel else float("nan")
    return out


@torch.no_grad()
def validate_model(model: VJEPA, cfg: RecipeConfig, val_frames: torch.Tensor, grid) -> dict:
    gen = torch.Generator().manual_seed(cfg.train.seed + 7)  # the same masks at every evaluation
    ctx, tgt = multiblock_masks(len(val_frames), grid, gen, cfg.mask.blocks, cfg.mask.scale, cfg.mask.aspect)
    model.eval()
    loss, stats = model.loss(val_frames, ctx, tgt, cfg.objective.loss)
    model.train()
    # the same loss for the mean target vector: a predictor that ignores its context scores about this
    z = gather_tokens(target_features(model, val_frames), tgt)
    err = z.mean(dim=(0, 1), keepdim=True) - z
    mean_loss = err.abs().mean() if cfg.objective.loss == "l1" else err.pow(2).mean()
    out = {
        "val_loss": float(loss),
        "val_mean_target_loss": float(mean_loss),
        "val_target_effective_rank": float(stats["target_effective_rank"]),
    }
    out.update({f"val_{k}": v for k, v in next_step_prediction(model, val_frames).items()})
    return out


# ---------------------------------------------------------------- the recipe


def train(cfg: RecipeConfig, progress: bool = True) -> dict:
    out = Path(cfg.train.output_dir)
    check_output_path(out, "train.output_dir")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    device = distributed.local_device(resolve_device(cfg.train.device))
    set_deterministic(cfg.train.deterministic and device.type == "cpu")
    main = distributed.is_main()

    dataset = open_clips(cfg.data.train_dir, cfg.data.clips_dir, progress=progress)
    clip_frames = dataset.meta["clip"]["frames"]
    if clip_frames < cfg.model.frames:
        raise ValueError(
            f"{cfg.data.train_dir}: its clips hold {clip_frames} frames, fewer than model.frames="
            f"{cfg.model.frames}; lower model.frames or render longer clips (--clip-frames)"
        )
    val_frames = None
    if cfg.data.val_dir:
        val = open_clips(cfg.data.val_dir, progress=False)
        n = min(len(val), cfg.data.val_clips)
        rgb = torch.stack([val[i]["rgb"] for i in range(n)])
        if rgb.shape[1] < cfg.model.frames:
            raise ValueError(
                f"{cfg.data.val_dir}: its clips are shorter than model.frames={cfg.model.frames}"
            )
        val_frames = frames_of(rgb, torch.zeros(n, dtype=torch.long), cfg.model.frames, cfg.model.image_size)
        val_frames = val_frames.to(device)

    model = build_model(cfg).to(device)
    model.set_gradient_checkpointing(cfg.train.gradient_checkpointing)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    mask_gen = torch.Generator().manual_seed(cfg.train.seed + 1)
    crop_gen = torch.Generator().manual_seed(cfg.train.seed + 2)
    generators = {"mask": mask_gen, "crop": crop_gen}
    ckpts = CheckpointManager(out / "checkpoints")
    run_info = {
        "recipe": RECIPE_ID,
        "model_config": config_to_dict(cfg.model),
        "train_dir": str(cfg.data.train_dir),
        "clip_view": dataset.meta.get("source"),
        "init_from": cfg.train.init_from,
    }
    grid = cfg.model.grid

    step, position, collapsed_run = 0, {"epoch": 0, "sample": 0}, 0
    best = float("inf")
    guard = NonFiniteGuard(cfg.train.max_bad_steps)
    identity = {k: run_info[k] for k in ("model_config", "clip_view", "init_from")}
    resumed = check_resume(ckpts.directory, RECIPE_ID, identity, out)
    if resumed is not None:
        meta = restore(resumed, model, optimizer, rng=True, extra_generators=generators)
        state = meta["extra"]["train_state"]
        step, position, best, collapsed_run = (
            state["step"],
            state["position"],
            state["best"],
            state["collapsed"],
        )
        guard.load_state_dict(state["guard"])
        if step >= cfg.train.max_steps:
            summary = {"steps": step, "output_dir": str(out), "latest": str(resumed.path)}
            if main and not (out / "summary.json").exists():
                atomic_write_json(out / "summary.json", summary)
            return dict(summary, reused=True)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        remove_stale_temporaries(ckpts.directory)
        logger = MetricLogger(
            out,
            tensorboard=cfg.train.tensorboard,
            wandb_project=cfg.train.wandb_project,
            wandb_config=config_to_dict(cfg),
            resume_step=step if resumed is not None else None,
        )
    else:
        logger = distributed.NullLogger()
    distributed.barrier()
    train_loss = distributed.wrap(model)  # model.loss; through DDP with several processes

    def save():
        extra = dict(
            run_info,
            train_state={
                "step": step,
                "position": dict(position),
                "best": best,
                "collapsed": collapsed_run,
                "guard": guard.state_dict(),
            },
        )
        if main:
            ckpts.save_latest(model=model, optimizer=optimizer, extra=extra, extra_generators=generators)
        distributed.barrier()  # the others wait until the file is complete

    stream = batches(dataset, cfg, position)
    bar = progress_bar(cfg.train.max_steps, initial=step, desc="train vjepa") if progress and main else None
    model.train()
    t_last, clips_since = time.perf_counter(), 0
    try:
        while step < cfg.train.max_steps:
            optimizer.zero_grad(set_to_none=True)
            totals: dict[str, float] = {}
            causal_step = False
            for _ in range(cfg.optim.grad_accum):
                rgb = next(stream)
                first, total = distributed.global_rows(rgb.shape[0])
                # window offsets and masks are drawn for the global batch; this process keeps its rows
                offsets = torch.randint(0, clip_frames - cfg.model.frames + 1, (total,), generator=crop_gen)
                ctx, tgt, causal_step = draw_masks(cfg, total, grid, mask_gen)
                rows = slice(first, first + rgb.shape[0])
                frames = frames_of(rgb, offsets[rows], cfg.model.frames, cfg.model.image_size).to(device)
                with autocast(device, cfg.train.precision):
                    loss, stats = train_loss(
                        frames,
                        ctx[rows].to(device),
                        tgt[rows].to(device),
                        cfg.objective.loss,
                        cfg.causality.trajectory_weight if causal_step else 0.0,
                    )
                (loss / cfg.optim.grad_accum).backward()
                for key, value in {"loss": loss.detach(), **stats}.items():
                    totals[key] = totals.get(key, 0.0) + float(value) / cfg.optim.grad_accum
                clips_since += rgb.shape[0]
            totals = distributed.mean_over_ranks(totals)
            if not guard.check(torch.tensor(totals["loss"]), model):
                optimizer.zero_grad(set_to_none=True)
                logger.log(step, skipped_nonfinite=guard.bad_steps_total)
                continue
            grad_norm = clip_gradients(trainable, cfg.optim.grad_clip)
            lr = cosine_with_warmup(
                step, cfg.optim.warmup_steps, cfg.train.max_steps, cfg.optim.lr, cfg.optim.min_lr_ratio
            )
            set_lr(optimizer, lr)
            optimizer.step()
            momentum = cfg.objective.ema_start + (cfg.objective.ema_end - cfg.objective.ema_start) * (
                step / max(cfg.train.max_steps - 1, 1)
            )
            model.update_target(momentum)
            step += 1

            # collapse watch: every process sees the same (averaged) numbers, so all stop together
            c = cfg.collapse
            # the target features of the whole clip: a context of blank background patches has a std of
            # 0 without any collapse (identical pixels give identical tokens), so context_std is only logged
            low_std = totals["target_std"] < c.min_std
            low_rank = totals["target_effective_rank"] < c.min_effective_rank
            collapsed_run = collapsed_run + 1 if step > c.check_after and (low_std or low_rank) else 0
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{totals['loss']:.4f}",
                    mean_target=f"{totals['mean_target_loss']:.4f}",
                    std=f"{totals['target_std']:.3f}",
                    rank=f"{totals['target_effective_rank']:.1f}",
                )
            if step % cfg.train.log_every == 0 or step == cfg.train.max_steps or collapsed_run >= c.patience:
                now = time.perf_counter()
                logger.log(
                    step,
                    **totals,
                    lr=lr,
                    ema_momentum=momentum,
                    grad_norm=grad_norm,
                    causal_step=int(causal_step),
                    clips_per_s=clips_since * distributed.world_size() / max(now - t_last, 1e-9),
                    epoch=position["epoch"],
                )
                t_last, clips_since = now, 0
            if collapsed_run >= c.patience:
                save()
                raise RepresentationCollapsed(
                    f"representation collapsed: for {collapsed_run} steps in a row up to step {step} the "
                    f"target features' std over batch and tokens ({totals['target_std']:.4f}; floor "
                    f"collapse.min_std={c.min_std}) or their effective rank "
                    f"({totals['target_effective_rank']:.2f}; floor collapse.min_effective_rank="
                    f"{c.min_effective_rank}) stayed under the floor. The checkpoint is {ckpts.path('latest')}. "
                    "Lower optim.lr, raise objective.ema_start, or use larger mask.scale"
                )
            if val_frames is not None and (step % cfg.train.eval_every == 0 or step == cfg.train.max_steps):
                metrics = validate_model(model, cfg, val_frames, grid)
                logger.log(step, **metrics)
                best = min(best, metrics["val_loss"])
            if step % cfg.train.save_every == 0 or step == cfg.train.max_steps:
                save()
    except TooManyBadSteps as e:
        logger.close()
        if isinstance(e, RepresentationCollapsed):
            raise RuntimeError(str(e)) from e
        raise RuntimeError(
            f"stopped after {cfg.train.max_bad_steps} non-finite steps in a row at step {step}; "
            f"the last good checkpoint is {ckpts.latest_path()}. Lower optim.lr or check the data."
        ) from e
    finally:
        if bar is not None:
            bar.close()
    logger.close()
    summary = {
        "steps": step,
        "best_val_loss": best if val_frames is not None else None,
        "output_dir": str(out),
        "latest": str(ckpts.path("latest")),
    }
    if main:
        summary["pretrained"] = str(save_pretrained(model, out / "pretrained"))
        atomic_write_json(out / "summary.json", summary)
    return summary


def save_pretrained(model: VJEPA, directory: Path) -> Path:
    """The trained target encoder + predictor as transformers' VJEPA2Model (save_pretrained), which
    physworld.models.vjepa.load_video_encoder and VJEPA2Model.from_pretrained both read."""
    from transformers import VJEPA2Model

    hf = VJEPA2Model(model.predictor.predictor.config)  # the VJEPA2Config the layers were built from
    hf.load_state_dict({k: v.detach().cpu() for k, v in model.hf_state_dict().items()}, strict=True)
    # written beside, then renamed into place: a kill leaves the old directory or the new, never half
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    hf.save_pretrained(tmp)  # safetensors
    old = directory.with_name(f".{directory.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def main(config_path: str, overrides: list[str], progress: bool = True) -> dict:
    cfg = load_config(config_path, RecipeConfig, overrides)
    distributed.setup(resolve_device(cfg.train.device))
    try:
        summary = train(cfg, progress=progress)
    except BaseException:
        distributed.teardown(wait=False)
        raise
    distributed.teardown()
    return summary


if __name__ == "__main__":  # torchrun --nproc_per_node N -m physworld.recipes.vjepa --config ...
    distributed.command_line(RECIPE_ID, main)
