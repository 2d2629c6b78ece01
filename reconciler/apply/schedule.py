"""In which order, and in which threads, an apply's environments are changed.

Environments that do not depend on each other run together, each in a thread of
its own (:mod:`reconciler.threads`; the main thread waits, and turns a Ctrl-C into a
stop request the environments' threads honour at their next safe point).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import faults
from reconciler.threads import each_in_thread

if TYPE_CHECKING:
    from reconciler.apply.execute import EnvironmentResult
    from reconciler.plan.model import EnvironmentPlan
    from reconciler.plan.planner import EnvironmentInputs

__all__ = ["StartGate", "generations", "in_threads"]


def in_threads(
    run: Callable[[EnvironmentPlan], EnvironmentResult], generation: Sequence[EnvironmentPlan]
) -> list[EnvironmentResult]:
    """``run`` of each environment, each in a thread of its own, in order. Ctrl-C
    (a notebook's stop button) reaches the main thread only: the environments' threads
    are asked to stop at their next safe point, as on SIGTERM, and waited for, before
    the interrupt goes on."""
    return each_in_thread(run, generation, on_interrupt=_stop_on_interrupt)


class StartGate:
    """The environments of a generation start their first installer together.

    Each environment :meth:`arrive` s once, just before its first process (or when it
    ends without one), and waits there until every environment of the generation has,
    for at most :data:`TIMEOUT` seconds. An installer, once started, takes both cores of
    a small machine: the other environments' last steps before theirs (status,
    journal, the rollback snapshot) crawled behind it, and the 5 x 3 bench apply
    started its last install 10-15 ms after its first.
    """

    TIMEOUT = 0.1

    def __init__(self, parties: int) -> None:
        self._left = parties
        self._cond = threading.Condition()
        self._arrived: set[str] = set()

    def arrive(self, name: str) -> bool:
        """Environment ``name`` is ready to start its first process; False when it had
        arrived before (it waits only once)."""
        with self._cond:
            if name in self._arrived:
                return False
            self._arrived.add(name)
            self._left -= 1
            if self._left <= 0:
                self._cond.notify_all()
            else:
                self._cond.wait_for(lambda: self._left <= 0, timeout=self.TIMEOUT)
        return True


def _stop_on_interrupt() -> None:
    faults.request_stop(signal.SIGINT)


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
