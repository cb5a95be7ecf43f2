"""GPT: a decoder-only transformer trained from scratch on physics-as-text, with real muP.

nanoGPT-shaped (Karpathy's nanoGPT; GPT-2, Radford et al. 2019): token + learned position embeddings,
`n_layer` pre-LayerNorm blocks (causal self-attention through
`torch.nn.functional.scaled_dot_product_attention(is_causal=True)`, then a 4x GELU MLP, each in a
residual), a final LayerNorm and a linear LM head. One file; the config dataclass sits beside the model.

Two parametrisations, chosen by `GPTConfig.mup_base_width`:

- `None`: the standard parametrisation (SP), as nanoGPT / GPT-2: every weight N(0, init_std^2), residual
  output projections (`c_proj`) N(0, (init_std / sqrt(2 n_layer))^2), attention logits scaled by
  1 / sqrt(d_head), one learning rate for every parameter. `attn_mult` and `output_mult` are ignored.
- an int: maximal-update parametrisation (muP; Yang et al. 2022, "Tensor Programs V: Tuning Large
  Neural Networks via Zero-Shot Hyperparameter Transfer"), in the conventions of the `mup` package
  (`set_base_shapes`, `mup.init`, `MuReadout`, `MuAdamW`), written out here in plain torch.
  Hyperparameters (learning rate, init_std, the multipliers) tuned at width `mup_base_width` transfer to
  any `n_embd`: activations and their per-step updates stay Theta(1) per coordinate as width grows.

muP rules, with width_mult m = n_embd / mup_base_width (every width dimension of the model, n_embd and
the MLP's 4 n_embd, scales by the same m) and sigma = init_std. A parameter is "matrix-like" when both of
its dimensions grow with width, "vector-like" when only one does (the `mup` package's `infshape.ninf()`):

| parameter (`transformer.` prefix left out)        | kind      | init                    | lr     | decay  |
|---------------------------------------------------|-----------|-------------------------|--------|--------|
| `h.*.attn.c_attn.weight`, `h.*.mlp.c_fc.weight`   | hidden    | N(0, sigma^2 / m)       | lr / m | wd * m |
| `h.*.attn.c_proj.weight`, `h.*.mlp.c_proj.weight` | hidden    | N(0, sigma^2 / (2 L m)) | lr / m | wd * m |
| `wte.weight`, `wpe.weight`                        | embedding | N(0, sigma^2)           | lr     | wd     |
| `lm_head.weight`, input scaled by output_mult / m | readout   | 0                       | lr     | wd     |
| LayerNorm weights and biases, Linear biases       | vector    | 1 (LN w.), 0 (bias)     | lr     | 0      |

(hidden = matrix-like, the others vector-like; `kind` is `parameter_kind(name)` and the optimizer
group's `name`; the readout's input multiplier is `MuReadout`'s.)

plus attention logits q.k * attn_mult / d_head (not 1 / sqrt(d_head)): after training q and k are
correlated coordinatewise, so their dot product grows like d_head, not sqrt(d_head).

Why each rule (Tensor Programs V, Table 3 / the `mup` package):
- hidden: init variance 1/fan_in keeps the forward pass Theta(1); Adam's update is Theta(lr) per entry
  whatever the gradient's scale, and it is summed over fan_in correlated coordinates, so lr / m keeps
  the update's effect Theta(1). The weight decay is multiplied by m so that AdamW's per-step shrink
  lr * wd is width-independent (`mup.MuAdamW` with `decoupled_wd=False`, its default).
- embeddings and vectors: their fan-in (vocab, block size, 1) does not grow, so width-independent init
  and lr.
- readout: fan-in grows and fan-out (vocab) does not, so its output must be damped by 1/width: the
  forward multiplier output_mult / m, with its lr unchanged, equals the paper's "init var 1/fan_in^2,
  lr / fan_in". Zero init (the `mup` package's `readout_zero_init`, used for Tensor Programs V's GPT-3
  runs) makes the model start at the uniform distribution; any init whose effective std is O(1/width)
  would do.
- untied embeddings: the input embedding (lr, no multiplier) and the readout (multiplier 1/m) get
  different treatment under muP, so they cannot share one matrix (the `mup` package's
  `MuSharedReadout` works around that; we keep them separate). SP is untied too, so muP on/off is a pure
  reparametrisation: same parameters, same shapes, same count.
- Not done: Tensor Programs V's optional zero init of the query projection.
- At m = 1 muP differs from SP only in the attention scale (attn_mult / d_head vs 1 / sqrt(d_head); set
  attn_mult = sqrt(d_head at the base width) to match) and the zero-initialised readout.

Usage:

    config = GPTConfig.from_preset("small", vocab_size=tok.vocab_size, block_size=512, mup_base_width=128)
    model = GPT(config)
    optimizer = model.configure_optimizers(weight_decay=0.1, lr=3e-3, betas=(0.9, 0.95))
    logits, loss = model(idx, targets, loss_mask)   # loss on the completion's tokens only
    out = model.generate(prompt_ids, max_new_tokens=200, stop_token=frame_end_id)

The groups carry `lr_scale` (1/m or 1), so `physworld.training.loop_utils.set_lr(opt, lr)` applies a
schedule while keeping the muP ratios.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

# Shapes by name. The guide's nominal sizes (GPT-2 / GPT-3 model sizes) count a 50k-token vocabulary;
# with physworld's character vocabulary the embeddings are small and the counts are mostly the blocks'.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"n_layer": 2, "n_head": 4, "n_embd": 64},
    "small": {"n_layer": 4, "n_head": 4, "n_embd": 128},
    "125M": {"n_layer": 12, "n_head": 12, "n_embd": 768},
    "350M": {"n_layer": 24, "n_head": 16, "n_embd": 1024},
    "760M": {"n_layer": 24, "n_head": 16, "n_embd": 1536},
}


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int  # longest sequence (number of learned positions)
    n_layer: int
    n_head: int
    n_embd: int  # width d; d_head = n_embd / n_head
    dropout: float = 0.0
    bias: bool = False  # biases in Linear layers and LayerNorms (GPT-2 has them)
    mup_base_width: int | None = None  # None: standard parametrisation; an int: muP relative to that width
    init_std: float = 0.02  # sigma: the std every rule in the module docstring starts from
    attn_mult: float = 1.0  # muP only: attention logits q.k * attn_mult / d_head
    output_mult: float = 1.0  # muP only: logits = lm_head(x * output_mult / width_mult)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.mup_base_width is not None and self.mup_base_width <= 0:
            raise ValueError(f"mup_base_width must be positive or None, got {self.mup_base_width}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def mup(self) -> bool:
        return self.mup_base_width is not None

    @property
    def width_mult(self) -> float:
        """m = n_embd / mup_base_width under muP; 1 under SP."""
        return self.n_embd / self.mup_base_width if self.mup else 1.0

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def from_preset(cls, name: str, vocab_size: int, block_size: int, **overrides) -> GPTConfig:
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
        return cls(vocab_size=vocab_size, block_size=block_size, **{**PRESETS[name], **overrides})


def estimated_parameters(config: GPTConfig, non_embedding: bool = False) -> int:
    """The parameter count of GPT(config), from the shapes alone (nothing allocated).

    non_embedding=True leaves out the token and position embeddings (lookups, no FLOPs) but keeps the
    LM head (a matmul), as `GPT.num_parameters` does.
    """
    d, L, V, T, b = config.n_embd, config.n_layer, config.vocab_size, config.block_size, int(config.bias)
    layer_norm = d + b * d
    attention = d * 3 * d + b * 3 * d + d * d + b * d  # c_attn, c_proj
    mlp = d * 4 * d + b * 4 * d + 4 * d * d + b * d  # c_fc, c_proj
    blocks = L * (2 * layer_norm + attention + mlp)  # = L (12 d^2 + (2 + 11 b) d)
    body = blocks + layer_norm + d * V  # + ln_f + lm_head (untied, no bias)
    return body if non_embedding else body + V * d + T * d


# ----------------------------------------------------------------------------------------- modules


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        # muP: 1/d_head (times attn_mult); SP: 1/sqrt(d_head)
        self.scale = config.attn_mult / config.head_dim if config.mup else 1.0 / math.sqrt(config.head_dim)

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        """x [B, T, C] -> [B, T, C]. cache: None (training), or this layer's [k, v] from earlier
        positions ([B, nh, T_past, hd] each, or empty at the start), extended in place with x's."""
        B, T, C = x.shape  # [B, T, C]
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x [B, T, C]
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # [B, nh, T, hd]
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # [B, nh, T, hd]
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # [B, nh, T, hd]
        past = 0
        if cache is not None:
            if cache:
                past = cache[0].shape[2]
                k = torch.cat([cache[0], k], dim=2)  # [B, nh, T_past + T, hd]
                v = torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
        if past == 0:
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True, scale=self.scale
            )  # [B, nh, T, hd]
        else:  # new queries see every cached key and the causal part of their own (SDPA's is_causal
            # aligns top-left, so the mask is written out: query i may see keys up to past + i)
            allowed = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=self.scale)  # [B, nh, T, hd]
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # [B, T, C]
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C] -> [B, T, 4C] -> [B, T, C]
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:  # [B, T, C]
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


def parameter_kind(name: str) -> str:
    """The muP class of a parameter by its name in GPT.named_parameters(): "hidden", "embedding",
    "readout" or "vector" (see the table in the module docstring). One rule serves init and optimizer."""
    if name == "lm_head.weight":
        return "readout"
    if name in ("transformer.wte.weight", "transformer.wpe.weight"):
        return "embedding"
    if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
        return "hidden"
    if name.endswith(("bias", "ln_1.weight", "ln_2.weight", "ln_f.weight")):
        return "vector"
    raise ValueError(f"no muP rule for parameter {name!r}")


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)  # untied (module docstring)
        # muP readout multiplier (MuReadout): the head sees x * output_mult / width_mult
        self.readout_scale = config.output_mult / config.width_mult if config.mup else 1.0
        self.reset_parameters()

    # ------------------------------------------------------------------ init and optimizer (muP)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise every parameter by its kind (module docstring's table)."""
        c = self.config
        for name, p in self.named_parameters():
            kind = parameter_kind(name)
            if kind == "hidden":
                std = c.init_std / math.sqrt(c.width_mult)  # muP: var 1/fan_in relative to the base
                if name.endswith("c_proj.weight"):
                    std /= math.sqrt(2 * c.n_layer)  # residual projections (GPT-2), width-independent
                nn.init.normal_(p, mean=0.0, std=std)
            elif kind == "embedding":
                nn.init.normal_(p, mean=0.0, std=c.init_std)
            elif kind == "readout":
                if c.mup:
                    nn.init.zeros_(p)
                else:
                    nn.init.normal_(p, mean=0.0, std=c.init_std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            else:  # LayerNorm weight
                nn.init.ones_(p)

    def param_groups(self, weight_decay: float, lr: float) -> list[dict]:
        """AdamW parameter groups with muP's per-group learning rate and weight decay (module docstring).

        Each group has `name`, `lr` = lr * `lr_scale`, and `weight_decay`. Under SP every lr_scale is 1.
        """
        m = self.config.width_mult
        rules = {  # kind -> (lr_scale, weight decay)
            "hidden": (1.0 / m, weight_decay * m),
            "embedding": (1.0, weight_decay),
            "readout": (1.0, weight_decay),
            "vector": (1.0, 0.0),
        }
        params: dict[str, list[nn.Parameter]] = {kind: [] for kind in rules}
        for name, p in self.named_parameters():
            if p.requires_grad:
                params[parameter_kind(name)].append(p)
        return [
            {"name": kind, "params": params[kind], "lr": lr * scale, "lr_scale": scale, "weight_decay": wd}
            for kind, (scale, wd) in rules.items()
            if params[kind]
        ]

    def configure_optimizers(
        self,
        weight_decay: float,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        fused: bool | None = None,
    ) -> torch.optim.AdamW:
        """AdamW over `param_groups` (muAdamW under muP). fused=None uses the fused kernel where torch
        has one for the parameters' device (CPU and CUDA in recent torch)."""
        if fused is None:
            fused = "fused" in inspect.signature(torch.optim.AdamW).parameters
        return torch.optim.AdamW(
            self.param_groups(weight_decay, lr), lr=lr, betas=betas, eps=eps, fused=fused
        )

    # ------------------------------------------------------------------ forward

    def hidden_states(self, idx: torch.Tensor, cache: list[list] | None = None) -> torch.Tensor:
        """idx [B, T] token ids -> [B, T, C], after the final LayerNorm.

        cache: a KV cache for generation, one list per layer (start with `new_cache()`); idx then
        continues the cached positions and the cache grows by T. None: positions start at 0.
        """
        B, T = idx.shape
        start = cache[0][0].shape[2] if cache and cache[0] else 0
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of length {start + T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(start, start + T, device=idx.device)  # [T]
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # [B, T, C]
        for i, block in enumerate(self.transformer.h):
            x = block(x, None if cache is None else cache[i])  # [B, T, C]
        return self.transformer.ln_f(x)  # [B, T, C]

    def new_cache(self) -> list[list]:
        """An empty KV cache for `hidden_states`: one [k, v] list per layer, filled as tokens go in."""
        return [[] for _ in self.transformer.h]

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """[..., C] -> logits [..., V], with muP's readout multiplier."""
        if self.readout_scale != 1.0:
            x = x * self.readout_scale
        return self.lm_head(x)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, loss_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx [B, T] -> (logits [B, T, V], loss or None).

        targets [B, T]: the next token at each position. loss_mask [B, T] (bool or 0/1): positions that
        count in the loss, e.g. the predicted frame's tokens for completion-only training; the loss is the
        mean cross-entropy over them (0 if there are none). loss_mask None: the mean over all positions.
        """
        logits = self.head(self.hidden_states(idx))  # [B, T, V]
        if targets is None:
            return logits, None
        ce = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")  # [B*T]
        if loss_mask is None:
            return logits, ce.mean()
        mask = loss_mask.flatten().to(ce.dtype)  # [B*T]
        return logits, (ce * mask).sum() / mask.sum().clamp_min(1.0)

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        stop_token: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Extend idx [B, T0] by up to max_new_tokens tokens -> [B, T0 + n].

        temperature 0: greedy (argmax); > 0: sample from softmax(logits / temperature), restricted to the
        top_k most likely tokens when top_k is given, drawing from `generator`. The context is cropped
        to the last block_size tokens. A KV cache makes each new token cost one position's work while
        the sequence fits the block; past it, the learned positions shift with every token, so each
        step re-reads the cropped context, as nanoGPT does. use_cache=False always re-reads (the
        reference the cached path is tested against). With stop_token, a sequence that has emitted it
        is padded with stop_token, and the loop ends once all have. Runs in eval mode (no dropout) and
        restores the previous mode.
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        was_training = self.training
        self.eval()
        try:
            done = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)  # [B]
            block = self.config.block_size
            cache = self.new_cache() if use_cache else None
            pending = idx[:, -block:]  # [B, T]: what the cache has not seen yet
            for _ in range(max_new_tokens):
                if cache is not None and idx.shape[1] <= block:
                    logits = self.head(self.hidden_states(pending, cache)[:, -1, :])  # [B, V]
                else:
                    context = idx[:, -block:]  # [B, block_size]
                    logits = self.head(self.hidden_states(context)[:, -1, :])  # [B, V]
                if temperature == 0:
                    next_token = logits.argmax(dim=-1)  # [B]
                else:
                    logits = logits.float() / temperature
                    if top_k is not None:
                        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[
                            :, -1:
                        ]  # [B, 1]
                        logits = logits.masked_fill(logits < kth, float("-inf"))
                    probs = F.softmax(logits, dim=-1)  # [B, V]
                    next_token = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # [B]
                if stop_token is not None:
                    next_token = next_token.masked_fill(done, stop_token)
                    done = done | (next_token == stop_token)
                idx = torch.cat([idx, next_token[:, None]], dim=1)  # [B, T + 1]
                pending = next_token[:, None]  # [B, 1]
                if stop_token is not None and bool(done.all()):
                    break
            return idx
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ accounting

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count; non_embedding leaves out the token and position embeddings (lookups) and
        keeps the untied LM head (a matmul), so 6 * num_parameters() counts the matmul FLOPs."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward + backward): 6 N + 12 L T d, with N the non-embedding
        parameters (PaLM, Chowdhery et al. 2022, appendix B; nanoGPT's estimate_mfu). The 12 L T d term
        is attention's score and value matmuls at context T (default block_size), counted without the
        causal half."""
        c = self.config
        T = c.block_size if seq_len is None else seq_len
        return 6 * self.num_parameters(non_embedding=True) + 12 * c.n_layer * T * c.n_embd


# ---------------------------------------------------------------- the family contract: load, then roll out


def load_model(checkpoint):
    """A trained GPT, its tokenizer and run info from a recipe checkpoint (safetensors only)."""
    from physworld.data import text
    from physworld.training.checkpoint import load_run, restore

    ckpt, info = load_run(checkpoint, "gpt")
    model = GPT(GPTConfig(**info["model_config"]))
    restore(ckpt, model, rng=False)
    model.eval()
    return model, text.CharTokenizer(info["tokenizer"]["chars"]), info


def gpt_prompt_fits(model: GPT, tokenizer):
    """prompt_fits(prompt, completion) -> bool for text_rollouts, by the rule prepare_examples
    used: <bos> + prompt + completion + <eos> at most block_size + 1 tokens."""
    limit = model.config.block_size + 1

    def prompt_fits(prompt: str, completion: str) -> bool:
        return (
            len(tokenizer.encode(prompt, add_bos=True)) + len(tokenizer.encode(completion, add_eos=True))
            <= limit
        )

    return prompt_fits


def gpt_text_generator(model: GPT, tokenizer):
    """generate_text(prompts, max_new_tokens) -> completions, greedy, stopping at <eos>.

    Generation stays inside the block, as every training example did: at most block_size + 1 - len(
    <bos> + prompt) new tokens, and nothing at all for a prompt that fills the block by itself (its
    frame then fails to parse and is counted). Sliding past the block would cut the scene
    description off the front, and without a KV cache cost a full pass per token.
    """

    @torch.no_grad()
    def generate_text(prompts: list[str], max_new_tokens: list[int]) -> list[str]:
        outs = []
        for prompt, budget in zip(prompts, max_new_tokens, strict=True):
            ids = tokenizer.encode(prompt, add_bos=True)
            budget = min(budget, model.config.block_size + 1 - len(ids))
            if budget < 1:
                outs.append("")
                continue
            idx = torch.tensor([ids], dtype=torch.long)
            gen = model.generate(idx, max_new_tokens=budget, temperature=0.0, stop_token=tokenizer.eos_id)
            outs.append(tokenizer.decode(gen[0, len(ids) :].tolist()))
        return outs

    return generate_text


def load_predictor(checkpoint):
    """The trajectory-family contract (physworld/evaluation/families.py): (rollout, run info). The GPT
    writes each next frame as text (models.rollout_utils.text_rollouts); frames it writes that do not
    parse are counted per scene."""
    from physworld.models.rollout_utils import text_predictor

    model, tokenizer, info = load_model(checkpoint)
    return text_predictor(gpt_text_generator(model, tokenizer), gpt_prompt_fits(model, tokenizer), info)
