"""Config pieces every recipe shares: the optimizer, the run, and the curriculum's stage plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from physworld.worlds.registry import DIFFICULTIES


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    grad_accum: int = 1

    def validate(self):
        if self.grad_accum < 1:
            raise ValueError(f"optim.grad_accum must be at least 1, got {self.grad_accum}")
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be positive, got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be at least 0, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"optim.min_lr_ratio must be between 0 and 1, got {self.min_lr_ratio}")
        if not self.weight_decay >= 0:
            raise ValueError(f"optim.weight_decay must be at least 0, got {self.weight_decay}")
        if not self.grad_clip > 0:
            raise ValueError(f"optim.grad_clip must be positive, got {self.grad_clip}")


@dataclass
class TrainConfig:
    output_dir: str
    max_steps: int = 1000  # optimizer steps over all curriculum stages
    curriculum_stages: int = 0  # 0: every difficulty at once; k: stages 1..k, stage i on difficulty i
    seed: int = 0
    deterministic: bool = True
    log_every: int = 10
    eval_every: int = 200
    save_every: int = 200
    max_bad_steps: int = 10  # consecutive non-finite steps before the run stops
    tensorboard: bool = True
    wandb_project: str | None = None
    # torch CPU threads. 1 by default: the presets' models are small, and with torch's default (every
    # core) a step slows several-fold as soon as another process shares the CPU (BENCHMARKS.md, "Threads");
    # 0 leaves torch's default. Change it with train.threads=N.
    threads: int = 1

    def validate(self):
        for name in ("log_every", "eval_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.max_bad_steps < 0:
            raise ValueError(f"train.max_bad_steps must be at least 0, got {self.max_bad_steps}")
        if not 0 <= self.threads <= 1024:
            raise ValueError(
                f"train.threads must be 0 (torch's default) or a thread count, got {self.threads}"
            )
        if self.curriculum_stages not in range(0, len(DIFFICULTIES) + 1):
            raise ValueError(
                f"train.curriculum_stages must be 0..{len(DIFFICULTIES)}, got {self.curriculum_stages}"
            )
        if self.max_steps < max(1, self.curriculum_stages):
            raise ValueError("train.max_steps must be at least 1 per curriculum stage")


def stage_plan(train: TrainConfig) -> list[tuple[tuple[int, ...] | None, int]]:
    """[(difficulties or None for all, last optimizer step of the stage)] covering max_steps; with a
    curriculum, stage k trains on difficulty k (guide 001)."""
    n = train.curriculum_stages
    if n == 0:
        return [(None, train.max_steps)]
    ends = [round(train.max_steps * (k + 1) / n) for k in range(n)]
    return [((k + 1,), end) for k, end in enumerate(ends)]


def check_schedule(optim: OptimConfig, train: TrainConfig) -> None:
    """Warmup must end within the run: checked when the config loads, before anything is written."""
    if optim.warmup_steps > train.max_steps:
        raise ValueError(
            f"optim.warmup_steps={optim.warmup_steps} is more than train.max_steps={train.max_steps}; "
            f"lower optim.warmup_steps to at most {train.max_steps} (or raise train.max_steps)"
        )


def check_stages(
    plan: list[tuple[tuple[int, ...] | None, int]],
    count: Callable[[tuple[int, ...] | None], int],
    batch_size: int,
    data_dir,
    unit: str = "windows",
) -> None:
    """Before training starts, check every curriculum stage has at least one batch of training examples;
    `count(difficulties)` counts them. The error names each stage's missing difficulty."""
    short = []
    for k, (difficulties, _) in enumerate(plan):
        n = count(difficulties)
        if n < batch_size:
            what = f"difficulty {', '.join(map(str, difficulties))}" if difficulties else "all difficulties"
            short.append(f"stage {k + 1} ({what}) has {n} {unit}")
    if not short:
        return
    fix = (
        "generate scenes of the missing difficulties (physworld generate --difficulty-range 1 5) "
        "or lower train.curriculum_stages"
        if plan[0][0] is not None
        else "generate more scenes"
    )
    raise ValueError(
        f"{data_dir}: fewer training {unit} than one batch (data.batch_size={batch_size}): "
        f"{'; '.join(short)}; {fix}, or lower data.batch_size"
    )
