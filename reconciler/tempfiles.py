"""New private files, as ``tempfile.mkstemp`` makes them, without importing :mod:`tempfile`.

:mod:`tempfile` imports :mod:`shutil` (and with it ``bz2``, ``lzma`` and ``zlib``) and
:mod:`random`: ~4 ms of imports before a plan's first installer process starts (its
constraints file), and again for each state file an apply writes. On POSIX a file is
made here as mkstemp makes it: ``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0600, a random
name, another name when one exists. The default directory is the first of ``TMPDIR``,
``TEMP`` and ``TMP`` set, else ``/tmp``; when a file cannot be made there, or a
program running reconciler in its own process (a kernel) has set or settled
``tempfile.tempdir``, ``tempfile.mkstemp`` itself decides, as it does on other
systems.

:func:`new_file` (a constraints file) and :func:`replace_file` (a cache or record
renamed over the old one) are the two ways reconciler writes such a file;
:func:`private` says whether one read back is still this user's alone, and
:func:`remove_leftovers` removes what a killed process left of the first kind.
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "CONSTRAINTS", "LOCKED", "mkstemp", "new_file", "private", "remove_leftovers", "replace_file",
]  # fmt: skip

_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_FLAGS |= getattr(os, "O_CLOEXEC", 0)
#: How many names are tried before giving up (mkstemp's TMP_MAX is 10,000: a random
#: 48-bit name taken ten times running means something else is wrong).
_ATTEMPTS = 10


def mkstemp(prefix: str, suffix: str, directory: str | None = None) -> tuple[int, str]:
    """``(open file descriptor, absolute path)`` of a new file only this user can read;
    ``directory`` None: the temporary directory. Raises OSError as mkstemp does."""
    chosen = getattr(sys.modules.get("tempfile"), "tempdir", None)
    if os.name == "posix" and (directory is not None or chosen is None):
        where = directory if directory is not None else _default_directory()
        for _ in range(_ATTEMPTS):
            path = os.path.abspath(os.path.join(where, f"{prefix}{os.urandom(6).hex()}{suffix}"))
            try:
                return os.open(path, _FLAGS, 0o600), path
            except FileExistsError:
                continue
            except OSError:
                if directory is not None:
                    raise
                break  # an unwritable TMPDIR: mkstemp searches on
    import tempfile

    return tempfile.mkstemp(suffix=suffix, prefix=prefix, dir=directory)


def _default_directory() -> str:
    for name in ("TMPDIR", "TEMP", "TMP"):
        value = os.environ.get(name)
        if value:
            return value
    return "/tmp"


def replace_file(path: str, data: bytes, prefix: str) -> None:
    """Write ``data`` to ``path`` through a new private file beside it, renamed over it:
    readers see the old file or the new one, whole. Derived data (caches, records): no
    fsync. Raises OSError, after removing the new file."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = _filled(*mkstemp(prefix, ".tmp", directory), data)
    try:
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def new_file(prefix: str, suffix: str, data: bytes) -> str:
    """The absolute path of a new private file in the temporary directory (as
    :func:`mkstemp`) holding ``data``, named ``PREFIX<pid>-<random>SUFFIX``: what a
    process killed before it removed the file leaves is known by its dead process
    (:func:`remove_leftovers`). Raises OSError, after removing the file."""
    return _filled(*mkstemp(f"{prefix}{os.getpid()}-", suffix), data)


#: How old a leftover of :func:`new_file` must be before :func:`remove_leftovers`
#: removes it, its process gone: the installers read such a file when they start, and
#: another system's process (a container sharing the directory) is not seen as alive.
LEFTOVER_SECONDS = 86_400


#: What :func:`new_file` makes: the installers' constraints and locked requirements.
CONSTRAINTS = "reconciler-constraints-"
LOCKED = "reconciler-locked-"
_KINDS = (CONSTRAINTS, LOCKED)
_SUFFIX = ".txt"


def remove_leftovers() -> int:
    """Remove this user's files of :data:`CONSTRAINTS` and :data:`LOCKED` that
    :func:`new_file` made in the temporary directory and that a process killed before
    its own cleanup left (SIGKILL, out of memory): regular files older than
    :data:`LEFTOVER_SECONDS` whose process is gone. Best effort; returns how many were
    removed."""
    chosen = getattr(sys.modules.get("tempfile"), "tempdir", None)
    where = chosen if chosen is not None else _default_directory()
    try:
        names = os.listdir(where)
    except OSError:
        return 0
    import time
    from stat import S_ISREG

    oldest = time.time() - LEFTOVER_SECONDS
    removed = 0
    for name in names:
        if not (name.startswith(_KINDS) and name.endswith(_SUFFIX)):
            continue
        rest = name[next(len(k) for k in _KINDS if name.startswith(k)) :]
        pid, dash, _ = rest.partition("-")
        # A pid as new_file writes it (anyone may name a file in a shared directory).
        if not (dash and pid.isascii() and pid.isdigit() and len(pid) <= 10):
            continue
        path = os.path.join(where, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not (S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mtime < oldest):
            continue
        if int(pid) != os.getpid() and not _alive(int(pid)):
            _remove(path)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):  # no such pid can exist: said alive, kept
        return True
    except OSError:  # not ours to signal: it exists
        return True
    return True


def _filled(fd: int, path: str, data: bytes) -> str:
    """``path`` (open as ``fd``, which is closed) holding ``data``; removed when that
    fails."""
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        _remove(path)
        raise
    return path


def _remove(path: str) -> None:
    try:  # noqa: SIM105  (contextlib is not imported on the fast path)
        os.unlink(path)
    except OSError:
        pass


def private(fd: int, path: str) -> bool:
    """Whether the file open as ``fd`` at ``path``, and its directory, are owned by this
    process's user and writable by nobody else: what reconciler will run or load from a
    file it kept. Raises OSError when the directory cannot be looked at."""
    return _own(os.fstat(fd)) and _own(os.stat(os.path.dirname(path)))


def _own(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022
