"""Plan the conda side of one environment with a rattler solve.

Installed managed and foreign records are pinned (the solver may not move
them), owned ones locked (preferred, may move). A solve that fails on a pin is
explained by an unpinned solve: which pinned record it would move, and the
chain of ``depends`` that needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler.backends.conda import CondaSolution, SolvedRecord
from reconciler.backends.process import first_lines
from reconciler.errors import BackendError
from reconciler.manifest.model import CondaRequest
from reconciler.plan.model import Change
from reconciler.plan.policy import OWNED, Ownership
from reconciler.state.environment import InstalledState
from reconciler.values import value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.backends.conda import CondaSolver

__all__ = ["CondaSidePlan", "plan_conda_side"]


@value
class CondaSidePlan:
    """Changes, what was satisfied, and the solver inputs the executor reuses."""

    changes: tuple[Change, ...]
    satisfied: tuple[str, ...]
    specs: tuple[str, ...]
    pinned: tuple[str, ...]
    resolver_ran: bool


def _compare(installed: str, wanted: str) -> str:
    from reconciler.backends.conda import _rattler

    rattler = _rattler()
    have, want = rattler.Version(installed), rattler.Version(wanted)
    if want > have:
        return "upgrade"
    if want < have:
        return "downgrade"
    return "reinstall"


def plan_conda_side(
    state: InstalledState,
    requests: Sequence[CondaRequest],
    ownership: Ownership,
    solver: CondaSolver,
    channels: Sequence[str],
    *,
    extra_specs: Sequence[str] = (),
    satisfied_specs: Mapping[str, bool] | None = None,
) -> CondaSidePlan:
    """Plan the conda requests (``extra_specs`` such as ``python 3.11.*`` for a new env).

    ``satisfied_specs`` says which declared specs the installed records meet (see
    :func:`reconciler.plan.planner.read_inputs`, which remembers them in the read cache).
    """
    packages = state.packages()
    satisfied: list[str] = []
    changes: list[Change] = []
    specs: list[str] = list(extra_specs)
    need_solve = bool(extra_specs)
    for request in requests:
        record = state.conda.get(request.name)
        if record is not None and (satisfied_specs or {}).get(request.spec, False):
            satisfied.append(request.spec)
            specs.append(request.spec)
            continue
        if record is not None:
            pkg = packages[f"conda:{record.name}"]
            if not ownership.may_move(pkg):
                status = ownership.status(pkg)
                changes.append(
                    Change(
                        "upgrade",
                        "conda",
                        record.name,
                        record.version,
                        request.spec,
                        True,
                        True,
                        f"requested {request.spec} does not match {status} {record.name} "
                        f"{record.version} ({record.build}); it may not be replaced",
                    )
                )
                continue
        specs.append(request.spec)
        need_solve = True
    if not need_solve:
        return CondaSidePlan(tuple(changes), tuple(satisfied), tuple(specs), (), False)

    pinned = ownership.conda_pins(state)
    locked = tuple(sorted(set(state.conda) - set(pinned)))
    requested = {r.name for r in requests}
    solution = solver.solve(state.prefix, channels, specs, pinned, locked)
    if solution.ok:
        found = _classify(state, ownership, solution.records, requested, {})
        if any(not c.requested for c in found):
            # Transitive changes: say which request needs each (the chain).
            chains = _chains(state, solution.records, requested)
            found = _classify(state, ownership, solution.records, requested, chains)
        changes += found
        return CondaSidePlan(tuple(changes), tuple(satisfied), tuple(specs), pinned, True)

    free = solver.solve(state.prefix, channels, specs, (), tuple(state.conda))
    if not free.ok:
        raise BackendError(
            f"{state.prefix}: the requested conda packages cannot be solved, even ignoring "
            f"managed packages: {first_lines(free.message)}",
            hint="check the specs and channels in the manifest",
        )
    chains = _chains(state, free.records, requested)
    found = _classify(state, ownership, free.records, requested, chains)
    if not any(c.refused for c in found):
        found.append(_blame(solution, state))
    changes += found
    return CondaSidePlan(tuple(changes), tuple(satisfied), tuple(specs), pinned, True)


def _blame(solution: CondaSolution, state: InstalledState) -> Change:
    names = [n for n in solution.blamed if n in state.conda] or ["(unknown)"]
    record = state.conda.get(names[0])
    return Change(
        "upgrade",
        "conda",
        names[0],
        record.version if record else None,
        None,
        False,
        True,
        f"the solver would have to move managed {', '.join(names)}: "
        f"{first_lines(solution.message)}",
    )


def _chains(
    state: InstalledState, records: Sequence[SolvedRecord], requested: set[str]
) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``name -> (reason, chain)``; an installed record that would move is explained by
    the ``depends`` that its installed build does not match."""
    from reconciler.backends.conda import spec_matches
    from reconciler.plan.chains import RequirementGraph

    graph = RequirementGraph(pep508=False)
    graph.request(requested)
    for record in records:
        for dep in record.depends:
            graph.require(record.name, dep.split()[0].split("[")[0].lower(), dep)
    versions = {r.name: r.version for r in records}
    out = {}
    for record in records:
        installed = state.conda.get(record.name)
        excludes = None
        if installed is not None:
            name, version, build = installed.name, installed.version, installed.build

            def excludes(spec: str, n: str = name, v: str = version, b: str = build) -> bool:
                return not spec_matches(spec, n, v, b)

        out[record.name] = graph.describe(record.name, versions, excludes)
    return out


def _classify(
    state: InstalledState,
    ownership: Ownership,
    records: Sequence[SolvedRecord],
    requested: set[str],
    chains: Mapping[str, tuple[str, tuple[str, ...]]],
) -> list[Change]:
    packages = state.packages()
    changes: list[Change] = []
    for record in records:
        installed = state.conda.get(record.name)
        reason, via = chains.get(record.name, ("", ()))
        if installed is None:
            changes.append(
                Change(
                    "install",
                    "conda",
                    record.name,
                    None,
                    record.version,
                    record.name in requested,
                    required_by=via,
                )
            )
            continue
        if (installed.version, installed.build) == (record.version, record.build):
            continue
        action = _compare(installed.version, record.version)
        pkg = packages[f"conda:{record.name}"]
        status = ownership.status(pkg)
        refused = status != OWNED or ownership.frozen
        why = ""
        if refused:
            what = f"{record.name} is {status} at {installed.version}"
            why = f"{reason}; {what}" if reason else what
        changes.append(
            Change(
                action,
                "conda",
                record.name,
                installed.version,
                record.version,
                record.name in requested,
                refused,
                why,
                via,
            )
        )
    return changes
