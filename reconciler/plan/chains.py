"""Why a change is needed: a networkx graph from the manifest's requests to each package.

Nodes are package names; an edge ``a -> b`` means a requires b, with the
requirement text when known. The chain of a refused change is the shortest
path from the manifest to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ROOT", "Chain", "RequirementGraph"]

ROOT = "<manifest>"


@dataclass(frozen=True)
class Chain:
    """Packages from a requested one down to the target's immediate dependent."""

    via: tuple[str, ...]  # requested first, immediate dependent last
    specs: tuple[str, ...]  # requirement text per hop (same length as via), "" if unknown


class RequirementGraph:
    """A directed requirement graph (networkx is imported only when one is built)."""

    def __init__(self) -> None:
        import networkx as nx

        self._nx: Any = nx
        self.graph: Any = nx.DiGraph()

    def request(self, names: Iterable[str]) -> None:
        """Mark ``names`` as requested by the manifest."""
        for name in names:
            self.graph.add_edge(ROOT, name, spec="")

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

    def chain(self, target: str) -> Chain | None:
        """The shortest chain from the manifest to ``target``; None if unreachable.

        A requested package that something else also requires is explained by that
        something: its own request is usually met by what is installed, so the
        other requirement is why it moves.
        """
        nx = self._nx
        if target not in self.graph or ROOT not in self.graph:
            return None
        graph = self.graph
        if any(p != ROOT for p in graph.predecessors(target)) and graph.has_edge(ROOT, target):
            graph = nx.restricted_view(graph, [], [(ROOT, target)])
        try:
            path = nx.shortest_path(graph, ROOT, target)
        except nx.NetworkXNoPath:
            return None
        hops = path[1:]
        edges = self.graph.edges
        specs = tuple(str(edges[a, b].get("spec", "")) for a, b in zip(hops, hops[1:]))
        return Chain(via=tuple(hops[:-1]), specs=specs)

    def describe(self, target: str, versions: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
        """``("gamma 1.0 requires beta>=2; beta 2.0 requires alpha>=2", ("gamma", "beta"))``."""
        chain = self.chain(target)
        if chain is None or not chain.via:
            return "", ()
        hops = (*chain.via, target)
        parts = []
        for i, parent in enumerate(chain.via):
            child = hops[i + 1]
            version = versions.get(parent)
            who = f"{parent} {version}" if version else parent
            spec = chain.specs[i] or child
            parts.append(f"{who} requires {spec}")
        return "; ".join(parts), chain.via
