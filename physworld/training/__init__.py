"""Shared pieces for training recipes: small functions, never a base class to inherit.

- config.py: typed YAML configs (dataclass schemas, overrides, the resolved config saved per run);
- checkpoint.py: safetensors + JSON checkpoints (nothing unpickled), atomic writes, exact resume;
- loop_utils.py: seeding, determinism, LR schedule, gradient clipping, NaN guard, progress bar;
- metrics.py: JSONL + TensorBoard (+ optional W&B) metric logging that survives resume.

Each recipe (one file per model family) writes its loop out in full and calls these. Importing this
package does not import torch; the names below load their module on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ConfigError": "config",
    "load_config": "config",
    "config_from_dict": "config",
    "config_to_dict": "config",
    "save_config": "config",
    "Checkpoint": "checkpoint",
    "CheckpointError": "checkpoint",
    "CheckpointManager": "checkpoint",
    "load_checkpoint": "checkpoint",
    "restore": "checkpoint",
    "save_checkpoint": "checkpoint",
    "NonFiniteGuard": "loop_utils",
    "TooManyBadSteps": "loop_utils",
    "clip_gradients": "loop_utils",
    "cosine_with_warmup": "loop_utils",
    "grads_finite": "loop_utils",
    "progress_bar": "loop_utils",
    "seed_everything": "loop_utils",
    "set_deterministic": "loop_utils",
    "set_lr": "loop_utils",
    "MetricLogger": "metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
