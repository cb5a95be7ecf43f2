"""Recipe: train a GPT from scratch to predict the next frame of a scene written as text.

    physworld train gpt --config configs/gpt/tiny.yaml [key=value ...]

1. Offline preparation (nanoGPT style): every training example, `<bos> scene prompt + context frames
   + next frame <eos>`, is tokenised once with the digit-level CharTokenizer into one flat uint8
   array that training memory-maps, with a table of (offset, length, completion start, difficulty).
   Examples longer than the block drop context frames from the front; the predicted frame is never cut.
2. The loop, written out: batches padded to their longest example, loss on the predicted frame's
   tokens only (completion-only; `data.whole_sequence_loss=true` scores every token), muP learning
   rates per parameter group, warmup + cosine, clipping, the NaN/Inf guard, curriculum stages by
   difficulty, `latest`/`best`/`stageK` safetensors checkpoints with the data position, metrics.
Resuming restores everything, so a killed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from physworld.data import text, windows
from physworld.data.store import Dataset
from physworld.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    check_output_path,
    remove_stale_temporaries,
)
from physworld.models.gpt import GPT, PRESETS, GPTConfig
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

PREPARED_VERSION = 1


@dataclass
class DataConfig:
    train_dir: str
    val_dir: str | None = None
    scenario_types: tuple[str, ...] = ("all",)
    fmt: str = "compact"
    context_frames: int = 3  # frames in the prompt (fewer where the block cannot hold them)
    stride: int = 1  # use every stride-th frame of a scene as a prediction target
    batch_size: int = 8
    val_examples: int = 64
    whole_sequence_loss: bool = False


@dataclass
class ModelConfig:
    preset: str = "tiny"  # tiny, small, 125M, 350M, 760M (models/gpt.py PRESETS)
    block_size: int = 1024
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    mup_base_width: int | None = None  # muP on, with this base width; None: standard parametrisation
    dropout: float = 0.0
    init_std: float = 0.02  # muP's hyperparameters, tuned at the base width (models/gpt.py GPTConfig)
    attn_mult: float = 1.0
    output_mult: float = 1.0


@dataclass
class RecipeConfig:
    data: DataConfig
    train: TrainConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self):
        if self.data.fmt not in text.FORMATS:
            raise ValueError(f"data.fmt must be one of {text.FORMATS}, got {self.data.fmt!r}")
        for name in ("context_frames", "stride", "batch_size", "val_examples"):
            if getattr(self.data, name) < 1:
                raise ValueError(f"data.{name} must be at least 1, got {getattr(self.data, name)}")
        resolve_types(self.data.scenario_types)
        m = self.model
        if m.preset not in PRESETS:
            raise ValueError(f"model.preset must be one of {', '.join(PRESETS)}, got {m.preset!r}")
        for name in ("block_size", "n_layer", "n_head", "n_embd", "mup_base_width"):
            value = getattr(m, name)
            if value is not None and value < 1:
                raise ValueError(f"model.{name} must be at least 1, got {value}")
        if not 0 <= m.dropout < 1:
            raise ValueError(f"model.dropout must be in [0, 1), got {m.dropout}")
        for name in ("init_std", "attn_mult", "output_mult"):
            if not getattr(m, name) > 0:
                raise ValueError(f"model.{name} must be positive, got {getattr(m, name)}")
        try:
            gpt_config(m, text.CharTokenizer().vocab_size)
        except (ValueError, AssertionError) as e:  # e.g. n_embd not a multiple of n_head
            raise ValueError(f"model: {e}") from None
        check_schedule(self.optim, self.train)


def gpt_config(cfg: ModelConfig, vocab_size: int) -> GPTConfig:
    overrides = {
        k: v
        for k, v in (("n_layer", cfg.n_layer), ("n_head", cfg.n_head), ("n_embd", cfg.n_embd))
        if v is not None
    }
    return GPTConfig.from_preset(
        cfg.preset,
        vocab_size=vocab_size,
        block_size=cfg.block_size,
        mup_base_width=cfg.mup_base_width,
        dropout=cfg.dropout,
        init_std=cfg.init_std,
        attn_mult=cfg.attn_mult,
        output_mult=cfg.output_mult,
        **overrides,
    )


# ---------------------------------------------------------------- offline preparation


def prepare_examples(
    data_dir,
    tokenizer: text.CharTokenizer,
    fmt: str,
    context_frames: int,
    block_size: int,
    stride: int = 1,
    progress: bool = True,
) -> Path:
    """Tokenise every example of a store once into memory-mappable arrays; reused while up to date."""
    from tqdm.auto import tqdm

    ds = Dataset(data_dir)
    key = {
        "version": PREPARED_VERSION,
        "source": windows.source_key(ds.manifest),
        "fmt": fmt,
        "context_frames": context_frames,
        "block_size": block_size,
        "stride": stride,
        "tokenizer": tokenizer.chars,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    out = Path(data_dir) / f"text_{fmt}_{digest}"
    if (out / "meta.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    chunks, rows, offset, dropped_context, skipped = [], [], 0, 0, 0
    for record in tqdm(ds.iter_scenes(), total=len(ds), unit="scene", desc="tokenise", disable=not progress):
        for t in range(0, record["states"].shape[0] - 1, stride):
            ids = None
            for c in range(min(context_frames, t + 1), 0, -1):  # drop context frames until it fits
                prompt, completion = text.training_example(record, t, c, fmt)
                p_ids = tokenizer.encode(prompt, add_bos=True)
                ids = p_ids + tokenizer.encode(completion, add_eos=True)
                if len(ids) <= block_size + 1:
                    dropped_context += c < min(context_frames, t + 1)
                    break
                ids = None
            if ids is None:
                skipped += 1
                continue
            chunks.append(np.asarray(ids, dtype=np.uint8))
            rows.append((offset, len(ids), len(p_ids), record["difficulty"], record["scene_id"]))
            offset += len(ids)
    if not rows:
        raise ValueError(
            f"{data_dir}: no example fits model.block_size={block_size}; raise it or use fewer bodies"
        )
    tokens = np.concatenate(chunks)
    for name, arr in (("tokens.npy", tokens), ("examples.npy", np.asarray(rows, dtype=np.int64))):
        buf = io.BytesIO()
        np.save(buf, arr)
        atomic_write_bytes(out / name, buf.getvalue())
    types = ds.index.column("scenario_type").to_pylist()
    atomic_write_json(
        out / "meta.json",
        dict(
            key,
            examples=len(rows),
            tokens=int(len(tokens)),
            examples_with_fewer_context_frames=int(dropped_context),
            skipped_too_long=int(skipped),
            scenario_types=sorted(set(types)),
        ),
    )
    return out


class Examples:
    """The prepared arrays, memory-mapped; batches are built by index."""

    def __init__(
        self, prepared: Path, tokenizer: text.CharTokenizer, difficulties=None, whole_sequence=False
    ):
        self.tokens = np.load(prepared / "tokens.npy", mmap_mode="r")
        rows = np.load(prepared / "examples.npy")
        if difficulties is not None:
            rows = rows[np.isin(rows[:, 3], list(difficulties))]
        self.rows = rows
        self.pad = tokenizer.pad_id
        self.whole_sequence = whole_sequence

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x, y [B, T] (y is x shifted by one) and the loss mask [B, T]: 1 where y is a token of the
        predicted frame (or its <eos>), or every real token with whole_sequence."""
        rows = self.rows[np.asarray(indices)]
        width = int(rows[:, 1].max()) - 1
        x = np.full((len(rows), width), self.pad, dtype=np.int64)
        y = np.full_like(x, self.pad)
        mask = np.zeros(x.shape, dtype=np.float32)
        for i, (off, length, start, _, _) in enumerate(rows):
            ids = np.asarray(self.tokens[off : off + length], dtype=np.int64)
            x[i, : length - 1], y[i, : length - 1] = ids[:-1], ids[1:]
            first = (
                0 if self.whole_sequence else start - 1
            )  # y[j] = ids[j + 1]: completion starts at j = start - 1
            mask[i, first : length - 1] = 1.0
        return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask)


# ---------------------------------------------------------------- the recipe


def train(cfg: RecipeConfig, progress: bool = True) -> dict:
    # Everything that can refuse the run is checked before the run's directory is written to, so a
    # refused or finished run leaves an existing run's config.yaml and summary.json as they were.
    out = Path(cfg.train.output_dir)
    check_output_path(out, "train.output_dir")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    set_deterministic(cfg.train.deterministic)

    tokenizer = text.CharTokenizer()
    prep = dict(
        tokenizer=tokenizer,
        fmt=cfg.data.fmt,
        context_frames=cfg.data.context_frames,
        block_size=cfg.model.block_size,
        stride=cfg.data.stride,
        progress=progress,
    )
    main = distributed.is_main()  # with several processes (torchrun) only rank 0 writes files
    prep["progress"] = progress and main
    train_manifest = Dataset(cfg.data.train_dir).manifest
    with distributed.main_first():  # rank 0 prepares the examples, the other processes then read them
        prepared = prepare_examples(cfg.data.train_dir, **prep)
    train_types = [
        t for t in resolve_types(cfg.data.scenario_types) if t in train_manifest["scenes_per_type"]
    ]
    plan = stage_plan(cfg.train)
    check_stages(
        plan,
        lambda difficulties: len(Examples(prepared, tokenizer, difficulties)),
        cfg.data.batch_size,
        cfg.data.train_dir,
        unit="examples",
    )
    val = None
    if cfg.data.val_dir:
        with distributed.main_first():
            val_prepared = prepare_examples(cfg.data.val_dir, **prep)
        val = Examples(val_prepared, tokenizer, whole_sequence=cfg.data.whole_sequence_loss)
        pick = np.random.default_rng(cfg.train.seed).permutation(len(val))[: cfg.data.val_examples]
        val_batches = [
            val.batch(pick[i : i + cfg.data.batch_size]) for i in range(0, len(pick), cfg.data.batch_size)
        ]

    model_config = gpt_config(cfg.model, tokenizer.vocab_size)
    model = GPT(model_config)
    optimizer = model.configure_optimizers(
        weight_decay=cfg.optim.weight_decay, lr=cfg.optim.lr, betas=(0.9, 0.95)
    )
    ckpts = CheckpointManager(out / "checkpoints")
    run_info = {
        "recipe": "gpt",
        "model_config": dataclasses.asdict(model_config),
        "tokenizer": {"type": "CharTokenizer", "chars": tokenizer.chars},
        "fmt": cfg.data.fmt,
        "context_frames": cfg.data.context_frames,
        "train_dir": str(cfg.data.train_dir),
        "train_scenario_types": train_types,
        "train_manifest_shards": [s["sha256"] for s in train_manifest["shards"]],
    }

    step, stage_index, position, best = 0, 0, {"epoch": 0, "sample": 0}, float("inf")
    identity = {
        k: run_info[k]
        for k in ("model_config", "fmt", "context_frames", "train_scenario_types", "train_manifest_shards")
    }
    resumed = check_resume(ckpts.directory, "gpt", identity, out)
    latest = None if resumed is None else resumed.path
    if resumed is not None:
        meta = restore(resumed, model, optimizer, rng=True)
        state = meta["extra"]["train_state"]
        step, stage_index, position, best = state["step"], state["stage"], state["position"], state["best"]
        if stage_index >= len(plan):  # finished: nothing to train, nothing rewritten
            summary = {
                "steps": step,
                "best_val_loss": best if val is not None else None,
                "output_dir": str(out),
                "latest": str(latest),
                "prepared": str(prepared),
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
    # model(x, y, loss_mask) through DDP with several processes; every parameter is used each step.
    train_forward = distributed.wrap(model, method="forward", find_unused_parameters=False)
    guard = NonFiniteGuard(cfg.train.max_bad_steps)

    def save(kind, name=None, metric=None):
        extra = dict(
            run_info,
            train_state={"step": step, "stage": stage_index, "position": dict(position), "best": best},
        )
        if not main:  # rank 0 writes; the others wait until the file is complete
            distributed.barrier()
            return
        if kind == "latest":
            ckpts.save_latest(model, optimizer, extra=extra)
        elif kind == "best":
            ckpts.save_best(metric, model, optimizer, extra=extra)
        else:
            ckpts.save_named(name, model, optimizer, extra=extra)
        distributed.barrier()

    @torch.no_grad()
    def validate() -> float:
        model.eval()
        losses = [float(model(x, y, loss_mask=m)[1]) for x, y, m in val_batches]
        model.train()
        return float(np.mean(losses))

    bar = (
        progress_bar(total=cfg.train.max_steps, initial=step, desc="train gpt") if progress and main else None
    )
    model.train()
    try:
        while stage_index < len(plan):
            difficulties, stage_end = plan[stage_index]
            data = Examples(prepared, tokenizer, difficulties, whole_sequence=cfg.data.whole_sequence_loss)
            if len(data) < cfg.data.batch_size:
                raise ValueError(
                    f"{len(data)} training examples in stage {stage_index + 1}, fewer than one batch"
                )
            seed = cfg.train.seed + 1000 * stage_index
            order = windows.epoch_permutation(len(data), seed=seed, epoch=position["epoch"])
            t_last, tokens_since = time.perf_counter(), 0
            while step < stage_end:
                optimizer.zero_grad(set_to_none=True)
                loss_total = 0.0
                for _ in range(cfg.optim.grad_accum):
                    if position["sample"] + cfg.data.batch_size > len(order):  # next epoch
                        position = {"epoch": position["epoch"] + 1, "sample": 0}
                        order = windows.epoch_permutation(len(data), seed=seed, epoch=position["epoch"])
                    idx = order[position["sample"] : position["sample"] + cfg.data.batch_size]
                    position["sample"] += cfg.data.batch_size
                    # data.batch_size is the global batch: each process takes its slice of it.
                    (idx,) = distributed.shard_batches(idx, cfg.data.batch_size)
                    x, y, mask = data.batch(idx)
                    # The loss is a mean over the scored tokens, which ranks hold different numbers of:
                    # weighted so that DDP's average over ranks is the global batch's mean.
                    scale = distributed.global_mean_scale(float(mask.sum()))  # one process: 1.0
                    _, loss = train_forward(x, y, loss_mask=mask)
                    (loss * scale / cfg.optim.grad_accum).backward()
                    loss_total += float(loss.detach()) * scale / cfg.optim.grad_accum
                    tokens_since += int((x != tokenizer.pad_id).sum())
                (loss_total,) = distributed.mean_over_ranks({"loss": loss_total}).values()
                if not guard.check(torch.tensor(loss_total), model):
                    optimizer.zero_grad(set_to_none=True)
                    logger.log(step, skipped_nonfinite=guard.bad_steps_total)
                    continue
                grad_norm = clip_gradients(model, cfg.optim.grad_clip)
                lr = cosine_with_warmup(
                    step, cfg.optim.warmup_steps, cfg.train.max_steps, cfg.optim.lr, cfg.optim.min_lr_ratio
                )
                set_lr(optimizer, lr)  # muP's per-group multipliers ride on each group's lr_scale
                optimizer.step()
                step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_total:.4f}", stage=stage_index + 1)
                if step % cfg.train.log_every == 0 or step == stage_end:
                    now = time.perf_counter()
                    tokens_since = distributed.mean_over_ranks({"tokens": tokens_since})["tokens"]
                    tokens_since *= distributed.world_size()  # the tokens of every process
                    logger.log(
                        step,
                        loss=loss_total,
                        lr=lr,
                        grad_norm=grad_norm,
                        stage=stage_index + 1,
                        tokens_per_s=tokens_since / max(now - t_last, 1e-9),
                        epoch=position["epoch"],
                    )
                    t_last, tokens_since = now, 0
                if val is not None and (step % cfg.train.eval_every == 0 or step == cfg.train.max_steps):
                    val_loss = validate()
                    logger.log(step, val_loss=val_loss)
                    if val_loss < best:
                        best = val_loss
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
            f"the last good checkpoint is {ckpts.latest_path()}"
        ) from e
    finally:
        if bar is not None:
            bar.close()
    if val is None:
        save("best", metric=float("nan"))
    logger.close()
    summary = {
        "steps": step,
        "best_val_loss": best if val is not None else None,
        "output_dir": str(out),
        "latest": str(ckpts.latest_path()),
        "prepared": str(prepared),
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


if __name__ == "__main__":  # torchrun --nproc_per_node N -m physworld.recipes.gpt --config ...
    distributed.command_line("gpt", main)
