"""A BLIP-2-style video captioner: a frozen video encoder, a trained Q-Former bridge, a frozen causal LM.

    frames [B, T, 3, H, W] in [0, 1]
      -> frozen video encoder (physworld.models.vjepa.load_video_encoder)   tokens [B, N, D_enc]
      -> LayerNorm, transformers' Blip2QFormerModel: `num_queries` learned query tokens [1, Q, H_q]
         self-attend and cross-attend to the video tokens                     [B, Q, H_q]
      -> linear projection                                                      [B, Q, D_lm]
      -> prepended to the prompt's token embeddings of a frozen causal LM, which writes the caption or
         the answer

Only the bridge (the queries, the LayerNorm, the Q-Former and the projection) trains; its weights are
what a captioner checkpoint holds. The encoder and the LM are identified in the checkpoint by where
they came from and a SHA-256 of their weights, and loading refuses a pair that does not match.

The LM is either a real causal LM (a local directory saved with save_pretrained, or a hub id where the
hub is reachable) or, offline, a tiny GPT-2 built from a config with a word-level tokenizer (the
`tokenizers` library) made from the training captions and questions, pre-trained on that text and
then frozen (`build_tiny_lm`), the stand-in for a pretrained LM that knows the caption language.

`use_video=False` is the text-only baseline: the same bridge and LM, trained the same way, with the
video tokens replaced by zeros, so the query tokens carry no information about the clip.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SPECIALS = ("[PAD]", "[UNK]", "[EOS]")
LM_META = "physworld_lm.json"  # beside a tiny LM built here: how it was made, and that it is complete
CAPTION_PROMPT = "Describe the video ."


@dataclass
class CaptionerConfig:
    num_queries: int = 32  # BLIP-2's 32 learned queries
    qformer_hidden: int = 128
    qformer_layers: int = 2
    qformer_heads: int = 4
    qformer_intermediate: int = 256
    cross_attention_frequency: int = 1  # a cross-attention block in every layer (BLIP-2: every 2nd)
    dropout: float = 0.1
    use_video: bool = True  # False: the text-only baseline (the Q-Former sees zeros, not the video)
    max_prompt_tokens: int = 64
    max_target_tokens: int = 96


@dataclass
class TinyLMConfig:
    """The GPT-2 built offline when no LM is given, and its pre-training on the training text."""

    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 256
    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    seed: int = 0


def check_config(cfg: CaptionerConfig) -> None:
    for name in ("num_queries", "qformer_hidden", "qformer_layers", "qformer_heads", "qformer_intermediate"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"model.{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.qformer_hidden % cfg.qformer_heads:
        raise ValueError(
            f"model.qformer_hidden {cfg.qformer_hidden} must be a multiple of model.qformer_heads "
            f"{cfg.qformer_heads}"
        )
    if not 0 <= cfg.dropout < 1:
        raise ValueError(f"model.dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.max_prompt_tokens < 1 or cfg.max_target_tokens < 2:
        raise ValueError("model.max_prompt_tokens must be at least 1 and model.max_target_tokens at least 2")


# ---------------------------------------------------------------- the trained part


class QFormerBridge(nn.Module):
    """Learned queries + Q-Former + projection: video tokens [B, N, D_enc] -> LM prefix [B, Q, D_lm]."""

    def __init__(self, cfg: CaptionerConfig, encoder_dim: int, lm_dim: int):
        super().__init__()
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        self.cfg = cfg
        self.query_tokens = nn.Parameter(torch.randn(1, cfg.num_queries, cfg.qformer_hidden) * 0.02)
        # Per-feature mean and std of the frozen encoder's tokens over the training clips (set_video_stats),
        # saved with the bridge. Needed: a random or lightly trained encoder maps every clip to nearly the
        # same tokens (clips differ by ~10% of the norm), and unstandardised that difference drowns in the
        # common part, so the Q-Former learns the text prior alone.
        self.register_buffer("video_mean", torch.zeros(encoder_dim))
        self.register_buffer("video_std", torch.ones(encoder_dim))
        self.video_norm = nn.LayerNorm(encoder_dim)  # BLIP-2's ln_vision on the frozen features
        self.qformer = Blip2QFormerModel(
            Blip2QFormerConfig(
                hidden_size=cfg.qformer_hidden,
                num_hidden_layers=cfg.qformer_layers,
                num_attention_heads=cfg.qformer_heads,
                intermediate_size=cfg.qformer_intermediate,
                encoder_hidden_size=encoder_dim,
                cross_attention_frequency=cfg.cross_attention_frequency,
                hidden_dropout_prob=cfg.dropout,
                attention_probs_dropout_prob=cfg.dropout,
            )
        )
        self.proj = nn.Linear(cfg.qformer_hidden, lm_dim)

    @torch.no_grad()
    def set_video_stats(self, tokens: torch.Tensor) -> None:
        """tokens [clips, N, D_enc] of the training clips -> the standardisation buffers."""
        flat = tokens.reshape(-1, tokens.shape[-1]).double()
        self.video_mean.copy_(flat.mean(0).float())
        self.video_std.copy_(flat.std(0).clamp_min(1e-6).float())

    def forward(self, video_tokens: torch.Tensor) -> torch.Tensor:
        video_tokens = (video_tokens - self.video_mean) / self.video_std
        if not self.cfg.use_video:
            video_tokens = torch.zeros_like(video_tokens)  # text-only baseline: no trace of the clip
        b = video_tokens.shape[0]
        video = self.video_norm(video_tokens)  # [B, N, D_enc]
        queries = self.query_tokens.expand(b, -1, -1)  # [B, Q, H_q]
        out = self.qformer(
            query_embeds=queries,
            encoder_hidden_states=video,
            encoder_attention_mask=torch.ones(video.shape[:2], dtype=torch.long),
        )
        return self.proj(out.last_hidden_state)  # [B, Q, D_lm]


# ---------------------------------------------------------------- the whole model


class Captioner(nn.Module):
    """encoder (frozen) + bridge (trained) + lm (frozen). `train()` never puts the frozen parts in
    training mode, so their dropout stays off and they compute exactly what they computed before."""

    def __init__(
        self, cfg: CaptionerConfig, encoder: nn.Module, encoder_info: dict, lm: nn.Module, tokenizer
    ):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder.eval().requires_grad_(False)
        self.encoder_info = dict(encoder_info)
        self.lm = lm.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.bridge = QFormerBridge(
            cfg, int(encoder_info["dim"]), int(lm.get_input_embeddings().weight.shape[1])
        )
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id)

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()
        self.lm.eval()
        return self

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, T, 3, H, W] in [0, 1] -> video tokens [B, N, D_enc] from the frozen encoder."""
        return self.encoder(frames)

    def loss(self, video_tokens, input_ids, labels, attention_mask) -> torch.Tensor:
        """Cross-entropy of the target tokens. input_ids/labels/attention_mask [B, L] (right-padded;
        labels -100 on the prompt and padding); video_tokens [B, N, D_enc]."""
        prefix = self.bridge(video_tokens)  # [B, Q, D_lm]
        b, q = prefix.shape[:2]
        x = torch.cat([prefix, self.lm.get_input_embeddings()(input_ids)], 1)  # [B, Q + L, D_lm]
        mask = torch.cat([torch.ones(b, q, dtype=attention_mask.dtype), attention_mask], 1)
        logits = self.lm(inputs_embeds=x, attention_mask=mask).logits[:, q:]  # [B, L, V]
        return F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100
        )

    @torch.no_grad()
    def generate(self, video_tokens: torch.Tensor, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
        """Greedy decoding for one clip (video_tokens [1, N, D_enc]) after the prompt; stops at EOS."""
        prefix = self.bridge(video_tokens)  # [1, Q, D_lm]
        embed = self.lm.get_input_embeddings()
        x = torch.cat([prefix, embed(torch.tensor([prompt_ids]))], 1)
        out = self.lm(inputs_embeds=x, use_cache=True)
        ids: list[int] = []
        for _ in range(max_new_tokens):
            nxt = int(out.logits[0, -1].argmax())
            if nxt == self.eos_id:
                break
            ids.append(nxt)
            out = self.lm(inputs_embeds=embed(torch.tensor([[nxt]])), cache=out.cache, use_cache=True)
        return ids

    def describe(self, video_tokens: torch.Tensor, question: str | None = None) -> str:
        """The caption (question None) or the answer to `question`, as text."""
        prompt = prompt_ids(self.tokenizer, question_prompt(question), self.cfg.max_prompt_tokens)
        limit = self.cfg.max_target_tokens if question is None else 12
        return decode(self.tokenizer, self.generate(video_tokens, prompt, limit))


# ---------------------------------------------------------------- text


def question_prompt(question: str | None, choices: list[str] | None = None) -> str:
    """The LM's prompt: the caption request, or the question (with its choices, where it has them)."""
    if question is None:
        return CAPTION_PROMPT
    text = f"Question : {question}"
    if choices:
        text += " Choices : " + " , ".join(choices) + " ."
    return text + " Answer :"


def prompt_ids(tokenizer, text: str, limit: int) -> list[int]:
    ids = list(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    return ids[-limit:]  # the end holds the question's subject and "Answer :"


def target_ids(tokenizer, text: str, limit: int) -> list[int]:
    ids = list(tokenizer(" " + text, add_special_tokens=False, verbose=False)["input_ids"])
    return ids[: limit - 1] + [int(tokenizer.eos_token_id)]


def decode(tokenizer, ids: list[int]) -> str:
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return re.sub(r"\s+([.,?:!)])", r"\1", re.sub(r"\(\s+", "(", text)).strip()


def collate(examples: list[dict], pad_id: int) -> dict:
    """examples {"prompt": [ids], "target": [ids]} -> right-padded input_ids, labels, attention_mask."""
    length = max(len(e["prompt"]) + len(e["target"]) for e in examples)
    ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    for i, e in enumerate(examples):
        p, t = len(e["prompt"]), len(e["target"])
        ids[i, : p + t] = torch.tensor(e["prompt"] + e["target"])
        labels[i, p : p + t] = torch.tensor(e["target"])
        mask[i, : p + t] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


# ---------------------------------------------------------------- frames


def resample_frames(frames: np.ndarray, num_frames: int, size: int) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float [num_frames, 3, size, size] in [0, 1]: frames taken evenly over the
    clip (first and last included), the centre square, resized with antialiasing. ValueError when
    T < num_frames."""
    t = len(frames)
    if t < num_frames:
        raise ValueError(f"{t} frames, the video encoder needs at least {num_frames}")
    pick = np.round(np.linspace(0, t - 1, num_frames)).astype(np.int64)
    h, w = frames.shape[1:3]
    side = min(h, w)  # the centre square: physworld's clips are square, another video is cropped to one
    top, left = (h - side) // 2, (w - side) // 2
    square = frames[pick, top : top + side, left : left + side]
    x = torch.from_numpy(np.ascontiguousarray(square)).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp_(0.0, 1.0)


def read_video(path) -> np.ndarray:
    """Every frame of a video file as uint8 [T, H, W, 3] (imageio-ffmpeg). ValueError naming the file
    when it is missing, unreadable or holds no frames."""
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise ModuleNotFoundError("reading videos needs imageio-ffmpeg: pip install imageio-ffmpeg") from e
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such video file")
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]
    except (RuntimeError, OSError, StopIteration, ValueError, KeyError) as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[-1][:200]
        raise ValueError(f"{path}: not a readable video (ffmpeg: {why})") from None
    if not frames:
        raise ValueError(f"{path}: the video holds no frames")
    return np.stack(frames)


# ---------------------------------------------------------------- identity of the frozen parts


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 over a module's state_dict (names, dtypes, shapes, bytes), in name order."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------- the LM


@contextlib.contextmanager
def quiet_transformers():
    """No "Loading weights" / "Writing model shards" bars: stderr keeps physworld's own lines."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load_lm(path: str):
    """(frozen causal LM, tokenizer) from a local directory or a hub id (models/lm.py's loader, whose
    error says how to use a local copy when the hub cannot be reached)."""
    from physworld.models.lm import BaseModelError, load_base_model

    try:
        with quiet_transformers():
            lm, tokenizer = load_base_model(str(path))
    except BaseModelError as e:
        raise ValueError(str(e).replace("--base-model", "lm.path", 1)) from None
    if tokenizer.eos_token_id is None:
        raise ValueError(f"lm.path {path}: its tokenizer has no end-of-text token; the captioner needs one")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return lm.eval().requires_grad_(False), tokenizer


def build_tokenizer(texts: list[str]):
    """A word-level tokenizer (the `tokenizers` library) over the words of `texts`, offline: the caption
    grammar has a few hundred words. Unknown words read as [UNK]."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(sorted(set(texts)), trainers.WordLevelTrainer(special_tokens=list(SPECIALS)))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]"
    )


def build_tiny_lm(out_dir, texts: list[str], cfg: TinyLMConfig, progress: bool = False) -> Path:
    """A tiny GPT-2 and its word-level tokenizer, pre-trained on `texts` (each followed by EOS) as a
    plain language model, saved with save_pretrained into `out_dir` (written in a temporary folder and
    renamed, with LM_META last). Deterministic from cfg.seed; an existing complete folder made from the
    same texts and settings is reused."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from physworld.training.config import config_to_dict
    from physworld.training.loop_utils import cosine_with_warmup, progress_bar, set_lr

    out = Path(out_dir)
    recipe = {
        "texts_sha256": hashlib.sha256("\n".join(texts).encode()).hexdigest(),
        "config": config_to_dict(cfg),
    }
    meta_path = out / LM_META
    if meta_path.is_file():
        try:
            if json.loads(meta_path.read_text()).get("made_from") == recipe:
                return out
        except (OSError, json.JSONDecodeError):
            pass
    tokenizer = build_tokenizer(texts)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        lm = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=len(tokenizer),
                n_positions=cfg.n_positions,
                n_embd=cfg.n_embd,
                n_layer=cfg.n_layer,
                n_head=cfg.n_head,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
                bos_token_id=tokenizer.eos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        seqs = []
        for text in texts:
            ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])[: cfg.n_positions - 1]
            seqs.append(ids + [tokenizer.eos_token_id])
        opt = torch.optim.AdamW(lm.parameters(), lr=cfg.lr, weight_decay=0.0)
        lm.train()
        bar = progress_bar(cfg.steps, desc="pre-train tiny LM", disable=not progress)
        for step in range(cfg.steps):
            set_lr(opt, cosine_with_warmup(step, min(20, cfg.steps), cfg.steps, cfg.lr))
            pick = torch.randint(len(seqs), (cfg.batch_size,), generator=gen).tolist()
            batch = collate([{"prompt": [], "target": seqs[i]} for i in pick], tokenizer.pad_token_id)
            logits = lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]),
                batch["labels"][:, 1:].reshape(-1),
                ignore_index=-100,
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
            opt.step()
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        bar.close()
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_transformers():
        lm.eval().save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / LM_META).write_text(
        json.dumps({"made_from": recipe, "final_loss": float(loss.detach())}, indent=1)
    )
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
