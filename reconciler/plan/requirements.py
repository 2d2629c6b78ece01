"""Requirement checks against installed distributions, without a resolver.

Markers are evaluated for the *target* environment's Python version (read from
its ``lib/pythonX.Y``), not the interpreter running reconciler.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from reconciler.state.python import Distribution

__all__ = ["applies", "marker_environment", "parse", "satisfies", "unmet", "version_or_none"]


@lru_cache(maxsize=4096)
def parse(text: str) -> Requirement | None:
    """A parsed requirement, or None for one packaging cannot read (legacy metadata)."""
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


@lru_cache(maxsize=8192)
def version_or_none(text: str) -> Version | None:
    """``Version(text)`` or None when it is not PEP 440."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def marker_environment(python_version: str | None) -> dict[str, str]:
    """The marker environment of a target whose Python is ``X.Y``."""
    env = {k: str(v) for k, v in default_environment().items()}
    if python_version:
        env["python_version"] = python_version
        if not env["python_full_version"].startswith(python_version + "."):
            env["python_full_version"] = python_version + ".0"
    return env


def applies(req: Requirement, env: Mapping[str, str], extras: Iterable[str] = ()) -> bool:
    """Does ``req``'s marker hold in ``env`` for the given extras (or none)?"""
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**env, "extra": extra}) for extra in ("", *extras))


def satisfies(req: Requirement, dist: Distribution | None) -> bool:
    """Is ``req`` met by the installed ``dist`` (pre-releases allowed: they are installed)?"""
    if dist is None:
        return False
    if not req.specifier:
        return True
    return req.specifier.contains(dist.version, prereleases=True)


def unmet(
    roots: Iterable[tuple[str, frozenset[str]]],
    dists: Mapping[str, Distribution],
    env: Mapping[str, str],
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
            child = canonicalize_name(req.name)
            if not satisfies(req, dists.get(child)):
                missing.append((name, text))
            else:
                stack.append((child, frozenset(req.extras)))
    return missing
