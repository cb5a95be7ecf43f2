"""Checkpoints as one safetensors file: tensors in the body, everything else as JSON in its header.

Nothing here unpickles: files are read with safetensors and json only, so a checkpoint downloaded from
anywhere cannot run code. One file holds

- `model.<name>`: the model's state_dict;
- `optim.*`: the optimizer's state tensors (per parameter index: exp_avg, exp_avg_sq, step, ...);
  its param_groups and non-tensor state go to the JSON metadata;
- `rng.*`: the torch CPU generator state (uint8), CUDA generator states when CUDA is in use, and the
  states of any extra torch.Generator objects passed as `extra_generators`; the Python `random` and
  numpy legacy global states go to the JSON metadata;
- header metadata `physworld.meta`: a JSON string with step, scheduler_state, config, extra (data
  position, curriculum stage, ...), the optimizer's structure, a CRC-32 of all tensor bytes (checked on
  load, so a damaged file is refused rather than silently loaded) and format/torch versions.

Writes are atomic: a temp file in the same directory is written, fsynced and renamed over the target,
then the directory is fsynced; a crash at any point leaves either the old file or the new one.

Typical use in a recipe::

    ckpts = CheckpointManager(out_dir / "checkpoints")
    if (path := ckpts.latest_path()) is not None:
        meta = restore(load_checkpoint(path), model, optimizer)
        step, data_pos = meta["step"], meta["extra"]["data_position"]
    ...
    ckpts.save_latest(model, optimizer, step=step, config=cfg, extra={"data_position": data_pos})
    ckpts.save_best(val_loss, model, step=step, config=cfg)
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from physworld.fileio import DamagedFile, atomic_write
from physworld.training.config import config_to_dict

__all__ = [
    "Checkpoint",
    "CheckpointDamaged",
    "CheckpointError",
    "CheckpointManager",
    "load_checkpoint",
    "restore",
    "save_checkpoint",
    "verify_checkpoints",
]

FORMAT = "physworld-checkpoint"
FORMAT_VERSION = 1
META_KEY = "physworld.meta"
META_CRC_KEY = "physworld.meta_crc32"  # CRC-32 of the META_KEY string: the header is checked too
SUFFIX = ".safetensors"


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged, or does not fit the model/optimizer it is restored into."""


class CheckpointDamaged(CheckpointError, DamagedFile):
    """A checkpoint's bytes are damaged (truncated, a checksum mismatch, unreadable metadata): damage
    found, not a mistake in the command (the CLI exits 1 for it, 2 for other CheckpointErrors)."""


# ---------------------------------------------------------------- JSON <-> objects with tensors
#
# Optimizer state_dicts, RNG states and scheduler states mix tensors, tuples, int-keyed dicts and numpy
# arrays. `_encode` turns such an object into JSON data, moving tensors into `tensors` under `prefix`
# and leaving {"__tensor__": key} in their place; `_decode` inverts it exactly (tuples stay tuples,
# int keys stay ints), so `optimizer.load_state_dict` sees the same structure it produced.


def _encode(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key, n = prefix, 1
        while key in tensors:  # "a.b" as one key and as a nested path would collide
            key, n = f"{prefix}#{n}", n + 1
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _encode(config_to_dict(obj), prefix, tensors)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise TypeError(f"{prefix}: cannot store a mapping key of type {type(k).__name__}")
            items.append([k, _encode(v, f"{prefix}.{k}", tensors)])
        return {"__items__": items}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(
        f"{prefix}: cannot store a {type(obj).__name__} in a checkpoint; use tensors, numbers, strings, "
        "lists, tuples, dicts or dataclasses"
    )


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"]).reshape(obj["shape"])
        if "__items__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__items__"]}
        return {k: _decode(v, tensors) for k, v in obj.items()}
    return obj


def _crc32(tensors: Mapping[str, torch.Tensor]) -> int:
    crc = 0
    for key in sorted(tensors):
        t = tensors[key]
        crc = zlib.crc32(key.encode(), crc)
        if t.numel():
            crc = zlib.crc32(memoryview(t.reshape(-1).view(torch.uint8).numpy()), crc)
    return crc


# ---------------------------------------------------------------- RNG


def _rng_state(extra_generators: Mapping[str, torch.Generator] | None, tensors: dict) -> dict:
    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state_all()
    state = {
        "torch_cpu": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - the legacy global state is what we save
        "cuda": list(cuda),
        "generators": {name: gen.get_state() for name, gen in (extra_generators or {}).items()},
    }
    return _encode(state, "rng", tensors)


def _set_rng_state(state: dict, extra_generators: Mapping[str, torch.Generator] | None, path: Path) -> None:
    """`state` as decoded by load_checkpoint (tensors, tuples and arrays in place)."""
    torch.set_rng_state(state["torch_cpu"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    if state["cuda"] and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            warnings.warn(
                f"{path}: saved with {len(state['cuda'])} CUDA devices, now {torch.cuda.device_count()}; "
                "CUDA RNG states not restored",
                stacklevel=3,
            )
    for name, gen in (extra_generators or {}).items():
        if name not in state["generators"]:
            saved = ", ".join(state["generators"]) or "none"
            raise CheckpointError(f"{path}: no state for generator {name!r}; saved generators: {saved}")
        gen.set_state(state["generators"][name])


# ---------------------------------------------------------------- save


def _cpu_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").contiguous()


def _unshare(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied weights, views): give each its own copy."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for key, t in tensors.items():
        t = _cpu_contiguous(t)
        if t.numel():
            ident = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            if ident in seen or t.untyped_storage().nbytes() != t.numel() * t.element_size():
                t = t.clone()
            seen.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
        out[key] = t
    return out


def _build_payload(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler_state: dict | None,
    extra: dict | None,
    rng: bool,
    step: int | None,
    config: Any,
    extra_generators: Mapping[str, torch.Generator] | None,
    meta_updates: dict | None,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors: dict[str, torch.Tensor] = {}
    for name, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"model.state_dict()[{name!r}] is a {type(value).__name__}, not a tensor")
        tensors[f"model.{name}"] = value
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "torch_version": torch.__version__,
        "step": step,
        "model_class": type(model).__qualname__,
        "config": _encode(config, "config", tensors) if config is not None else None,
        "optimizer": None,
        "scheduler_state": _encode(scheduler_state, "scheduler", tensors)
        if scheduler_state is not None
        else None,
        "extra": _encode(extra or {}, "extra", tensors),
        "rng": _rng_state(extra_generators, tensors) if rng else None,
    }
    if optimizer is not None:
        meta["optimizer"] = {
            "class": type(optimizer).__qualname__,
            "state_dict": _encode(optimizer.state_dict(), "optim", tensors),
        }
    meta.update(meta_updates or {})
    tensors = _unshare(tensors)
    meta["tensor_crc32"] = _crc32(tensors)
    text = json.dumps(meta)
    return tensors, {"format": "pt", META_KEY: text, META_CRC_KEY: str(zlib.crc32(text.encode()))}


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler_state: dict | None = None,
    extra: dict | None = None,
    rng: bool = True,
    *,
    step: int | None = None,
    config: Any = None,
    extra_generators: Mapping[str, torch.Generator] | None = None,
    _meta_updates: dict | None = None,
) -> Path:
    """Write model, optimizer, RNG states and JSON metadata to one safetensors file, atomically.

    `scheduler_state` and `extra` may hold tensors, numbers, strings, lists, tuples and dicts (extra is
    the place for the data position, curriculum stage, guard counters...). `config` is a config
    dataclass or dict, stored as JSON. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors, metadata = _build_payload(
        model, optimizer, scheduler_state, extra, rng, step, config, extra_generators, _meta_updates
    )
    return atomic_write(path, lambda tmp: _save_file(tensors, tmp, metadata))


def _save_file(tensors: dict[str, torch.Tensor], tmp: str, metadata: dict[str, str]) -> None:
    """safetensors' save_file, its I/O failures (a full disk) raised as the OSError they are."""
    try:
        save_file(tensors, tmp, metadata=metadata)
    except SafetensorError as e:
        code = re.search(r"code: (\d+)", str(e))
        if code is None:
            raise
        errno_ = int(code.group(1))
        raise OSError(errno_, os.strerror(errno_), tmp) from e


# ---------------------------------------------------------------- load / restore


@dataclasses.dataclass
class Checkpoint:
    """A loaded checkpoint: every tensor by name, and the decoded metadata (tensors resolved)."""

    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    @property
    def step(self) -> int | None:
        return self.meta.get("step")

    def model_state_dict(self) -> dict[str, torch.Tensor]:
        return {k[len("model.") :]: v for k, v in self.tensors.items() if k.startswith("model.")}

    def optimizer_state_dict(self) -> dict | None:
        opt = self.meta.get("optimizer")
        return None if opt is None else opt["state_dict"]


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's JSON metadata, undecoded, from the header alone (no tensor is read)."""
    path = Path(path)
    return _open(path, read_tensors=False)[1]


def _open(path: Path, read_tensors: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            if read_tensors:
                for key in f.keys():  # safe_open is not a Mapping
                    tensors[key] = f.get_tensor(key)
    except SafetensorError as e:
        raise CheckpointDamaged(
            f"{path}: not a readable safetensors file (truncated or damaged): {e}; "
            "use an earlier checkpoint or start the run again"
        ) from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read checkpoint: {e}") from None
    if META_KEY not in header:
        raise CheckpointError(
            f"{path}: a safetensors file without physworld metadata; it holds weights only "
            "(read it with safetensors.torch.load_file)"
        )
    if META_CRC_KEY in header and header[META_CRC_KEY] != str(zlib.crc32(header[META_KEY].encode())):
        raise CheckpointDamaged(
            f"{path}: checkpoint metadata does not match its checksum (the file is damaged); "
            "use an earlier checkpoint or start the run again"
        )
    try:
        meta = json.loads(header[META_KEY])
        if not isinstance(meta, dict):
            raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
    except ValueError as e:
        raise CheckpointDamaged(f"{path}: damaged checkpoint metadata: {e}") from None
    if meta.get("format") != FORMAT or meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {meta.get('format')!r} v{meta.get('format_version')} is not "
            f"{FORMAT!r} <= v{FORMAT_VERSION}; update physworld to read it"
        )
    return tensors, meta


def load_checkpoint(path: str | os.PathLike, verify: bool = True) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint (safetensors + JSON only; nothing is unpickled).

    Raises CheckpointError naming the file if it is missing, truncated, corrupt (CRC mismatch when
    `verify`), or not a physworld checkpoint.
    """
    path = Path(path)
    tensors, meta = _open(path, read_tensors=True)
    if verify and "tensor_crc32" in meta and _crc32(tensors) != meta["tensor_crc32"]:
        raise CheckpointDamaged(
            f"{path}: tensor data does not match its checksum (the file is damaged); "
            "use an earlier checkpoint or start the run again"
        )
    try:
        decoded = _decode(meta, tensors)
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise CheckpointDamaged(f"{path}: damaged checkpoint metadata: {e!r}") from None
    return Checkpoint(path=path, tensors=tensors, meta=decoded)


def verify_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Read every checkpoint in `directory` in full and check its checksums; a resumed run calls this so a
    damaged `best` or stage file is refused at the start, not found by the evaluation afterwards.
    Returns the files checked; raises CheckpointDamaged naming the first damaged one."""
    checked = []
    for path in sorted(Path(directory).glob(f"*{SUFFIX}")):
        if path.name.startswith("."):  # a killed writer's temporary, never renamed into place
            continue
        load_checkpoint(path)
        checked.append(path)
    return checked


def restore(
    ckpt: Checkpoint,
    model: torch.nn.Module | None,
    optimizer: torch.optim.Optimizer | None = None,
    rng: bool = True,
    extra_generators: Mapping[str, torch.Generator] | None = None,
) -> dict[str, Any]:
    """Load the model (strict), the optimizer state exactly and the RNG states; return the metadata.

    After restore, continuing training gives the same bits as an uninterrupted run (on CPU, same torch
    version and thread count). The returned dict has "step", "extra", "scheduler_state", "config"...
    """
    path = ckpt.path
    meta = ckpt.meta
    if model is not None:
        try:
            model.load_state_dict(ckpt.model_state_dict(), strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: does not fit model {type(model).__qualname__}: {e}") from None
    if optimizer is not None:
        saved = meta.get("optimizer")
        if saved is None:
            raise CheckpointError(
                f"{path}: holds no optimizer state; save it with save_checkpoint(..., optimizer)"
            )
        if saved["class"] != type(optimizer).__qualname__:
            raise CheckpointError(
                f"{path}: optimizer state is for {saved['class']}, not {type(optimizer).__qualname__}"
            )
        try:
            # clone: load_state_dict keeps tensors that already match, and the optimizer updates its
            # state in place; the Checkpoint's own tensors must stay as loaded
            optimizer.load_state_dict(_clone_tensors(saved["state_dict"]))
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"{path}: optimizer state does not fit: {e}") from None
    if rng:
        if meta.get("rng") is None:
            warnings.warn(f"{path}: saved without RNG states; random streams not restored", stacklevel=2)
        else:
            try:
                _set_rng_state(meta["rng"], extra_generators, path)
            except CheckpointError:
                raise
            except (KeyError, TypeError, ValueError, OverflowError, RuntimeError) as e:
                # Values a checksum-less (older) file could carry after a bit flip: the states are
                # refused as a whole rather than half restored.
                raise CheckpointDamaged(f"{path}: damaged RNG state in the metadata: {e!r}") from None
    return meta


def _clone_tensors(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, dict):
        return {k: _clone_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone_tensors(v) for v in obj)
    return obj


# ---------------------------------------------------------------- manager


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class CheckpointManager:
    """Named checkpoints in one directory: `latest`, `best` (lowest validation metric) and any name.

    `save_best` compares against the metric recorded in the existing best file, so the best survives a
    restart. Keyword arguments are passed to save_checkpoint (optimizer, step, config, extra, ...).
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._best_metric: float | None = None
        self._best_loaded = False

    def path(self, name: str) -> Path:
        if not _NAME_RE.match(name):
            raise ValueError(f"checkpoint name {name!r}: use letters, digits, '_', '-', '.'")
        return self.directory / f"{name}{SUFFIX}"

    def save_named(self, name: str, model: torch.nn.Module, optimizer=None, **kwargs) -> Path:
        return save_checkpoint(self.path(name), model, optimizer, **kwargs)

    def save_latest(self, model: torch.nn.Module, optimizer=None, **kwargs) -> Path:
        return self.save_named("latest", model, optimizer, **kwargs)

    def latest_path(self) -> Path | None:
        path = self.path("latest")
        return path if path.is_file() else None

    def best_path(self) -> Path | None:
        path = self.path("best")
        return path if path.is_file() else None

    @property
    def best_metric(self) -> float | None:
        """The metric of the best checkpoint so far (read from its file on first use), or None."""
        if not self._best_loaded:
            self._best_loaded = True
            path = self.best_path()
            if path is not None:
                self._best_metric = read_metadata(path).get("best_metric")
        return self._best_metric

    def save_best(self, metric: float, model: torch.nn.Module, optimizer=None, **kwargs) -> bool:
        """Save as `best` if `metric` (lower is better, e.g. validation loss) beats the best so far.

        Returns True if saved. A non-finite metric is never best.
        """
        metric = float(metric)
        if not np.isfinite(metric):
            return False
        best = self.best_metric
        if best is not None and not metric < best:
            return False
        updates = {"best_metric": metric, **(kwargs.pop("_meta_updates", None) or {})}
        self.save_named("best", model, optimizer, _meta_updates=updates, **kwargs)
        self._best_metric = metric
        return True


def load_run(path, recipe: str) -> tuple[Checkpoint, dict]:
    """A recipe's checkpoint and the run info it saved (`extra`), refusing another recipe's file."""
    ckpt = load_checkpoint(path)
    info = ckpt.meta.get("extra") or {}
    if info.get("recipe") != recipe:
        raise CheckpointError(f"{path}: not a {recipe} checkpoint (it was written by {info.get('recipe')!r})")
    return ckpt, info


def check_resume(directory, recipe: str, identity: Mapping[str, Any], output_dir) -> Checkpoint | None:
    """Before a recipe writes anything into `output_dir`: verify every checkpoint in `directory` (a damaged
    `best` or stage file is refused now, not found by the evaluation afterwards), and check that `latest`
    was written by `recipe` for the same `identity` (model, data: each key the checkpoint's `extra`
    holds too must be equal). Returns the loaded `latest`, or None for a new run."""
    directory = Path(directory)
    latest = directory / f"latest{SUFFIX}"
    if not latest.is_file():
        return None
    verify_checkpoints(directory)
    ckpt = load_checkpoint(latest)
    saved = ckpt.meta.get("extra") or {}
    if saved.get("recipe") != recipe:
        raise CheckpointError(
            f"{output_dir} holds a {saved.get('recipe')!r} run, not {recipe!r}; use another train.output_dir"
        )
    differ = [key for key, value in identity.items() if key in saved and saved[key] != _plain(value)]
    if differ:
        raise CheckpointError(
            f"{output_dir} holds a run with other {' and '.join(differ)} (it was trained from "
            f"{saved.get('train_dir')}); nothing was written: use a new train.output_dir, or delete "
            f"{output_dir} to train again"
        )
    return ckpt


def _plain(value: Any) -> Any:
    """`value` as it reads back from checkpoint metadata (tuples as lists, paths as strings)."""
    return json.loads(json.dumps(config_to_dict(value)))
