"""In which order, and in which threads, an apply's environments are changed.

Environments that do not depend on each other run together, each in a thread of
its own (the main thread waits, and turns a Ctrl-C into a stop request the
environments' threads honour at their next safe point).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import faults

if TYPE_CHECKING:
    from reconciler.apply.execute import EnvironmentResult
    from reconciler.plan.model import EnvironmentPlan
    from reconciler.plan.planner import EnvironmentInputs

__all__ = ["generations", "in_threads"]


def in_threads(
    run: Callable[[EnvironmentPlan], EnvironmentResult], generation: Sequence[EnvironmentPlan]
) -> list[EnvironmentResult]:
    """``run`` of each environment, each in a thread of its own, in order; the first
    exception a thread raised is raised here once all have ended. (Threads, not a
    ``concurrent.futures`` pool: that imports ``logging``, ~5 ms of a one-environment
    restore.)"""
    ended: list[EnvironmentResult | BaseException | None] = [None] * len(generation)
    # Waited for through events, not Thread.join: a join that Ctrl-C interrupts leaves
    # the thread marked as ended while it runs on (CPython 3.11, bpo-45274), and the
    # process would then exit without waiting for it. A thread whose event is set has
    # only to return (and the interpreter waits for it at exit).
    done = [threading.Event() for _ in generation]

    def one(i: int, env_plan: EnvironmentPlan) -> None:
        try:
            ended[i] = run(env_plan)
        except BaseException as exc:  # raised in the caller's thread, as a pool would
            ended[i] = exc
        finally:
            done[i].set()

    threads = [threading.Thread(target=one, args=(i, p)) for i, p in enumerate(generation)]
    for thread in threads:
        thread.start()
    try:
        for event in done:
            event.wait()
    except KeyboardInterrupt:
        # Ctrl-C (a notebook's stop button) reaches this thread only: the ones that
        # change the environments stop at their next safe point, as on SIGTERM, before
        # the interrupt goes on.
        faults.request_stop(signal.SIGINT)
        for event in done:
            event.wait()
        raise
    out: list[EnvironmentResult] = []
    for result in ended:
        if isinstance(result, BaseException):
            raise result
        assert result is not None  # every thread ended
        out.append(result)
    return out


def generations(
    todo: Sequence[EnvironmentPlan], by_name: dict[str, EnvironmentInputs]
) -> list[list[EnvironmentPlan]]:
    """Environments that do not depend on each other run together.

    B depends on A when B's prefix lies inside A's (``/opt/conda/envs/x`` in
    ``/opt/conda``) or B is created from an interpreter inside A.
    """
    edges = []
    for a in todo:
        for b in todo:
            if a is b:
                continue
            a_prefix = Path(a.prefix)
            b_env = by_name[b.name].env
            uses = [Path(b.prefix)]
            if b_env.create is not None and b_env.create.venv:
                uses.append(Path(b_env.create.venv))
            if any(p != a_prefix and a_prefix in p.parents for p in uses):
                edges.append((a.name, b.name))
    if not edges:
        return [list(todo)]  # all independent: no graph needed (networkx costs ~0.1 s to import)
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(p.name for p in todo)
    graph.add_edges_from(edges)
    plans = {p.name: p for p in todo}
    return [[plans[n] for n in sorted(gen)] for gen in nx.topological_generations(graph)]
