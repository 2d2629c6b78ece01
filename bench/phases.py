"""Wall time of reconciler's phases in one command, in-process, without a profiler.

``python -m bench.phases [reconciler arguments]`` runs ``reconciler.cli.main`` with
timers wrapped around the functions below and prints, on stderr, the import time
and, per phase, the summed wall time and the number of calls. Phases running in
the apply's environment threads overlap, so their sums can exceed the total.
Functions that do not exist in the checkout being measured are skipped (the
phase list follows reconciler's internals, which change).
"""

from __future__ import annotations

import collections
import functools
import importlib
import sys
import time
from collections.abc import Callable
from typing import Any

#: (module, attribute, label); ``Class.method`` attributes are allowed. Modules that
#: import a function by name are listed too, since they hold their own reference.
PHASES: tuple[tuple[str, str, str], ...] = (
    ("reconciler.cli", "_load", "load + validate the manifest"),
    ("reconciler.state.store", "StateStore.read_cache", "read cache: load"),
    ("reconciler.state.store", "StateStore.save_read_cache", "read cache: save"),
    ("reconciler.state.store", "StateStore.baseline", "baselines: load"),
    ("reconciler.plan.planner", "read_inputs", "read_inputs (all environments)"),
    ("reconciler.apply.execute", "read_inputs", "read_inputs (all environments)"),
    ("reconciler.plan.planner", "read_state", "  read_state"),
    ("reconciler.apply.execute", "read_state", "  read_state (after install)"),
    ("reconciler.state.environment", "read_distributions", "    read_distributions"),
    ("reconciler.state.environment", "read_conda_meta", "    read_conda_meta"),
    ("reconciler.state.environment", "read_conda_records", "    read_conda_records"),
    ("reconciler.state.cache", "ReadCache.prune", "    ReadCache.prune"),
    ("reconciler.plan.planner", "build_plan", "build_plan"),
    ("reconciler.apply.execute", "build_plan", "build_plan"),
    ("reconciler.plan.planner", "plan_pip_side", "  plan_pip_side"),
    ("reconciler.plan.pip_side", "unmet", "    unmet (installed closure check)"),
    ("reconciler.plan.planner", "plan_conda_side", "  plan_conda_side"),
    ("reconciler.apply.execute", "_execute", "execute"),
    ("reconciler.apply.execute", "_generations", "  _generations (imports networkx)"),
    ("reconciler.apply.execute", "_apply_environment", "  _apply_environment (threads)"),
    ("reconciler.apply.execute", "_verify", "    _verify"),
    ("reconciler.backends.pip", "run", "subprocesses (uv/pip)"),
)


def instrument() -> tuple[dict[str, float], collections.Counter[str], list[str]]:
    """Wrap every phase that exists; returns (seconds, calls, skipped)."""
    seconds: dict[str, float] = collections.defaultdict(float)
    calls: collections.Counter[str] = collections.Counter()
    skipped: list[str] = []
    for module_name, attribute, label in PHASES:
        try:
            owner: Any = importlib.import_module(module_name)
            *path, name = attribute.split(".")
            for part in path:
                owner = getattr(owner, part)
            original = getattr(owner, name)
        except (ImportError, AttributeError):
            skipped.append(f"{module_name}.{attribute}")
            continue
        setattr(owner, name, _timed(original, label, seconds, calls))
    return seconds, calls, skipped


def _timed(
    function: Callable[..., Any],
    label: str,
    seconds: dict[str, float],
    calls: collections.Counter[str],
) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[label] += time.perf_counter() - start
            calls[label] += 1

    return wrapper


def main(argv: list[str]) -> int:
    start = time.perf_counter()
    import reconciler.cli

    seconds, calls, skipped = instrument()
    imported = time.perf_counter() - start
    begin = time.perf_counter()
    code = reconciler.cli.main(argv)
    total = time.perf_counter() - begin
    err = sys.stderr
    print(
        f"phases (in-process wall time): imports {imported * 1000:.0f} ms (reconciler.cli and "
        f"the modules instrumented, the rest is imported lazily inside the phases), "
        f"main() {total * 1000:.0f} ms, exit {code}",
        file=err,
    )
    order = {label: i for i, (_, _, label) in enumerate(PHASES)}
    for label in sorted(seconds, key=lambda k: order[k]):
        print(f"  {seconds[label] * 1000:8.1f} ms  x{calls[label]:<5} {label}", file=err)
    if skipped:
        print(f"  (not found in this checkout: {', '.join(skipped)})", file=err)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
