"""Properties every plan must have, checked on scenario plans and the real-package tier.

* :func:`assert_refusals_quote_excluding_requirements`: a refused move of an installed
  package quotes a requirement that the installed version does NOT satisfy (the
  requirement that is the reason it would move), not merely one on the path to it.
* :func:`assert_transitive_changes_have_required_by`: every install, upgrade or
  downgrade that the manifest did not request names the chain that requires it.

Both take the plan as ``plan --json`` prints it (a dict).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

__all__ = [
    "assert_refusals_quote_excluding_requirements",
    "assert_transitive_changes_have_required_by",
    "quoted_requirements",
]

#: Refusals that are not about a requirement: a frozen environment, a resolver that
#: blamed the pins without an unpinned resolution moving anything.
_NOT_ABOUT_A_REQUIREMENT = (
    "is frozen (conda-meta/frozen)",
    "the resolver found no solution that keeps managed",
    "the solver would have to move managed",
)
_QUOTES = (
    re.compile(r"\brequires (?P<req>.+?)(?= \(if |; |$)"),
    re.compile(r"\bthe manifest requests (?P<req>.+?)(?= \(if |; |$)"),
    re.compile(r"^requested (?P<req>.+?) (?:would|does not match) "),
)


def quoted_requirements(reason: str) -> Iterator[str]:
    """Every requirement text a refusal reason quotes (``requires X``, ``requested X``)."""
    for pattern in _QUOTES:
        for match in pattern.finditer(reason):
            yield match.group("req")


def _pip_excludes(text: str, name: str, installed: str) -> bool:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return False
    return canonicalize_name(req.name) == canonicalize_name(name) and not (
        req.specifier.contains(installed, prereleases=True)
    )


def _conda_excludes(text: str, name: str, installed: str) -> bool:
    import rattler

    try:
        spec = rattler.MatchSpec(text, strict=False)
    except Exception:  # rattler raises its own parse errors
        return False
    if spec.name is None or spec.name.normalized != name.lower():
        return False
    if spec.version is not None:
        return not rattler.VersionSpec(str(spec.version)).matches(rattler.Version(installed))
    return spec.build is not None  # a build constraint: not checkable from the plan


def _refused_moves(plan: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for env in plan["environments"]:
        for change in env["changes"]:
            if (
                change["refused"]
                and change["action"] in ("upgrade", "downgrade")
                and change["from"] is not None
                and not any(s in change["reason"] for s in _NOT_ABOUT_A_REQUIREMENT)
            ):
                yield env["name"], change


def assert_refusals_quote_excluding_requirements(plan: Mapping[str, Any]) -> int:
    """Every refused upgrade/downgrade of an installed package quotes a requirement on it
    that its installed version (``from``) does not satisfy. Returns how many were checked."""
    checked = 0
    for env, change in _refused_moves(plan):
        excludes = _pip_excludes if change["manager"] == "pip" else _conda_excludes
        quotes = list(quoted_requirements(change["reason"]))
        assert any(excludes(q, change["name"], change["from"]) for q in quotes), (
            f"{env}: refused {change['action']} {change['manager']} {change['name']} "
            f"{change['from']} quotes no requirement that {change['from']} fails "
            f"(quoted: {quotes}): {change['reason']}"
        )
        checked += 1
    return checked


def assert_transitive_changes_have_required_by(plan: Mapping[str, Any]) -> int:
    """Every non-requested install/upgrade/downgrade has a non-empty ``required_by``.
    Returns how many were checked."""
    checked = 0
    for env in plan["environments"]:
        for change in env["changes"]:
            if change["requested"] or change["action"] not in ("install", "upgrade", "downgrade"):
                continue
            assert change["required_by"], (
                f"{env['name']}: {change['action']} {change['manager']} {change['name']} "
                f"is not requested but has no required_by"
            )
            checked += 1
    return checked
