"""Why a change is needed: a requirement graph from the manifest's requests to each package.

Nodes are package names; an edge ``a -> b`` means a requires b, with the
requirement text when known. A refused change is explained by the requirements
that *exclude* the version installed now (a requirement the installed version
meets is no reason to move it), each with its shortest chain from the manifest;
an allowed one by the shortest chain alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from reconciler.values import value

__all__ = ["ROOT", "Chain", "RequirementGraph", "requirement_text"]

ROOT = "<manifest>"


@value
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
    text = f"{req.name}{extras}{req.spec}"
    return f"{text} (if {req.marker})" if req.marker is not None else text


class RequirementGraph:
    """A directed requirement graph: ``parent -> child`` edges, each with its text.

    A few hundred nodes at most, so plain dicts (networkx costs ~0.15 s to import,
    more than a plan's own work); the shortest path is networkx's bidirectional
    breadth-first search (``nx.shortest_path`` without weights) step for step, so
    that among equally short chains the same one is printed."""

    def __init__(self, *, pep508: bool = True) -> None:
        self.pep508 = pep508  # requirement texts are PEP 508 (pip) or MatchSpecs (conda)
        # Adjacency in insertion order (the search's tie-break): node -> {node: spec}.
        self._succ: dict[str, dict[str, str]] = {}
        self._pred: dict[str, dict[str, str]] = {}

    def __contains__(self, node: object) -> bool:
        return node in self._succ

    def _add_edge(self, parent: str, child: str, spec: str) -> None:
        for node in (parent, child):
            if node not in self._succ:
                self._succ[node] = {}
                self._pred[node] = {}
        self._succ[parent][child] = spec
        self._pred[child][parent] = spec

    def spec(self, parent: str, child: str) -> str:
        """The text of the requirement ``parent -> child`` ("" if unknown or absent)."""
        return self._succ.get(parent, {}).get(child, "")

    def predecessors(self, node: str) -> tuple[str, ...]:
        """What requires ``node``, in the order the edges were added."""
        return tuple(self._pred.get(node, ()))

    def request(self, names: Iterable[str], specs: Mapping[str, str] | None = None) -> None:
        """Mark ``names`` as requested by the manifest (``specs``: the request texts)."""
        for name in names:
            self._add_edge(ROOT, name, (specs or {}).get(name, ""))

    def require(self, parent: str, child: str, spec: str = "") -> None:
        """``parent`` requires ``child`` (``spec`` is the requirement text, if known)."""
        if parent == child:
            return
        known = self._succ.get(parent, {}).get(child)
        if known is None or (spec and not known):
            self._add_edge(parent, child, spec)

    def require_all(self, edges: Iterable[tuple[str, str, str]]) -> None:
        """Add ``(parent, child, spec)`` edges."""
        for parent, child, spec in edges:
            self.require(parent, child, spec)

    def _path(self, target: str, *, skip_root_edge: bool) -> list[str] | None:
        if target not in self._succ or ROOT not in self._succ:
            return None
        hidden = (ROOT, target) if skip_root_edge else None
        return _bidirectional_path(self._succ, self._pred, ROOT, target, hidden)

    def _chain(self, path: list[str]) -> Chain:
        hops = path[1:]
        specs = tuple(self.spec(a, b) for a, b in zip(hops, hops[1:]))
        return Chain(via=tuple(hops[:-1]), specs=specs)

    def chain(self, target: str) -> Chain | None:
        """The shortest chain from the manifest to ``target``; None if unreachable.

        A requested package that something else also requires is explained by that
        something: its own request is usually met by what is installed, so the
        other requirement is why it moves.
        """
        if target not in self._succ:
            return None
        others = any(p != ROOT for p in self.predecessors(target))
        path = self._path(target, skip_root_edge=others)
        return None if path is None else self._chain(path)

    def blame(self, target: str, excludes: Callable[[str], bool]) -> tuple[Chain, ...]:
        """Chains ending in a requirement on ``target`` for which ``excludes(text)`` holds
        (the installed version does not satisfy it), shortest first; () when none does."""
        if target not in self._succ:
            return ()
        found: list[tuple[int, str, Chain]] = []
        for parent in self.predecessors(target):
            spec = self.spec(parent, target)
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
            spec = self.spec(ROOT, target)
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


def _bidirectional_path(
    succ: Mapping[str, Mapping[str, str]],
    pred: Mapping[str, Mapping[str, str]],
    source: str,
    target: str,
    hidden: tuple[str, str] | None,
) -> list[str] | None:
    """networkx's ``bidirectional_shortest_path`` (3.x, ``_bidirectional_pred_succ``):
    the fringe with fewer nodes grows by one level, neighbours in insertion order,
    until the two searches meet; ``hidden`` is an edge left out (``restricted_view``)."""
    if source == target:
        return [source]
    before: dict[str, str | None] = {source: None}  # node -> its predecessor towards source
    after: dict[str, str | None] = {target: None}  # node -> its successor towards target
    forward, reverse = [source], [target]
    meet: str | None = None
    while forward and reverse and meet is None:
        if len(forward) <= len(reverse):
            level, forward = forward, []
            for v in level:
                for w in succ[v]:
                    if (v, w) == hidden:
                        continue
                    if w not in before:
                        forward.append(w)
                        before[w] = v
                    if w in after:
                        meet = w
                        break
                if meet is not None:
                    break
        else:
            level, reverse = reverse, []
            for v in level:
                for w in pred[v]:
                    if (w, v) == hidden:
                        continue
                    if w not in after:
                        after[w] = v
                        reverse.append(w)
                    if w in before:
                        meet = w
                        break
                if meet is not None:
                    break
    if meet is None:
        return None
    path: list[str] = []
    node: str | None = meet
    while node is not None:
        path.append(node)
        node = before[node]
    path.reverse()
    node = after[path[-1]]
    while node is not None:
        path.append(node)
        node = after[node]
    return path
