"""One OS lock per manifest file (the edit lock), held by ``add``, ``remove`` and ``adopt``
from reading the manifest to writing it.

Two ``add``s on one manifest at once (two notebooks, a notebook and a terminal) would
otherwise both plan the file as they read it: the second would install, then find
the file changed and refuse to write it. With the lock the second waits (it says
so), then reads the first's result and plans against it.

The lock is a ``flock`` on ``<state>/edits/<digest of the manifest's real
path>.lock`` (it excludes a second holder even in the same process), with a POSIX
``lockf`` beside it whose ``F_GETLK`` names the holder; the kernel releases both
however their holder dies. It is not the lock *file* (``team.lock``) nor an environment lock
(:mod:`reconciler.apply.envlock`, which an ``add``'s apply takes inside this one).
The file is removed on release; a waiter that locked a removed file retries on the
path's new file, so two holders never coexist.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from reconciler.apply.envlock import holder_pid, same_file, try_lock
from reconciler.errors import LockError

__all__ = ["edit_lock_path", "hold_edit_lock"]

POLL_SECONDS = 0.1


def edit_lock_path(state_dir: Path, manifest: Path) -> Path:
    """Where the edit lock of ``manifest`` lives (one per real path of the file)."""
    real = os.path.realpath(manifest)
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return state_dir / "edits" / f"{digest}.lock"


def _holder(fd: int) -> str:
    """``pid 123``: who holds the POSIX lock on ``fd``'s file."""
    pid = holder_pid(fd)
    return f"pid {pid}" if pid is not None and pid > 0 else "another process"


@contextlib.contextmanager
def hold_edit_lock(
    state_dir: Path, manifest: Path, timeout: float, waiting: Callable[[str], None]
) -> Iterator[None]:
    """Hold the edit lock of ``manifest``; ``waiting(holder)`` is called once if it is busy.

    LockError (nothing changed) when it stays busy for ``timeout`` seconds or the file
    system cannot lock.
    """
    path = edit_lock_path(state_dir, manifest)
    deadline = time.monotonic() + timeout
    told = False
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            locked = try_lock(fd)
        except OSError as exc:
            os.close(fd)
            raise LockError(
                f"cannot lock {path}: {os.strerror(exc.errno or 0)}; nothing was changed: "
                f"reconciler edits {manifest} only while holding its edit lock",
                hint="put the state directory on a local file system "
                "(--state-dir or RECONCILER_STATE_DIR)",
            ) from exc
        if locked:
            if same_file(path, fd):
                break
            os.close(fd)  # the holder we waited for removed this file: lock the path's new one
            continue
        holder = _holder(fd)
        os.close(fd)
        if time.monotonic() >= deadline:
            raise LockError(
                f"{manifest} is being changed by another add, remove or adopt ({holder}); "
                f"gave up after {timeout:g} s; nothing was changed",
                hint="wait for it to finish, then run this again (or raise --lock-timeout)",
            ) from None
        if not told:
            waiting(holder)
            told = True
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # still held: a waiter on this file sees it is gone and retries
        os.close(fd)
