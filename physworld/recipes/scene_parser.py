"""Recipe: train the T5 prompt parser (physworld/models/scene_parser.py) on generated prompt -> scene pairs.

    physworld train scene-parser --config configs/scene_parser/default.yaml [key=value ...]

Steps, written out top to bottom:
  1. load and check the config; refuse a finished or foreign run before writing anything
  2. generate the corpus (physworld/text2scene/phrasing.py: scenario families x phrasings, deterministic
     from the seed; held-out phrasings never in training) with compact targets (text2scene/schema.py)
  3. train the WordPiece tokenizer on the training pairs, or load a pretrained T5's (model.pretrained),
     and save it beside the checkpoints; build the T5 from the config or load the pretrained one
  4. optimizer steps over seeded epochs: NaN/Inf guard, clipping, warmup + cosine learning rate,
     tqdm progress, JSONL + TensorBoard scalars; validation loss and exact match on the val split;
     `latest` every save_every steps, `best` by validation loss
  5. summary.json with the final exact match on the val and held-out-phrasing splits

Resuming restores model, optimizer, RNG states and the data position (epoch, sample): a killed run ends
with the same weights, bit for bit on CPU, as one never interrupted.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from physworld.fileio import atomic_write_json, check_output_path, remove_stale_temporaries
from physworld.models.scene_parser import (
    SceneParserConfig,
    build_model,
    encode,
    generate,
    load_pretrained,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)
from physworld.text2scene.phrasing import corpus
from physworld.text2scene.schema import SceneError, from_compact, same_scene, to_compact
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

RECIPE = "scene-parser"


@dataclass
class DataConfig:
    train_examples: int = 20000  # generated prompt -> scene pairs in the training phrasings
    val_examples: int = 300  # same phrasings, other scenes: validation loss and exact match
    heldout_examples: int = 300  # phrasings never seen in training, scored at the end
    batch_size: int = 64
    eval_examples: int = 200  # val pairs decoded for exact match at each evaluation


@dataclass
class RecipeConfig:
    train: TrainConfig
    data: DataConfig = field(default_factory=DataConfig)
    model: SceneParserConfig = field(default_factory=SceneParserConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self):
        for name in ("train_examples", "val_examples", "heldout_examples", "batch_size", "eval_examples"):
            if getattr(self.data, name) < 1:
                raise ValueError(f"data.{name} must be at least 1, got {getattr(self.data, name)}")
        if self.data.batch_size > self.data.train_examples:
            raise ValueError("data.batch_size is more than data.train_examples; lower it or generate more")
        if self.train.curriculum_stages:
            raise ValueError("train.curriculum_stages: the scene parser has no curriculum; set it to 0")
        m = self.model
        for name in ("d_model", "d_ff", "d_kv", "num_heads", "num_layers", "num_decoder_layers", "max_source_tokens",
                     "max_target_tokens"):  # fmt: skip
            if getattr(m, name) < 1:
                raise ValueError(f"model.{name} must be at least 1, got {getattr(m, name)}")
        if m.vocab_size < 64:
            raise ValueError(f"model.vocab_size must be at least 64, got {m.vocab_size}")
        if not 0 <= m.dropout < 1:
            raise ValueError(f"model.dropout must be in [0, 1), got {m.dropout}")
        check_schedule(self.optim, self.train)


def exact_match(parse, pairs) -> tuple[float, int]:
    """(share of prompts whose decoded scene equals the expected one, lines that did not decode)."""
    lines = parse([p for p, _ in pairs])
    hits, bad = 0, 0
    for line, (_, scene) in zip(lines, pairs, strict=True):
        try:
            hits += same_scene(from_compact(line), scene)
        except SceneError:
            bad += 1
    return hits / max(len(pairs), 1), bad


@torch.no_grad()
def val_loss(model, tokenizer, pairs, cfg) -> float:
    model.eval()
    total, n = 0.0, 0
    for k in range(0, len(pairs), cfg.data.batch_size):
        chunk = pairs[k : k + cfg.data.batch_size]
        batch = encode(tokenizer, [p for p, _ in chunk], [t for _, t in chunk], cfg.model)
        total += float(model(**batch).loss) * len(chunk)
        n += len(chunk)
    model.train()
    return total / max(n, 1)


def train(cfg: RecipeConfig, progress: bool = True) -> dict:
    out = Path(cfg.train.output_dir)
    check_output_path(out, "train.output_dir")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    set_deterministic(cfg.train.deterministic)

    # The corpus: generated, deterministic from the seed; compact targets.
    train_pairs = [(p, to_compact(s)) for p, s in corpus(cfg.data.train_examples, cfg.train.seed, "train")]
    val_scenes = corpus(cfg.data.val_examples, cfg.train.seed, "val")
    heldout_scenes = corpus(cfg.data.heldout_examples, cfg.train.seed, "heldout")
    val_pairs = [(p, to_compact(s)) for p, s in val_scenes]
    corpus_sha = hashlib.sha256(json.dumps(train_pairs).encode()).hexdigest()

    ckpts = CheckpointManager(out / "checkpoints")
    identity = {"model_config": config_to_dict(cfg.model), "corpus_sha256": corpus_sha}
    resumed = check_resume(ckpts.directory, RECIPE, identity, out)
    if resumed is not None and resumed.meta["extra"]["train_state"]["step"] >= cfg.train.max_steps:
        summary_path = out / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {
            "steps": resumed.meta["extra"]["train_state"]["step"], "output_dir": str(out),
            "latest": str(ckpts.latest_path())}  # fmt: skip
        return dict(summary, reused=True)

    # Tokenizer and model
    if cfg.model.pretrained:
        model, tokenizer = load_pretrained(cfg.model.pretrained)
    else:
        if resumed is not None:  # the run's own vocabulary, not one retrained by another library version
            tokenizer = load_tokenizer(out)
        else:
            tokenizer = train_tokenizer([t for pair in train_pairs for t in pair], cfg.model.vocab_size)
        model = build_model(cfg.model, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    run_info = {
        "recipe": RECIPE,
        "model_config": config_to_dict(cfg.model),
        "t5_config": model.config.to_dict(),
        "corpus_sha256": corpus_sha,
        "train_examples": cfg.data.train_examples,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    step, position = 0, {"epoch": 0, "sample": 0}
    best = float("inf")
    if resumed is not None:
        meta = restore(resumed, model, optimizer, rng=True)
        state = meta["extra"]["train_state"]
        step, position, best = state["step"], state["position"], state["best"]
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    save_tokenizer(tokenizer, out)
    remove_stale_temporaries(ckpts.directory)
    logger = MetricLogger(out, tensorboard=cfg.train.tensorboard, wandb_project=cfg.train.wandb_project,
                          wandb_config=config_to_dict(cfg), resume_step=step if resumed is not None else None)  # fmt: skip
    guard = NonFiniteGuard(cfg.train.max_bad_steps)

    def save(kind: str, metric: float | None = None):
        extra = dict(run_info, train_state={"step": step, "position": dict(position), "best": best})
        if kind == "latest":
            ckpts.save_latest(model, optimizer, extra=extra)
        else:
            ckpts.save_best(metric, model, optimizer, extra=extra)

    def parser(prompts):
        lines = generate(model, tokenizer, prompts, cfg.model)
        model.train()
        return lines

    n = len(train_pairs)
    bs = cfg.data.batch_size
    bar = (
        progress_bar(total=cfg.train.max_steps, initial=step, desc="train scene-parser") if progress else None
    )
    model.train()
    t_last = time.perf_counter()
    try:
        while step < cfg.train.max_steps:
            order = torch.randperm(
                n, generator=torch.Generator().manual_seed(cfg.train.seed * 100_003 + position["epoch"])
            )
            if position["sample"] + bs > n:  # the epoch's tail shorter than a batch is skipped
                position = {"epoch": position["epoch"] + 1, "sample": 0}
                continue
            idx = order[position["sample"] : position["sample"] + bs].tolist()
            batch = encode(
                tokenizer, [train_pairs[i][0] for i in idx], [train_pairs[i][1] for i in idx], cfg.model
            )
            position["sample"] += bs
            optimizer.zero_grad(set_to_none=True)
            loss = model(**batch).loss
            loss.backward()
            if not guard.check(loss.detach(), model):
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
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            if step % cfg.train.log_every == 0 or step == cfg.train.max_steps:
                now = time.perf_counter()
                logger.log(step, loss=float(loss.detach()), lr=lr, grad_norm=grad_norm, epoch=position["epoch"],
                           examples_per_s=bs * cfg.train.log_every / max(now - t_last, 1e-9))  # fmt: skip
                t_last = now
            if step % cfg.train.eval_every == 0 or step == cfg.train.max_steps:
                vl = val_loss(model, tokenizer, val_pairs, cfg)
                em, bad = exact_match(parser, val_scenes[: cfg.data.eval_examples])
                logger.log(step, val_loss=vl, val_exact_match=em, val_undecodable=bad)
                if vl < best:
                    best = vl
                    save("best", metric=best)
            if step % cfg.train.save_every == 0 or step == cfg.train.max_steps:
                save("latest")
    except TooManyBadSteps as e:
        logger.close()
        raise RuntimeError(
            f"stopped after {cfg.train.max_bad_steps} non-finite steps in a row at step {step}; "
            f"the last good checkpoint is {ckpts.latest_path()}. Lower optim.lr."
        ) from e
    finally:
        if bar is not None:
            bar.close()
    val_em, val_bad = exact_match(parser, val_scenes)
    held_em, held_bad = exact_match(parser, heldout_scenes)
    logger.log(step, final_val_exact_match=val_em, final_heldout_exact_match=held_em)
    logger.close()
    summary = {
        "steps": step,
        "output_dir": str(out),
        "latest": str(ckpts.latest_path()),
        "best_val_loss": best,
        "val_exact_match": val_em,
        "val_undecodable": val_bad,
        "heldout_phrasing_exact_match": held_em,
        "heldout_undecodable": held_bad,
        "parameters": run_info["parameters"],
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def main(config_path: str, overrides: list[str], progress: bool = True) -> dict:
    cfg = load_config(config_path, RecipeConfig, overrides)
    return train(cfg, progress=progress)
