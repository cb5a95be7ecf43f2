"""Recipe: LoRA fine-tuning of a pretrained causal language model on physics as text.

    python -m physworld.recipes.lm_lora --config configs/lm_lora/lfm2_350m.yaml \\
        --data-dir data/lm/train --output-dir runs/lfm2 [--lr 1e-4 ...] [key=value ...]
    accelerate launch -m physworld.recipes.lm_lora --config ...        # several GPUs (DDP)

The base model (default LiquidAI/LFM2-350M) is loaded with transformers, frozen, and given LoRA adapters
with peft; only the adapters train. The loop is written out here, top to bottom; shared pieces are small
functions from physworld.training (config, checkpoint, loop_utils, metrics). Steps:

  1. resolve the config (YAML preset < command-line flags < key=value overrides), save it resolved
  2. load the base model and its tokenizer (a hub name or a local directory), add LoRA adapters to the
     architecture's projections and check that every target module name matched
  3. resume from the latest checkpoint under the output directory if there is one
  4. for each curriculum stage (stage k trains on the scenes of difficulty k; curriculum_stages=0: one
     stage over every difficulty), run optimizer steps over that stage's examples in a fixed order:
     gradient accumulation, bf16 autocast, NaN/Inf guard, clipping, warmup + cosine learning rate per
     stage; log metrics and write checkpoints

Data. One example is `text.training_example(record, t, context_frames, fmt)` for every frame t of every
scene (every `frame_stride`-th), t = 0 .. frames - 1: the prompt holds the scene and the last
min(context_frames, t + 1) frames, the completion is frame t + 1. Prompt and completion are tokenised
separately (as at inference, where the prompt is tokenised alone and the model writes the frame), the
completion followed by EOS. A sequence longer than `max_seq_length` loses context frames from the
front of its prompt, never completion tokens; such examples are counted (`context_shortened`). A scene
whose shortest example (one context frame) does not fit is left out of the stage and counted
(`scenes_skipped_too_long`). The loss is cross-entropy on completion tokens only (labels -100 on prompt
and padding), and logits are computed only at those positions (transformers' boolean `logits_to_keep`),
so a 65k-entry vocabulary over 8k positions never materialises. The order of examples depends only on
(seed, stage, epoch); with several processes each takes its own slice of every global batch.

Steps. With `max_steps` 0 a stage runs ceil(epochs_per_stage * batches_per_epoch / grad_accum) optimizer
steps; with `max_steps` > 0 that many steps are split evenly over the stages (epochs then repeat as
needed). Each stage warms up for `warmup_ratio` of its steps and decays by a half cosine, from
lr * stage_lr_decay ** (stage - 1) (guide 001 lowered the rate by 10% per stage). The optimizer state
carries over from stage to stage.

Checkpoints. `<output_dir>/stage{k}/checkpoint-{global_step}/` (stage0 when curriculum_stages is 0):

    adapter_config.json, adapter_model.safetensors   the LoRA adapter (PeftModel.from_pretrained(base, dir))
    tokenizer files                                  the tokenizer the run used
    optimizer.safetensors                            optimizer state + RNG states (physworld.training.checkpoint;
                                                     safetensors + JSON, nothing is unpickled)
    trainer_state.json                               global step, stage, data position, counters, settings

written into a temporary directory beside it and renamed into place, so a checkpoint directory is
always whole. One is written every `save_steps` steps and at the end of every stage; within a stage only
the last `keep_checkpoints` intermediate ones are kept, the end-of-stage one always. A rerun of the same
command resumes from the checkpoint with the highest global step: adapter weights, optimizer state, RNG
states, the stage and the position in its data are restored, so training continues where it stopped
(on the CPU the final adapter equals, bit for bit, that of a run never interrupted; with several
processes every process restores the main process's RNG states). The settings that shape the run
(base model, LoRA, data, batch, schedule, number of processes) must match the checkpoint's.

Several GPUs: `accelerate launch -m physworld.recipes.lm_lora ...` runs one process per GPU (DDP via
accelerate's Accelerator: device placement, gradient synchronisation only on the last micro-batch of
an accumulation, checkpoints and metrics from the main process only). The global batch is
batch_size * grad_accum * processes. Only DDP is supported (not FSDP / DeepSpeed sharding). On a
machine without a GPU one process runs on the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import physworld
from physworld.data.store import Dataset
from physworld.fileio import atomic_write_json, check_output_path, fsync_dir, sha256_file

# The base model loader, the checkpoint layout and the errors are the model side's (models/lm.py, which
# evaluation uses too); the recipe takes them from there.
from physworld.models.lm import (  # noqa: F401  (DEFAULT_BASE_MODEL, _looks_like_path: used by tests/docs)
    ADAPTER_CHECKSUM_FILE,
    ADAPTER_FILES,
    DEFAULT_BASE_MODEL,
    STATE_FILE,
    BaseModelError,
    LmLoraError,
    _looks_like_path,
    load_base_model,
    verify_adapter,
)
from physworld.models.lm import token_ids as _ids
from physworld.training import distributed
from physworld.training.checkpoint import CheckpointDamaged, load_checkpoint, restore, save_checkpoint
from physworld.training.config import ConfigError, config_from_dict, config_to_dict, load_config, save_config
from physworld.training.loop_utils import (
    NonFiniteGuard,
    TooManyBadSteps,
    clip_gradients,
    cosine_with_warmup,
    progress_bar,
    seed_everything,
    set_lr,
)
from physworld.training.metrics import MetricLogger
from physworld.worlds.registry import DIFFICULTIES, resolve_types

# LoRA targets by model_type (config.model_type). LFM2: attention (q/k/v/out_proj), the short-convolution
# blocks' input and output projections (in_proj, out_proj) and the SwiGLU feed-forward (w1, w2, w3).
TARGET_MODULES: dict[str, tuple[str, ...]] = {
    "lfm2": ("q_proj", "k_proj", "v_proj", "out_proj", "in_proj", "w1", "w2", "w3"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen3": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gemma": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gemma2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "smollm3": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),  # transformers' Conv1D layers: LoRA with fan_in_fan_out
    "gpt_neox": ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
}
FAN_IN_FAN_OUT = {"gpt2"}  # architectures whose linear layers store weights transposed (Conv1D)

OPTIMIZER_FILE = "optimizer.safetensors"
IGNORE = -100


# ---------------------------------------------------------------- config


@dataclass
class ModelConfig:
    base_model: str = DEFAULT_BASE_MODEL  # a Hugging Face Hub name or a local directory (save_pretrained)
    # weights of the frozen base: auto = bfloat16 when train.bf16 on a GPU that supports it, else float32
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    trust_remote_code: bool = False


@dataclass
class LoraSettings:
    r: int = 32
    alpha: int = 64
    dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None  # None: TARGET_MODULES[model_type]


@dataclass
class DataConfig:
    data_dir: str  # a dataset store (physworld generate)
    scenario_types: tuple[str, ...] = ("all",)
    fmt: Literal["compact", "guide"] = "compact"  # text codec format (docs/TEXT_CODEC.md)
    context_frames: int = 5  # frames in the prompt before the one to predict (fewer at a scene's start)
    frame_stride: int = 1  # an example every frame_stride-th frame of each scene
    max_seq_length: int = 8192  # prompt + completion tokens; longer prompts lose context frames
    max_examples_per_stage: int | None = None  # a seeded subset per stage (quick runs)
    batch_size: int = 4  # examples per micro-batch per process
    num_workers: int = 0  # DataLoader workers that tokenise
    append_eos: bool = True  # end each completion with the tokenizer's EOS token


@dataclass
class OptimConfig:
    optimizer: Literal["adamw", "adamw_8bit"] = "adamw"  # adamw_8bit: bitsandbytes, CUDA only
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # of each stage's steps
    min_lr_ratio: float = 0.1
    stage_lr_decay: float = 0.9  # stage k starts from lr * stage_lr_decay ** (k - 1)
    grad_clip: float = 1.0
    grad_accum: int = 8


@dataclass
class TrainConfig:
    output_dir: str
    curriculum_stages: int = 5  # 0: one stage over every difficulty; k: stages 1..k, stage i on difficulty i
    epochs_per_stage: int = 1
    max_steps: int = 0  # > 0: this many optimizer steps in all, split evenly over the stages
    save_steps: int = 500  # 0: only at the end of each stage
    keep_checkpoints: int = 2  # intermediate checkpoints kept per stage (0: all); stage ends are kept
    seed: int = 0
    bf16: bool = True  # bf16 autocast where supported (CUDA with bf16, or the CPU)
    gradient_checkpointing: bool = False
    log_every: int = 10
    max_bad_steps: int = 10  # consecutive non-finite steps before the run stops
    tensorboard: bool = True
    wandb_project: str | None = None
    threads: int = 0  # torch CPU threads; 0 leaves torch's default


@dataclass
class RecipeConfig:
    data: DataConfig
    train: TrainConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self):
        if self.train.curriculum_stages not in range(0, len(DIFFICULTIES) + 1):
            raise ValueError(
                f"train.curriculum_stages must be 0..{len(DIFFICULTIES)}, got {self.train.curriculum_stages}"
            )
        positive = {
            "data.context_frames": self.data.context_frames,
            "data.frame_stride": self.data.frame_stride,
            "data.max_seq_length": self.data.max_seq_length,
            "data.batch_size": self.data.batch_size,
            "optim.grad_accum": self.optim.grad_accum,
            "lora.r": self.lora.r,
            "lora.alpha": self.lora.alpha,
            "train.epochs_per_stage": self.train.epochs_per_stage,
            "train.log_every": self.train.log_every,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.data.max_examples_per_stage is not None and self.data.max_examples_per_stage < 1:
            raise ValueError("data.max_examples_per_stage must be at least 1 (or null for all)")
        for name in ("max_steps", "save_steps", "keep_checkpoints", "threads", "max_bad_steps"):
            if getattr(self.train, name) < 0:
                raise ValueError(f"train.{name} must be >= 0")
        if 0 < self.train.max_steps < max(1, self.train.curriculum_stages):
            raise ValueError("train.max_steps must be at least 1 per curriculum stage")
        if self.data.num_workers < 0:
            raise ValueError("data.num_workers must be >= 0")
        if not 0.0 <= self.lora.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.lora.dropout}")
        if self.optim.lr <= 0:
            raise ValueError(f"optim.lr must be positive, got {self.optim.lr}")
        if not 0.0 <= self.optim.warmup_ratio <= 1.0:
            raise ValueError(f"optim.warmup_ratio must be in [0, 1], got {self.optim.warmup_ratio}")
        if not 0.0 <= self.optim.min_lr_ratio <= 1.0:
            raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {self.optim.min_lr_ratio}")
        if self.optim.stage_lr_decay <= 0:
            raise ValueError("optim.stage_lr_decay must be positive")
        if self.lora.target_modules is not None and not self.lora.target_modules:
            raise ValueError("lora.target_modules: give at least one module name, or null for the default")
        resolve_types(self.data.scenario_types)  # unknown names fail here, listing the valid ones


def stage_difficulties(cfg: RecipeConfig) -> list[tuple[int, tuple[int, ...] | None]]:
    """[(stage number, difficulties or None for all)]: stage 0 is 'no curriculum'."""
    n = cfg.train.curriculum_stages
    if n == 0:
        return [(0, None)]
    return [(k, (k,)) for k in range(1, n + 1)]


def check_stage_data(cfg: RecipeConfig, store: Dataset) -> None:
    """Before anything trains: every curriculum stage has scenes of its difficulty among the requested
    types (a later stage failing after hours of the earlier ones would waste them)."""
    types = set(resolve_types(cfg.data.scenario_types))
    index = store.index
    present = {
        d
        for t, d in zip(
            index.column("scenario_type").to_pylist(), index.column("difficulty").to_pylist(), strict=True
        )
        if t in types
    }
    missing = [
        f"stage {stage} (difficulty {', '.join(map(str, diffs))})"
        for stage, diffs in stage_difficulties(cfg)
        if diffs is not None and not present & set(diffs)
    ]
    if missing:
        have = ", ".join(map(str, sorted(present))) or "none"
        raise LmLoraError(
            f"{cfg.data.data_dir} has no scenes for curriculum {'; '.join(missing)} (difficulties present: "
            f"{have}); generate scenes of that difficulty (--difficulty-range) or lower --curriculum-stages"
        )


def stage_steps(cfg: RecipeConfig, stage_index: int, num_examples: int, world: int) -> int:
    """Optimizer steps of one stage (see the module docstring)."""
    stages = len(stage_difficulties(cfg))
    if cfg.train.max_steps:
        ends = [round(cfg.train.max_steps * (k + 1) / stages) for k in range(stages)]
        return ends[stage_index] - (ends[stage_index - 1] if stage_index else 0)
    micro_per_epoch = num_examples // (cfg.data.batch_size * world)
    return max(1, math.ceil(cfg.train.epochs_per_stage * micro_per_epoch / cfg.optim.grad_accum))


# ---------------------------------------------------------------- base model, tokenizer, LoRA


def target_modules_for(model: torch.nn.Module, explicit: tuple[str, ...] | None) -> tuple[str, ...]:
    if explicit:
        return tuple(explicit)
    model_type = getattr(model.config, "model_type", None)
    if model_type not in TARGET_MODULES:
        raise LmLoraError(
            f"no default LoRA target modules for model type {model_type!r} (known: "
            f"{', '.join(sorted(TARGET_MODULES))}); set lora.target_modules to the names of its linear layers: "
            f"{', '.join(linear_layer_names(model)[:20])}"
        )
    return TARGET_MODULES[model_type]


def linear_layer_names(model: torch.nn.Module) -> list[str]:
    """The distinct leaf names of the model's linear (and transformers Conv1D) layers."""
    names = []
    for full, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, torch.nn.Linear) or kind == "Conv1D":
            leaf = full.rsplit(".", 1)[-1]
            if leaf not in names:
                names.append(leaf)
    return names


def add_lora(model: torch.nn.Module, settings: LoraSettings, targets: tuple[str, ...]) -> torch.nn.Module:
    """Wrap `model` in a PeftModel with LoRA adapters on `targets`; fail if any target name matched nothing."""
    from peft import LoraConfig, get_peft_model

    model_type = getattr(model.config, "model_type", None)
    lora_config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(targets),
        bias="none",
        task_type="CAUSAL_LM",
        fan_in_fan_out=model_type in FAN_IN_FAN_OUT,
    )
    available = linear_layer_names(model)
    try:
        peft_model = get_peft_model(model, lora_config)
    except ValueError as e:  # peft raises when no target matches at all
        raise LmLoraError(
            f"LoRA targets {list(targets)} do not fit {model_type!r}: {e}; its linear layers are named "
            f"{', '.join(available[:20])}"
        ) from e
    check_lora_targets(peft_model, targets, available)
    return peft_model


def lora_modules(peft_model: torch.nn.Module) -> dict[str, list[str]]:
    """{target leaf name: [full names of modules carrying a LoRA adapter]}."""
    from peft.tuners.lora import LoraLayer

    found: dict[str, list[str]] = {}
    for full, module in peft_model.named_modules():
        if isinstance(module, LoraLayer):
            found.setdefault(full.rsplit(".", 1)[-1], []).append(full)
    return found


def check_lora_targets(peft_model: torch.nn.Module, targets: tuple[str, ...], available=None) -> None:
    """Raise LmLoraError unless every target module name got at least one LoRA adapter."""
    found = lora_modules(peft_model)
    missing = [t for t in targets if t not in found]
    if missing:
        names = available or linear_layer_names(peft_model)
        raise LmLoraError(
            f"LoRA target module(s) {missing} matched no layer of the model (matched: "
            f"{sorted(found)}); its linear layers are named {', '.join(names[:20])}. "
            "Set lora.target_modules to names the model has."
        )


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Recompute activations in the backward pass (non-reentrant, so frozen inputs need no grad)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if getattr(model.config, "use_cache", None):
        model.config.use_cache = False


def build_model(cfg: RecipeConfig, device: torch.device):
    """(peft model, tokenizer, target modules): the base loaded, frozen and given LoRA adapters."""
    weights = cfg.model.dtype
    if weights == "auto":
        weights = (
            "bfloat16" if bf16_supported(device) and cfg.train.bf16 and device.type == "cuda" else "float32"
        )
    model, tokenizer = load_base_model(
        cfg.model.base_model, getattr(torch, weights), trust_remote_code=cfg.model.trust_remote_code
    )
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", None
    )
    if limit is not None and cfg.data.max_seq_length > limit:
        raise LmLoraError(
            f"data.max_seq_length {cfg.data.max_seq_length} exceeds the model's {limit} positions; "
            f"lower --max-seq-length to at most {limit}"
        )
    if cfg.train.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    targets = target_modules_for(model, cfg.lora.target_modules)
    return add_lora(model, cfg.lora, targets), tokenizer, targets


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu"


def make_optimizer(name: str, params: list, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise LmLoraError(
            "--optimizer adamw_8bit needs the bitsandbytes package (pip install bitsandbytes) and a CUDA GPU; "
            "or use --optimizer adamw"
        ) from e
    if not torch.cuda.is_available():
        raise LmLoraError(
            "--optimizer adamw_8bit: bitsandbytes' 8-bit AdamW runs on CUDA GPUs and there is none here; "
            "use --optimizer adamw"
        )
    return bnb.optim.AdamW8bit(params, lr=lr, weight_decay=weight_decay)


# ---------------------------------------------------------------- data


def _text():
    """physworld.data.text (the text codec), imported on first use."""
    import importlib

    return importlib.import_module("physworld.data.text")


def build_example(tokenizer, record: dict, t: int, cfg: DataConfig) -> dict:
    """One tokenised example predicting frame t + 1 of `record`: input_ids and the prompt length.

    The prompt keeps as many of the last min(context_frames, t + 1) frames as fit in max_seq_length
    (binary search over the number of frames); the completion is never cut. Should even one context
    frame not fit, the prompt loses tokens from its front (after BOS), counted as prompt_truncated.
    """
    text = _text()
    limit = cfg.max_seq_length
    wanted = min(cfg.context_frames, t + 1)

    def encode(frames: int) -> list[int]:
        prompt, _ = text.training_example(record, t, frames, cfg.fmt)
        return _ids(tokenizer, prompt, special=True)

    prompt, completion_text = text.training_example(record, t, wanted, cfg.fmt)
    prompt_ids = _ids(tokenizer, prompt, special=True)
    completion = _ids(tokenizer, completion_text, special=False)
    if cfg.append_eos and tokenizer.eos_token_id is not None:
        completion.append(int(tokenizer.eos_token_id))
    room = limit - len(completion)
    used, truncated = wanted, False
    if len(prompt_ids) > room:
        lo, hi, best = 1, wanted - 1, None  # the largest frame count that fits
        while lo <= hi:
            mid = (lo + hi) // 2
            ids = encode(mid)
            if len(ids) <= room:
                best, lo = (mid, ids), mid + 1
            else:
                hi = mid - 1
        if best is not None:
            used, prompt_ids = best
        else:
            used = 1
            ids = encode(1) if wanted > 1 else prompt_ids
            keep = 1 if tokenizer.bos_token_id is not None and ids[:1] == [tokenizer.bos_token_id] else 0
            if room - keep < 1:
                raise LmLoraError(
                    f"scene {record.get('scene_id')}: frame {t + 1} alone takes {len(completion)} tokens, "
                    f"more than data.max_seq_length {limit}; raise --max-seq-length"
                )
            prompt_ids = ids[:keep] + ids[len(ids) - (room - keep) :]
            truncated = True
    return {
        "input_ids": prompt_ids + completion,
        "prompt_length": len(prompt_ids),
        "context_frames": used,
        "context_dropped": wanted - used,
        "prompt_truncated": truncated,
    }


class ExampleDataset(torch.utils.data.Dataset):
    """Examples (scene, frame t) of in-memory records, tokenised on access (in DataLoader workers)."""

    def __init__(self, records: list[dict], index: np.ndarray, tokenizer, cfg: DataConfig):
        self.records = records
        self.index = index  # int64 [n, 2]: (record position, t)
        self.tokenizer = tokenizer
        self.cfg = cfg

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        r, t = self.index[i]
        return build_example(self.tokenizer, self.records[int(r)], int(t), self.cfg)


def collate_examples(items: list[dict], pad_id: int) -> dict:
    """Right-pad a list of build_example items into a batch.

    input_ids / attention_mask / labels: int64 [B, T]; labels are the input ids on completion tokens and
    -100 on prompt tokens and padding (the model shifts nothing: position p's logits predict token p + 1,
    see completion_loss). Counters: examples, context_shortened, context_frames_dropped, prompt_truncated.
    """
    width = max(len(it["input_ids"]) for it in items)
    n = len(items)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    for i, it in enumerate(items):
        ids = torch.tensor(it["input_ids"], dtype=torch.long)
        input_ids[i, : len(ids)] = ids
        attention[i, : len(ids)] = 1
        labels[i, it["prompt_length"] : len(ids)] = ids[it["prompt_length"] :]
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "labels": labels,
        "examples": n,
        "tokens": int(attention.sum()),
        "context_shortened": sum(1 for it in items if it["context_dropped"] > 0),
        "context_frames_dropped": sum(it["context_dropped"] for it in items),
        "prompt_truncated": sum(1 for it in items if it["prompt_truncated"]),
    }


@dataclass
class StageData:
    dataset: ExampleDataset
    scenes: int
    scenes_skipped_too_long: int


def load_stage(
    cfg: RecipeConfig, tokenizer, difficulties: tuple[int, ...] | None, stage_index: int
) -> StageData:
    """The stage's scenes in memory and the (scene, t) index of its examples, in storage order.

    Scenes whose shortest example (t = 0, one context frame) exceeds max_seq_length are left out.
    """
    store = Dataset(cfg.data.data_dir)
    present = store.manifest["scenes_per_type"]
    types = [t for t in resolve_types(cfg.data.scenario_types) if t in present]
    if not types:
        raise LmLoraError(
            f"{cfg.data.data_dir} holds none of the scenario types {list(cfg.data.scenario_types)}; "
            f"it has {', '.join(present)}"
        )
    records, rows, skipped = [], [], 0
    for record in store.iter_scenes(scenario_types=types, difficulties=difficulties):
        frames = record["states"].shape[0]
        if frames < 2:
            continue
        shortest = build_example(tokenizer, record, 0, replace(cfg.data, max_seq_length=10**9))
        if len(shortest["input_ids"]) > cfg.data.max_seq_length:
            skipped += 1
            continue
        for t in range(0, frames - 1, cfg.data.frame_stride):
            rows.append((len(records), t))
        records.append(record)
    what = f"difficulty {difficulties[0]}" if difficulties else "any difficulty"
    if not rows:
        extra = (
            f"; {skipped} scene(s) were too long for data.max_seq_length {cfg.data.max_seq_length} even with "
            "one context frame: raise --max-seq-length"
            if skipped
            else "; generate scenes of that difficulty (--difficulty-range) or lower --curriculum-stages"
        )
        raise LmLoraError(f"{cfg.data.data_dir}: no training examples of {what}{extra}")
    index = np.asarray(rows, dtype=np.int64)
    limit = cfg.data.max_examples_per_stage
    if limit is not None and limit < len(index):
        keep = np.random.default_rng([cfg.train.seed, stage_index, 7]).choice(
            len(index), limit, replace=False
        )
        index = index[np.sort(keep)]
    return StageData(ExampleDataset(records, index, tokenizer, cfg.data), len(records), skipped)


def epoch_order(n: int, seed: int, stage_index: int, epoch: int) -> np.ndarray:
    """The order of a stage's n examples in one epoch: a function of (seed, stage, epoch) only, seeded
    per stage as the other recipes seed theirs."""
    from physworld.data.windows import epoch_permutation

    return epoch_permutation(n, seed=seed + 1000 * stage_index, epoch=epoch)


def micro_batches(
    stage: StageData, cfg: RecipeConfig, stage_index: int, position: dict, pad_id: int, rank=0, world=1
):
    """Endless micro-batches in a fixed order from `position` (epoch, sample); each global batch of
    batch_size * world examples is split by rank, an epoch's incomplete last global batch is dropped.
    `position` counts global examples taken, so a checkpoint records exactly where the data stands."""
    n, size = len(stage.dataset), cfg.data.batch_size
    per = size * world
    if n < per:
        raise LmLoraError(
            f"{n} training examples in this stage, fewer than one batch of {per} "
            f"({size} x {world} processes); generate more scenes or lower --batch-size"
        )
    if cfg.data.num_workers:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    while True:
        order = epoch_order(n, cfg.train.seed, stage_index, position["epoch"])
        usable = (n // per) * per
        mine = order[position["sample"] : usable].reshape(-1, world, size)[:, rank, :].reshape(-1)
        loader = DataLoader(
            stage.dataset,
            batch_size=size,
            sampler=mine.tolist(),
            collate_fn=functools.partial(collate_examples, pad_id=pad_id),  # picklable for workers
            num_workers=cfg.data.num_workers,
        )
        for batch in loader:
            position["sample"] += per
            yield batch
        position["epoch"] += 1
        position["sample"] = 0


# ---------------------------------------------------------------- loss


def supports_logits_mask(model: torch.nn.Module) -> bool:
    """Whether model.forward takes a boolean [B, T] `logits_to_keep` (transformers >= 5)."""
    try:
        from transformers import modeling_utils
    except ImportError:
        return False
    if not hasattr(modeling_utils, "slice_logits_to_keep"):
        return False
    base = getattr(model, "module", model)  # a DDP wrapper
    if hasattr(base, "get_base_model"):  # a PeftModel
        base = base.get_base_model()
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def completion_loss(model: torch.nn.Module, batch: dict, masked_logits: bool = True):
    """(sum of token cross-entropies over completion tokens, number of those tokens).

    Position p's logits predict token p + 1; they are computed only where token p + 1 is a completion
    token (`masked_logits`), else for every position and selected afterwards. Same value as
    transformers' own `model(..., labels=labels).loss * n`.
    """
    labels = batch["labels"]
    predict = torch.zeros_like(labels, dtype=torch.bool)
    predict[:, :-1] = labels[:, 1:] != IGNORE
    targets = labels[:, 1:][predict[:, :-1]]
    kwargs = {"logits_to_keep": predict} if masked_logits else {}
    out = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False, **kwargs
    )
    logits = out.logits
    if logits.dim() == 3:
        logits = logits[predict]
    loss_sum = F.cross_entropy(logits.float(), targets, reduction="sum")
    return loss_sum, int(targets.numel())


def _to(batch: dict, device: torch.device) -> dict:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
    }


# ---------------------------------------------------------------- checkpoints


def _stage_dir(out: Path, stage: int) -> Path:
    return out / f"stage{stage}"


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """[(global step, directory)] of every complete checkpoint under `out`, by step."""
    found = []
    for path in Path(out).glob("stage*/checkpoint-*"):
        name = path.name[len("checkpoint-") :]
        if path.is_dir() and name.isdigit() and (path / STATE_FILE).is_file():
            found.append((int(name), path))
    return sorted(found, key=lambda item: (item[0], item[1].parent.name))


def latest_checkpoint(out: Path) -> Path | None:
    found = list_checkpoints(out)
    return found[-1][1] if found else None


def save_lm_checkpoint(
    final: Path, model: torch.nn.Module, tokenizer, optimizer, state: dict, step: int
) -> Path:
    """Write a checkpoint directory atomically: into a temporary sibling, then renamed into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(
            tmp / ADAPTER_CHECKSUM_FILE, {name: sha256_file(tmp / name) for name in ADAPTER_FILES}
        )
        save_checkpoint(tmp / OPTIMIZER_FILE, torch.nn.Module(), optimizer, rng=True, step=step)
        atomic_write_json(tmp / STATE_FILE, state)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        old = None
        if final.exists():  # a resumed run reaching the same step again
            old = final.parent / f".old-{final.name}-{os.getpid()}"
            os.replace(final, old)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def prune_checkpoints(stage_dir: Path, keep: int) -> None:
    """Delete all but the last `keep` intermediate checkpoints of a stage (0 keeps all)."""
    if keep <= 0:
        return
    intermediate = []
    for _, path in list_checkpoints(stage_dir.parent):
        if path.parent != stage_dir:
            continue
        state = json.loads((path / STATE_FILE).read_text())
        if not state.get("stage_complete"):
            intermediate.append(path)
    for path in intermediate[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def _remove_stale_temporaries(out: Path) -> None:
    for path in list(out.glob("stage*/.tmp-checkpoint-*")) + list(out.glob("stage*/.old-checkpoint-*")):
        shutil.rmtree(path, ignore_errors=True)


def run_fingerprint(cfg: RecipeConfig, targets: tuple[str, ...], world: int) -> dict:
    """The settings a resumed run must share with its checkpoint."""
    d, o, t = cfg.data, cfg.optim, cfg.train
    return {
        "base_model": cfg.model.base_model,
        "lora": {
            "r": cfg.lora.r,
            "alpha": cfg.lora.alpha,
            "dropout": cfg.lora.dropout,
            "targets": list(targets),
        },
        "data": {
            "data_dir": os.path.abspath(d.data_dir),
            "scenario_types": list(d.scenario_types),
            "fmt": d.fmt,
            "context_frames": d.context_frames,
            "frame_stride": d.frame_stride,
            "max_seq_length": d.max_seq_length,
            "max_examples_per_stage": d.max_examples_per_stage,
            "batch_size": d.batch_size,
        },
        "optim": {"optimizer": o.optimizer, "grad_accum": o.grad_accum},
        "train": {
            "curriculum_stages": t.curriculum_stages,
            "epochs_per_stage": t.epochs_per_stage,
            "max_steps": t.max_steps,
            "seed": t.seed,
        },
        "processes": world,
    }


def _check_fingerprint(saved: dict, current: dict, path: Path) -> None:
    diffs = []

    def walk(a, b, prefix):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        elif a != b:
            diffs.append(f"{prefix}: checkpoint {a!r}, now {b!r}")

    walk(saved, current, "")
    if diffs:
        raise LmLoraError(
            f"{path} was trained with other settings ({'; '.join(diffs)}); resume with the same settings "
            "or use a new --output-dir"
        )


def load_adapter_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a checkpoint's adapter_model.safetensors into the PeftModel (no pickle), strictly."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    verify_adapter(path)
    weights = load_file(str(path / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, weights)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    missing = [k for k in (getattr(result, "missing_keys", []) or []) if "lora_" in k]
    if unexpected or missing:
        raise LmLoraError(
            f"{path}: the adapter does not fit this model (unexpected {unexpected[:5]}, missing {missing[:5]})"
        )


# ---------------------------------------------------------------- the recipe


def train(cfg: RecipeConfig, progress: bool = True) -> dict:
    from accelerate import Accelerator

    # Under torchrun on a machine without CUDA, Accelerator would see one process (and every process
    # would write the same files); cpu=True makes it join torchrun's process group over gloo.
    accelerator = Accelerator(cpu=distributed.launched() and not torch.cuda.is_available())
    main_process = accelerator.is_main_process
    rank, world = accelerator.process_index, accelerator.num_processes
    device = accelerator.device
    out = Path(cfg.train.output_dir)
    # Checked before anything is written: the output path, the data, the model and a resumed run's
    # checkpoint, so a refused run leaves an existing run's config.yaml as it was.
    check_output_path(out, "--output-dir")
    check_stage_data(cfg, Dataset(cfg.data.data_dir))  # a missing dataset or difficulty is refused now
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    use_bf16 = cfg.train.bf16 and bf16_supported(device)
    if cfg.train.bf16 and not use_bf16:
        print(f"lm-lora: bf16 is not supported on {device}; training in float32", file=sys.stderr)

    # Model: the base frozen, LoRA adapters trainable; every target name must have matched.
    model, tokenizer, targets = build_model(cfg, device)
    trainable, total = parameter_counts(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pad_id = int(pad_id) if pad_id is not None else 0
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(cfg.optim.optimizer, params, cfg.optim.lr, cfg.optim.weight_decay)
    model, prepared_optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    masked_logits = supports_logits_mask(unwrapped)
    fingerprint = run_fingerprint(cfg, targets, world)
    if main_process and progress:
        print(
            f"lm-lora: {cfg.model.base_model}: {trainable:,} trainable LoRA parameters of {total:,} "
            f"({100 * trainable / total:.3f}%) on {', '.join(targets)}"
        )

    # Resume from the checkpoint with the highest global step, if any.
    step, stage_index, stage_step = 0, 0, 0
    position = {"epoch": 0, "sample": 0}
    totals = {"context_shortened": 0, "context_frames_dropped": 0, "prompt_truncated": 0, "examples": 0}
    stages_done: list[dict] = []
    guard = NonFiniteGuard(cfg.train.max_bad_steps)
    latest = latest_checkpoint(out)
    if latest is not None:
        try:
            state = json.loads((latest / STATE_FILE).read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise CheckpointDamaged(
                f"{latest / STATE_FILE}: damaged ({e}); delete {latest} to resume from the one before"
            ) from None
        _check_fingerprint(state["fingerprint"], fingerprint, latest)
        for _, earlier in list_checkpoints(out):  # every adapter the run's evaluation may load
            verify_adapter(earlier)
        load_adapter_weights(unwrapped, latest)
        restore(load_checkpoint(latest / OPTIMIZER_FILE), None, optimizer, rng=True)
        step, stage_index, stage_step = state["global_step"], state["stage_index"], state["stage_step"]
        position, totals, stages_done = state["position"], state["totals"], state["stages_done"]
        guard.load_state_dict(state["guard"])
        if state["stage_complete"]:
            stage_index, stage_step, position = stage_index + 1, 0, {"epoch": 0, "sample": 0}
    if main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        _remove_stale_temporaries(out)
    logger = None
    if main_process:
        logger = MetricLogger(
            out,
            tensorboard=cfg.train.tensorboard,
            wandb_project=cfg.train.wandb_project,
            wandb_config=config_to_dict(cfg),
            resume_step=step if latest is not None else None,
        )
        if latest is None:
            logger.log(0, trainable_params=trainable, total_params=total)
    plan = stage_difficulties(cfg)
    last_saved = latest

    def save(stage: int, stage_complete: bool, stage_total: int, info: dict) -> Path | None:
        nonlocal last_saved
        accelerator.wait_for_everyone()
        path = None
        if main_process:
            state = {
                "global_step": step,
                "stage": stage,
                "stage_index": stage_index,
                "stage_step": stage_step,
                "stage_steps": stage_total,
                "stage_complete": stage_complete,
                "position": dict(position),
                "totals": dict(totals),
                "guard": guard.state_dict(),
                "stages_done": stages_done + ([info] if stage_complete else []),
                "fingerprint": fingerprint,
                "base_model": cfg.model.base_model,
                "trainable_params": trainable,
                "physworld_version": physworld.__version__,
            }
            path = _stage_dir(out, stage) / f"checkpoint-{step}"
            save_lm_checkpoint(path, unwrapped, tokenizer, optimizer, state, step)
            prune_checkpoints(path.parent, cfg.train.keep_checkpoints)
            last_saved = path
        accelerator.wait_for_everyone()
        return path

    trainable_params = [p for p in unwrapped.parameters() if p.requires_grad]
    model.train()
    try:
        while stage_index < len(plan):
            stage, difficulties = plan[stage_index]
            data = load_stage(cfg, tokenizer, difficulties, stage_index)
            n = len(data.dataset)
            stage_total = stage_steps(cfg, stage_index, n, world)
            warmup = round(cfg.optim.warmup_ratio * stage_total)
            stage_lr = cfg.optim.lr * cfg.optim.stage_lr_decay**stage_index
            info = {
                "stage": stage,
                "difficulty": difficulties[0] if difficulties else None,
                "scenes": data.scenes,
                "scenes_skipped_too_long": data.scenes_skipped_too_long,
                "examples": n,
                "steps": stage_total,
            }
            if logger is not None:
                logger.log(
                    step,
                    stage=stage,
                    stage_examples=n,
                    stage_steps=stage_total,
                    scenes_skipped_too_long=data.scenes_skipped_too_long,
                )
                if data.scenes_skipped_too_long and progress:
                    print(
                        f"lm-lora: stage {stage}: {data.scenes_skipped_too_long} scene(s) left out, too long "
                        f"for max_seq_length {cfg.data.max_seq_length} even with one context frame",
                        file=sys.stderr,
                    )
            stream = micro_batches(data, cfg, stage_index, position, pad_id, rank, world)
            bar = (
                progress_bar(total=stage_total, initial=stage_step, desc=f"lm-lora stage {stage}/{len(plan)}")
                if progress and main_process
                else None
            )
            t_last, tokens_since, examples_since = time.perf_counter(), 0, 0
            try:
                while stage_step < stage_total:
                    # One optimizer step: grad_accum micro-batches, the loss normalised by the number
                    # of completion tokens over all of them; gradients synchronise on the last only.
                    batches = [next(stream) for _ in range(cfg.optim.grad_accum)]
                    n_tokens = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches)
                    optimizer.zero_grad(set_to_none=True)
                    loss_sum = 0.0
                    for i, batch in enumerate(batches):
                        for key in (
                            "examples",
                            "context_shortened",
                            "context_frames_dropped",
                            "prompt_truncated",
                        ):
                            totals[key] += batch[key]
                        tokens_since += batch["tokens"]
                        examples_since += batch["examples"]
                        batch = _to(batch, device)
                        sync = i == len(batches) - 1
                        with accelerator.no_sync(model) if not sync else contextlib.nullcontext():
                            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                                loss, _ = completion_loss(model, batch, masked_logits)
                            loss = loss / max(n_tokens, 1)
                            accelerator.backward(loss)
                        loss_sum += float(loss.detach())
                    loss_value = float(accelerator.reduce(torch.tensor(loss_sum, device=device), "mean"))
                    if not guard.check(loss_value, trainable_params):
                        # A non-finite loss or gradient: skip the update, keep the weights. The guard
                        # raises TooManyBadSteps after max_bad_steps in a row.
                        optimizer.zero_grad(set_to_none=True)
                        if logger is not None:
                            logger.log(step, skipped_nonfinite=guard.bad_steps_total)
                        continue
                    grad_norm = clip_gradients(trainable_params, cfg.optim.grad_clip)
                    lr = cosine_with_warmup(stage_step, warmup, stage_total, stage_lr, cfg.optim.min_lr_ratio)
                    set_lr(optimizer, lr)
                    prepared_optimizer.step()
                    step += 1
                    stage_step += 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss_value:.4f}")
                    if logger is not None and (step % cfg.train.log_every == 0 or stage_step == stage_total):
                        now = time.perf_counter()
                        elapsed = max(now - t_last, 1e-9)
                        logger.log(
                            step,
                            loss=loss_value,
                            lr=lr,
                            grad_norm=grad_norm,
                            stage=stage,
                            epoch=position["epoch"] + position["sample"] / n,
                            tokens_per_s=tokens_since * world / elapsed,
                            examples_per_s=examples_since * world / elapsed,
                            context_shortened=totals["context_shortened"],
                            prompt_truncated=totals["prompt_truncated"],
                        )
                        t_last, tokens_since, examples_since = now, 0, 0
                    if cfg.train.save_steps and step % cfg.train.save_steps == 0 and stage_step < stage_total:
                        save(stage, False, stage_total, info)
            finally:
                if bar is not None:
                    bar.close()
            save(stage, True, stage_total, info)
            stages_done.append(info)
            stage_index += 1
            stage_step = 0
            position = {"epoch": 0, "sample": 0}
    except TooManyBadSteps as e:
        if logger is not None:
            logger.close()
        raise RuntimeError(
            f"stopped after {cfg.train.max_bad_steps} non-finite steps in a row at step {step}; the last good "
            f"checkpoint is {latest_checkpoint(out)}. Lower --lr or check the data."
        ) from e
    if logger is not None:
        logger.close()
    summary = {
        "steps": step,
        "output_dir": str(out),
        "latest": str(last_saved) if last_saved is not None else None,
        "base_model": cfg.model.base_model,
        "target_modules": list(targets),
        "trainable_params": trainable,
        "total_params": total,
        "stages": stages_done,
        "totals": totals,
    }
    if main_process:
        atomic_write_json(out / "summary.json", summary)
    accelerator.wait_for_everyone()
    return summary


# ---------------------------------------------------------------- command line


# flag -> dotted config key; values given on the command line override the --config file
FLAGS = {
    "base_model": "model.base_model",
    "data_dir": "data.data_dir",
    "output_dir": "train.output_dir",
    "curriculum_stages": "train.curriculum_stages",
    "epochs_per_stage": "train.epochs_per_stage",
    "batch_size": "data.batch_size",
    "grad_accum": "optim.grad_accum",
    "lr": "optim.lr",
    "lora_r": "lora.r",
    "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
    "max_seq_length": "data.max_seq_length",
    "context_frames": "data.context_frames",
    "wandb_project": "train.wandb_project",
    "optimizer": "optim.optimizer",
    "bf16": "train.bf16",
    "gradient_checkpointing": "train.gradient_checkpointing",
    "seed": "train.seed",
    "max_steps": "train.max_steps",
    "save_steps": "train.save_steps",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="physworld train lm-lora",
        allow_abbrev=False,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="LoRA fine-tuning of a pretrained causal LM on physics as text (see the module docstring). "
        "Precedence: --config file < flags < key=value overrides (e.g. optim.warmup_ratio=0.05).",
    )
    p.add_argument("--config", type=Path, help="a YAML preset, e.g. configs/lm_lora/lfm2_350m.yaml")
    p.add_argument("--base-model", help=f"hub name or local directory (default {DEFAULT_BASE_MODEL})")
    p.add_argument("--data-dir", help="a dataset store (physworld generate)")
    p.add_argument("--output-dir", help="checkpoints, metrics; rerun the same command to resume")
    p.add_argument(
        "--curriculum-stages", type=int, help="k: stages 1..k on difficulty 1..k; 0: no curriculum"
    )
    p.add_argument("--epochs-per-stage", type=int)
    p.add_argument("--batch-size", type=int, help="examples per micro-batch per process")
    p.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step")
    p.add_argument("--lr", type=float)
    p.add_argument("--lora-r", type=int)
    p.add_argument("--lora-alpha", type=int)
    p.add_argument("--lora-dropout", type=float)
    p.add_argument(
        "--max-seq-length", type=int, help="tokens per example; longer prompts lose context frames"
    )
    p.add_argument("--context-frames", type=int, help="frames in each prompt")
    p.add_argument("--wandb-project", help="log to Weights & Biases too (WANDB_MODE=offline works)")
    p.add_argument("--optimizer", choices=["adamw", "adamw_8bit"])
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--seed", type=int)
    p.add_argument("--max-steps", type=int, help="> 0: total optimizer steps, split over the stages")
    p.add_argument("--save-steps", type=int, help="checkpoint every N steps (0: at stage ends only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. data.frame_stride=4")
    return p


def config_from_args(args: argparse.Namespace) -> RecipeConfig:
    """The --config file (or nothing) with the given flags, then the key=value overrides, applied."""
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise LmLoraError(f"unrecognised arguments {bad}; overrides are key=value, e.g. optim.lr=1e-4")
    # Flag values become overrides too, JSON-encoded (JSON is YAML) so strings stay strings.
    flags = [
        f"{key}={json.dumps(getattr(args, flag))}"
        for flag, key in FLAGS.items()
        if getattr(args, flag) is not None
    ]
    overrides = flags + list(args.overrides)
    try:
        if args.config is not None:
            return load_config(args.config, RecipeConfig, overrides)
        return config_from_dict({}, RecipeConfig, overrides, source="<command line>")
    except ConfigError as e:
        if "missing required key" in str(e):
            raise ConfigError(
                f"{e}; --data-dir and --output-dir are required (or data.data_dir and train.output_dir "
                "in the --config file)"
            ) from None
        raise


def main(argv: list[str] | None = None, progress: bool = True) -> dict:
    """Command-line entry: parse `argv` (flags, --config, key=value overrides), train, return the summary
    ({"steps", "output_dir", "latest", ...})."""
    args = build_parser().parse_intermixed_args(argv)
    cfg = config_from_args(args)
    return train(cfg, progress=progress and not args.quiet)


if __name__ == "__main__":
    from physworld.data.store import StoreError

    try:
        main(sys.argv[1:])
    except (ValueError, StoreError, FileNotFoundError) as e:  # LmLoraError, ConfigError: fixable setup
        print(f"lm-lora: error: {e}", file=sys.stderr)
        sys.exit(2)
    except RuntimeError as e:  # the run stopped itself (too many non-finite steps); checkpoints are kept
        print(f"lm-lora: stopped: {e}", file=sys.stderr)
        sys.exit(1)
