"""Requirement checks against installed distributions, without a resolver.

Markers are evaluated for the *target* environment's Python version (read from
its ``lib/pythonX.Y``), not the interpreter running reconciler.

Every answer here is a pure function of its text: a requirement's parse, whether a
version is in a specifier, whether a marker holds in an environment. They are kept
in the read cache's requirement tables (:class:`reconciler.state.cache.RequirementTables`,
bound by the planner with :func:`use_tables`), so a warm plan neither parses a
requirement nor imports ``packaging``'s parser and markers (~25 ms of imports, and a
real stack's ~600 parses). What is not in the tables is answered by
:func:`reconciler.pep508.parse_simple` for a simple requirement (the answer packaging
gives) and by ``packaging`` itself for any other, and added.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache

from reconciler.digest import sha256
from reconciler.pep508 import ParsedRequirement, parse_by_packaging, parse_simple
from reconciler.state.cache import ReadCache, RequirementTables
from reconciler.state.python import Distribution
from reconciler.values import value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from packaging.markers import Marker
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

__all__ = [
    "MarkerEnvironment",
    "ParsedRequirement",
    "applies",
    "contains",
    "marker_environment",
    "parse",
    "parse_request",
    "plain_version",
    "satisfies",
    "settled",
    "unmet",
    "use_tables",
    "version_or_none",
]

_tables = RequirementTables()  # in this process only, until a read cache is bound


def use_tables(cache: ReadCache) -> None:
    """Answer from, and add to, ``cache``'s requirement tables from now on (saved
    with the cache). The answers are pure, so any cache's tables serve any plan."""
    global _tables
    _tables = cache.requirements


_MISSING: Any = object()


@lru_cache(maxsize=8192)
def parse(text: str) -> ParsedRequirement | None:
    """A parsed requirement, or None for one packaging cannot read (legacy metadata)."""
    tables = _tables
    row = tables.parsed.get(text, _MISSING)
    if row is None:
        return None
    if row is not _MISSING and _is_row(row):
        name, extras, spec, marker, url, written = row
        return ParsedRequirement(name, frozenset(extras), spec, marker, url, written)
    found: ParsedRequirement | None = parse_simple(text)
    if found is None:
        from packaging.requirements import InvalidRequirement

        try:
            found = parse_by_packaging(text)
        except InvalidRequirement:
            found = None
    tables.parsed[text] = None if found is None else _row(found)
    tables.added()
    return found


def parse_request(text: str) -> ParsedRequirement:
    """:func:`parse` of a text that must be PEP 508 (a manifest's request, checked when
    the manifest was read): packaging's ``InvalidRequirement`` when it is not."""
    return parse(text) or parse_by_packaging(text)


def _row(found: ParsedRequirement) -> list[Any]:
    """The table row of ``found``: ``[name, [extras], spec, marker, url, written]``."""
    return [found.name, sorted(found.extras), found.spec, found.marker, found.url, found.written]


def _is_row(row: Any) -> bool:
    return (
        isinstance(row, list)
        and len(row) == 6
        and isinstance(row[0], str)
        and isinstance(row[1], list)
        and all(isinstance(e, str) for e in row[1])
        and isinstance(row[2], str)
        and all(v is None or isinstance(v, str) for v in row[3:5])
        and isinstance(row[5], str)
    )


@lru_cache(maxsize=1024)
def _specifier_set(spec: str) -> SpecifierSet:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(spec)


#: Versions in PEP 440's usual form with no epoch or local part (1.26.4, 0.64b0,
#: 2.9.0.post0, 3.0rc1.dev2): valid by the grammar's own rules.
_PLAIN = re.compile(r"[0-9]+(?:\.[0-9]+)*(?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?")


def plain_version(text: str) -> bool:
    """Whether ``text`` is surely PEP 440, known without parsing it (True only of the
    usual form: False says nothing)."""
    return _PLAIN.fullmatch(text) is not None


@lru_cache(maxsize=8192)
def version_or_none(text: str) -> Version | None:
    """``Version(text)`` or None when it is not PEP 440."""
    # packaging.version compiles its grammar at import (~2 ms): a plan that compares no
    # version (the pins of installed ones are known valid by plain_version) needs none.
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text)
    except InvalidVersion:
        return None


@value
class MarkerEnvironment:
    """The marker environment of a target whose Python is ``python_version`` (X.Y).

    ``key`` names it in the tables: everything ``packaging.markers.default_environment``
    reads (the running interpreter's version and implementation, ``os.name``,
    ``sys.platform``, ``os.uname()``), with the target's Python version. :meth:`values`
    is the environment itself."""

    key: str
    python_version: str | None

    def values(self) -> dict[str, str]:
        """The marker variables (computed by ``packaging`` when first asked)."""
        return _environment_values(self.python_version)


def marker_environment(python_version: str | None) -> MarkerEnvironment:
    """The marker environment of a target whose Python is ``X.Y``."""
    return MarkerEnvironment(_environment_key(python_version), python_version)


@lru_cache(maxsize=16)
def _environment_key(python_version: str | None) -> str:
    # The tables are dropped whole under another packaging (RequirementTables), so
    # its version is not part of the key. os.uname: POSIX, as reconciler is.
    implementation = sys.implementation
    fields = (
        sys.version,
        implementation.name,
        tuple(implementation.version),
        os.name,
        sys.platform,
        tuple(os.uname()),
        python_version or "",
    )
    return sha256(repr(fields).encode()).hexdigest()[:32]


@lru_cache(maxsize=16)
def _environment_values(python_version: str | None) -> dict[str, str]:
    from packaging.markers import default_environment

    env = {k: str(v) for k, v in default_environment().items()}
    if python_version:
        env["python_version"] = python_version
        if not env["python_full_version"].startswith(python_version + "."):
            env["python_full_version"] = python_version + ".0"
    return env


def applies(req: ParsedRequirement, env: MarkerEnvironment, extras: Iterable[str] = ()) -> bool:
    """Does ``req``'s marker hold in ``env`` for the given extras (or none)?"""
    if req.marker is None:
        return True
    return any(_holds(req.marker, env, extra) for extra in ("", *extras))


def _holds(marker: str, env: MarkerEnvironment, extra: str) -> bool:
    tables = _tables
    key = f"{env.key}\0{marker}\0{extra}"
    hit = tables.markers.get(key)
    if hit is None:
        hit = bool(_marker(marker).evaluate({**env.values(), "extra": extra}))
        tables.markers[key] = hit
        tables.added()
    return hit


@lru_cache(maxsize=1024)
def _marker(text: str) -> Marker:
    from packaging.markers import Marker

    return Marker(text)


def contains(spec: str, version: str) -> bool:
    """Is ``version`` in the specifier ``spec`` (pre-releases allowed: they are installed)?"""
    tables = _tables
    key = f"{spec}\0{version}"
    hit = tables.contains.get(key)
    if hit is None:
        hit = bool(_specifier_set(spec).contains(version, prereleases=True))
        tables.contains[key] = hit
        tables.added()
    return hit


def satisfies(req: ParsedRequirement, dist: Distribution | None) -> bool:
    """Is ``req`` met by the installed ``dist`` (pre-releases allowed: they are installed)?"""
    if dist is None:
        return False
    if not req.spec:
        return True
    return contains(req.spec, dist.version)


def unmet(
    roots: Iterable[tuple[str, frozenset[str]]],
    dists: Mapping[str, Distribution],
    env: MarkerEnvironment,
) -> list[tuple[str, str]]:
    """``(parent, requirement)`` pairs not met in the closure of ``roots`` (name, extras).

    An empty list means the installed closure of the roots is consistent.
    """
    missing: list[tuple[str, str]] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    stack = list(roots)
    while stack:
        name, extras = stack.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        dist = dists.get(name)
        if dist is None:
            continue
        for text in dist.requires:
            req = parse(text)
            if req is None or not applies(req, env, extras):
                continue
            child = req.key
            if not satisfies(req, dists.get(child)):
                missing.append((name, text))
            else:
                stack.append((child, req.extras))
    return missing


Root = tuple[str, frozenset[str]]
#: Marker variables :func:`marker_environment` answers for the target only as
#: reconciler's own interpreter would: its full version (the target's micro version may
#: differ) and, when reconciler does not run on CPython, its implementation (a target is
#: read through its ``lib/pythonX.Y``, a CPython's layout; PyPy's is ``lib/pypyX.Y``). A
#: requirement that names one is never taken as settled. The platform's variables are
#: this machine's, the target's too.
_INEXACT = re.compile(
    r"python_full_version|implementation_version"
    + ("" if sys.implementation.name == "cpython" else r"|implementation_name|python_impl")
)


def settled(
    roots: Iterable[Root],
    dists: Mapping[str, Distribution],
    env: MarkerEnvironment,
    pinned: Callable[[str], bool],
) -> set[Root]:
    """The ``roots`` (name, extras) whose installed closure is met and may not move: every
    distribution reachable from one (through its requirements that apply under the
    markers and extras) is installed, satisfies what requires it, and is ``pinned`` (by
    name: the preview's constraints hold it at its version). Given to a resolver beside
    other requirements, such a root adds nothing the pins do not hold already: the
    resolver can only keep its closure as it is. A requirement that cannot be parsed,
    or whose marker names a variable the marker environment answers only as reconciler's
    own interpreter would (:data:`_INEXACT`), leaves its distribution, and what reaches
    it, unsettled: an edge skipped that the target follows would let the resolver move
    what it requires."""
    roots = list(roots)
    edges: dict[Root, list[Root]] = {}
    bad: list[Root] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in edges:
            continue
        children: list[Root] = []
        edges[node] = children
        name, extras = node
        dist = dists.get(name)
        if dist is None or not pinned(name):
            bad.append(node)
            continue
        for text in dist.requires:
            req = parse(text)
            if req is None or (req.marker is not None and _INEXACT.search(req.marker)):
                bad.append(node)
                break
            if not applies(req, env, extras):
                continue
            if not satisfies(req, dists.get(req.key)):
                bad.append(node)
                break
            children.append((req.key, req.extras))
        stack += children
    parents: dict[Root, list[Root]] = {}
    for node, children in edges.items():
        for child in children:
            parents.setdefault(child, []).append(node)
    unsettled = set(bad)  # and whatever reaches one of them
    while bad:
        for parent in parents.get(bad.pop(), ()):
            if parent not in unsettled:
                unsettled.add(parent)
                bad.append(parent)
    return {root for root in roots if root not in unsettled}
