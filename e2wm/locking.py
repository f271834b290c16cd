"""One run at a time per output folder: an advisory lock that the operating system releases.

Every e2wm command that writes a folder (``collect``, and ``build``, ``fisher``, ``pipeline``) holds
:func:`output_lock` on it for the whole run, so that a second run started on the same folder stops at
once with an error naming the run that holds it, instead of interleaving its files with the first's::

    from e2wm.locking import OutputLockedError, output_lock

    with output_lock(out, "e2wm collect --seed 3"):
        ...  # write into out

The lock is ``fcntl.flock`` on ``<folder>/.e2wm.lock`` (created if needed, never removed: removing a
lock file while another process waits on it would let two runs in). The kernel drops it when the
holding process ends, however it ends (``kill -9`` included), so a stale lock cannot survive its
run. The file's text says who holds it (pid, host, command, start time); it is only read to word the
error. Locks are per open file: the same process asking twice for one folder is refused too (the
lock is not re-entrant), and so is another thread.

Unix only (``fcntl``). On a network filesystem that does not implement ``flock`` (some NFS and Lustre
mounts), the folder cannot be locked: :func:`output_lock` warns and goes on unlocked rather than
refusing to run; keep one run per folder there by hand.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from e2wm.utils import explain_write_error

__all__ = ["LOCK_NAME", "OutputFolderError", "OutputLockedError", "output_lock"]

#: The lock file's name inside the locked folder (hidden; uploads of the folder should skip it).
LOCK_NAME = ".e2wm.lock"

# errnos meaning "this filesystem does not do flock", as opposed to "someone holds it"
_UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


class OutputFolderError(ValueError):
    """An output folder cannot be used: not writable, disk full, or held by another run.

    A ``ValueError``: like bad arguments, the fix is on the command line (another folder), and the
    commands report it as bad input (exit 2).
    """

    def __init__(self, message: str, *, folder: Path):
        super().__init__(message)
        self.folder = folder


class OutputLockedError(OutputFolderError):
    """Another run holds the folder's lock. ``holder`` is what that run wrote about itself (may be empty)."""

    def __init__(self, message: str, *, folder: Path, holder: dict[str, Any]):
        super().__init__(message, folder=folder)
        self.holder = holder


@contextmanager
def output_lock(folder: str | Path, command: str, *, remove_if_unused: bool = False) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (created if missing) for the ``with`` block.

    ``command`` says what this run is (e.g. ``"e2wm collect --seed 3"``); a run refused because of
    this one quotes it. Yields the folder as a ``Path``. With ``remove_if_unused``, a folder that this
    call created and that holds nothing but the lock file at the end is removed (a run that failed
    before writing anything leaves no folder behind); the removal happens while the lock is held, and
    gives up if another run has meanwhile created its own lock file there.

    Raises :class:`OutputLockedError` at once (never waits) when another run holds the folder, and
    :class:`OutputFolderError` when the folder or its lock file cannot be created (read-only, full,
    no permission), each naming the folder and the fix.
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    created = not folder.is_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:  # named as the error names it: the folder mkdir could not make, or the lock file
        raise OutputFolderError(explain_write_error(err, err.filename or path), folder=folder) from None
    try:
        locked = _try_lock(fd, folder)
        if locked:
            _write_holder(fd, command)
        try:
            yield folder
        finally:
            if remove_if_unused and created:
                _remove_if_only_lock(folder, path)
            if locked:
                # Empty the record before unlocking: a run refused from now on finds no stale holder.
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _remove_if_only_lock(folder: Path, path: Path) -> None:
    try:
        if [entry.name for entry in folder.iterdir()] == [LOCK_NAME]:
            path.unlink()
            folder.rmdir()  # fails (and is left) if another run created its lock file after the unlink
    except OSError:
        pass


def _try_lock(fd: int, folder: Path) -> bool:
    """True once locked; raises when held elsewhere; False (with a warning) when flock is unsupported."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        holder = _read_holder(fd)
        raise OutputLockedError(_locked_message(folder, holder), folder=folder, holder=holder) from None
    except OSError as err:
        if err.errno not in _UNSUPPORTED:
            raise
        warnings.warn(
            f"{folder}: this filesystem does not support file locks ({err.strerror}); nothing stops another run "
            "from writing into the same folder at the same time",
            stacklevel=4,
        )
        return False


def _write_holder(fd: int, command: str) -> None:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "argv": sys.argv,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    data = json.dumps(record, sort_keys=True).encode("utf-8")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:
        pass  # the record only words other runs' errors; a full disk must not stop this run here


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 65536, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _locked_message(folder: Path, holder: dict[str, Any]) -> str:
    who = "another run"
    if holder.get("pid"):
        who = f"another run (pid {holder['pid']}"
        who += f" on {holder['host']}" if holder.get("host") else ""
        who += f", {holder['command']!r}" if holder.get("command") else ""
        who += f", started {holder['started']}" if holder.get("started") else ""
        who += ")"
    return (
        f"{folder} is in use by {who}: wait for it to finish (or stop it), or write to another folder; "
        "two runs must never write into one folder"
    )
