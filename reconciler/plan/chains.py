"""Why a change is needed: a networkx graph from the manifest's requests to each package.

Nodes are package names; an edge ``a -> b`` means a requires b, with the
requirement text when known. A refused change is explained by the requirements
that *exclude* the version installed now (a requirement the installed version
meets is no reason to move it), each with its shortest chain from the manifest;
an allowed one by the shortest chain alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ROOT", "Chain", "RequirementGraph", "requirement_text"]

ROOT = "<manifest>"


@dataclass(frozen=True)
class Chain:
    """Packages from a requested one down to the target's immediate dependent."""

    via: tuple[str, ...]  # requested first, immediate dependent last
    specs: tuple[str, ...]  # requirement text per hop (same length as via), "" if unknown


def requirement_text(spec: str, child: str, *, pep508: bool = True) -> str:
    """A requirement as chains print it: ``numpy>=2 (if python_version >= "3.9")``.

    The marker goes in parentheses because ``;`` separates the hops of a chain.
    Conda MatchSpecs (``pep508=False``) and unparsable text are printed as they are.
    """
    if not spec:
        return child
    if not pep508:
        return spec
    from reconciler.plan.requirements import parse

    req = parse(spec)
    if req is None:
        return spec
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    text = f"{req.name}{extras}{req.specifier}"
    return f"{text} (if {req.marker})" if req.marker is not None else text


class RequirementGraph:
    """A directed requirement graph (networkx is imported only when one is built)."""

    def __init__(self, *, pep508: bool = True) -> None:
        import networkx as nx

        self.pep508 = pep508  # requirement texts are PEP 508 (pip) or MatchSpecs (conda)
        self._nx: Any = nx
        self.graph: Any = nx.DiGraph()

    def request(self, names: Iterable[str], specs: Mapping[str, str] | None = None) -> None:
        """Mark ``names`` as requested by the manifest (``specs``: the request texts)."""
        for name in names:
            self.graph.add_edge(ROOT, name, spec=(specs or {}).get(name, ""))

    def require(self, parent: str, child: str, spec: str = "") -> None:
        """``parent`` requires ``child`` (``spec`` is the requirement text, if known)."""
        if parent == child:
            return
        known = self.graph.get_edge_data(parent, child)
        if known is None or (spec and not known.get("spec")):
            self.graph.add_edge(parent, child, spec=spec)

    def require_all(self, edges: Iterable[tuple[str, str, str]]) -> None:
        """Add ``(parent, child, spec)`` edges."""
        for parent, child, spec in edges:
            self.require(parent, child, spec)

    def _path(self, target: str, *, skip_root_edge: bool) -> list[str] | None:
        nx = self._nx
        if target not in self.graph or ROOT not in self.graph:
            return None
        graph = self.graph
        if skip_root_edge and graph.has_edge(ROOT, target):
            graph = nx.restricted_view(graph, [], [(ROOT, target)])
        try:
            return list(nx.shortest_path(graph, ROOT, target))
        except nx.NetworkXNoPath:
            return None

    def _chain(self, path: list[str]) -> Chain:
        hops = path[1:]
        edges = self.graph.edges
        specs = tuple(str(edges[a, b].get("spec", "")) for a, b in zip(hops, hops[1:]))
        return Chain(via=tuple(hops[:-1]), specs=specs)

    def chain(self, target: str) -> Chain | None:
        """The shortest chain from the manifest to ``target``; None if unreachable.

        A requested package that something else also requires is explained by that
        something: its own request is usually met by what is installed, so the
        other requirement is why it moves.
        """
        if target not in self.graph:
            return None
        others = any(p != ROOT for p in self.graph.predecessors(target))
        path = self._path(target, skip_root_edge=others)
        return None if path is None else self._chain(path)

    def blame(self, target: str, excludes: Callable[[str], bool]) -> tuple[Chain, ...]:
        """Chains ending in a requirement on ``target`` for which ``excludes(text)`` holds
        (the installed version does not satisfy it), shortest first; () when none does."""
        if target not in self.graph:
            return ()
        found: list[tuple[int, str, Chain]] = []
        for parent in self.graph.predecessors(target):
            spec = str(self.graph.edges[parent, target].get("spec", ""))
            if not spec or not excludes(spec):
                continue
            if parent == ROOT:
                chain = Chain(via=(), specs=())
            else:
                path = self._path(parent, skip_root_edge=False) or [ROOT, parent]
                base = self._chain(path)
                chain = Chain(via=(*base.via, parent), specs=(*base.specs, spec))
            found.append((len(chain.via), parent, chain))
        return tuple(chain for _, _, chain in sorted(found, key=lambda f: (f[0], f[1])))

    def describe(
        self,
        target: str,
        versions: Mapping[str, str],
        excludes: Callable[[str], bool] | None = None,
    ) -> tuple[str, tuple[str, ...]]:
        """``("gamma 1.0 requires beta>=2; beta 2.0 requires alpha>=2", ("gamma", "beta"))``.

        With ``excludes`` (a refusal) every chain whose last requirement excludes
        the installed version, joined with ``; also``; the returned names are the
        first chain's. Without it, or when no requirement known excludes it, the
        shortest chain.
        """
        chains = self.blame(target, excludes) if excludes is not None else ()
        if not chains:
            chain = self.chain(target)
            if chain is None or not chain.via:
                return "", ()
            chains = (chain,)
        texts = [self._text(chain, target, versions) for chain in chains]
        return "; also ".join(texts), chains[0].via

    def _text(self, chain: Chain, target: str, versions: Mapping[str, str]) -> str:
        if not chain.via:
            spec = str(self.graph.edges[ROOT, target].get("spec", ""))
            return f"the manifest requests {requirement_text(spec, target, pep508=self.pep508)}"
        hops = (*chain.via, target)
        parts = []
        for i, parent in enumerate(chain.via):
            child = hops[i + 1]
            version = versions.get(parent)
            who = f"{parent} {version}" if version else parent
            parts.append(
                f"{who} requires {requirement_text(chain.specs[i], child, pep508=self.pep508)}"
            )
        return "; ".join(parts)
