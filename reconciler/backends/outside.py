"""What a run asked beyond the files the fast path stamps: processes, HTTP, solves.

A repeated pending ``plan`` is replayed (:mod:`reconciler.fastpath`) only when its
output was a function of stamped files and of uv previews that the replay asks again
and compares. Everything else a plan can consult is noted here by the code that
consults it: every process :mod:`reconciler.backends.process` starts, every HTTP
request, every conda solve. A thread marked :func:`deferred` notes no process: a uv
preview's (the replay compares its output), or a question asked ahead whose answer
is noted where it is used. A plan that noted anything is never replayed.

Files inside an environment that the stamp does not cover, and whose state a plan's
output depends on (the clash check's targets: whether each exists, and its bytes),
are kept as :func:`files`, and the stamp of a replayable plan covers each of them;
past :data:`MAX_FILES` such a plan is not replayable. Imports only :mod:`threading`.
"""

from __future__ import annotations

import threading

__all__ = [
    "MAX_FILES", "asked", "clear", "deferred", "depend", "files", "note", "want_files",
    "wants_files",
]  # fmt: skip

#: Files a replayable plan may depend on (each is stamped at every replay).
MAX_FILES = 5000

_asked: list[str] = []
_files: dict[str, None] = {}
_wanted = [True]  # whether this call notes the files (a plan that may be remembered)
_lock = threading.Lock()
_local = threading.local()


def note(what: str) -> None:
    """Something outside the stamped files was consulted (``what`` says which)."""
    if getattr(_local, "deferred", False):
        return  # a preview's own process, or a question noted where its answer is used
    with _lock:
        _asked.append(what)


def deferred(flag: bool) -> bool:
    """Whether the processes this thread starts go unnoted (True: see the module
    docstring); returns the previous mark."""
    previous = bool(getattr(_local, "deferred", False))
    _local.deferred = flag
    return previous


_TOO_MANY = f"more than {MAX_FILES} files"


def depend(path: str) -> None:
    """The plan's output depends on whether ``path`` exists and on its bytes."""
    with _lock:
        if len(_files) < MAX_FILES:
            _files[path] = None
        elif path not in _files and _TOO_MANY not in _asked:
            _asked.append(_TOO_MANY)  # once: a plan that passed the bound is not replayed


def want_files(flag: bool) -> None:
    """Whether the files a plan depends on are noted in this call: only a ``plan`` may
    be remembered with them (an ``apply`` is not replayed); the caller of the checks
    asks :func:`wants_files` before it works out what to note."""
    _wanted[0] = flag


def wants_files() -> bool:
    """Whether this call notes the files its plan depends on (:func:`want_files`)."""
    return _wanted[0]


def files() -> tuple[str, ...]:
    """The files noted by :func:`depend` so far, in the order first noted."""
    with _lock:
        return tuple(_files)


def asked() -> tuple[str, ...]:
    """What this process consulted so far."""
    with _lock:
        return tuple(_asked)


def clear() -> None:
    """Forget what was noted (a new call begins in this process)."""
    with _lock:
        _asked.clear()
        _files.clear()
