"""Small shared helpers: atomic file writes (a written file is complete or absent), and what a failed
write means for the person who asked for it."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "explain_write_error"]


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


_WRITE_FIXES = {
    errno.ENOSPC: "the disk is full: free some space or write to another disk",
    errno.EDQUOT: "the disk quota is exceeded: free some space or write to another disk",
    errno.EROFS: "the filesystem is read-only: write to another folder",
    errno.EACCES: "permission denied: write to a folder you can write to",
    errno.EPERM: "permission denied: write to a folder you can write to",
}


def explain_write_error(err: OSError, path: str | Path) -> str:
    """One line for a failed write of ``path``: what happened and the fix (``err`` from open/write/rename).

    ``cannot write runs/a/episodes/plan-00000.parquet: the disk is full: free some space or write to
    another disk``. Errors without a known fix keep the system's words.
    """
    fix = _WRITE_FIXES.get(err.errno or 0)
    if fix is None:
        fix = f"{err.strerror or err}: check that the folder exists and can be written, or write elsewhere"
    return f"cannot write {path}: {fix}"
