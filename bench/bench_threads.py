"""Training steps per second against torch's CPU thread count, on idle cores and beside a busy process.

Why: the quickstart took 40 minutes instead of two while another process used the CPU. With torch's
default (one thread per core) every matmul waits for its slowest thread, and a thread that shares its core
with another process is slow; one thread loses little on idle cores and nothing when the CPU is shared.
This measures it for each preset, side by side in one run, so `train.threads`' default rests on numbers.

For each preset (PhysicsExpert tiny, quickstart, standard; GPT tiny), each thread count (1, 2 and torch's
default) and each load (idle; beside `--burners` processes that each spin one core in pure Python, like a
second training run or a parallel `generate`), a fresh subprocess builds the model at the preset's size and
times forward + backward + AdamW steps on real batches of a small generated dataset for `--seconds`.
Idle and loaded runs of one setting follow each other, so machine-wide drift hits both alike.

    python bench/bench_threads.py [--seconds 6] [--burners N (default: one per core)] [--presets ...]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ["pe-tiny", "pe-quickstart", "pe-standard", "gpt-tiny"]


def burn(stop_at: float) -> None:
    """Spin one core until `stop_at` (time.time()), as a competing CPU-bound process would."""
    x = 0
    while time.time() < stop_at:
        for _ in range(100_000):
            x += 1


def worker(preset: str, threads: int, seconds: float, data_dir: str) -> dict:
    """In a fresh process: build the preset's model and time training steps for `seconds`."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    from physworld.training.config import load_config

    family, size = preset.split("-", 1)
    if family == "pe":
        from physworld.data import windows
        from physworld.models.physics_expert import PhysicsExpert
        from physworld.recipes import physics_expert as recipe

        cfg = load_config(
            ROOT / "configs" / "physics_expert" / f"{size}.yaml",
            recipe.RecipeConfig,
            [f"data.train_dir={data_dir}", "data.val_dir=null", "train.output_dir=unused"],
        )
        prepared = windows.prepare(data_dir, progress=False)
        dataset = windows.WindowDataset(prepared, history=cfg.model.history)
        stats = {k: torch.as_tensor(v) for k, v in windows.load_stats(prepared).items()}
        model = PhysicsExpert(cfg.model, stats=stats)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(0)
        it = iter(recipe.make_loader(dataset, cfg, seed=0, epoch=0, start=0))
        batches = [next(it) for _ in range(16)]

        def step(i):
            batch = model.add_training_noise(batches[i % len(batches)], cfg.model.noise_std, gen)
            opt.zero_grad(set_to_none=True)
            model.loss(batch).backward()
            opt.step()
    else:
        from physworld.data import text
        from physworld.models.gpt import GPT
        from physworld.recipes import gpt as recipe

        cfg = load_config(
            ROOT / "configs" / "gpt" / f"{size}.yaml",
            recipe.RecipeConfig,
            [f"data.train_dir={data_dir}", "data.val_dir=null", "train.output_dir=unused"],
        )
        tokenizer = text.CharTokenizer()
        prepared = recipe.prepare_examples(
            data_dir,
            tokenizer,
            cfg.data.fmt,
            cfg.data.context_frames,
            cfg.model.block_size,
            cfg.data.stride,
            False,
        )
        examples = recipe.Examples(prepared, tokenizer)
        model = GPT(recipe.gpt_config(cfg.model, tokenizer.vocab_size))
        opt = model.configure_optimizers(weight_decay=0.0, lr=1e-4, betas=(0.9, 0.95))
        size_b = cfg.data.batch_size
        n = len(examples)  # few scenes fit the tiny preset's 512-token block: wrap around them
        batches = [examples.batch([j % n for j in range(i * size_b, (i + 1) * size_b)]) for i in range(16)]

        def step(i):
            x, y, mask = batches[i % len(batches)]
            opt.zero_grad(set_to_none=True)
            model(x, y, loss_mask=mask)[1].backward()
            opt.step()

    for i in range(3):  # warm-up: allocator, first-call overheads
        step(i)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step(count)
        count += 1
    elapsed = time.perf_counter() - t0
    return {"steps_per_s": count / elapsed, "threads_used": torch.get_num_threads()}


def measure(preset: str, threads: int, seconds: float, data_dir: Path, burners: int) -> dict:
    procs = []
    if burners:
        stop_at = time.time() + seconds + 120  # generous: the worker's start-up comes first
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=burn, args=(stop_at,), daemon=True) for _ in range(burners)]
        for p in procs:
            p.start()
    try:
        call = f"worker({preset!r}, {threads}, {seconds!r}, {str(data_dir)!r})"
        code = (
            f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
            f"from bench.bench_threads import worker; print(json.dumps({call}))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        for p in procs:
            p.terminate()
            p.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0, help="timed training per measurement")
    ap.add_argument("--burners", type=int, default=os.cpu_count() or 1, help="competing busy processes")
    ap.add_argument("--presets", nargs="+", default=PRESETS, choices=PRESETS)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2, 0], help="0: torch's default")
    args = ap.parse_args()
    from physworld.data.generate import GenerateConfig, generate

    work = Path(tempfile.mkdtemp(prefix="physworld-threads-bench-"))
    try:
        generate(
            GenerateConfig(scenario_types=("seen",), num_scenes_per_type=3, frames_per_scene=120),
            work / "train",
            num_workers=2,
            progress=False,
        )
        print(
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {args.seconds:g} s per "
            f"measurement; loaded = beside {args.burners} busy process(es); steps/s (higher is better)\n"
        )
        header = f"{'preset':14s} {'threads':>8s} {'idle':>8s} {'loaded':>8s} {'loaded/idle':>11s}"
        print(header)
        print("-" * len(header))
        rows = {}
        for preset in args.presets:
            for threads in args.threads:
                idle = measure(preset, threads, args.seconds, work / "train", 0)
                loaded = measure(preset, threads, args.seconds, work / "train", args.burners)
                label = f"{threads}" if threads else f"def({idle['threads_used']})"
                rows[(preset, threads)] = (idle["steps_per_s"], loaded["steps_per_s"])
                print(
                    f"{preset:14s} {label:>8s} {idle['steps_per_s']:8.2f} {loaded['steps_per_s']:8.2f} "
                    f"{loaded['steps_per_s'] / idle['steps_per_s']:11.2f}",
                    flush=True,
                )
        print("\nloaded, relative to 1 thread loaded (above 1: more threads help when the CPU is shared):")
        for preset in args.presets:
            base = rows[(preset, args.threads[0])][1]
            cells = ", ".join(
                f"{t or 'default'} threads {rows[(preset, t)][1] / base:.2f}x" for t in args.threads[1:]
            )
            print(f"  {preset:14s} {cells}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
