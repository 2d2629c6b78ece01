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
:func:`private` says whether one read back is still this user's alone.
"""

from __future__ import annotations

import os
import sys

__all__ = ["mkstemp", "new_file", "private", "replace_file"]

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
    :func:`mkstemp`) holding ``data``. Raises OSError, after removing the file."""
    return _filled(*mkstemp(prefix, suffix), data)


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
