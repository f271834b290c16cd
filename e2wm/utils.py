"""Small shared helpers for files and folders that e2wm writes.

* Atomic writes: a written file is complete or absent (a temporary file in the same folder, then a rename).
* Output folders replaced atomically, and only when e2wm wrote them: :func:`replace_folder`.
* Permissions like ``open()``/``mkdir()``: files e2wm creates are ``0o666`` and folders ``0o777``, minus the
  umask (``tempfile.mkstemp``/``mkdtemp`` would make them 0600/0700 whatever the umask, so a team folder's
  outputs could not be read by the team).
* What a failed file operation means for the person who asked for it: :func:`explain_write_error`,
  :func:`describe_os_error` (one line: the path, what happened, the fix).
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from pathlib import Path

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "describe_os_error",
    "explain_write_error",
    "make_new_dir",
    "new_file_mode",
    "replace_folder",
]


def _with_path(err: OSError, path: str | Path) -> OSError:
    """``err`` naming ``path`` (the file the caller asked for, not the temporary one that failed)."""
    named = OSError(err.errno, err.strerror or str(err), str(path))
    named.__cause__ = err
    return named


def _open_new_file(directory: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """Create a new file with a random name, mode 0o666 minus the umask (as ``open(path, "w")`` would)."""
    for _ in range(100):
        path = directory / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(directory))


def new_file_mode(directory: str | Path) -> int:
    """The permissions ``open(path, "w")`` gives a new file in ``directory`` (0o666 minus the umask), found by
    creating one: libraries that write 0600 files (safetensors) are corrected with it (``os.chmod``)."""
    fd, path = _open_new_file(Path(directory), ".e2wm-mode-", ".tmp")
    try:
        return os.fstat(fd).st_mode & 0o777
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


def make_new_dir(parent: str | Path, prefix: str) -> Path:
    """A new, empty folder ``parent/<prefix><random>`` with mode 0o777 minus the umask (``mkdir``'s)."""
    parent = Path(parent)
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir(0o777)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary folder name", str(parent))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The file gets the permissions ``open(path, "wb")`` would give it. An ``OSError`` (full disk, read-only
    filesystem) names ``path``; no temporary file is left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # its error names the folder that cannot be made
    try:
        fd, tmp = _open_new_file(path.parent, f".{path.name}.", ".tmp")
    except OSError as err:
        raise _with_path(err, path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _with_path(err, path) from None
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def replace_folder(new: str | Path, target: str | Path) -> None:
    """Put the folder ``new`` in place of ``target`` (which may not exist), so that ``target`` is always
    either the old folder or the new one, complete.

    ``new`` must be a sibling of ``target`` (same filesystem). The old ``target`` is renamed away first
    (``.<name>.e2wm-old-<random>``), ``new`` renamed in, and the old one removed last; if the second rename
    fails the old folder is put back. Callers decide first that ``target`` is theirs to replace.
    """
    new, target = Path(new), Path(target)
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.e2wm-old-{secrets.token_hex(4)}")
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


_WRITE_FIXES = {
    errno.ENOSPC: "the disk is full: free some space or write to another disk",
    errno.EDQUOT: "the disk quota is exceeded: free some space or write to another disk",
    errno.EROFS: "the filesystem is read-only: write to another folder",
    errno.EACCES: "permission denied: write to a folder you can write to",
    errno.EPERM: "permission denied: write to a folder you can write to",
    errno.EEXIST: "a file of that name stands where a folder is needed: choose another path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "a folder of that name stands where a file is needed: choose another path",
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


def describe_os_error(err: OSError, path: str | Path | None = None) -> str:
    """One line for any failed file operation (read or write), naming the path (``path``, else the error's).

    The commands print it for an ``OSError`` that reached them: a full or read-only disk, a missing file,
    a folder where a file was expected, or the reverse.
    """
    if path is None and err.filename is None:  # e.g. a download that failed: its own words
        return " ".join(str(err).split()) or type(err).__name__
    where = str(path if path is not None else err.filename)
    code = err.errno or 0
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return explain_write_error(err, where)
    if code in (errno.EACCES, errno.EPERM):
        return f"{where}: permission denied: check its permissions, or use a file or folder you can access"
    if code == errno.ENOENT:
        return f"{where}: no such file or folder: check the path"
    if code == errno.EISDIR:
        return f"{where} is a folder, where a file was expected: give a file"
    if code == errno.ENOTDIR:
        return f"{where}: a part of this path is a file, where a folder was expected: check the path"
    if code == errno.EEXIST:
        return f"{where} already exists as a file, where a folder was expected: choose another path"
    if code == errno.ELOOP:
        return f"{where}: too many symbolic links (a loop?): check the links"
    detail = err.strerror or " ".join(str(err).split())
    return f"{where}: {detail}"
