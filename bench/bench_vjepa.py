"""V-JEPA pre-training: throughput and FLOP use against the matmul peak, and the temporal-causality ablation.

Throughput (`--mode throughput`, the default): the vjepa recipe's training step (multi-block masks drawn
on the CPU, context encoder over the context tokens, EMA target encoder over the clip, predictor, L1 loss,
backward, clipping, AdamW, EMA update) on the presets' models (configs/vjepa/*.yaml, `model` section),
timed over `--steps` steps after warm-up. FLOPs of one step are counted with torch.utils.flop_counter
(forward + backward; CPU flash attention counted with the same formula torch uses for the CUDA kernels);
the peak is a large dense matmul timed on the same device in the same run (fp32, and bf16 for bf16
rows), so the utilisation is a ratio of two numbers measured side by side. `--synthetic` feeds random
frames: it needs only torch, transformers, numpy and pyyaml (no pymunk), so it runs on a GPU machine:

    python bench/bench_vjepa.py --synthetic [--device cuda] [--configs tiny small] [--batch 16]

Ablation (`--mode ablation`): trains the same small model three times on the same clips with the recipe
(`physworld train vjepa`): the baseline (bidirectional attention, multi-block masks), causal (block-causal
attention in time, half the steps predict whole future steps), and causal + the latent-trajectory
(acceleration) term; then scores each on held-out clips in its own latent space: next-step prediction
error (past steps -> the next step's target latents, / their variance) beside copying the last step,
the latent-acceleration error, the multi-block validation loss, and the collapse numbers over training
(target feature std and effective rank at the first, middle and last step). Needs physworld's data
generation (pymunk):

    python bench/bench_vjepa.py --mode ablation [--steps 300]

Sanity (`--mode sanity`): whether the predictor can use its context at all, by plain regression of the
next step's latents on moving squares (no EMA), against the mean target vector: a minute of CPU.

    python bench/bench_vjepa.py --mode sanity
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from physworld.models import vjepa as V  # noqa: E402  (torch + transformers only: no simulator imported)


def model_config(name: str) -> tuple[V.VJEPAConfig, int, int]:
    import yaml  # a transformers dependency

    data = yaml.safe_load((ROOT / "configs" / "vjepa" / f"{name}.yaml").read_text())
    model = data["model"]
    return V.VJEPAConfig(**model), data["data"]["batch_size"], data["mask"]["blocks"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """FLOP/s of a dense n x n matmul loop on `device` (n = 1024 on a CPU, 8192 on a GPU)."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10 if device.type == "cuda" else 1):
            a @ b
            count += 1
        sync(device)
    return 2 * n**3 * count / (time.perf_counter() - t0)


def flop_counter():
    from torch.utils import flop_counter as fc

    # torch registers FLOP formulas for the CUDA attention kernels, not for the CPU flash kernel
    def forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return fc.sdpa_flop_count(query_shape, key_shape, value_shape)

    def backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)

    custom = {
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: forward,
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: backward,
    }
    return fc.FlopCounterMode(display=False, custom_mapping=custom)


def make_step(cfg: V.VJEPAConfig, batch: int, blocks: int, device, precision: str, checkpointing: bool):
    torch.manual_seed(0)
    model = V.VJEPA(cfg).to(device)
    model.set_gradient_checkpointing(checkpointing)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(batch, cfg.frames, 3, cfg.image_size, cfg.image_size, generator=gen).to(device)
    dtype = torch.bfloat16 if precision == "bf16" else None

    def step():
        ctx, tgt = V.multiblock_masks(batch, cfg.grid, gen, blocks)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss, _ = model.loss(frames, ctx.to(device), tgt.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        model.update_target(0.996)
        return loss

    return step, model


def throughput(args) -> list[dict]:
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    peaks = {"fp32": matmul_peak(device, torch.float32)}
    if "bf16" in args.precision:
        peaks["bf16"] = matmul_peak(device, torch.bfloat16)
    rows = []
    for name in args.configs:
        cfg, batch, blocks = model_config(name)
        batch = args.batch or batch
        for precision in args.precision:
            for checkpointing in (False, True) if args.checkpointing else (False,):
                step, model = make_step(cfg, batch, blocks, device, precision, checkpointing)
                counter = flop_counter()
                with counter:
                    step()
                flops = counter.get_total_flops()
                for _ in range(args.warmup):
                    step()
                sync(device)
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    loss = step()
                sync(device)
                seconds = (time.perf_counter() - t0) / args.steps
                achieved = flops / seconds
                row = {
                    "config": name,
                    "precision": precision,
                    "checkpointing": checkpointing,
                    "batch": batch,
                    "tokens_per_clip": cfg.grid[0] * cfg.grid[1] * cfg.grid[2],
                    "params_M": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
                    "step_ms": seconds * 1e3,
                    "clips_per_s": batch / seconds,
                    "gflop_per_step": flops / 1e9,
                    "achieved_tflops": achieved / 1e12,
                    "peak_tflops": peaks[precision] / 1e12,
                    "utilisation": achieved / peaks[precision],
                    "loss_finite": bool(torch.isfinite(loss)),
                }
                if device.type == "cuda":
                    row["max_memory_GiB"] = torch.cuda.max_memory_allocated(device) / 2**30
                    torch.cuda.reset_peak_memory_stats(device)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


# ---------------------------------------------------------------- ablation (needs physworld's data stack)

ABLATION_MODEL = [  # between the tiny and small presets: 32 x 32 clips of 8 frames, 4 tubelet steps
    "model.image_size=32",
    "model.frames=8",
    "model.tubelet=2",
    "model.patch=8",
    "model.dim=64",
    "model.depth=3",
    "model.heads=4",
    "model.pred_dim=64",
    "model.pred_depth=2",
    "model.pred_heads=4",
]
VARIANTS = {
    "baseline (bidirectional, multi-block)": [],
    "causal (block-causal, 50% future masks)": [
        "model.causal=true",
        "causality.enabled=true",
        "causality.trajectory_weight=0.0",
    ],
    "causal + trajectory term (weight 0.1)": [
        "model.causal=true",
        "causality.enabled=true",
        "causality.trajectory_weight=0.1",
    ],
}


def evaluate_run(out: Path, val_dir: Path, R) -> dict:
    """The recipe's validation (multi-block loss beside the mean target vector's, next-step prediction
    beside copying the last step and the content-free means) of a finished run, on 64 held-out clips."""
    from physworld.models.vjepa import VJEPA, config_from_dict
    from physworld.training.checkpoint import load_run
    from physworld.training.config import load_config

    cfg = load_config(out / "config.yaml", R.RecipeConfig)
    ckpt, info = load_run(out / "checkpoints" / "latest.safetensors", "vjepa")
    model = VJEPA(config_from_dict(info["model_config"]))
    model.load_state_dict(ckpt.model_state_dict())
    val = R.open_clips(val_dir)
    n = min(len(val), 64)
    rgb = torch.stack([val[i]["rgb"] for i in range(n)])
    frames = R.frames_of(rgb, torch.zeros(n, dtype=torch.long), cfg.model.frames, cfg.model.image_size)
    return R.validate_model(model, cfg, frames, cfg.model.grid)


def ablation(args) -> list[dict]:
    from physworld.data import clips as C
    from physworld.data.generate import GenerateConfig, generate
    from physworld.recipes import vjepa as R
    from physworld.training.metrics import read_metrics

    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_vjepa_"))
    clip = C.ClipConfig(resolution=32, frames=8, fps=15, captions=False)
    types = ("billiards", "head_on", "pendulum", "projectile")
    for split, n, seed in (("train", args.train_scenes, 0), ("val", 6, 99)):
        if not (work / split / "clips").is_dir():
            cfg = GenerateConfig(scenario_types=types, num_scenes_per_type=n, frames_per_scene=60, seed=seed)
            generate(cfg, work / split, num_workers=1, progress=False)
            C.render_clips(work / split, clip, num_workers=1, progress=False)
    rows = []
    # one folder per variant and setting, so a rerun with other settings never resumes another's run
    tag = re.sub(r"[^A-Za-z0-9.=-]+", "_", "_".join([f"steps={args.steps}", f"seed={args.seed}", *args.set]))
    for label, overrides in VARIANTS.items():
        out = work / f"run{len(rows)}_{tag}"
        t0 = time.perf_counter()
        R.main(
            str(ROOT / "configs" / "vjepa" / "tiny.yaml"),
            [
                f"data.train_dir={work / 'train'}",
                f"data.val_dir={work / 'val'}",
                f"train.output_dir={out}",
                f"train.max_steps={args.steps}",
                f"train.eval_every={args.steps}",
                f"train.save_every={args.steps}",
                "train.log_every=1",
                "train.tensorboard=false",
                "data.batch_size=8",
                "data.val_clips=64",
                "optim.warmup_steps=20",
                "optim.lr=0.001",
                "mask.blocks=4",
                f"train.seed={args.seed}",
                *ABLATION_MODEL,
                *args.set,
                *overrides,
            ],
            progress=False,
        )
        records = read_metrics(out / "metrics.jsonl")
        train = [m for m in records if "loss" in m]
        picks = [train[0], train[len(train) // 2], train[-1]]
        val = evaluate_run(out, work / "val", R)  # from the checkpoint: a rerun scores finished runs again
        row = {
            "variant": label,
            "seconds": time.perf_counter() - t0,
            **{k.removeprefix("val_"): v for k, v in val.items()},
            "target_std_first_mid_last": [round(m["target_std"], 3) for m in picks],
            "effective_rank_first_mid_last": [round(m["target_effective_rank"], 2) for m in picks],
            "final_train_loss": float(np.mean([m["latent_loss"] for m in train[-20:]])),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def moving_squares(gen: torch.Generator, n: int) -> torch.Tensor:
    """[n, 8, 3, 16, 16] clips of one coloured 4 x 4 square moving right one pixel per frame."""
    frames = torch.zeros(n, 8, 3, 16, 16)
    for b in range(n):
        x0 = int(torch.randint(0, 6, (), generator=gen))
        y = int(torch.randint(0, 12, (), generator=gen))
        colour = torch.rand(3, generator=gen)[:, None, None]
        for t in range(8):
            frames[b, t, :, y : y + 4, x0 + t : x0 + t + 4] = colour
    return frames


def sanity(args) -> list[dict]:
    """Can the predictor use its context at all? Plain regression (no EMA: the target encoder stays at
    its init) of step 2's target latents from steps 0-1 on moving squares, scored on held-out clips
    against the mean target vector (relative MSE 1.0 means: context ignored)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = V.VJEPAConfig(image_size=16, frames=8, tubelet=2, patch=4, dim=64, depth=2, heads=4, pred_dim=64,
                        pred_depth=2, pred_heads=4, causal=True)  # fmt: skip
    model = V.VJEPA(cfg)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    gen, val = torch.Generator().manual_seed(args.seed), moving_squares(torch.Generator().manual_seed(99), 32)
    per = cfg.grid[1] * cfg.grid[2]

    def ids(n):
        return torch.arange(2 * per).expand(n, -1), torch.arange(2 * per, 3 * per).expand(n, -1)

    def score() -> dict:
        with torch.no_grad():
            ctx, tgt = ids(32)
            z = V.gather_tokens(V.target_features(model, val), tgt)
            pred = model.predictor(model.encoder(val, ctx), ctx, tgt, cfg.grid)
            var = z.var(dim=(0, 1)).mean()
            return {
                "model": float((pred - z).pow(2).mean() / var),
                "mean_vector": float((z.mean(dim=(0, 1), keepdim=True) - z).pow(2).mean() / var),
            }

    rows = []
    for step in range(args.steps + 1):
        if step % 50 == 0:
            rows.append({"step": step, **score()})
            print(json.dumps(rows[-1]), flush=True)
        frames = moving_squares(gen, 16)
        ctx, tgt = ids(16)
        z = V.gather_tokens(V.target_features(model, frames), tgt)
        loss = (model.predictor(model.encoder(frames, ctx), ctx, tgt, cfg.grid) - z).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["throughput", "ablation", "sanity"], default="throughput")
    p.add_argument("--device", default="cpu")
    p.add_argument("--synthetic", action="store_true", help="random frames (throughput needs no clips)")
    p.add_argument("--configs", nargs="+", default=["tiny", "small"])
    p.add_argument(
        "--precision", nargs="+", default=None, help="fp32 bf16 (default: fp32 on CPU, both on GPU)"
    )
    p.add_argument("--checkpointing", action="store_true", help="also time gradient checkpointing")
    p.add_argument("--batch", type=int, default=0, help="clips per step (default: the preset's)")
    p.add_argument(
        "--steps", type=int, default=None, help="timed steps (throughput) or training steps (ablation)"
    )
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-scenes", type=int, default=12, help="ablation: scenes per type")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--work", default=None, help="ablation: folder for data and runs (default a temporary one)"
    )
    p.add_argument("--json", default=None, help="write the rows here")
    p.add_argument(
        "--set", nargs="*", default=[], help="ablation: recipe overrides for every variant, key=value"
    )
    args = p.parse_args()
    if args.mode == "throughput" and not args.synthetic:
        p.error(
            "throughput runs on a synthetic batch (the step's cost does not depend on pixels): add --synthetic"
        )
    if args.precision is None:
        args.precision = ["fp32", "bf16"] if args.device.startswith("cuda") else ["fp32"]
    if args.steps is None:
        args.steps = {"throughput": 20, "ablation": 300, "sanity": 300}[args.mode]
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    header = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else platform.processor() or "cpu",
        "threads": torch.get_num_threads() if args.device == "cpu" else None,
        "mode": args.mode,
    }
    print(json.dumps(header), flush=True)
    rows = {"throughput": throughput, "ablation": ablation, "sanity": sanity}[args.mode](args)
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
