"""One OS file lock per environment (the environment lock), held for the whole apply.

Not the lock *file* (`team.lock`, :mod:`reconciler.lockfile`): this is the exclusion
between two applies on one environment.

Two kernel locks on ``<state>/envs/<env>/lock``, neither ever written to the file
(a no-op apply leaves the state dir byte-identical), both released by the
kernel however their holder dies:

* ``flock``: the exclusion itself. Installers started by the apply inherit it
  (:data:`reconciler.backends.process.INHERITED_FDS`), so if the apply is killed
  while pip or uv runs, the environment stays locked until that installer is
  gone too: the next apply never races a leftover installer.
* ``lockf`` (POSIX): identifies the holder: ``F_GETLK`` returns its pid.
  POSIX locks belong to the process: one process takes each environment's lock once.

A file system that cannot lock fails closed.

A lock file (and the directories above it) that an apply created is removed when
it releases the lock and the environment's directory holds nothing else: a refused
or no-op apply leaves no trace in the state dir. That is safe because a lock is
only taken once the path, looked up again, still names the locked file: a waiter
holding the unlinked file retries on the new one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType

from reconciler.backends.process import INHERITED_FDS
from reconciler.errors import LockError

__all__ = ["EnvironmentLock", "hold_all", "holder_pid", "same_file", "try_lock"]

POLL_SECONDS = 0.1
_BUSY = {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES}
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
# struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid
_FLOCK = "hhqqi"


class EnvironmentLock:
    """An exclusive lock on one environment's state directory."""

    def __init__(self, directory: Path, label: str) -> None:
        self.path = directory / "lock"
        self.label = label
        self._fd: int | None = None
        self._created: list[Path] = []  # what this lock created: the file, then directories
        #: Whether the last acquire found the lock held by another and had to wait.
        self.waited = False

    def _open(self) -> int:
        """Open (creating if needed) the lock file; remember what was created."""
        self._created = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return os.open(self.path, os.O_RDWR)
        self._created.insert(0, self.path)
        return fd

    def acquire(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds; LockError naming the holder when it stays busy."""
        deadline = time.monotonic() + timeout
        fd = -1
        self.waited = False
        while True:
            if fd < 0:
                try:
                    fd = self._open()
                except FileNotFoundError:  # a releasing holder removed the directory
                    continue
            try:
                locked = try_lock(fd)
            except OSError as exc:
                os.close(fd)
                if exc.errno in _UNSUPPORTED:
                    raise LockError(
                        f"cannot lock {self.path}: the file system cannot lock files "
                        f"({os.strerror(exc.errno or 0)}); nothing was applied: reconciler "
                        "never changes an environment without holding its lock",
                        hint="put the state directory on a local file system "
                        "(--state-dir or RECONCILER_STATE_DIR)",
                    ) from exc
                raise LockError(
                    f"cannot lock {self.path}: {exc.strerror}; nothing was applied"
                ) from exc
            if locked:
                if same_file(self.path, fd):
                    break
                # The holder we waited for removed this file on release: lock the new one.
                os.close(fd)
                fd = -1
                continue
            self.waited = True
            if time.monotonic() >= deadline:
                holder = _holder(fd)
                os.close(fd)
                raise LockError(
                    f"environment {self.label} is locked by {holder}; gave up after {timeout:g} s",
                    hint="wait for it to finish (`reconciler status`), or raise --lock-timeout",
                )
            time.sleep(POLL_SECONDS)
        self._fd = fd
        INHERITED_FDS.add(fd)

    def release(self) -> None:
        """Release the lock (closing the file releases it; an installer still running
        keeps the ``flock`` until it exits).

        A lock file this lock created goes again, with the directories it created,
        when nothing else was written beside it.
        """
        if self._fd is None:
            return
        if self.path in self._created:
            with contextlib.suppress(OSError):
                if [p.name for p in self.path.parent.iterdir()] == ["lock"]:
                    self.path.unlink()  # still held: a waiter re-checks the path
                    for directory in self._created[1:]:
                        directory.rmdir()  # stops at the first one not empty
        INHERITED_FDS.discard(self._fd)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> EnvironmentLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def try_lock(fd: int) -> bool:
    """Take both locks on ``fd`` without waiting: True when held, False when another
    holder has them; any other OSError is raised (with the ``flock`` undone)."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the exclusion (per open file)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # names the holder (F_GETLK)
    except OSError as exc:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        if exc.errno in _BUSY:
            return False
        raise
    return True


def same_file(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file ``fd`` has open (not removed meanwhile)."""
    try:
        named, locked = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (named.st_dev, named.st_ino) == (locked.st_dev, locked.st_ino)


def holder_pid(fd: int) -> int | None:
    """The pid holding the POSIX lock on ``fd``'s file (``F_GETLK``; 0 when nobody
    does), or None when the kernel cannot say."""
    import fcntl
    import struct

    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        return int(struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))[4])
    except OSError:
        return None


def _holder(fd: int) -> str:
    """``pid 123 (started 2026-11-25 03:58:09)``, from the kernel's view of the lock."""
    pid = holder_pid(fd)
    if pid is None:
        return "another process"
    if pid <= 0:
        # Nobody holds the POSIX lock: the flock is kept by an installer that an
        # interrupted apply left running.
        return "an installer left running by an interrupted apply"
    try:
        started = time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(os.stat(f"/proc/{pid}").st_ctime)
        )
    except OSError:
        return f"pid {pid}"
    return f"pid {pid} (started {started})"


@contextmanager
def hold_all(locks: Sequence[EnvironmentLock], timeout: float) -> Iterator[None]:
    """Acquire ``locks`` in a stable order (no deadlock between two applies); release all."""
    deadline = time.monotonic() + timeout
    with ExitStack() as stack:
        for lock in sorted(locks, key=lambda lk: str(lk.path)):
            lock.acquire(max(0.0, deadline - time.monotonic()))
            stack.enter_context(lock)
        yield
