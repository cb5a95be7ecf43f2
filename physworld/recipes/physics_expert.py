"""Recipe: train the PhysicsExpert (a graph network learned simulator) on delta-state prediction.

    physworld train physics-expert --config configs/physics_expert/quickstart.yaml [key=value ...]

The whole loop is written out here, top to bottom; shared pieces are small functions from
physworld.training (config, checkpoint, loop_utils, metrics). Steps:

  1. load and validate the config, save it resolved beside the outputs
  2. prepare the dataset's memory-mapped windows (once per dataset) and its normalisation stats
  3. build the model, optimizer and noise generator; resume from checkpoints/latest if present
  4. for each curriculum stage (stage k trains on difficulty k; no curriculum: all difficulties),
     run optimizer steps: grad accumulation, random-walk input noise, NaN/Inf guard, clipping,
     warmup + cosine learning rate; log, validate, checkpoint
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
from physworld.fileio import atomic_write_json, check_output_path, remove_stale_temporaries
from physworld.models.physics_expert import PhysicsExpert, PhysicsExpertConfig
from physworld.training import distributed
from physworld.training.checkpoint import CheckpointManager, check_resume, restore
from physworld.training.common import (
    OptimConfig,
    TrainConfig,
    check_schedule,
    check_stages,
    stage_plan,
)
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

# What differs between the 2D learned simulator and the 3D one (recipes/physics_expert_3d.py), which
# runs this same loop: the model class, the recipe id its checkpoints carry, the dimension of its data.
FAMILY = {"recipe_id": "physics-expert", "model": PhysicsExpert, "dims": 2}
KINEMATIC = -1  # the kinematic flag is the last body feature (2D and 3D)

# ---------------------------------------------------------------- config


@dataclass
class DataConfig:
    train_dir: str  # a dataset store (physworld generate); windows are prepared inside it on first use
    val_dir: str | None = None  # a store of validation scenes; None: no validation, `best` = `latest`
    scenario_types: tuple[str, ...] = ("all",)  # which of the dataset's types to train on
    batch_size: int = 32
    num_workers: int = 0
    val_windows: int = 512  # validation windows scored each evaluation (a fixed, seeded subset)


@dataclass
class RecipeConfig:
    data: DataConfig
    train: TrainConfig
    model: PhysicsExpertConfig = field(default_factory=PhysicsExpertConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self):
        for name in ("batch_size", "val_windows"):
            if getattr(self.data, name) < 1:
                raise ValueError(f"data.{name} must be at least 1, got {getattr(self.data, name)}")
        if self.data.num_workers < 0:
            raise ValueError(f"data.num_workers must be at least 0, got {self.data.num_workers}")
        resolve_types(self.data.scenario_types)  # unknown names fail here, listing the valid ones
        m = self.model
        for name, least in (("history", 1), ("hidden", 1), ("mlp_layers", 0), ("message_passing_steps", 0)):
            if getattr(m, name) < least:
                raise ValueError(f"model.{name} must be at least {least}, got {getattr(m, name)}")
        for name in ("connectivity_radius", "static_radius", "length_scale"):
            if not getattr(m, name) > 0:
                raise ValueError(f"model.{name} must be positive, got {getattr(m, name)}")
        if not m.noise_std >= 0:
            raise ValueError(f"model.noise_std must be at least 0, got {m.noise_std}")
        if not 0 <= m.dropout < 1:
            raise ValueError(f"model.dropout must be in [0, 1), got {m.dropout}")
        check_schedule(self.optim, self.train)


# ---------------------------------------------------------------- data


def make_loader(dataset, cfg: RecipeConfig, seed: int, epoch: int, start: int) -> DataLoader:
    sampler = windows.EpochSampler(len(dataset), seed=seed, epoch=epoch, start=start)
    # data.batch_size is the global batch: with several processes each takes its slice of every batch
    # (one process: the batches of batch_size with drop_last, as before).
    # Its own generator: a DataLoader draws a worker base seed each time it starts iterating, which
    # would otherwise advance the global RNG differently in a resumed run.
    return DataLoader(
        dataset,
        batch_sampler=distributed.shard_batches(sampler, cfg.data.batch_size),
        num_workers=cfg.data.num_workers,
        collate_fn=windows.collate_graphs,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed + epoch),
    )


def batches(dataset, cfg: RecipeConfig, seed: int, position: dict):
    """Endless batches in a fixed order; `position` (epoch, sample) is updated as batches are taken,
    so a checkpoint records exactly where the data stands."""
    if len(dataset) < cfg.data.batch_size:
        raise ValueError(
            f"{len(dataset)} training windows, fewer than one batch of {cfg.data.batch_size}; "
            "generate more scenes or lower data.batch_size"
        )
    while True:
        for batch in make_loader(dataset, cfg, seed, position["epoch"], position["sample"]):
            position["sample"] += cfg.data.batch_size
            yield batch
        position["epoch"] += 1
        position["sample"] = 0


@torch.no_grad()
def evaluate(model: PhysicsExpert, val_batches: list) -> dict:
    """Validation loss (normalised accelerations, no noise) and one-step position error in the
    world's unit (px in 2D, m in 3D: model.position_unit)."""
    model.eval()
    loss_sum, err_sum, bodies = 0.0, 0.0, 0
    where = model.position  # the state's position columns
    for batch in val_batches:
        dynamic = batch["body"][:, KINEMATIC] < 0.5
        n = int(dynamic.sum())
        loss_sum += float(model.loss(batch)) * n
        err = (model.step(batch)[:, where] - batch["next"][:, where]).norm(dim=-1)
        err_sum += float(err[dynamic].sum())
        bodies += n
    model.train()
    return {
        "val_loss": loss_sum / max(bodies, 1),
        f"val_position_error_{model.position_unit}": err_sum / max(bodies, 1),
    }


def validation_batches(cfg: RecipeConfig, history: int, dims: int = 2) -> list:
    if not cfg.data.val_dir:
        return []
    with distributed.main_first():  # rank 0 prepares the cache, the other processes then read it
        prepared = windows.prepare(cfg.data.val_dir, progress=False, dims=dims)
    types = present_types(cfg.data.val_dir, cfg.data.scenario_types)
    val = windows.WindowDataset(prepared, history=history, scenario_types=types)
    order = np.random.default_rng(cfg.train.seed).permutation(len(val))[: cfg.data.val_windows]
    samples = [val[int(i)] for i in np.sort(order)]
    size = cfg.data.batch_size
    return [windows.collate_graphs(samples[i : i + size]) for i in range(0, len(samples), size)]


# ---------------------------------------------------------------- the recipe


def train(cfg: RecipeConfig, progress: bool = True, family: dict = FAMILY) -> dict:
    # Everything that can refuse the run is checked before the run's directory is written to, so a
    # refused or finished run leaves an existing run's config.yaml and summary.json as they were.
    out = Path(cfg.train.output_dir)
    check_output_path(out, "train.output_dir")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    set_deterministic(cfg.train.deterministic)

    # Data: windows are prepared once per dataset and memory-mapped; stats come from the train set.
    windows.check_dims(Dataset(cfg.data.train_dir).dims, family["dims"], cfg.data.train_dir)
    train_types = present_types(cfg.data.train_dir, cfg.data.scenario_types)
    main = distributed.is_main()  # with several processes (torchrun) only rank 0 writes files
    with distributed.main_first():
        prepared = windows.prepare(cfg.data.train_dir, progress=progress and main, dims=family["dims"])
    plan = stage_plan(cfg.train)
    check_stages(
        plan,
        lambda difficulties: len(
            windows.WindowDataset(
                prepared, history=cfg.model.history, scenario_types=train_types, difficulties=difficulties
            )
        ),
        cfg.data.batch_size,
        cfg.data.train_dir,
    )
    stats = windows.load_stats(prepared)
    val_batches = validation_batches(cfg, cfg.model.history, dims=family["dims"])

    model = family["model"](cfg.model, stats={k: torch.as_tensor(v) for k, v in stats.items()})
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    # One noise stream for every process: each draws the global batch's noise and keeps its rows.
    noise_gen = torch.Generator().manual_seed(cfg.train.seed + 1)
    ckpts = CheckpointManager(out / "checkpoints")
    run_info = {
        "recipe": family["recipe_id"],
        "model_config": config_to_dict(cfg.model),
        "train_dir": str(cfg.data.train_dir),
        "train_scenario_types": train_types,
        "train_manifest_shards": [s["sha256"] for s in Dataset(cfg.data.train_dir).manifest["shards"]],
    }

    step, stage_index = 0, 0
    position = {"epoch": 0, "sample": 0}
    best = float("inf")
    identity = {k: run_info[k] for k in ("model_config", "train_scenario_types", "train_manifest_shards")}
    resumed = check_resume(ckpts.directory, family["recipe_id"], identity, out)
    latest = None if resumed is None else resumed.path
    if resumed is not None:
        meta = restore(resumed, model, optimizer, rng=True, extra_generators={"noise": noise_gen})
        state = meta["extra"]["train_state"]
        step, stage_index, position, best = state["step"], state["stage"], state["position"], state["best"]
        if stage_index >= len(plan):  # finished: nothing to train, nothing rewritten
            summary = {
                "steps": step,
                "best_val_loss": best if val_batches else None,
                "output_dir": str(out),
                "latest": str(latest),
            }
            # killed between the last checkpoint and the summary: write it (rank 0 only)
            if main and not (out / "summary.json").exists():
                atomic_write_json(out / "summary.json", summary)
            return dict(summary, reused=True)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        remove_stale_temporaries(ckpts.directory)  # a kill mid-save leaves one; this run owns the directory
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
    train_loss = distributed.wrap(model)  # model.loss; through DDP with several processes
    guard = NonFiniteGuard(cfg.train.max_bad_steps)

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
        progress_bar(total=cfg.train.max_steps, initial=step, desc=f"train {family['recipe_id']}")
        if progress and main
        else None
    )
    model.train()
    try:
        while stage_index < len(plan):
            difficulties, stage_end = plan[stage_index]
            dataset = windows.WindowDataset(
                prepared, history=cfg.model.history, scenario_types=train_types, difficulties=difficulties
            )
            stream = batches(dataset, cfg, seed=cfg.train.seed + 1000 * stage_index, position=position)
            t_last, samples_since = time.perf_counter(), 0
            while step < stage_end:
                # One optimizer step: grad_accum micro-batches, each with fresh random-walk noise.
                optimizer.zero_grad(set_to_none=True)
                loss_total = 0.0
                for _ in range(cfg.optim.grad_accum):
                    batch = next(stream)
                    rows = distributed.global_rows(batch["history"].shape[0])
                    batch = model.add_training_noise(batch, cfg.model.noise_std, noise_gen, rows=rows)
                    # The loss is a mean over dynamic bodies; ranks hold different numbers of them, so
                    # each rank's mean is weighted to make DDP's average the global batch's mean.
                    dynamic = int((batch["body"][:, KINEMATIC] < 0.5).sum())
                    scale = distributed.global_mean_scale(dynamic)
                    loss = train_loss(batch) * scale / cfg.optim.grad_accum  # one process: scale 1.0
                    loss.backward()
                    loss_total += float(loss.detach())
                    samples_since += batch["num_graphs"]
                (loss_total,) = distributed.mean_over_ranks({"loss": loss_total}).values()
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
                    samples_since *= distributed.world_size()  # every rank took as many windows
                    logger.log(
                        step,
                        loss=loss_total,
                        lr=lr,
                        grad_norm=grad_norm,
                        stage=stage_index + 1,
                        windows_per_s=samples_since / max(now - t_last, 1e-9),
                        epoch=position["epoch"],
                    )
                    t_last, samples_since = now, 0
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
        save("best", metric=float("nan"))
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


if __name__ == "__main__":  # torchrun --nproc_per_node N -m physworld.recipes.physics_expert --config ...
    distributed.command_line("physics-expert", main)
