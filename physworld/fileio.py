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


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (os.umask both sets and reads,
    which would race with another thread creating a file)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class DamagedFile(ValueError):
    """A file's bytes are damaged (truncated, a checksum mismatch): damage found, which the CLI reports with
    exit status 1, apart from mistakes in the command (2). Subclassed where the damage is found."""


class OutputPathError(ValueError):
    """An output path the user gave cannot be written (a file where a folder is needed, under a file, not
    writable); raised before any long work starts."""


def check_output_path(path, flag: str, is_dir: bool = True) -> None:
    """Refuse, in one line naming `flag`, an output path that cannot be created or written: a file where a
    directory is needed (or the reverse), a path under a file, or a parent without write permission.
    Cheap (a few stats), so verbs call it before long work rather than failing at the end."""
    path = Path(path)
    what = f"{flag} {path}" if flag else str(path)
    if path.is_dir():
        if not is_dir:
            raise OutputPathError(f"{what}: is a directory; give a file name")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputPathError(f"{what}: the directory is not writable (permission denied)")
        return
    if path.exists() or path.is_symlink():
        if is_dir:
            raise OutputPathError(f"{what}: is a file, not a directory; choose another path")
        existing = path.parent
    else:
        existing = next((p for p in path.parents if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise OutputPathError(f"{what}: {existing} is a file, so nothing can be created under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what}: cannot create it in {existing} (permission denied)")


def atomic_write(path, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)` to produce the file beside `path` (same suffix, for writers that go by
    extension), fsync it and rename it into place. Returns the path.

    The file gets the mode an ordinary `open` would give it (0666 less the umask), not mkstemp's 0600.
    An OSError that names no file (a full disk seen by `write`) is raised again naming `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and (e.filename is None or e.filename == tmp):
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
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
