"""Atomic, durable file writes: every file physworld writes goes through here.

A write goes to a temporary file in the target's directory, is flushed and fsynced, then renamed
over the target (and the directory fsynced), so a reader, a crash or a `kill -9` only ever sees the
old file or the whole new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def fsync_dir(directory) -> None:
    """Make a rename inside `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)` to produce the file beside `path` (same suffix, for writers that go by
    extension), fsync it and rename it into place. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def remove_stale_temporaries(directory, pattern: str = ".*.tmp*") -> int:
    """Delete temporary files a killed writer left in `directory` (a glob, so "*/" reaches subfolders).

    The default pattern matches both `atomic_write`'s `.<stem>.<random>.tmp<suffix>` and the
    `.<name>.<pid>.tmp` files some writers use. A temporary is never renamed into place, so it is
    never valid data. Returns how many were removed."""
    removed = 0
    for stale in Path(directory).glob(pattern):
        if stale.is_file():
            stale.unlink(missing_ok=True)
            removed += 1
    return removed


def atomic_write_bytes(path, data: bytes) -> Path:
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)


def atomic_write_json(path, obj) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
