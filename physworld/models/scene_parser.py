"""The seq2seq prompt parser: transformers' T5 built from a config (trained from scratch by
`physworld train scene-parser`), or a pretrained T5 from a hub id or a local directory to fine-tune.

It reads a prompt and writes the compact scene line that physworld/text2scene/schema.py turns into the
scene JSON (and checks). Its tokenizer is a WordPiece vocabulary built from the generated corpus with
the `tokenizers` library (no download), saved beside the checkpoint as tokenizer.json; a word the
corpus never had is split into pieces, so the model can still copy it (how well: BENCHMARKS.md).

    checkpoint = <run>/checkpoints/latest.safetensors   (safetensors; the T5 config in its metadata)
    tokenizer  = <run>/tokenizer/                        (save_pretrained: tokenizer.json, no pickle)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


@dataclass
class SceneParserConfig:
    d_model: int = 128
    d_ff: int = 256
    d_kv: int = 32
    num_heads: int = 4
    num_layers: int = 2  # encoder blocks
    num_decoder_layers: int = 2
    dropout: float = 0.0
    vocab_size: int = 1000  # WordPiece vocabulary trained on the corpus (scratch models only)
    max_source_tokens: int = 64
    max_target_tokens: int = 80
    # a hub id or a local directory holding a T5 (and its tokenizer) to fine-tune instead of a fresh one;
    # the architecture fields above are then ignored
    pretrained: str | None = None


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ModuleNotFoundError(
            "the T5 scene parser needs transformers and tokenizers: pip install 'physworld[text2scene]'",
            name="transformers",
        ) from None
    return transformers


ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_;|,.'-"


def train_tokenizer(texts: list[str], vocab_size: int):
    """A WordPiece tokenizer (lower-cased, whitespace and punctuation split) whose vocabulary is the
    corpus' most frequent words (ties by spelling) plus every single character, word-initial and
    continuing, so a word the corpus never had still splits into pieces. Built here rather than with
    tokenizers' WordPieceTrainer, whose ids vary between runs (hash order), which would break a
    deterministic run. Wrapped as a transformers fast tokenizer."""
    import re
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    counts = Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]+", t.lower()))
    vocab = [PAD, EOS, UNK, *ALPHABET, *(f"##{c}" for c in ALPHABET)]
    known = set(vocab)
    for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size:
            break
        if word not in known:
            vocab.append(word)
            known.add(word)
    tok = Tokenizer(
        models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token=UNK, max_input_chars_per_word=40)
    )
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(cleanup=False)
    tok.post_processor = TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, vocab.index(EOS))])
    return _transformers().PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK
    )


def build_model(cfg: SceneParserConfig, tokenizer):
    """A fresh T5ForConditionalGeneration of the config's size for this tokenizer."""
    tf = _transformers()
    config = tf.T5Config(
        vocab_size=len(tokenizer),
        d_model=cfg.d_model,
        d_kv=cfg.d_kv,
        d_ff=cfg.d_ff,
        num_layers=cfg.num_layers,
        num_decoder_layers=cfg.num_decoder_layers,
        num_heads=cfg.num_heads,
        dropout_rate=cfg.dropout,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
    )
    return tf.T5ForConditionalGeneration(config)


def load_pretrained(name_or_dir: str):
    """(model, tokenizer) of a pretrained T5 from a local directory or a hub id (needs the network)."""
    tf = _transformers()
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(name_or_dir)
        model = tf.T5ForConditionalGeneration.from_pretrained(name_or_dir, use_safetensors=True)
    except OSError as e:
        raise ValueError(
            f"model.pretrained={name_or_dir!r}: could not load a T5 and its tokenizer from it ({str(e).splitlines()[0]}); "
            "give a local directory saved with save_pretrained, or a hub id on a machine that reaches the hub"
        ) from None
    if model.config.decoder_start_token_id is None:
        model.config.decoder_start_token_id = tokenizer.pad_token_id
    return model, tokenizer


def encode(tokenizer, sources: list[str], targets: list[str] | None, cfg: SceneParserConfig) -> dict:
    """input_ids, attention_mask [B, S] and labels [B, T] (padding -100, ignored by the loss)."""
    batch = tokenizer(
        sources, max_length=cfg.max_source_tokens, truncation=True, padding=True, return_tensors="pt"
    )
    out = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if targets is not None:
        labels = tokenizer(targets, max_length=cfg.max_target_tokens, truncation=True, padding=True,
                           return_tensors="pt")["input_ids"]  # fmt: skip
        labels[labels == tokenizer.pad_token_id] = -100
        out["labels"] = labels
    return out


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], cfg: SceneParserConfig, batch_size: int = 64) -> list[str]:
    """Greedy decoding of the compact scene line for each prompt."""
    model.eval()
    out = []
    for k in range(0, len(prompts), batch_size):
        batch = encode(tokenizer, prompts[k : k + batch_size], None, cfg)
        ids = model.generate(**batch, max_new_tokens=cfg.max_target_tokens, num_beams=1, do_sample=False)
        out.extend(tokenizer.batch_decode(ids, skip_special_tokens=True))
    return [" ".join(t.split()) for t in out]


def save_tokenizer(tokenizer, run_dir) -> Path:
    """<run_dir>/tokenizer, written once: into a temporary directory first, then renamed, so a kill
    mid-write never leaves a half tokenizer where a resumed run or the loader would read it."""
    import shutil

    path = Path(run_dir) / "tokenizer"
    if (path / "tokenizer.json").is_file():
        return path
    tmp = Path(run_dir) / ".tokenizer.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def load_tokenizer(run_dir):
    return _transformers().AutoTokenizer.from_pretrained(str(Path(run_dir) / "tokenizer"))


def load_scene_parser(checkpoint):
    """(parse(prompts) -> compact lines, run info) from a scene-parser checkpoint (.safetensors in
    <run>/checkpoints/, the tokenizer in <run>/tokenizer/)."""
    from physworld.training.checkpoint import load_run
    from physworld.training.config import config_from_dict

    tf = _transformers()
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "checkpoints" / "latest.safetensors"
    if not path.is_file():
        raise ValueError(
            f"--checkpoint {checkpoint}: no such scene-parser checkpoint (train one: physworld train scene-parser)"
        )
    ckpt, info = load_run(path, "scene-parser")
    tok_dir = path.parent.parent / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file():
        raise ValueError(
            f"{tok_dir}: the run's tokenizer is missing (it is saved beside checkpoints/ by the recipe)"
        )
    tokenizer = tf.AutoTokenizer.from_pretrained(str(tok_dir))
    model = tf.T5ForConditionalGeneration(tf.T5Config.from_dict(info["t5_config"]))
    model.load_state_dict(ckpt.model_state_dict(), strict=False)
    model.tie_weights()
    cfg = config_from_dict(info["model_config"], SceneParserConfig)
    model.eval()

    def parse(prompts: list[str]) -> list[str]:
        return generate(model, tokenizer, list(prompts), cfg)

    return parse, dict(info, checkpoint=str(path))
