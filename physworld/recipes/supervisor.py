"""Recipe: fine-tune a Visual Expert on unlabelled clips against a frozen PhysicsExpert (the Supervisor).

    physworld train supervisor --config configs/supervisor/small.yaml [key=value ...]

The losses and what each reads are in physworld/models/supervisor.py; this file is the loop:

  1. load and validate the config; refuse a labelled split passed as unlabelled (data/splits.py),
     a clip size or frame rate the Visual Expert was not trained for, a checkpoint of another family
  2. load the Visual Expert to fine-tune and the PhysicsExpert, frozen (requires_grad False, not in
     the optimizer; its weights are checked unchanged before every checkpoint is written)
  3. each optimizer step takes batch_size clips in a seeded epoch order (RGB only) and, per clip, two
     windows of the Visual Expert's length that overlap (starts s and s + consistency_offset, s drawn
     from a seeded generator); loss = lambda_vis L_vis + lambda_phys L_phys (both averaged over the two
     windows) + lambda_consistency L_consistency; every term is logged on its own, switched-off
     terms too (weight 0: computed for the log without a gradient)
  4. NaN/Inf guard, clipping, warmup + cosine learning rate; `latest` checkpoints with the data
     position and generator, so a killed run resumes to the same bits on CPU

Checkpoints hold the Visual Expert's weights with `recipe: supervisor`; models/supervisor.load_finetuned
reads them as a Visual Expert.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset

from physworld.data.clips import camera_2d
from physworld.data.splits import unlabelled_clips
from physworld.data.windows import EpochSampler
from physworld.fileio import atomic_write_json, check_output_path, remove_stale_temporaries
from physworld.models.physics_expert import load_model as load_physics_expert
from physworld.models.supervisor import (
    RECIPE,
    SIM_FPS,
    SupervisorConfig,
    colour_instances,
    consistency_loss,
    freeze,
    phys_loss,
    to_frames,
    vis_loss,
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

# ---------------------------------------------------------------- config


@dataclass
class DataConfig:
    unlabelled_dirs: tuple[str, ...]  # datasets generated with --split unlabelled --with-clips
    batch_size: int = 4  # clips per optimizer step (each seen through two overlapping windows)


@dataclass
class RecipeConfig:
    data: DataConfig
    train: TrainConfig
    visual_expert: str  # the checkpoint to fine-tune (physworld train visual-expert)
    physics_expert: str  # the frozen 2D PhysicsExpert (physworld train physics-expert)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self):
        if not self.data.unlabelled_dirs:
            raise ValueError("data.unlabelled_dirs: give at least one unlabelled dataset")
        if self.data.batch_size < 1:
            raise ValueError(f"data.batch_size must be at least 1, got {self.data.batch_size}")
        check_schedule(self.optim, self.train)


# ---------------------------------------------------------------- inputs


def load_inputs(cfg: RecipeConfig):
    """The Visual Expert to fine-tune, the frozen PhysicsExpert and the unlabelled clips (RGB only),
    each refused in one line when it does not fit."""
    from physworld.data.clips import Clips
    from physworld.models.supervisor import load_any_visual_expert

    ve, ve_info = _load(load_any_visual_expert, cfg.visual_expert, "visual_expert")
    pe, _ = _load(load_physics_expert, cfg.physics_expert, "physics_expert")
    if ve.config.dims != 2:
        raise ValueError(
            f"visual_expert {cfg.visual_expert}: a 3D Visual Expert; the Supervisor fine-tunes 2D ones"
        )
    vc = ve.config
    need = vc.frames + cfg.supervisor.consistency_offset
    parts = []
    for k, d in enumerate(cfg.data.unlabelled_dirs):
        flag = f"data.unlabelled_dirs[{k}]"
        ds = unlabelled_clips(d, flag)
        clip = Clips(Path(d) / "clips").manifest["clip"]
        if clip["resolution"] != vc.image_size or abs(float(clip["fps"]) - vc.fps) > 1e-6:
            raise ValueError(
                f"{flag} {d}: clips of {clip['resolution']} px at {clip['fps']:g} fps, but the Visual Expert "
                f"reads {vc.image_size} px at {vc.fps:g} fps; render them with physworld render-clips "
                f"--resolution {vc.image_size} --fps {vc.fps:g}"
            )
        if clip["frames"] < need:
            raise ValueError(
                f"{flag} {d}: clips of {clip['frames']} frames; two windows of {vc.frames} frames "
                f"{cfg.supervisor.consistency_offset} apart need {need} (render with --frames {need})"
            )
        parts.append(ds)
    stride = SIM_FPS / vc.fps
    if abs(stride - round(stride)) > 1e-6:
        raise ValueError(
            f"the Visual Expert's fps {vc.fps:g} must divide the 2D world's {SIM_FPS:g} frames/s"
        )
    return ve, ve_info, freeze(pe), ConcatDataset(parts), int(round(stride))


def _load(loader, path, key):
    from physworld.fileio import DamagedFile

    """loader(path), its refusal (another family's checkpoint, a damaged file) prefixed by the config key."""
    if not Path(path).is_file():
        raise ValueError(f"{key} {path}: no such checkpoint file")
    try:
        return loader(path)
    except ValueError as e:  # CheckpointError and VisualExpertLoadError are ValueErrors
        if isinstance(e, DamagedFile):
            raise  # damage keeps its own exit status
        raise ValueError(f"{key}: {e}") from None


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict, bit for bit (the frozen PhysicsExpert's identity)."""
    h = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def clip_batches(dataset, cfg: RecipeConfig, position: dict):
    """Endless lists of clip indices in a seeded order; `position` (epoch, sample) follows them."""
    n, size = len(dataset), cfg.data.batch_size
    if n < size:
        raise ValueError(f"{n} unlabelled clips, fewer than one batch of {size}; lower data.batch_size")
    while True:
        order = list(EpochSampler(n, seed=cfg.train.seed, epoch=position["epoch"], start=position["sample"]))
        for i in range(0, len(order) - size + 1, size):
            position["sample"] += size
            yield order[i : i + size]
        position["epoch"] += 1
        position["sample"] = 0


def losses(ve, pe, rgb, starts, instances, camera, stride, cfg: RecipeConfig) -> dict:
    """Every term for one batch: rgb uint8 [B, T_clip, H, W, 3], window starts [B], instances per clip
    [T_clip, M, h, w]. Terms whose weight is 0 are computed without a gradient, for the log."""
    sup, vc = cfg.supervisor, ve.config
    b, t, o = rgb.shape[0], vc.frames, sup.consistency_offset
    win_a = torch.stack([rgb[i, s : s + t] for i, s in enumerate(starts)])
    win_b = torch.stack([rgb[i, s + o : s + o + t] for i, s in enumerate(starts)])
    out = ve(torch.cat([to_frames(win_a), to_frames(win_b)]))  # one forward pass for both windows
    out_a = {k: v[:b] for k, v in out.items()}
    out_b = {k: v[b:] for k, v in out.items()}
    inst_a = [instances[i][s : s + t] for i, s in enumerate(starts)]
    inst_b = [instances[i][s + o : s + o + t] for i, s in enumerate(starts)]
    size = vc.image_size

    def term(weight, fn):
        if weight > 0:
            return fn()
        with torch.no_grad():
            return fn()

    def vis():
        va, vb = vis_loss(out_a, inst_a, camera, size, sup), vis_loss(out_b, inst_b, camera, size, sup)
        return {k: (va[k] + vb[k]) / 2 for k in va}

    vis_terms = term(sup.lambda_vis, vis)
    phys = term(
        sup.lambda_phys,
        lambda: (
            (
                phys_loss(out_a, pe, camera, size, stride, ve.state_std, sup)
                + phys_loss(out_b, pe, camera, size, stride, ve.state_std, sup)
            )
            / 2
        ),
    )
    cons = term(
        sup.lambda_consistency,
        lambda: consistency_loss(out_a, out_b, o, ve.state_std, ve.param_std, sup),
    )
    total = sup.lambda_vis * vis_terms["vis"] + sup.lambda_phys * phys + sup.lambda_consistency * cons
    return {**vis_terms, "phys": phys, "consistency": cons, "loss": total}


# ---------------------------------------------------------------- the recipe


def train(cfg: RecipeConfig, progress: bool = True) -> dict:
    out = Path(cfg.train.output_dir)
    check_output_path(out, "train.output_dir")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    set_deterministic(cfg.train.deterministic)

    ve, ve_info, pe, dataset, stride = load_inputs(cfg)
    pe_digest = weights_digest(pe)
    camera = camera_2d(ve.config.image_size)
    ve.train()
    optimizer = torch.optim.AdamW(ve.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    starts_gen = torch.Generator().manual_seed(cfg.train.seed + 1)
    ckpts = CheckpointManager(out / "checkpoints")
    run_info = {
        "recipe": RECIPE,
        "model_config": config_to_dict(ve.config),
        "visual_expert": str(cfg.visual_expert),
        "physics_expert": str(cfg.physics_expert),
        "physics_expert_sha256": pe_digest,
        "unlabelled_dirs": [str(d) for d in cfg.data.unlabelled_dirs],
        "supervisor": config_to_dict(cfg.supervisor),
        # what the Visual Expert was trained on, so evaluation can tell seen types from held-out ones
        "train_scenario_types": ve_info.get("train_scenario_types"),
    }
    identity = {k: run_info[k] for k in ("model_config", "visual_expert", "unlabelled_dirs", "supervisor")}
    step, position = 0, {"epoch": 0, "sample": 0}
    resumed = check_resume(ckpts.directory, RECIPE, identity, out)
    if resumed is not None:
        meta = restore(resumed, ve, optimizer, rng=True, extra_generators={"starts": starts_gen})
        state = meta["extra"]["train_state"]
        step, position = state["step"], state["position"]
        if step >= cfg.train.max_steps:
            summary = {"steps": step, "output_dir": str(out), "latest": str(ckpts.latest_path())}
            if not (out / "summary.json").exists():
                atomic_write_json(out / "summary.json", summary)
            return dict(summary, reused=True)
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
    guard = NonFiniteGuard(cfg.train.max_bad_steps)

    def save():
        if weights_digest(pe) != pe_digest:  # cannot happen while it is frozen; checked, not assumed
            raise RuntimeError("the frozen PhysicsExpert's weights changed during fine-tuning")
        extra = dict(run_info, train_state={"step": step, "position": dict(position)})
        ckpts.save_latest(ve, optimizer, extra=extra, extra_generators={"starts": starts_gen})

    instances: dict[int, torch.Tensor] = {}  # colour instances per clip, computed from pixels once
    stream = clip_batches(dataset, cfg, position)
    span = len(dataset[0]["rgb"]) - ve.config.frames - cfg.supervisor.consistency_offset + 1
    bar = progress_bar(total=cfg.train.max_steps, initial=step, desc="train supervisor") if progress else None
    try:
        while step < cfg.train.max_steps:
            optimizer.zero_grad(set_to_none=True)
            sums: dict[str, float] = {}
            for _ in range(cfg.optim.grad_accum):
                idx = next(stream)
                rgb = torch.stack([dataset[i]["rgb"] for i in idx])  # [B, T_clip, H, W, 3]
                for i in idx:
                    if i not in instances:
                        instances[i] = colour_instances(
                            dataset[i]["rgb"].numpy(), ve.mask_size, cfg.supervisor.min_instance_pixels
                        )
                starts = torch.randint(0, span, (len(idx),), generator=starts_gen).tolist()
                terms = losses(ve, pe, rgb, starts, [instances[i] for i in idx], camera, stride, cfg)
                loss = terms["loss"] / cfg.optim.grad_accum
                if loss.requires_grad:
                    loss.backward()
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / cfg.optim.grad_accum
            if not guard.check(torch.tensor(sums["loss"]), ve):
                optimizer.zero_grad(set_to_none=True)
                logger.log(step, skipped_nonfinite=guard.bad_steps_total)
                continue
            grad_norm = clip_gradients(ve, cfg.optim.grad_clip)
            lr = cosine_with_warmup(
                step, cfg.optim.warmup_steps, cfg.train.max_steps, cfg.optim.lr, cfg.optim.min_lr_ratio
            )
            set_lr(optimizer, lr)
            optimizer.step()
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{sums['loss']:.4f}", phys=f"{sums['phys']:.4f}")
            if step % cfg.train.log_every == 0 or step == cfg.train.max_steps:
                logger.log(step, lr=lr, grad_norm=grad_norm, epoch=position["epoch"], **sums)
            if step % cfg.train.save_every == 0 or step == cfg.train.max_steps:
                save()
    except TooManyBadSteps as e:
        logger.close()
        raise RuntimeError(
            f"stopped after {cfg.train.max_bad_steps} non-finite steps in a row at step {step}; "
            f"the last good checkpoint is {ckpts.latest_path()}. Lower optim.lr or the loss weights."
        ) from e
    finally:
        if bar is not None:
            bar.close()
    logger.close()
    summary = {"steps": step, "output_dir": str(out), "latest": str(ckpts.latest_path())}
    atomic_write_json(out / "summary.json", summary)
    return summary


def main(config_path: str, overrides: list[str], progress: bool = True) -> dict:
    return train(load_config(config_path, RecipeConfig, overrides), progress=progress)
