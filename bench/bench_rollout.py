"""Rollout speed of each model family: predicted frames per second on the same scenes, one run.

  physics-expert  the graph network at the quickstart preset, batched over all scenes per step
  gpt             the GPT at the `small` preset writing each frame as compact text with the digit-level
                  tokenizer, one scene at a time, greedy, parsed and fed back
  lm (LFM2)       a LFM2-shaped causal LM with a LoRA adapter (built from a config: no hub here) doing
                  the same through transformers' generate
Speed does not depend on training, except that a text model stops at <eos>: to time the same work
for every text model, each step generates exactly as many tokens as the true frame's text takes
(`forced` budget; an untrained model would otherwise stop at a random length).
Absolute speeds are context; the table reports each family's frames/s and its ratio to the graph
network's.

    python bench/bench_rollout.py [--scenes 6] [--frames 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from physworld.data import text
from physworld.data.generate import make_record
from physworld.evaluation.rollout import model_rollouts, text_rollouts
from physworld.models.gpt import GPT, GPTConfig
from physworld.models.physics_expert import PhysicsExpert, PhysicsExpertConfig

TYPES = ("pendulum", "billiards", "projectile", "head_on", "bowling", "seesaw")


def forced_generator(step_fn, tokens_for):
    def generate_text(prompts, budgets):
        return [step_fn(p, tokens_for(p, b)) for p, b in zip(prompts, budgets, strict=True)]

    return generate_text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--context", type=int, default=3)
    args = ap.parse_args()
    scenes = [
        make_record(i, TYPES[i % len(TYPES)], 1, i, args.context + args.frames) for i in range(args.scenes)
    ]
    frames_total = args.scenes * args.frames
    true_len = {id(s): len(text.frame_text(s["states"][0], spec=s["spec"])) for s in scenes}
    rows = []

    torch.manual_seed(0)
    pe = PhysicsExpert(PhysicsExpertConfig(history=5, hidden=64, mlp_layers=2, message_passing_steps=3))
    t0 = time.perf_counter()
    model_rollouts(pe, scenes, args.context, args.frames)
    rows.append(("physics-expert (quickstart preset)", frames_total / (time.perf_counter() - t0), None))

    tok = text.CharTokenizer()
    gpt = GPT(
        GPTConfig.from_preset("small", vocab_size=tok.vocab_size, block_size=4096, mup_base_width=64)
    ).eval()

    def gpt_step(use_cache):
        @torch.no_grad()
        def step(prompt, n):
            ids = torch.tensor([tok.encode(prompt, add_bos=True)[-gpt.config.block_size :]])
            out = gpt.generate(ids, max_new_tokens=n, temperature=0.0, use_cache=use_cache)
            return tok.decode(out[0, ids.shape[1] :].tolist())

        return step

    tokens = {"n": 0}

    def budget_chars(prompt, budget):  # the true frame's length, for every step of that scene
        n = (budget - 8) // 2
        tokens["n"] += n
        return n

    for use_cache, name in ((True, "KV cache (the default)"), (False, "no cache, as nanoGPT")):
        tokens["n"] = 0
        t0 = time.perf_counter()
        text_rollouts(forced_generator(gpt_step(use_cache), budget_chars), scenes, args.context, args.frames)
        dt = time.perf_counter() - t0
        rows.append((f"gpt (small preset, char tokens), {name}", frames_total / dt, tokens["n"] / dt))

    from peft import LoraConfig, get_peft_model
    from transformers import Lfm2Config, Lfm2ForCausalLM

    lfm_cfg = Lfm2Config(
        vocab_size=tok.vocab_size,
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        layer_types=["conv", "conv", "full_attention", "conv", "conv", "full_attention"],
        block_auto_adjust_ff_dim=False,
    )
    lfm = get_peft_model(
        Lfm2ForCausalLM(lfm_cfg),
        LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "in_proj", "w1", "w2", "w3"],
        ),
    ).eval()

    @torch.no_grad()
    def lfm_step(prompt, n):
        ids = torch.tensor([tok.encode(prompt, add_bos=True)])
        out = lfm.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=tok.pad_id,
        )
        return tok.decode(out[0, ids.shape[1] :].tolist())

    tokens["n"] = 0
    t0 = time.perf_counter()
    text_rollouts(forced_generator(lfm_step, budget_chars), scenes, args.context, args.frames)
    dt = time.perf_counter() - t0
    rows.append(
        (
            f"lm: LFM2-shaped {sum(p.numel() for p in lfm.parameters()) / 1e6:.1f}M + LoRA, KV cache",
            frames_total / dt,
            tokens["n"] / dt,
        )
    )

    bodies = np.mean([s["states"].shape[1] for s in scenes])
    print(
        f"# {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{args.scenes} scenes ({bodies:.1f} bodies on average), {args.frames} predicted frames each, "
        f"{args.context} context frames; mean true frame text {np.mean(list(true_len.values())):.0f} chars"
    )
    print("| model family | frames/s | tokens/s | vs physics-expert |")
    print("|---|---|---|---|")
    for name, fps, tps in rows:
        print(f"| {name} | {fps:,.2f} | {'' if tps is None else f'{tps:,.0f}'} | {fps / rows[0][1]:.4f} |")


if __name__ == "__main__":
    main()
