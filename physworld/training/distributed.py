"""Several training processes (torchrun, DDP): small functions a recipe calls, never a base class.

    torchrun --nproc_per_node 2 -m physworld.recipes.physics_expert --config configs/physics_expert/tiny.yaml

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK in each process; without them every function here is a
no-op for one process, so a recipe runs the same code either way. The contract a recipe keeps:

- `setup(device)` once at the start (gloo for CPU tensors, NCCL for CUDA ones), `teardown()` at the end;
- the config's batch size is the GLOBAL batch: `shard_batches` cuts every global batch of the seeded
  epoch order into equal per-rank slices, so the examples one step sees are those of a one-process run;
- the training loss goes through `wrap(model)` (DDP averages gradients over ranks) and is scaled by
  `global_mean_scale` so the average of per-rank losses is the mean over the global batch;
- what is logged is averaged with `mean_over_ranks`; only rank 0 (`is_main()`) writes files, and the
  others wait at `barrier()`; `main_first()` lets rank 0 build shared caches before the others read them.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = [
    "barrier",
    "global_max",
    "global_mean_scale",
    "global_rows",
    "is_main",
    "main_first",
    "mean_over_ranks",
    "rank",
    "setup",
    "shard_batches",
    "teardown",
    "world_size",
    "wrap",
]


def launched() -> bool:
    """True inside a torchrun (or accelerate) launch of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str | torch.device = "cpu", timeout_s: float = 600.0) -> None:
    """Join the process group torchrun describes (idempotent; a no-op for one process)."""
    if not launched() or dist.is_initialized():
        return
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise RuntimeError(
                f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {name} is not set; launch several processes "
                "with `torchrun --nproc_per_node N -m physworld.recipes.<recipe> --config ...`"
            )
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))


def teardown(wait: bool = True) -> None:
    """Leave the process group; `wait`: first let every rank finish (not after an error, when the
    others may never arrive)."""
    if dist.is_initialized():
        if wait:
            dist.barrier()  # no rank leaves while another still writes or reduces
        dist.destroy_process_group()


def launch_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun), valid after teardown too."""
    return int(os.environ.get("RANK", "0"))


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (e.g. preparing a dataset's window cache), then the others do."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def local_device(device: str | torch.device) -> torch.device:
    """This rank's device: cuda:LOCAL_RANK for a CUDA run, the device unchanged otherwise."""
    device = torch.device(device)
    if device.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


class _LossModule(torch.nn.Module):
    """DDP synchronises gradients only for computations that go through its forward(): this routes
    `model.<method>(*args)` (a recipe's loss) through it."""

    def __init__(self, model: torch.nn.Module, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, *args, **kwargs):
        return getattr(self.model, self.method)(*args, **kwargs)


def wrap(model: torch.nn.Module, method: str = "loss", find_unused_parameters: bool = True):
    """A callable computing `model.<method>(...)`: plain for one process, through DDP for several
    (gradients averaged over ranks in backward). The model's parameters are broadcast from rank 0."""
    if not dist.is_initialized():
        return getattr(model, method)
    device_ids = None
    param = next(model.parameters())
    if param.device.type == "cuda":
        device_ids = [param.device.index]
    return torch.nn.parallel.DistributedDataParallel(
        _LossModule(model, method), device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )


def shard_batches(order, global_batch: int) -> list[list[int]]:
    """This rank's slice of every full global batch of `order` (drop_last, as a one-process loader).

    Rank r takes items [r*b, (r+1)*b) of each global batch, b = global_batch / world_size, so the ranks'
    slices concatenated in rank order are the one-process batch."""
    world, me = world_size(), rank()
    if global_batch % world:
        raise ValueError(
            f"data.batch_size={global_batch} (the global batch) must be divisible by the number of "
            f"processes ({world}); use a multiple of {world}"
        )
    per_rank = global_batch // world
    order = list(order)
    full = len(order) - len(order) % global_batch
    return [
        order[start + me * per_rank : start + (me + 1) * per_rank] for start in range(0, full, global_batch)
    ]


def _all_reduce_sum(values: list[float], device) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def global_mean_scale(local_count: int | float, device="cpu") -> float:
    """Factor turning this rank's mean loss (over `local_count` terms) into its share of the global
    mean: world * local / global. DDP then averages gradients over ranks, which gives exactly the
    gradient of the mean over the global batch even when ranks hold different numbers of terms."""
    if not dist.is_initialized():
        return 1.0
    (total,) = _all_reduce_sum([float(local_count)], _reduce_device(device))
    return world_size() * float(local_count) / total if total > 0 else 1.0


def global_rows(local_rows: int, device="cpu") -> tuple[int, int]:
    """(offset of this rank's rows, total rows over ranks), rows counted in rank order: lets a rank
    draw the one-process run's random numbers for the global batch and keep its own slice."""
    if not dist.is_initialized():
        return 0, int(local_rows)
    counts = torch.zeros(world_size(), dtype=torch.int64, device=_reduce_device(device))
    counts[rank()] = int(local_rows)
    dist.all_reduce(counts, op=dist.ReduceOp.SUM)
    return int(counts[: rank()].sum()), int(counts.sum())


def global_max(value: int, device="cpu") -> int:
    """The largest `value` over ranks (e.g. the padded body count of the global batch)."""
    if not dist.is_initialized():
        return int(value)
    tensor = torch.tensor([int(value)], dtype=torch.int64, device=_reduce_device(device))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def mean_over_ranks(values: dict[str, float], device="cpu") -> dict[str, float]:
    """Average logged numbers over ranks (every rank calls it with the same keys)."""
    if not dist.is_initialized() or not values:
        return values
    keys = sorted(values)
    sums = _all_reduce_sum([float(values[k]) for k in keys], _reduce_device(device))
    return {k: s / world_size() for k, s in zip(keys, sums, strict=True)}


def _reduce_device(device) -> torch.device:
    # NCCL reduces CUDA tensors only; gloo CPU ones.
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def command_line(recipe: str, recipe_main) -> None:
    """`python -m physworld.recipes.<recipe>` (and under torchrun): --config, --quiet, key=value
    overrides; `recipe_main(config, overrides, progress)` trains; rank 0 prints the summary.

    A bad config, path or dataset is one line on stderr and exit 2; a run that stopped itself (too many
    non-finite steps) exit 1, as `physworld train` (physworld.cli, which this cannot import: the CLI
    imports the recipes). `torchrun --no-python physworld train <recipe> ...` goes through the CLI itself.
    """
    import argparse
    import sys

    from physworld.training.loop_utils import TooManyBadSteps

    parser = argparse.ArgumentParser(prog=f"python -m physworld.recipes.{recipe.replace('-', '_')}")
    parser.add_argument(
        "--config", required=True, help=f"a YAML preset, e.g. configs/{recipe.replace('-', '_')}/tiny.yaml"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. train.max_steps=50")
    args = parser.parse_args()
    try:
        summary = recipe_main(args.config, args.overrides, progress=not args.quiet)
    except Exception as e:
        # physworld.data imports physworld.training, so its StoreError is looked up, not imported (a
        # StoreError can only come from the loaded module).
        store = sys.modules.get("physworld.data.store")
        user_errors = (ValueError, OSError) + ((store.StoreError,) if store is not None else ())
        if not isinstance(e, user_errors + (RuntimeError,)):
            raise
        if isinstance(e, RuntimeError):
            if not isinstance(e.__cause__, TooManyBadSteps):
                raise
            print(f"{parser.prog}: stopped: {e}", file=sys.stderr)
            sys.exit(1)
        print(f"{parser.prog}: error: {e}", file=sys.stderr)  # ConfigError is a ValueError
        sys.exit(2)
    if launch_rank() == 0:
        print(summary)


class NullLogger:
    """What ranks other than 0 log to: nothing (rank 0 writes the metrics)."""

    def log(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass
