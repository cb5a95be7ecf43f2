"""Small functions a training loop calls: seeding, determinism, LR schedule, clipping, NaN guard, progress.

A recipe writes its loop out in full and calls these; nothing here owns the loop::

    seed_everything(cfg.seed)
    guard = NonFiniteGuard(max_bad_steps=cfg.max_bad_steps)
    bar = progress_bar(cfg.total_steps, initial=step, desc="train")
    while step < cfg.total_steps:
        set_lr(optimizer, cosine_with_warmup(step, cfg.warmup, cfg.total_steps, cfg.lr))
        loss = model.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if guard.check(loss, model):              # False: NaN/inf loss or gradient, skip the update
            grad_norm = clip_gradients(model, cfg.grad_clip)
            optimizer.step()
        step += 1
        bar.update(1)
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = [
    "NonFiniteGuard",
    "TooManyBadSteps",
    "clip_gradients",
    "cosine_with_warmup",
    "grads_finite",
    "progress_bar",
    "seed_everything",
    "set_deterministic",
    "set_lr",
]

Params = torch.nn.Module | Iterable[torch.nn.Parameter]


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, numpy's global RNG and torch (CPU and every CUDA device)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - code that uses the legacy global RNG gets seeded too
    torch.manual_seed(seed)


def set_deterministic(enabled: bool = True, warn_only: bool = False, num_threads: int | None = None) -> None:
    """Make torch pick deterministic kernels (or error/warn where none exists).

    Also turns cuDNN autotuning off and sets CUBLAS_WORKSPACE_CONFIG (which cuBLAS reads when CUDA is
    first initialised, so call this early). Threads: on CPU, reductions split across threads, so bits
    match only between runs with the same `torch.get_num_threads()`; pass `num_threads` to pin it.
    """
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if num_threads is not None:
        torch.set_num_threads(num_threads)


def cosine_with_warmup(
    step: int, warmup_steps: int, total_steps: int, base_lr: float, min_lr_ratio: float = 0.1
) -> float:
    """Learning rate at `step`: linear from 0 at step 0 to `base_lr` at `warmup_steps`, then half a cosine
    down to `base_lr * min_lr_ratio` at `total_steps`, constant after.

    Note lr(0) == 0 when warmup_steps > 0, so the first update is a no-op for SGD-like optimizers.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if warmup_steps < 0 or total_steps < warmup_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps, got {warmup_steps} and {total_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    min_lr = base_lr * min_lr_ratio
    decay_steps = total_steps - warmup_steps
    progress = 1.0 if decay_steps == 0 else min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every param group's learning rate to `lr`, times the group's `lr_scale` if it has one
    (per-group multipliers, e.g. muP or a lower LR for a pretrained backbone)."""
    for group in optimizer.param_groups:
        value = lr * group.get("lr_scale", 1.0)
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(value)
        else:
            group["lr"] = value


def _params(model: Params) -> list[torch.nn.Parameter]:
    if isinstance(model, torch.nn.Module):
        return list(model.parameters())
    return list(model)


def clip_gradients(model: Params, max_norm: float | None) -> float:
    """Scale gradients so their global L2 norm is at most `max_norm`; return the norm before clipping.

    `max_norm=None` only measures. The norm is NaN/inf if any gradient is; check NonFiniteGuard first.
    """
    grads = [p for p in _params(model) if p.grad is not None]
    if not grads:
        return 0.0
    limit = math.inf if max_norm is None else float(max_norm)
    return float(torch.nn.utils.clip_grad_norm_(grads, limit))


def grads_finite(model: Params) -> bool:
    """True if every existing gradient is free of NaN and inf (one device sync)."""
    grads = [p.grad for p in _params(model) if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


class TooManyBadSteps(RuntimeError):
    """More consecutive steps had a non-finite loss or gradient than NonFiniteGuard allows."""


class NonFiniteGuard:
    """Skip updates whose loss or gradients hold NaN/inf; give up after too many in a row.

    `check(loss, model)` returns True when the step is good (call optimizer.step()), False when it must
    be skipped. Up to `max_bad_steps` consecutive bad steps are skipped; the next one raises
    TooManyBadSteps (so max_bad_steps=0 raises on the first). A good step resets the run of bad ones.
    `bad_steps_total` counts all skipped steps; state_dict()/load_state_dict() carry the counts across
    a resume (store them in the checkpoint's `extra`).

    With AMP's GradScaler, its own inf-skipping comes first: call check on the unscaled gradients.
    """

    def __init__(self, max_bad_steps: int = 10):
        if max_bad_steps < 0:
            raise ValueError(f"max_bad_steps must be >= 0, got {max_bad_steps}")
        self.max_bad_steps = max_bad_steps
        self.consecutive_bad = 0
        self.bad_steps_total = 0
        self.last_reason: str | None = None

    def check(self, loss: torch.Tensor | float, model: Params) -> bool:
        loss_value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if not math.isfinite(loss_value):
            reason = f"loss is {loss_value}"
        elif not grads_finite(model):
            reason = f"non-finite gradient in {self._first_bad_param(model)}"
        else:
            self.consecutive_bad = 0
            return True
        self.consecutive_bad += 1
        self.bad_steps_total += 1
        self.last_reason = reason
        if self.consecutive_bad > self.max_bad_steps:
            raise TooManyBadSteps(
                f"{self.consecutive_bad} consecutive steps with a non-finite loss or gradient "
                f"(last: {reason}; {self.bad_steps_total} bad steps in all); lower the learning rate, "
                "enable gradient clipping, or check the data and the loss for division by zero / log(0)"
            )
        return False

    @staticmethod
    def _first_bad_param(model: Params) -> str:
        if isinstance(model, torch.nn.Module):
            named = list(model.named_parameters())
        else:
            named = [(f"parameter {i}", p) for i, p in enumerate(model)]
        for name, p in named:
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                return name
        return "?"

    def state_dict(self) -> dict:
        return {"consecutive_bad": self.consecutive_bad, "bad_steps_total": self.bad_steps_total}

    def load_state_dict(self, state: dict) -> None:
        self.consecutive_bad = int(state["consecutive_bad"])
        self.bad_steps_total = int(state["bad_steps_total"])


def progress_bar(total: int, initial: int = 0, desc: str | None = None, **kwargs) -> tqdm:
    """A tqdm bar over steps showing count, rate and ETA; `initial` is the step a resumed run starts at."""
    options = {"unit": "step", "dynamic_ncols": True, "smoothing": 0.05}
    options.update(kwargs)
    return tqdm(total=total, initial=initial, desc=desc, **options)


def matmul_peak_flops(seconds: float = 2.0, n: int = 1024) -> float:
    """FLOP/s of a dense float32 n x n @ n x n matmul loop on this process's threads: the denominator
    of the FLOP-utilisation figures in bench/ (measured in the same run as what it divides)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - t0)
