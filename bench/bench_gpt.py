"""GPT training throughput: physworld's GPT vs Hugging Face GPT2LMHeadModel of the same shape, and FLOP/s.

One training step = forward + cross-entropy + backward + AdamW step on random tokens, at a preset's
shape (default "small": 4 layers, 128 wide, 4 heads; batch 8, block 256, vocabulary 100, the size of
physworld.data.text.CharTokenizer). The models are measured side by side in one run, interleaved round by
round so that a busy machine slows every row alike; each row's figure is the median step time over
all its measured steps, after warm-up steps.

Rows:
  HF GPT2LMHeadModel   transformers' GPT-2: SDPA attention, exact GELU (as ours), untied head, biases,
                       no dropout, use_cache=False; AdamW with nanoGPT's decay / no-decay groups
  ours, SP, bias       the same shape exactly (parameter counts asserted equal), muP off
  ours, muP, bias      the same shape with muP (base width 32): same FLOPs, different scalars/groups
  ours, SP, no bias    the project default, bias=False
Every optimizer is torch's AdamW with the same `fused` setting.

FLOP/s: tokens/s times the training FLOPs per token 6 N + 12 L T d (N non-embedding parameters
including the head; PaLM appendix B, nanoGPT's estimate_mfu), as a fraction of a dense float32 matmul
peak measured in the same run (1024x1024 @ 1024x1024 in a loop on the same threads).

On a machine where another job holds the cores, pass --threads 1: with more threads than free cores,
OpenMP's barriers stall and every row slows by an order of magnitude (on a 2-core machine shared with a
niced job: ~1700 ms/step at 2 threads, ~130 at 1).

    python bench/bench_gpt.py [--preset small] [--batch 8] [--block 256] [--vocab 100]
                              [--rounds 6] [--steps-per-round 2] [--warmup 2] [--threads N] [--no-fused]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import transformers
from torch.nn import functional as F

from physworld.models.gpt import GPT, GPTConfig
from physworld.training.loop_utils import matmul_peak_flops


def hf_gpt2(cfg: GPTConfig) -> torch.nn.Module:
    hf_cfg = transformers.GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.block_size,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        activation_function="gelu",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=None,
        use_cache=False,
    )
    hf_cfg._attn_implementation = "sdpa"
    return transformers.GPT2LMHeadModel(hf_cfg)


def nanogpt_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps-per-round", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per model before the rounds")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--no-fused", action="store_true", help="foreach AdamW instead of the fused kernel")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    fused = not args.no_fused
    lr, wd, betas = 3e-4, 0.1, (0.9, 0.95)

    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, args.vocab, (args.batch, args.block + 1), generator=g)
    x, y = data[:, :-1], data[:, 1:]

    def config(**kw) -> GPTConfig:
        return GPTConfig.from_preset(args.preset, vocab_size=args.vocab, block_size=args.block, **kw)

    torch.manual_seed(0)
    rows = {}  # name -> (model, optimizer, loss function)
    hf = hf_gpt2(config(bias=True)).train()
    rows["HF GPT2LMHeadModel"] = (
        hf,
        torch.optim.AdamW(nanogpt_groups(hf, wd), lr=lr, betas=betas, fused=fused),
        lambda m: F.cross_entropy(m(input_ids=x, use_cache=False).logits.flatten(0, 1), y.flatten()),
    )
    for name, kw in (
        ("ours, SP, bias", {"bias": True}),
        ("ours, muP, bias", {"bias": True, "mup_base_width": 32}),
        ("ours, SP, no bias", {"bias": False}),
    ):
        model = GPT(config(**kw)).train()
        opt = model.configure_optimizers(weight_decay=wd, lr=lr, betas=betas, fused=fused)
        rows[name] = (model, opt, lambda m: m(x, y)[1])
    ours = rows["ours, SP, bias"][0]
    hf_params = sum(p.numel() for p in hf.parameters())
    assert hf_params == ours.num_parameters(non_embedding=False), "HF and ours differ in shape"

    def step(name: str) -> float:
        model, opt, loss_fn = rows[name]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {name: [] for name in rows}
    for name in rows:
        for _ in range(args.warmup):
            step(name)
    for r in range(args.rounds):
        order = list(rows) if r % 2 == 0 else list(reversed(rows))  # alternate who goes first
        for name in order:
            times[name].extend(step(name) for _ in range(args.steps_per_round))
    peak = matmul_peak_flops()

    tokens = args.batch * args.block
    flops_tok = ours.flops_per_token(args.block)
    rate = {name: tokens / statistics.median(t) for name, t in times.items()}
    c = ours.config
    print(
        f"# {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, {torch.get_num_threads()} threads; preset {args.preset} "
        f"({c.n_layer} layers, {c.n_embd} wide, {c.n_head} heads), vocab {args.vocab}, batch {args.batch} x "
        f"block {args.block} = {tokens:,} tokens/step, {hf_params:,} parameters (bias, untied); HF attention "
        f"{hf.config._attn_implementation}; AdamW fused={fused}; median of "
        f"{args.rounds * args.steps_per_round} steps after {args.warmup} warm-up; {flops_tok / 1e6:.2f} "
        "MFLOP/token (6N + 12LTd)"
    )
    print("| model | ms / step (min-max) | tokens / s | ours / HF | GFLOP/s | of matmul peak |")
    print("|---|---|---|---|---|---|")
    base = rate["HF GPT2LMHeadModel"]
    for name, t in times.items():
        achieved = flops_tok * rate[name]
        print(
            f"| {name} | {1e3 * statistics.median(t):.1f} ({1e3 * min(t):.0f}-{1e3 * max(t):.0f}) | "
            f"{rate[name]:,.0f} | {rate[name] / base:.2f} | "
            f"{achieved / 1e9:.2f} | {achieved / peak:.1%} |"
        )
    print(f"| matmul peak (1024^3 fp32, same run) | | | | {peak / 1e9:.1f} | 100% |")


if __name__ == "__main__":
    main()
