"""Calls run in threads, waited for through events, without ``concurrent.futures``.

``concurrent.futures`` imports ``logging`` (with ``traceback``, ``linecache``,
``tokenize`` and ``textwrap``): about 30 M instructions, 8% of a one-environment
restore. What reconciler runs in threads (one environment's plan or transaction
each; the newest-release lookup beside a preview) needs only this.

The waits are on events, not ``Thread.join``: a join that Ctrl-C interrupts leaves
the thread marked as ended while it runs on (CPython 3.11, bpo-45274), and the
process would then exit without waiting for it. A thread whose event is set has
only to return, and the interpreter waits for it at exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["InThread", "each_in_thread"]

T = TypeVar("T")
R = TypeVar("R")


def each_in_thread(
    call: Callable[[T], R],
    items: Sequence[T],
    *,
    at_most: int | None = None,
    on_interrupt: Callable[[], None] | None = None,
) -> list[R]:
    """``call(item)`` of every item, in ``at_most`` threads at once (one per item when
    None), the results in order. Every item runs, as a thread pool's map would run them;
    then the first exception one raised is raised here. A Ctrl-C reaching this thread
    calls ``on_interrupt`` (which may ask the calls to stop), waits for the calls that
    are running and those left, and goes on."""
    outcomes: list[tuple[bool, Any] | None] = [None] * len(items)
    position = [0]
    lock = threading.Lock()

    def take() -> int | None:
        with lock:
            index = position[0]
            if index >= len(items):
                return None
            position[0] = index + 1
            return index

    def work() -> None:
        while (index := take()) is not None:
            try:
                outcomes[index] = (True, call(items[index]))
            except BaseException as exc:  # raised in the caller's thread below
                outcomes[index] = (False, exc)

    started: list[InThread[None]] = []
    try:
        for _ in range(min(len(items), at_most or len(items))):
            started.append(InThread(work))  # the workers started take every item between them
        for worker in started:
            worker.wait()
    except KeyboardInterrupt:
        if on_interrupt is not None:
            on_interrupt()
        for worker in started:
            worker.wait()
        raise
    results: list[R] = []
    for outcome in outcomes:
        assert outcome is not None  # every item was taken by a worker that has ended
        ok, value = outcome
        if not ok:
            raise value
        results.append(value)
    return results


class InThread(Generic[R]):
    """``call(*args)`` started in a thread now; :meth:`result` waits for it."""

    def __init__(self, call: Callable[..., R], *args: Any) -> None:
        self._done = threading.Event()
        self._outcome: tuple[bool, Any] | None = None
        threading.Thread(target=self._run, args=(call, args)).start()

    def _run(self, call: Callable[..., R], args: tuple[Any, ...]) -> None:
        try:
            self._outcome = (True, call(*args))
        except BaseException as exc:  # raised by result()
            self._outcome = (False, exc)
        finally:
            self._done.set()

    def wait(self) -> None:
        """Until the call has ended."""
        self._done.wait()

    def done(self) -> bool:
        """Whether the call has ended."""
        return self._done.is_set()

    def result(self) -> R:
        """The call's return value, or the exception it raised."""
        self._done.wait()
        assert self._outcome is not None
        ok, value = self._outcome
        if not ok:
            raise value
        result: R = value
        return result
