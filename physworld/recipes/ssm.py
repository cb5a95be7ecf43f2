"""Recipe: train the PhysicsSSM (a selective state-space model, models/ssm.py) on sequences of frames.

    physworld train ssm --config configs/ssm/quickstart.yaml [key=value ...]

The whole loop is written out here, top to bottom; shared pieces are small functions from
physworld.training (config, checkpoint, loop_utils, metrics). Steps:

  1. load and validate the config, save it resolved beside the outputs
  2. prepare the dataset's memory-mapped windows (once per dataset) and its normalisation stats; a
     training sample is a window of seq_len + 1 consecutive frames of one scene (WindowDataset with
     history = seq_len: its history and next frame), padded per scene into a batch
  3. build the model, optimizer and noise generator; resume from checkpoints/latest if present
  4. for each curriculum stage (stage k trains on difficulty k; no curriculum: all difficulties),
     run optimizer steps: grad accumulation, random-walk input noise, the prediction loss plus the
     weighted physics terms, NaN/Inf guard, clipping, warmup + cosine learning rate; log, validate,
     checkpoint. Every frame of a sequence is a target at once: the scan runs in parallel over time.
  5. write a checkpoint per stage, `latest` throughout and `best` by validation loss

Resuming restores model, optimizer, RNG states and the data position (stage, epoch, sample), so a
run killed at any moment ends with the same weights, bit for bit on CPU, as one never interrupted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from physworld.data import windows
from physworld.data.store import Dataset, present_types
from physworld.fileio import atomic_write_json, remove_stale_temporaries
from physworld.models.ssm import KINEMATIC, PhysicsSSM, SSMConfig, collate_sequences, integrate
from physworld.training import distributed
from physworld.training.checkpoint import CheckpointManager, load_checkpoint, restore
from physworld.training.common import OptimConfig, TrainConfig, stage_plan
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

RECIPE = "ssm"

# ---------------------------------------------------------------- config


@dataclass
class DataConfig:
    train_dir: str  # a dataset store (physworld generate); windows are prepared inside it on first use
    val_dir: str | None = None  # a store of validation scenes; None: no validation, `best` = `latest`
    scenario_types: tuple[str, ...] = ("all",)  # which of the dataset's types to train on
    batch_size: int = 8  # sequences (of model.seq_len + 1 frames) per batch
    num_workers: int = 0
    val_sequences: int = 64  # validation sequences scored each evaluation (a fixed, seeded subset)


@dataclass
class RecipeConfig:
    data: DataConfig
    train: TrainConfig
    model: SSMConfig = field(default_factory=SSMConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self):
        for name in ("batch_size", "val_sequences"):
            if getattr(self.data, name) < 1:
                raise ValueError(f"data.{name} must be at least 1")
        resolve_types(self.data.scenario_types)  # unknown names fail here, listing the valid ones


# ---------------------------------------------------------------- data


def make_loader(dataset, cfg: RecipeConfig, seed: int, epoch: int, start: int) -> DataLoader:
    sampler = windows.EpochSampler(len(dataset), seed=seed, epoch=epoch, start=start)
    # data.batch_size is the global batch: with several processes each takes its slice of every batch.
    # Its own generator: a DataLoader draws a worker base seed each time it starts iterating, which
    # would otherwise advance the global RNG differently in a resumed run.
    return DataLoader(
        dataset,
        batch_sampler=distributed.shard_batches(sampler, cfg.data.batch_size),
        num_workers=cfg.data.num_workers,
        collate_fn=collate_sequences,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed + epoch),
    )


def batches(dataset, cfg: RecipeConfig, seed: int, position: dict):
    """Endless batches in a fixed order; `position` (epoch, sample) is updated as batches are taken,
    so a checkpoint records exactly where the data stands."""
    if len(dataset) < cfg.data.batch_size:
        raise ValueError(
            f"{len(dataset)} training sequences of {cfg.model.seq_len + 1} frames, fewer than one batch of "
            f"{cfg.data.batch_size}; generate more or longer scenes, or lower model.seq_len or data.batch_size"
        )
    while True:
        for batch in make_loader(dataset, cfg, seed, position["epoch"], position["sample"]):
            position["sample"] += cfg.data.batch_size
            yield batch
        position["epoch"] += 1
        position["sample"] = 0


@torch.no_grad()
def evaluate(model: PhysicsSSM, val_batches: list) -> dict:
    """Validation prediction loss (normalised accelerations, no noise) and one-step position error in px,
    over every frame of every validation sequence."""
    model.eval()
    loss_sum, err_sum, bodies = 0.0, 0.0, 0
    for batch in val_batches:
        states = batch["states"]
        inputs, nxt = states[:, :-1], states[:, 1:]
        dynamic = (batch["body_mask"] & (batch["body"][..., KINEMATIC] < 0.5))[:, None].expand(
            inputs.shape[:3]
        )
        n = int(dynamic.sum())
        _, terms = model.loss(batch, terms=True)
        loss_sum += float(terms["prediction"]) * n
        accel = model(inputs, batch)["accel"]
        pred = integrate(inputs, accel, batch["dt"][:, None, None], batch["substeps"][:, None, None])
        err = (pred[..., :2] - nxt[..., :2]).norm(dim=-1)
        err_sum += float(err[dynamic].sum())
        bodies += n
    model.train()
    return {"val_loss": loss_sum / max(bodies, 1), "val_position_error_px": err_sum / max(bodies, 1)}


def validation_batches(cfg: RecipeConfig) -> list:
    if not cfg.data.val_dir:
        return []
    with distributed.main_first():  # rank 0 prepares the cache, the other processes then read it
        prepared = windows.prepare(cfg.data.val_dir, progress=False)
    types = present_types(cfg.data.val_dir, cfg.data.scenario_types)
    val = windows.WindowDataset(prepared, history=cfg.model.seq_len, scenario_types=types)
    if len(val) == 0:
        raise ValueError(
            f"{cfg.data.val_dir}: no scene has more than model.seq_len = {cfg.model.seq_len} frames; "
            "generate longer validation scenes or lower model.seq_len"
        )
    order = np.random.default_rng(cfg.train.seed).permutation(len(val))[: cfg.data.val_sequences]
    samples = [val[int(i)] for i in np.sort(order)]
    size = cfg.data.batch_size
    return [collate_sequences(samples[i : i + size]) for i in range(0, len(samples), size)]


# ---------------------------------------------------------------- the recipe


def train(cfg: RecipeConfig, progress: bool = True) -> dict:
    out = Path(cfg.train.output_dir)
    main = distributed.is_main()  # with several processes (torchrun) only rank 0 writes files
    if main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    set_deterministic(cfg.train.deterministic)

    # Data: windows are prepared once per dataset and memory-mapped; stats come from the train set.
    with distributed.main_first():
        prepared = windows.prepare(cfg.data.train_dir, progress=progress and main)
    train_types = present_types(cfg.data.train_dir, cfg.data.scenario_types)
    stats = windows.load_stats(prepared)
    val_batches = validation_batches(cfg)

    model = PhysicsSSM(cfg.model, stats={k: torch.as_tensor(v) for k, v in stats.items()})
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    noise_gen = torch.Generator().manual_seed(cfg.train.seed + 1)
    ckpts = CheckpointManager(out / "checkpoints")
    if main:
        remove_stale_temporaries(ckpts.directory)  # a kill mid-save leaves one; this run owns the directory
    run_info = {
        "recipe": RECIPE,
        "model_config": config_to_dict(cfg.model),
        "train_dir": str(cfg.data.train_dir),
        "train_scenario_types": train_types,
        "train_manifest_shards": [s["sha256"] for s in Dataset(cfg.data.train_dir).manifest["shards"]],
    }

    step, stage_index = 0, 0
    position = {"epoch": 0, "sample": 0}
    best = float("inf")
    latest = ckpts.latest_path()
    if latest is not None:
        meta = restore(
            load_checkpoint(latest), model, optimizer, rng=True, extra_generators={"noise": noise_gen}
        )
        state = meta["extra"]["train_state"]
        step, stage_index, position, best = state["step"], state["stage"], state["position"], state["best"]
    if main:
        logger = MetricLogger(
            out,
            tensorboard=cfg.train.tensorboard,
            wandb_project=cfg.train.wandb_project,
            wandb_config=config_to_dict(cfg),
            resume_step=step if latest is not None else None,
        )
    else:
        logger = distributed.NullLogger()
    distributed.barrier()  # every process has read `latest` before rank 0 may replace it
    # model.loss, through DDP with several processes (every parameter is used in every step)
    train_loss = distributed.wrap(model, find_unused_parameters=False)
    guard = NonFiniteGuard(cfg.train.max_bad_steps)
    plan = stage_plan(cfg.train)

    def save(kind: str, name: str | None = None, metric: float | None = None):
        extra = dict(
            run_info,
            train_state={"step": step, "stage": stage_index, "position": dict(position), "best": best},
        )
        kwargs = dict(model=model, optimizer=optimizer, extra=extra, extra_generators={"noise": noise_gen})
        if not main:  # rank 0 writes; the others wait until the file is complete
            distributed.barrier()
            return
        if kind == "latest":
            ckpts.save_latest(**kwargs)
        elif kind == "best":
            ckpts.save_best(metric, **kwargs)
        else:
            ckpts.save_named(name, **kwargs)
        distributed.barrier()

    bar = (
        progress_bar(total=cfg.train.max_steps, initial=step, desc="train ssm") if progress and main else None
    )
    model.train()
    try:
        while stage_index < len(plan):
            difficulties, stage_end = plan[stage_index]
            dataset = windows.WindowDataset(
                prepared, history=cfg.model.seq_len, scenario_types=train_types, difficulties=difficulties
            )
            stream = batches(dataset, cfg, seed=cfg.train.seed + 1000 * stage_index, position=position)
            t_last, frames_since = time.perf_counter(), 0
            while step < stage_end:
                # One optimizer step: grad_accum micro-batches, each with fresh random-walk noise.
                optimizer.zero_grad(set_to_none=True)
                loss_total = 0.0
                terms_total: dict[str, float] = {}
                for _ in range(cfg.optim.grad_accum):
                    batch = next(stream)
                    if cfg.model.noise_std > 0:
                        rows = distributed.global_rows(batch["states"].shape[0])
                        bodies = distributed.global_max(batch["states"].shape[2])
                        batch = model.add_training_noise(batch, noise_gen, rows=rows, bodies=bodies)
                    # Every loss term is a mean over dynamic body-frames (jerk: over a fixed share of
                    # them); ranks hold different numbers, so each rank's means are weighted to make
                    # DDP's average the global batch's mean.
                    dynamic = int((batch["body_mask"] & (batch["body"][..., KINEMATIC] < 0.5)).sum())
                    # (one process: scale 1.0, so the sums below are bit for bit those of before)
                    scale, accum = distributed.global_mean_scale(dynamic), cfg.optim.grad_accum
                    loss, terms = train_loss(batch, terms=True)
                    (loss * scale / accum).backward()
                    loss_total += float(loss.detach()) * scale / accum
                    for name, value in terms.items():
                        terms_total[name] = terms_total.get(name, 0.0) + float(value.detach()) * scale / accum
                    frames_since += int(batch["body_mask"].sum()) * cfg.model.seq_len
                terms_total = distributed.mean_over_ranks(dict(terms_total, loss=loss_total))
                loss_total = terms_total.pop("loss")
                if not guard.check(torch.tensor(loss_total), model):
                    # A non-finite loss or gradient: skip the update, keep the weights. The guard
                    # raises TooManyBadSteps after max_bad_steps in a row.
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
                    bar.set_postfix(loss=f"{loss_total:.4f}", stage=stage_index + 1)
                if step % cfg.train.log_every == 0 or step == stage_end:
                    now = time.perf_counter()
                    frames_since = distributed.mean_over_ranks({"frames": frames_since})["frames"]
                    frames_since *= distributed.world_size()  # the frames of every process
                    logger.log(
                        step,
                        loss=loss_total,
                        **{f"loss_{name}": value for name, value in terms_total.items()},
                        lr=lr,
                        grad_norm=grad_norm,
                        stage=stage_index + 1,
                        body_frames_per_s=frames_since / max(now - t_last, 1e-9),
                        epoch=position["epoch"],
                    )
                    t_last, frames_since = now, 0
                if val_batches and (step % cfg.train.eval_every == 0 or step == cfg.train.max_steps):
                    metrics = evaluate(model, val_batches)
                    logger.log(step, **metrics)
                    if metrics["val_loss"] < best:
                        best = metrics["val_loss"]
                        save("best", metric=best)
                if step % cfg.train.save_every == 0 or step == stage_end:
                    save("latest")
            if cfg.train.curriculum_stages:
                save("named", name=f"stage{stage_index + 1}")
            stage_index += 1
            position = {"epoch": 0, "sample": 0}
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
        save("named", name="best")  # no validation: best is the last
    logger.close()
    summary = {
        "steps": step,
        "best_val_loss": best if val_batches else None,
        "output_dir": str(out),
        "latest": str(ckpts.latest_path()),
    }
    if main:
        atomic_write_json(out / "summary.json", summary)
    return summary


def main(config_path: str, overrides: list[str], progress: bool = True) -> dict:
    cfg = load_config(config_path, RecipeConfig, overrides)
    distributed.setup("cpu")  # under torchrun: join the process group (gloo; this recipe runs on CPU)
    try:
        summary = train(cfg, progress=progress)
    except BaseException:
        distributed.teardown(wait=False)  # torchrun stops the other processes
        raise
    distributed.teardown()
    return summary


if __name__ == "__main__":  # torchrun --nproc_per_node N -m physworld.recipes.ssm --config ...
    distributed.command_line("ssm", main)
