"""Plan the pip side of one existing environment.

1. Requests already met by a consistent installed closure need no resolver.
2. A request that would move a managed or foreign package is refused directly.
3. Otherwise a dry run (uv or pip) with every managed and foreign distribution
   pinned. If the resolver finds no solution, an unpinned dry run shows which
   managed packages it would have had to move, and why (the chain).

In a ``--system-site-packages`` venv the base interpreter's distributions are
present and managed, but uv does not see them: a request they satisfy is not
passed to the installer (uv would install a second copy that shadows them), and
a preview that installs one of them anyway is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from reconciler.backends.pip import PipCli, PipInstaller, PipPreview, Resolved
from reconciler.backends.process import first_lines
from reconciler.errors import BackendError
from reconciler.manifest.model import PipRequest, PipSettings
from reconciler.plan.clashes import WheelContents, refuse_clashes
from reconciler.plan.model import Change
from reconciler.plan.policy import OWNED, Ownership
from reconciler.plan.requirements import (
    applies,
    marker_environment,
    parse,
    satisfies,
    unmet,
    version_or_none,
)
from reconciler.state.environment import InstalledState, Package

__all__ = ["PipSidePlan", "plan_pip_side"]


@dataclass(frozen=True)
class PipSidePlan:
    """Changes, what was already satisfied, and the installer inputs."""

    changes: tuple[Change, ...]
    satisfied: tuple[str, ...]
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    resolver_ran: bool


def _direction(installed: str, req: Requirement) -> str:
    """upgrade or downgrade: the side of the installed version that the first clause it
    fails points to (``<2`` over 2.0 is a downgrade, ``>=2`` over 1.0 an upgrade)."""
    have = version_or_none(installed)
    for clause in req.specifier:
        if have is None or clause.contains(have, prereleases=True):
            continue
        if clause.operator in ("<", "<="):
            return "downgrade"
        if clause.operator in (">", ">="):
            return "upgrade"
        bound = version_or_none(clause.version.rstrip(".*"))
        if bound is not None and bound < have:
            return "downgrade"
        return "upgrade"
    return "upgrade"


def _describe(pkg: Package, status: str) -> str:
    what = "managed" if status != "foreign" else "foreign (installed outside reconciler)"
    if pkg.dist is not None and pkg.dist.system_site:
        return (
            f"{pkg.name} {pkg.version} comes from the base interpreter's site-packages "
            f"({what}); installing it into the venv would shadow it"
        )
    return f"{pkg.name} is {what} at {pkg.version}"


def _conda_removal(state: InstalledState, dist_name: str, status: str) -> Change | None:
    """pip replacing a distribution that a conda package ships uninstalls that package's
    files and leaves a stale conda record: an uninstall, which reconciler never does."""
    conda_name = state.dist_owner.get(dist_name)
    if conda_name is None:
        return None
    record = state.conda[conda_name]
    return Change(
        "remove",
        "conda",
        conda_name,
        record.version,
        None,
        False,
        True,
        f"pip would replace {dist_name} {state.dists[dist_name].version}, which conda package "
        f"{conda_name} {record.version} ({status}) ships; reconciler never uninstalls a package. "
        "Request it on the conda side instead",
    )


def plan_pip_side(
    state: InstalledState,
    requests: Sequence[PipRequest],
    ownership: Ownership,
    installer: PipInstaller,
    settings: PipSettings,
    wheels: WheelContents | None = None,
) -> PipSidePlan:
    """Plan the pip requests of an existing environment (see module docstring).

    With ``wheels``, an allowed write whose wheel would overwrite a managed or
    foreign package's file is refused (:mod:`reconciler.plan.clashes`)."""
    packages = state.packages()
    env = marker_environment(state.python_version)
    satisfied: list[str] = []
    changes: list[Change] = []
    to_resolve: list[str] = []
    roots: list[tuple[str, frozenset[str]]] = []
    pending = False
    for request in requests:
        req = Requirement(request.requirement)
        dist = state.dists.get(request.name)
        if satisfies(req, dist):
            satisfied.append(request.requirement)
            roots.append((request.name, frozenset(req.extras)))
            if dist is not None and not dist.system_site:
                to_resolve.append(request.requirement)
            continue
        if dist is not None:
            pkg = packages[state.package_for_dist(request.name)]
            if not ownership.may_move(pkg):
                status = ownership.status(pkg)
                action = _direction(dist.version, req)
                changes.append(
                    Change(
                        action=action,
                        manager="pip",
                        name=request.name,
                        from_version=dist.version,
                        to_version=str(req.specifier) or None,
                        requested=True,
                        refused=True,
                        reason=f"requested {request.requirement} would {action} {status} "
                        f"{pkg.name} {pkg.version}",
                    )
                )
                removal = _conda_removal(state, request.name, status)
                if removal is not None:
                    changes.append(removal)
                continue
        pending = True
        to_resolve.append(request.requirement)

    if not pending and (not to_resolve or not unmet(roots, state.dists, env)):
        return PipSidePlan(tuple(changes), tuple(satisfied), tuple(to_resolve), (), False)

    constraints = ownership.pip_pins(state)
    python = state.prefix / "bin" / "python"
    preview = installer.preview(python, to_resolve, constraints, settings)
    requested: set[str] = {r.name for r in requests}
    if preview.ok:
        chains: dict[str, tuple[str, tuple[str, ...]]] = {}
        if any(i.name not in requested for i in preview.installs):
            # Transitive changes: say which request needs each (the chain).
            chains = _chains(state, installer, settings, to_resolve, requested, preview)
        changes += _classify(state, packages, ownership, preview.installs, requested, chains=chains)
        if wheels is not None:
            changes = refuse_clashes(state, ownership, changes, wheels, settings)
        return PipSidePlan(tuple(changes), tuple(satisfied), tuple(to_resolve), constraints, True)

    changes += _explain_refusal(
        state, packages, ownership, installer, settings, to_resolve, requested, preview
    )
    return PipSidePlan(tuple(changes), tuple(satisfied), tuple(to_resolve), constraints, True)


def _classify(
    state: InstalledState,
    packages: dict[str, Package],
    ownership: Ownership,
    installs: Sequence[Resolved],
    requested: set[str],
    *,
    chains: dict[str, tuple[str, tuple[str, ...]]] | None = None,
) -> list[Change]:
    changes: list[Change] = []
    for item in installs:
        dist = state.dists.get(item.name)
        chain_reason, via = (chains or {}).get(item.name, ("", ()))
        if dist is None:
            changes.append(
                Change(
                    "install",
                    "pip",
                    item.name,
                    None,
                    item.version,
                    item.name in requested,
                    required_by=via,
                )
            )
            continue
        have, want = version_or_none(dist.version), version_or_none(item.version)
        if have is not None and want is not None and have != want:
            action = "upgrade" if want > have else "downgrade"
        elif dist.version == item.version or have == want:
            action = "reinstall"
        else:
            action = "upgrade"
        pkg = packages[state.package_for_dist(item.name)]
        status = ownership.status(pkg)
        removal = _conda_removal(state, item.name, status)
        refused = status != OWNED or ownership.frozen or removal is not None
        reason = ""
        if refused:
            reason = "; ".join(p for p in (chain_reason, _describe(pkg, status)) if p)
        changes.append(
            Change(
                action,
                "pip",
                item.name,
                dist.version,
                item.version,
                item.name in requested,
                refused,
                reason,
                via,
            )
        )
        if removal is not None:
            changes.append(removal)
    return changes


def _chains(
    state: InstalledState,
    installer: PipInstaller,
    settings: PipSettings,
    requirements: Sequence[str],
    requested: set[str],
    preview: PipPreview,
    extra_edges: Sequence[tuple[str, str, str]] = (),
) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``name -> (reason text, chain)`` for every distribution ``preview`` would install.

    The requirement graph holds the installed distributions that stay, the new
    versions' requirements (pip's report carries them), and, when the installer
    could not say (uv), the edges of an unconstrained resolution (``explain``).
    """
    from reconciler.plan.chains import RequirementGraph

    graph = RequirementGraph()
    graph.request(requested)
    env = marker_environment(state.python_version)
    moving = {item.name for item in preview.installs}
    for dist in state.dists.values():
        if dist.name in moving:
            continue  # its requirements after the change are those of the new version
        for text in dist.requires:
            req = parse(text)
            if req is not None and applies(req, env):
                graph.require(dist.name, canonicalize_name(req.name), text)
    for item in preview.installs:
        for text in item.requires or ():
            req = parse(text)
            if req is not None and applies(req, env):
                graph.require(item.name, canonicalize_name(req.name), text)
    graph.require_all(extra_edges)
    if not any(i.requires for i in preview.installs):
        python = state.prefix / "bin" / "python"
        graph.require_all((p, c, "") for p, c in installer.explain(python, requirements, settings))
    versions = {i.name: i.version for i in preview.installs}
    return {i.name: graph.describe(i.name, versions) for i in preview.installs}


def _explain_refusal(
    state: InstalledState,
    packages: dict[str, Package],
    ownership: Ownership,
    installer: PipInstaller,
    settings: PipSettings,
    requirements: Sequence[str],
    requested: set[str],
    pinned: PipPreview,
) -> list[Change]:
    """The pinned resolve failed: find what it would have had to move, and why."""
    python = state.prefix / "bin" / "python"
    if "pip" in state.dists and installer.name != "pip" and not settings.extra_index_urls:
        # pip's --report carries every new distribution's requirements, so the chain
        # names exact specs; uv's dry run does not. Only this (refusal) path pays for pip.
        # Not with extra indexes: pip would merge them and explain another resolution
        # than uv's (see reconciler.backends.pip.check_index_order).
        installer = PipCli()
    free = installer.preview(python, requirements, (), settings)
    if not free.ok:
        raise BackendError(
            f"{state.prefix}: the requested pip packages cannot be installed together, "
            f"even ignoring managed packages: {first_lines(free.message)}",
            hint="check the versions in the manifest against the package index",
        )
    chains = _chains(state, installer, settings, requirements, requested, free, pinned.edges)
    changes = _classify(state, packages, ownership, free.installs, requested, chains=chains)
    if not any(c.refused for c in changes):
        # The resolver blamed the pins but an unpinned resolve moves nothing we protect.
        changes.append(
            Change(
                "install",
                "pip",
                ", ".join(sorted(requested)),
                None,
                None,
                True,
                True,
                f"the resolver found no solution that keeps managed "
                f"packages in place: {first_lines(pinned.message)}",
            )
        )
    return changes
