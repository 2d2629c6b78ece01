"""reconciler.threads: what a thread pool's map gave the planner and the apply, without it."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from reconciler.threads import InThread, each_in_thread


def test_results_come_in_order_and_every_item_runs_before_an_error_is_raised() -> None:
    ran: list[int] = []

    def call(n: int) -> int:
        time.sleep(0.01 * (5 - n))  # later items end first
        ran.append(n)
        if n == 1:
            raise ValueError("one")
        return n * 10

    assert each_in_thread(lambda n: n * 10, [3, 1, 2]) == [30, 10, 20]
    with pytest.raises(ValueError, match="one"):
        each_in_thread(call, [0, 1, 2, 3, 4])
    assert sorted(ran) == [0, 1, 2, 3, 4]
    assert each_in_thread(call, []) == []


def test_at_most_that_many_run_at_once() -> None:
    running, most = [0], [0]
    lock = threading.Lock()

    def call(n: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return n

    assert each_in_thread(call, list(range(12)), at_most=3) == list(range(12))
    assert most[0] == 3


def test_a_ctrl_c_asks_the_calls_to_stop_and_waits_for_them() -> None:
    stop = threading.Event()
    ended: list[int] = []

    def call(n: int) -> int:
        if n == 0:
            time.sleep(0.2)  # the main thread is waiting by now
            main = threading.main_thread().ident
            assert main is not None
            signal.pthread_kill(main, signal.SIGINT)  # a Ctrl-C, delivered to the main thread
        assert stop.wait(timeout=10)  # runs on until asked to stop
        ended.append(n)
        return n

    with pytest.raises(KeyboardInterrupt):
        each_in_thread(call, [0, 1, 2], on_interrupt=stop.set)
    assert sorted(ended) == [0, 1, 2]  # all of them ended before the interrupt went on


def test_in_thread_gives_the_result_or_the_error() -> None:
    assert InThread(lambda a, b: a + b, 2, 3).result() == 5
    failing = InThread(int, "not a number")
    failing.wait()
    with pytest.raises(ValueError):
        failing.result()
