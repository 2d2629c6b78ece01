"""What a run asked beyond the files the fast path stamps: processes, HTTP, solves.

A repeated pending ``plan`` is replayed (:mod:`reconciler.fastpath`) only when its
output was a function of stamped files and of uv previews that the replay asks again
and compares. Everything else a plan can consult is noted here by the code that
consults it: every process :mod:`reconciler.backends.process` starts, every HTTP
request, every conda solve. A thread marked :func:`deferred` notes no process: a uv
preview's (the replay compares its output), or a question asked ahead whose answer
is noted where it is used. A plan that noted anything is never replayed. Imports
only :mod:`threading`.
"""

from __future__ import annotations

import threading

__all__ = ["asked", "clear", "deferred", "note"]

_asked: list[str] = []
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


def asked() -> tuple[str, ...]:
    """What this process consulted so far."""
    with _lock:
        return tuple(_asked)


def clear() -> None:
    """Forget what was noted (a new call begins in this process)."""
    with _lock:
        _asked.clear()
