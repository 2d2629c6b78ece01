"""Named fault points and graceful stop, for a transaction that must survive being killed.

``RECONCILER_FAULT_POINT=<name>`` makes the apply SIGKILL itself when it reaches
that point; the reliability tests use it to prove that a run killed anywhere is
converged by the next one. It does nothing unless the variable is set.

SIGTERM (what a lifecycle timeout sends) only *requests* a stop: the apply
finishes the step it is in (an installer gets :data:`GRACE_SECONDS`, then is
terminated), records the journal as interrupted and exits; the next run
finishes the work.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from reconciler.errors import ReconcilerError

__all__ = [
    "GRACE_SECONDS",
    "POINTS",
    "Interrupted",
    "check_stop",
    "clear_stop",
    "point",
    "request_stop",
    "stop_deadline_passed",
    "stop_reason",
    "stop_requested",
]

#: Where an apply can be killed, in the order it passes them.
POINTS = (
    "after-lock",  # environments locked, nothing read yet
    "after-journal",  # intent recorded, no installer started
    "after-create",  # a new environment exists, nothing installed in it
    "after-conda",  # conda install done, pip install not started
    "in-conda",  # py-rattler is linking packages
    "in-installer",  # pip/uv is running
    "before-record",  # verified, owned set and journal not yet recorded
)

#: How long a running installer may go on after a stop request before it is terminated.
GRACE_SECONDS = 7.0

_stop = threading.Event()
_stop_at = [0.0]
_stop_by = ["SIGTERM"]


class Interrupted(ReconcilerError):
    """The apply stopped at a safe point because it was asked to (SIGTERM)."""


def point(name: str, *, after: float = 0.0) -> None:
    """SIGKILL this process if ``RECONCILER_FAULT_POINT`` names ``name`` (``after``
    seconds later, from a timer, for points inside work done in this process)."""
    if os.environ.get("RECONCILER_FAULT_POINT") != name:
        return
    if after <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
    timer = threading.Timer(after, os.kill, (os.getpid(), signal.SIGKILL))
    timer.daemon = True
    timer.start()


def request_stop(signum: object = signal.SIGTERM, *_: object) -> None:
    """Ask the apply to stop at the next safe point (a signal handler; SIGINT: the
    interrupt that reached the main thread while the environments' threads work)."""
    if not _stop.is_set():
        try:
            _stop_by[0] = signal.Signals(signum).name  # type: ignore[arg-type]
        except (TypeError, ValueError):
            _stop_by[0] = "SIGTERM"
        _stop_at[0] = time.monotonic()
        _stop.set()


def stop_reason() -> str:
    """The signal that asked for the stop: ``SIGTERM`` or ``SIGINT``."""
    return _stop_by[0]


def clear_stop() -> None:
    """Forget a stop request: a new apply in the same process (a notebook's kernel)."""
    _stop.clear()


def stop_requested() -> bool:
    """True once a stop was requested."""
    return _stop.is_set()


def stop_deadline_passed() -> bool:
    """True when a running installer has had its grace period."""
    return _stop.is_set() and time.monotonic() - _stop_at[0] > GRACE_SECONDS


def check_stop(where: str) -> None:
    """A safe point: raise :class:`Interrupted` if a stop was requested."""
    if _stop.is_set():
        raise Interrupted(
            f"stopped by {_stop_by[0]} {where}; the environment is consistent and the journal "
            "records the apply as interrupted",
            hint="run `reconciler apply` again to finish",
        )
