"""Why the pip side moves what it moves: the requirement graph of a preview (chains,
blame) and the releases a request is held back from.

uv reports what it would install, not why: the requirement texts come from the
wheels' core metadata (:mod:`reconciler.backends.metadata`); pip's report carries
them. Markers are evaluated for the target environment with the extras in play.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from reconciler.backends.pip import PipPreview, Resolved, with_requirements
from reconciler.manifest.model import PipSettings
from reconciler.names import canonical_name
from reconciler.plan.model import Change, HeldBack, Holder
from reconciler.plan.policy import Ownership
from reconciler.plan.requirements import (
    applies,
    contains,
    marker_environment,
    parse,
    satisfies,
    version_or_none,
)
from reconciler.state.environment import InstalledState
from reconciler.values import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.backends.pip import PipInstaller
    from reconciler.plan.chains import RequirementGraph

__all__ = ["chains_of", "held_back"]


def _graph(
    state: InstalledState,
    installer: PipInstaller,
    settings: PipSettings,
    requirements: Sequence[str],
    requested: Mapping[str, str],
    preview: PipPreview,
    extra_edges: Sequence[tuple[str, str, str]] = (),
    cache_dir: Path | None = None,
) -> tuple[RequirementGraph, tuple[Resolved, ...]]:
    """The requirement graph of ``preview``'s outcome, and its installs with their
    requirements where they could be found.

    It holds the installed distributions that stay, the new versions' requirements
    (pip's report carries them; for uv they are read from the wheels' metadata),
    markers evaluated with the extras in play (``bleach[css]`` brings in bleach's
    ``extra == "css"`` requirements), and, only where no metadata could be read, the
    edges of an unconstrained resolution without specifiers (``explain``).
    """
    from reconciler.plan.chains import RequirementGraph

    env = marker_environment(state.python_version)
    installs = with_requirements(preview.installs, settings, cache_dir)
    moving = {item.name for item in installs}
    # Installed distributions that stay keep their requirements; moving ones get
    # the new version's.
    requires: dict[str, tuple[str, ...]] = {
        d.name: tuple(d.requires) for d in state.dists.values() if d.name not in moving
    }
    requires.update({i.name: i.requires for i in installs if i.requires is not None})
    extras: dict[str, set[str]] = {}
    for name, text in requested.items():
        req = parse(text)
        extras.setdefault(name, set()).update(req.extras if req is not None else ())
    edges: dict[tuple[str, str], str] = {}
    changed = True
    while changed:  # extras propagate down the graph until nothing new is in play
        changed = False
        for parent, texts in requires.items():
            for text in texts:
                req = parse(text)
                if req is None or not applies(req, env, extras.get(parent, ())):
                    continue
                child = canonical_name(req.name)
                edges.setdefault((parent, child), text)
                new = set(req.extras) - extras.setdefault(child, set())
                if new:
                    extras[child] |= new
                    changed = True
    graph = RequirementGraph()
    graph.request(requested, requested)
    graph.require_all((p, c, t) for (p, c), t in edges.items())
    graph.require_all(extra_edges)
    if any(i.requires is None for i in installs):
        python = state.prefix / "bin" / "python"
        graph.require_all((p, c, "") for p, c in installer.explain(python, requirements, settings))
    return graph, installs


def _excludes(version: str) -> Callable[[str], bool]:
    """Does a requirement text exclude the installed ``version``?"""

    def excludes(text: str) -> bool:
        req = parse(text)
        return req is not None and not contains(req.spec, version)

    return excludes


def chains_of(
    state: InstalledState,
    installer: PipInstaller,
    settings: PipSettings,
    requirements: Sequence[str],
    requested: Mapping[str, str],
    preview: PipPreview,
    extra_edges: Sequence[tuple[str, str, str]] = (),
    *,
    cache_dir: Path | None = None,
) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``name -> (reason text, chain)`` for every distribution ``preview`` would install.

    An installed distribution that would move is explained by the requirements that
    exclude its installed version (see :meth:`RequirementGraph.describe`).
    """
    graph, installs = _graph(
        state, installer, settings, requirements, requested, preview, extra_edges, cache_dir
    )
    versions = {i.name: i.version for i in installs}
    out = {}
    for item in installs:
        dist = state.dists.get(item.name)
        excludes = _excludes(dist.version) if dist is not None else None
        out[item.name] = graph.describe(item.name, versions, excludes)
    return out


def held_back(
    state: InstalledState,
    ownership: Ownership,
    settings: PipSettings,
    requested: Mapping[str, str],
    changes: list[Change],
    newest: Mapping[str, str],
    cache_dir: Path | None = None,
) -> list[Change]:
    """Mark requested installs planned below the newest release the request allows, with
    the managed or foreign packages that exclude the newer one (its requirements that
    they do not satisfy, read from its metadata: a local wheel's kept under
    ``cache_dir``)."""
    behind = {}
    for change in changes:
        latest = newest.get(change.name)
        chosen, best = version_or_none(change.to_version or ""), version_or_none(latest or "")
        if (
            change.requested
            and not change.refused
            and change.action in ("install", "upgrade", "downgrade")
            and chosen is not None
            and best is not None
            and chosen < best
        ):
            behind[change.name] = str(latest)
    if not behind:
        return changes
    from reconciler.backends.metadata import requirements_of
    from reconciler.plan.chains import requirement_text

    env = marker_environment(state.python_version)
    packages = state.packages()
    metadata = requirements_of(behind.items(), settings, cache_dir)
    out = []
    for change in changes:
        if change.name not in behind:
            out.append(change)
            continue
        request = parse(requested[change.name])
        holders = []
        for text in metadata.get(change.name, ()):
            req = parse(text)
            extras = request.extras if request is not None else ()
            if req is None or not applies(req, env, extras):
                continue
            dist = state.dists.get(canonical_name(req.name))
            if dist is None or satisfies(req, dist):
                continue
            pkg = packages[state.package_for_dist(dist.name)]
            if ownership.may_move(pkg):
                continue
            holders.append(
                Holder(
                    dist.name,
                    dist.version,
                    requirement_text(text, dist.name),
                    ownership.status(pkg),
                )
            )
        out.append(replace(change, held_back=HeldBack(behind[change.name], tuple(holders))))
    return out
