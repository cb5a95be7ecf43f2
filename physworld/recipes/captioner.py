"""Recipe: a Q-Former video captioner between a frozen video encoder and a frozen causal LM.

    physworld train captioner --config configs/captioner/tiny.yaml data.train_dir=D [key=value ...]

`data.train_dir` (and `data.val_dir`) are datasets with clips (`physworld generate ... --with-clips`),
whose clips carry captions, events and questions (docs/CAPTIONS.md). Steps:

  1. load and validate the config, save it resolved beside the outputs
  2. the clips' frames (resampled to the encoder's frames and size) and their captions and questions;
     one example per caption ("Describe the video .") and per question ("Question : ... Answer :")
  3. the frozen LM: `lm.path` (a local directory or a hub id), or a tiny GPT-2 with a word-level
     tokenizer built and pre-trained on the training text, saved in `<output_dir>/lm`
  4. the frozen video encoder (models/vjepa.py; `encoder.checkpoint` or a random one from
     `encoder.seed`); every clip is encoded once: the encoder is frozen, so its tokens never change
  5. train the bridge (queries, Q-Former, projection) alone: AdamW, warmup + cosine, NaN/Inf guard,
     clipping; log (TensorBoard), checkpoint `latest` (the bridge and optimizer only, with the frozen
     parts' sources and SHA-256 in the metadata)
  6. score on `data.val_dir`: captions by event and object precision/recall against the clips' event
     logs, answers by accuracy per question type beside the majority answer per template; seen and
     held-out scenario types apart (metrics.json)

`model.use_video=false` trains the text-only baseline the same way (bench/bench_captioner.py runs
both). A killed run resumes from `checkpoints/latest` (bridge, optimizer, RNG, data position) and ends
with the same weights, bit for bit on CPU, as one never interrupted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from physworld.data import clips as C
from physworld.data.captions import static_names
from physworld.data.clip_view import ClipDataset, prepare_clips
from physworld.data.store import Dataset
from physworld.evaluation import caption_scores as S
from physworld.fileio import atomic_write_json, check_output_path, remove_stale_temporaries
from physworld.models.captioner import (
    Captioner,
    CaptionerConfig,
    TinyLMConfig,
    build_tiny_lm,
    check_config,
    collate,
    decode,
    load_lm,
    prompt_ids,
    question_prompt,
    read_video,
    resample_frames,
    target_ids,
    weights_sha256,
)
from physworld.models.vjepa import VJEPAConfig, load_video_encoder
from physworld.training.checkpoint import CheckpointError, CheckpointManager, check_resume, load_run, restore
from physworld.training.common import OptimConfig, TrainConfig, check_schedule
from physworld.training.config import config_from_dict, config_to_dict, load_config, save_config
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

RECIPE = "captioner"

# ---------------------------------------------------------------- config


@dataclass
class DataConfig:
    train_dir: str  # a dataset with clips and their captions (physworld generate --with-clips)
    val_dir: str | None = None  # scored after training; None: no scores
    batch_size: int = 16
    captions: bool = True  # train on the captions
    questions: bool = True  # train on the questions and their answers
    # Each caption counts this many times per epoch: a clip has one caption and ~15 questions, so
    # without repeats captions are 6% of the examples (and they carry most of what the video shows).
    caption_repeats: int = 1


@dataclass
class EncoderConfig:
    checkpoint: str | None = None  # a vjepa .safetensors or a save_pretrained directory; None: random init
    seed: int = 0  # the random initialisation's seed when checkpoint is None
    model: VJEPAConfig = field(default_factory=VJEPAConfig)


@dataclass
class LMConfig:
    path: str | None = None  # a causal LM: local directory or hub id; None: build the tiny GPT-2 below
    tiny: TinyLMConfig = field(default_factory=TinyLMConfig)


@dataclass
class EvalConfig:
    max_clips: int = 64  # validation clips scored (the first ones of the dataset)
    max_questions_per_clip: int = 0  # 0: every question


@dataclass
class RecipeConfig:
    data: DataConfig
    train: TrainConfig
    model: CaptionerConfig = field(default_factory=CaptionerConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self):
        if self.data.caption_repeats < 1:
            raise ValueError(f"data.caption_repeats must be at least 1, got {self.data.caption_repeats}")
        if self.data.batch_size < 1:
            raise ValueError(f"data.batch_size must be at least 1, got {self.data.batch_size}")
        if not (self.data.captions or self.data.questions):
            raise ValueError("data.captions and data.questions are both false: nothing to train on")
        if self.eval.max_clips < 0 or self.eval.max_questions_per_clip < 0:
            raise ValueError("eval.max_clips and eval.max_questions_per_clip must be at least 0")
        check_config(self.model)
        check_schedule(self.optim, self.train)


# ---------------------------------------------------------------- data


def load_clip_set(data_dir, progress: bool = False, with_statics: bool = False) -> dict:
    """A dataset's clips: the prepared view (frames), and per clip its caption dict, scenario type and
    (with_statics) the names of its static geometry, which scoring needs."""
    data_dir = Path(data_dir)
    clips_dir = data_dir / C.DEFAULT_SUBDIR
    store = C.Clips(clips_dir)
    view = ClipDataset(prepare_clips(data_dir, progress=progress), streams=("rgb",))
    descriptions, types, ids = [], [], []
    for clip in store.iter_clips(decode=False):
        if clip["caption"] is None:
            raise ValueError(
                f"{clips_dir}: clip of scene {clip['scene_id']} has no caption; render the clips without "
                "--no-clip-captions"
            )
        descriptions.append(clip["caption"])
        types.append(clip["scenario_type"])
        ids.append(int(clip["scene_id"]))
    if [int(s) for s in view.index[:, 0]] != ids:
        raise ValueError(f"{clips_dir}: the clip view does not follow the clips' order; delete {view.root}")
    statics = None
    if with_statics:
        statics = [static_names(r["spec"])[0] for r in Dataset(data_dir).scenes(ids)]
    return {
        "dir": str(data_dir),
        "view": view,
        "descriptions": descriptions,
        "types": types,
        "scene_ids": ids,
        "statics": statics,
        "manifest_shards": [s["sha256"] for s in store.manifest["shards"]],
    }


def texts_of(
    description: dict, captions: bool, questions: bool, caption_repeats: int = 1
) -> list[tuple[str, str, dict | None]]:
    """(prompt, target, question or None) pairs a clip teaches."""
    out = []
    if captions:
        out += [(question_prompt(None), description["caption"], None)] * caption_repeats
    if questions:
        for q in description["questions"]:
            out.append((question_prompt(q["question"], q.get("choices")), q["answer"], q))
    return out


@torch.no_grad()
def encode_clips(
    model: Captioner, view: ClipDataset, count: int, progress: bool, batch: int = 8
) -> torch.Tensor:
    """Video tokens [count, N, D] of the first `count` clips through the frozen encoder."""
    info = model.encoder_info
    out = []
    bar = progress_bar(count, desc="encode clips", unit="clip", disable=not progress)
    for start in range(0, count, batch):
        frames = torch.stack(
            [
                resample_frames(view[i]["rgb"].numpy(), info["frames"], info["image_size"])
                for i in range(start, min(count, start + batch))
            ]
        )  # [b, frames, 3, size, size]
        out.append(model.encode(frames))
        bar.update(len(frames))
    bar.close()
    return torch.cat(out)


def build_encoder(cfg: EncoderConfig):
    """(frozen encoder, info): loaded from cfg.checkpoint, or initialised from cfg.seed (the same
    seed gives the same weights, so the checkpoint need not hold them)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        encoder, info = load_video_encoder(cfg.checkpoint, cfg.model if cfg.checkpoint is None else None)
    return encoder.eval().requires_grad_(False), info


# ---------------------------------------------------------------- scoring


def score(model: Captioner, clip_set: dict, tokens: torch.Tensor, majority: dict, train_types, cfg: EvalConfig,
          progress: bool = False) -> dict:  # fmt: skip
    """Captions (event/object precision and recall) and answers (accuracy per type) of the scored clips,
    beside the majority answer per template; for seen and held-out scenario types apart."""
    model.eval()
    n = min(len(clip_set["descriptions"]), cfg.max_clips or len(clip_set["descriptions"]))
    groups = {"seen": [], "held_out": []}
    samples = []
    bar = progress_bar(n, desc="score captioner", unit="clip", disable=not progress)
    for i in range(n):
        d = clip_set["descriptions"][i]
        video = tokens[i : i + 1]
        caption = model.describe(video)
        counts = S.score_caption(caption, d, clip_set["statics"][i])
        questions = d["questions"][: cfg.max_questions_per_clip or None]
        answers = []
        for q in questions:
            ids = prompt_ids(
                model.tokenizer, question_prompt(q["question"], q.get("choices")), model.cfg.max_prompt_tokens
            )
            answers.append((q, decode(model.tokenizer, model.generate(video, ids, 12))))
        split = "seen" if clip_set["types"][i] in train_types else "held_out"
        groups[split].append((counts, answers))
        if len(samples) < 8:
            samples.append(
                {"scenario_type": clip_set["types"][i], "caption": caption, "reference": d["caption"]}
            )
        bar.update(1)
    bar.close()
    out = {}
    for split, items in groups.items():
        if not items:
            continue
        answered = [a for _, answers in items for a in answers]
        out[split] = {
            "clips": len(items),
            "caption": S.caption_summary([c for c, _ in items]),
            "qa": S.qa_accuracy(answered),
            "qa_majority_baseline": S.qa_accuracy(
                [(q, majority.get(q["template"], "")) for q, _ in answered]
            ),
        }
    out["samples"] = samples
    model.train()
    return out


# ---------------------------------------------------------------- the recipe


def _after_step(step: int) -> None:
    """Called after every optimizer step; tests replace it to interrupt a run."""


def train(cfg: RecipeConfig, progress: bool = True) -> dict:
    out = Path(cfg.train.output_dir)
    check_output_path(out, "train.output_dir")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    set_deterministic(cfg.train.deterministic)

    train_set = load_clip_set(cfg.data.train_dir, progress=progress)
    train_types = sorted(set(train_set["types"]))
    pairs = [
        (i, prompt, target)
        for i, d in enumerate(train_set["descriptions"])
        for prompt, target, _ in texts_of(d, cfg.data.captions, cfg.data.questions, cfg.data.caption_repeats)
    ]
    if len(pairs) < cfg.data.batch_size:
        raise ValueError(
            f"{cfg.data.train_dir}: {len(pairs)} training examples, fewer than one batch of "
            f"{cfg.data.batch_size}; generate more scenes or lower data.batch_size"
        )

    ckpts = CheckpointManager(out / "checkpoints")
    if cfg.lm.path is None:
        # The LM's text: every caption and question-answer pair of the training clips, as the
        # captioner sees them (prompt, then target).
        corpus = [f"{prompt} {target}" for _, prompt, target in dict.fromkeys(pairs)]
        lm_dir = build_tiny_lm(out / "lm", corpus, cfg.lm.tiny, progress=progress)
    else:
        lm_dir = cfg.lm.path
    lm, tokenizer = load_lm(str(lm_dir))
    encoder, info = build_encoder(cfg.encoder)
    if C.Clips(Path(cfg.data.train_dir) / C.DEFAULT_SUBDIR).manifest["clip"]["frames"] < info["frames"]:
        raise ValueError(
            f"{cfg.data.train_dir}: clips have fewer frames than the encoder's {info['frames']}; render "
            "longer clips (--clip-frames) or set encoder.model.frames lower"
        )
    model = Captioner(cfg.model, encoder, info, lm, tokenizer)
    run_info = {
        "recipe": RECIPE,
        "model_config": config_to_dict(cfg.model),
        "encoder": {
            "checkpoint": cfg.encoder.checkpoint,
            "seed": cfg.encoder.seed,
            "model": config_to_dict(cfg.encoder.model),
            "info": {k: v for k, v in info.items() if isinstance(v, (int, float, str, list, tuple))},
            "sha256": weights_sha256(encoder),
        },
        "lm": {
            "path": str(Path(lm_dir).resolve()) if Path(lm_dir).is_dir() else str(lm_dir),
            "sha256": weights_sha256(lm),
        },  # fmt: skip
        "train_dir": str(cfg.data.train_dir),
        "train_scenario_types": train_types,
        "train_manifest_shards": train_set["manifest_shards"],
    }
    run_info = json.loads(json.dumps(run_info))  # plain JSON, as it reads back from the checkpoint
    examples = [
        {
            "clip": i,
            "prompt": prompt_ids(tokenizer, prompt, cfg.model.max_prompt_tokens),
            "target": target_ids(tokenizer, target, cfg.model.max_target_tokens),
        }
        for i, prompt, target in pairs
    ]
    optimizer = torch.optim.AdamW(
        model.bridge.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    step, position = 0, {"epoch": 0, "index": 0}
    identity = {k: run_info[k] for k in ("model_config", "encoder", "lm", "train_manifest_shards")}
    resumed = check_resume(ckpts.directory, RECIPE, identity, out)
    guard = NonFiniteGuard(cfg.train.max_bad_steps)
    if resumed is not None:
        meta = restore(resumed, model.bridge, optimizer, rng=True)
        state = meta["extra"]["train_state"]
        step, position = state["step"], state["position"]
        guard.load_state_dict(state["guard"])
        if step >= cfg.train.max_steps and (out / "summary.json").exists():
            return {"steps": step, "output_dir": str(out), "latest": str(resumed.path), "reused": True}
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

    tokens = encode_clips(model, train_set["view"], len(train_set["descriptions"]), progress)  # [clips, N, D]
    if resumed is None:  # a resumed run has them from the checkpoint (the same numbers)
        model.bridge.set_video_stats(tokens)

    def save():
        extra = dict(
            run_info, train_state={"step": step, "position": dict(position), "guard": guard.state_dict()}
        )
        ckpts.save_latest(model.bridge, optimizer, step=step, config=cfg, extra=extra)

    def next_batch() -> list[dict]:
        batch = []
        while len(batch) < cfg.data.batch_size:
            order = np.random.default_rng([cfg.train.seed, position["epoch"]]).permutation(len(examples))
            take = order[position["index"] : position["index"] + cfg.data.batch_size - len(batch)]
            batch += [examples[int(k)] for k in take]
            position["index"] += len(take)
            if position["index"] >= len(examples):
                position["epoch"] += 1
                position["index"] = 0
        return batch

    bar = progress_bar(cfg.train.max_steps, initial=step, desc=f"train {RECIPE}", disable=not progress)
    model.train()
    t_last, seen_since = time.perf_counter(), 0
    loss_value = float("nan")
    try:
        while step < cfg.train.max_steps:
            lr = cosine_with_warmup(
                step, cfg.optim.warmup_steps, cfg.train.max_steps, cfg.optim.lr, cfg.optim.min_lr_ratio
            )
            set_lr(optimizer, lr)
            optimizer.zero_grad(set_to_none=True)
            loss_total = 0.0
            for _ in range(cfg.optim.grad_accum):
                batch = next_batch()
                text = collate(batch, model.pad_id)
                video = tokens[torch.tensor([e["clip"] for e in batch])]
                loss = model.loss(video, **text) / cfg.optim.grad_accum
                loss.backward()
                loss_total += float(loss.detach())
                seen_since += len(batch)
            step += 1
            if guard.check(torch.tensor(loss_total), model.bridge):
                grad_norm = clip_gradients(model.bridge, cfg.optim.grad_clip)
                optimizer.step()
                loss_value = loss_total
            else:
                optimizer.zero_grad(set_to_none=True)
                grad_norm = float("nan")
                logger.log(step, skipped_nonfinite=guard.bad_steps_total)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_total:.4f}")
            if step % cfg.train.log_every == 0 or step == cfg.train.max_steps:
                now = time.perf_counter()
                logger.log(
                    step, loss=loss_total, lr=lr, grad_norm=grad_norm,
                    examples_per_s=seen_since / max(now - t_last, 1e-9), epoch=position["epoch"],
                )  # fmt: skip
                t_last, seen_since = now, 0
            if step % cfg.train.save_every == 0 or step == cfg.train.max_steps:
                save()
            _after_step(step)
    except TooManyBadSteps as e:
        logger.close()
        raise RuntimeError(
            f"stopped after {cfg.train.max_bad_steps} non-finite steps in a row at step {step}; the last "
            f"good checkpoint is {ckpts.latest_path()}. Lower optim.lr or check the data."
        ) from e
    finally:
        bar.close()

    metrics = {"steps": step, "final_loss": loss_value, "bad_steps": guard.bad_steps_total,
               "use_video": cfg.model.use_video, "train_clips": len(train_set["descriptions"]),
               "train_examples": len(examples), "train_scenario_types": train_types}  # fmt: skip
    if cfg.data.val_dir:
        val_set = load_clip_set(cfg.data.val_dir, progress=progress, with_statics=True)
        count = min(len(val_set["descriptions"]), cfg.eval.max_clips or len(val_set["descriptions"]))
        val_tokens = encode_clips(model, val_set["view"], count, progress)
        majority = S.majority_answers([q for d in train_set["descriptions"] for q in d["questions"]])
        metrics["val"] = score(model, val_set, val_tokens, majority, set(train_types), cfg.eval, progress)
        metrics["val_dir"] = str(cfg.data.val_dir)
        for split in ("seen", "held_out"):
            if split in metrics["val"]:
                logger.log(step, **{f"val_{split}_qa_accuracy": metrics["val"][split]["qa"]["all"]["accuracy"]}
                           if "all" in metrics["val"][split]["qa"] else {})  # fmt: skip
    logger.close()
    atomic_write_json(out / "metrics.json", metrics)
    summary = {"steps": step, "output_dir": str(out), "latest": str(ckpts.latest_path())}
    atomic_write_json(out / "summary.json", summary)
    return summary


def main(config_path: str, overrides: list[str], progress: bool = True) -> dict:
    return train(load_config(config_path, RecipeConfig, overrides), progress=progress)


# ---------------------------------------------------------------- loading a trained captioner


def load_captioner(checkpoint) -> tuple[Captioner, dict]:
    """(Captioner in eval mode, run info) from a captioner checkpoint: the bridge from the file, the
    encoder and LM rebuilt from their recorded sources and checked against their recorded SHA-256."""
    path = Path(checkpoint)
    ckpt, info = load_run(path, RECIPE)
    cfg = config_from_dict(ckpt.meta["config"], RecipeConfig)
    lm_path = info["lm"]["path"]
    moved = path.resolve().parent.parent / "lm"  # a run folder moved elsewhere keeps its tiny LM beside it
    if not Path(lm_path).exists() and moved.is_dir():
        lm_path = str(moved)
    lm, tokenizer = load_lm(lm_path)
    if weights_sha256(lm) != info["lm"]["sha256"]:
        raise CheckpointError(f"{path}: the LM at {lm_path} is not the one this captioner was trained with")
    encoder, enc_info = build_encoder(cfg.encoder)
    if weights_sha256(encoder) != info["encoder"]["sha256"]:
        raise CheckpointError(
            f"{path}: the video encoder ({cfg.encoder.checkpoint or f'random init, seed {cfg.encoder.seed}'}) "
            "is not the one this captioner was trained with"
        )
    model = Captioner(cfg.model, encoder, enc_info, lm, tokenizer)
    restore(ckpt, model.bridge, rng=False)
    return model.eval(), info


def caption_video(video, checkpoint, question: str | None = None) -> str:
    """The caption of a video file (any MP4 ffmpeg reads), or the answer to `question` about it."""
    frames = read_video(video)  # first: a bad file is named before the model loads
    _, info = load_run(checkpoint, RECIPE)
    need = int(info["encoder"]["info"]["frames"])
    if len(frames) < need:
        raise ValueError(
            f"{video}: too short: {len(frames)} frames, this captioner's video encoder needs at least {need}; "
            "give a longer video"
        )
    model, _ = load_captioner(checkpoint)
    x = resample_frames(frames, need, model.encoder_info["image_size"])  # [frames, 3, size, size]
    return model.describe(model.encode(x[None]), question)
