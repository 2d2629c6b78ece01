"""The requirement graph: chains, blame of the requirement that excludes an installed
version, and how requirements print inside a chain."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from reconciler.plan.chains import ROOT, RequirementGraph, requirement_text
from reconciler.plan.requirements import parse


def _pip_excludes(installed: str) -> Callable[[str], bool]:
    def excludes(text: str) -> bool:
        req = parse(text)
        return req is not None and not req.specifier.contains(installed, prereleases=True)

    return excludes


def test_blame_quotes_every_excluding_requirement_never_a_met_one() -> None:
    graph = RequirementGraph()
    graph.request(["a-pkg", "b-pkg", "c-pkg"])
    graph.require("a-pkg", "numpy", "numpy>=1.23.5,<3")  # met by 1.26.4, and first
    graph.require("b-pkg", "numpy", "numpy>=2")
    graph.require("c-pkg", "numpy", "numpy>=2.1")
    versions = {"a-pkg": "1.0", "b-pkg": "1.0", "c-pkg": "1.0", "numpy": "2.1.0"}
    assert graph.describe("numpy", versions, _pip_excludes("1.26.4")) == (
        "b-pkg 1.0 requires numpy>=2; also c-pkg 1.0 requires numpy>=2.1",
        ("b-pkg",),
    )
    # Without an installed version to test against (an install), the shortest chain.
    assert graph.describe("numpy", versions)[0] == "a-pkg 1.0 requires numpy<3,>=1.23.5"


def test_blame_keeps_the_chain_down_to_the_excluding_requirement() -> None:
    graph = RequirementGraph()
    graph.request(["gamma", "alpha-user"])
    graph.require("alpha-user", "alpha", "alpha>=1")  # shorter, but met by 1.0
    graph.require("gamma", "beta", "beta>=2")
    graph.require("beta", "alpha", "alpha>=2")
    versions = {"gamma": "1.0", "beta": "2.0", "alpha-user": "1.0"}
    assert graph.describe("alpha", versions, _pip_excludes("1.0")) == (
        "gamma 1.0 requires beta>=2; beta 2.0 requires alpha>=2",
        ("gamma", "beta"),
    )


def test_conda_blame_uses_matchspecs() -> None:
    from reconciler.backends.conda import spec_matches

    graph = RequirementGraph(pep508=False)
    graph.request(["aaa", "zzz"])
    graph.require("aaa", "libfoo", "libfoo >=1")
    graph.require("zzz", "libfoo", "libfoo >=2")

    def excludes(spec: str) -> bool:
        return not spec_matches(spec, "libfoo", "1.0", "0")

    assert graph.describe("libfoo", {"aaa": "1.0", "zzz": "1.0"}, excludes) == (
        "zzz 1.0 requires libfoo >=2",
        ("zzz",),
    )


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ('numpy>=2; python_version >= "3.9"', 'numpy>=2 (if python_version >= "3.9")'),
        ('tinycss2<1.3,>=1.1.0; extra == "css"', 'tinycss2<1.3,>=1.1.0 (if extra == "css")'),
        ("bleach[css]!=5.0.0", "bleach[css]!=5.0.0"),
        ("alpha >= 2", "alpha>=2"),
        ("", "alpha"),
    ],
)
def test_requirement_text_in_chains(spec: str, shown: str) -> None:
    assert requirement_text(spec, "alpha") == shown


def test_conda_requirement_text_is_kept() -> None:
    assert requirement_text("libfoo >=2", "libfoo", pep508=False) == "libfoo >=2"


def _networkx_path(edges: list[tuple[str, str]], target: str, skip_root: bool) -> list[str] | None:
    """What the graph printed chains from before it dropped networkx (the reference)."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_edges_from(edges)
    if target not in graph or ROOT not in graph:
        return None
    if skip_root and graph.has_edge(ROOT, target):
        graph = nx.restricted_view(graph, [], [(ROOT, target)])
    try:
        return list(nx.shortest_path(graph, ROOT, target))
    except nx.NetworkXNoPath:
        return None


def test_shortest_chains_are_networkx_ones_ties_included() -> None:
    # Many equally short chains (dense random graphs over few names), so a search that
    # broke ties differently from networkx's bidirectional BFS would print other chains.
    rng = random.Random(13)
    compared = 0
    for _ in range(400):
        names = [f"p{i}" for i in range(rng.randint(2, 12))]
        edges: list[tuple[str, str]] = []
        for name in rng.sample(names, rng.randint(1, len(names))):
            edges.append((ROOT, name))
        for _ in range(rng.randint(0, 40)):
            a, b = rng.choice(names), rng.choice(names)
            if a != b and (a, b) not in edges:
                edges.append((a, b))
        rng.shuffle(edges)
        graph = RequirementGraph()
        for a, b in edges:
            if a == ROOT:
                graph.request([b])
            else:
                graph.require(a, b, f"{b}>=1")
        for target in names:
            for skip in (False, True):
                assert graph._path(target, skip_root_edge=skip) == _networkx_path(
                    edges, target, skip
                ), (edges, target, skip)
                compared += 1
    assert compared > 4000
