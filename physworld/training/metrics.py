"""Scalar metrics to JSONL (always), TensorBoard (by default) and Weights & Biases (when asked).

`<out_dir>/metrics.jsonl` is the record every report reads: one JSON object per `log` call,
`{"step": 120, "train/loss": 0.41, ...}`, flushed at once so a killed run loses nothing it logged.
Non-finite values are written as null (strict JSON). Several lines may share a step (e.g. train and
validation metrics logged separately).

Resume: pass `resume_step` (the step of the checkpoint the run continues from). Lines with a larger
step, written after that checkpoint by the killed run, are removed (the file is rewritten atomically)
and TensorBoard purges its events past that step, so a resumed run has no duplicate steps. A run that
starts fresh in a directory that already holds metrics.jsonl appends to it; pass resume_step=-1 to
clear it instead.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

from physworld.fileio import atomic_write_bytes
from physworld.training.config import config_to_dict

__all__ = ["MetricLogger", "read_metrics"]

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
WANDB_ID_FILE = "wandb_run_id.txt"


def _scalar(name: str, value: Any) -> Any:
    """A logged value as a JSON scalar (tensors and numpy numbers via .item(); non-finite -> None)."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    raise TypeError(f"metric {name!r}: expected a number, bool or string, got {type(value).__name__}")


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """All records of a metrics.jsonl file (a torn last line, from a killed writer, is ignored)."""
    return _read_lines(Path(path))[0]


def _read_lines(path: Path) -> tuple[list[dict], bool]:
    """(records, whether a torn last line was dropped)."""
    records = []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    torn = False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # no newline after it: the writer was killed mid-line
                torn = True
                continue
            raise ValueError(f"{path}:{i + 1}: not a JSON line; fix or remove that line") from None
    return records, torn


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


class MetricLogger:
    """Log scalars per step to `<out_dir>/metrics.jsonl`, TensorBoard and optionally W&B.

    `wandb_project` turns W&B on (the `wandb` package is imported only then); WANDB_MODE=offline works
    without a login. The W&B run id is kept in `<out_dir>/wandb_run_id.txt` so a resumed run continues
    the same W&B run (W&B cannot drop steps already sent; the JSONL file is the authoritative record).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        tensorboard: bool = True,
        wandb_project: str | None = None,
        wandb_config: Any = None,
        resume_step: int | None = None,
        wandb_run_name: str | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / METRICS_FILE
        self.resume_step = resume_step
        if self.path.exists():
            if resume_step is not None:
                self._truncate_after(resume_step)
            elif not _ends_with_newline(self.path):
                self._truncate_after(None)  # drop a torn last line so appended lines stay separate
        self._file = open(self.path, "a", encoding="utf-8")  # closed in close()
        self._tb = None
        self._wandb_run = None
        try:
            if tensorboard:
                self._tb = self._open_tensorboard(resume_step)
            if wandb_project is not None:
                self._wandb_run = self._open_wandb(wandb_project, wandb_config, wandb_run_name, resume_step)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ setup

    def _truncate_after(self, resume_step: int | None) -> None:
        records, torn = _read_lines(self.path)
        kept = [
            r
            for r in records
            if resume_step is None or not (isinstance(r.get("step"), int) and r["step"] > resume_step)
        ]
        if len(kept) != len(records) or torn:
            data = "".join(json.dumps(r) + "\n" for r in kept)
            atomic_write_bytes(self.path, data.encode("utf-8"))

    def _open_tensorboard(self, resume_step: int | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "TensorBoard logging needs the `tensorboard` package (pip install tensorboard), "
                "or pass tensorboard=False"
            ) from e
        # TensorBoard purges events with step >= purge_step; keep the resume step itself, like the JSONL
        purge = None if resume_step is None else resume_step + 1
        return SummaryWriter(log_dir=str(self.out_dir / TENSORBOARD_DIR), purge_step=purge, flush_secs=30)

    def _open_wandb(self, project: str, config: Any, name: str | None, resume_step: int | None):
        try:
            import wandb
        except ImportError as e:
            raise ImportError(
                "Weights & Biases logging needs the `wandb` package (pip install wandb), "
                "or leave wandb_project unset; set WANDB_MODE=offline to log without an account"
            ) from e
        id_file = self.out_dir / WANDB_ID_FILE
        run_id = id_file.read_text().strip() if id_file.exists() else None
        if run_id is None:
            run_id = wandb.util.generate_id()
            atomic_write_bytes(id_file, (run_id + "\n").encode())
        if resume_step is not None:
            warnings.warn(
                f"W&B run {run_id}: steps after {resume_step} already sent are kept by W&B; "
                f"{self.path} is the authoritative record",
                stacklevel=3,
            )
        return wandb.init(
            project=project,
            name=name,
            id=run_id,
            resume="allow",
            dir=str(self.out_dir),
            config=config_to_dict(config) if config is not None else None,
        )

    # ------------------------------------------------------------ logging

    def log(self, step: int, **scalars: Any) -> None:
        """Append {"step": step, **scalars} to metrics.jsonl (flushed) and send numbers to TB / W&B."""
        if isinstance(step, bool) or not isinstance(step, int):
            raise TypeError(f"step must be an int, got {type(step).__name__}")
        if self._file is None:
            raise RuntimeError("MetricLogger is closed")
        record = {"step": step}
        for name, value in scalars.items():
            record[name] = _scalar(name, value)
        try:
            self._file.write(json.dumps(record, allow_nan=False) + "\n")
            self._file.flush()
        except OSError as e:  # a full disk: say which file (a torn last line is ignored on reading)
            raise OSError(e.errno, e.strerror or str(e), str(self.path)) from e
        numbers = {
            k: v
            for k, v in record.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if self._tb is not None:
            for name, value in numbers.items():
                self._tb.add_scalar(name, value, global_step=step)
        if self._wandb_run is not None:
            payload = {k: v for k, v in record.items() if k != "step"}
            self._wandb_run.log(payload, step=step)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
