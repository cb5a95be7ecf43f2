"""Config pieces every recipe shares: the optimizer, the run, and the curriculum's stage plan."""

from __future__ import annotations

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
            raise ValueError("optim.grad_accum must be at least 1")
        if not self.lr > 0:
            raise ValueError("optim.lr must be positive")


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
    threads: int = 0  # torch threads; 0 leaves torch's default

    def validate(self):
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
