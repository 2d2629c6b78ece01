"""Properties every plan must have, checked over plan JSON (issue 9, items 1 and 2).

* A refused upgrade or downgrade of a managed pip distribution quotes at least
  one requirement on it whose specifier the managed (installed) version does
  *not* satisfy: blaming a requirement the managed version meets explains
  nothing.
* Every change the manifest did not request (an install, upgrade or
  downgrade pulled in by something) has a non-empty ``required_by``.

:func:`plan_violations` returns one line per broken property (empty: all hold).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

__all__ = ["plan_violations", "quoted_specifiers"]

_CLAUSE = r"(?:===|==|!=|<=|>=|~=|<|>)\s*[A-Za-z0-9.*+!_-]+"


def quoted_specifiers(reason: str, name: str) -> list[str]:
    """Every specifier on ``name`` quoted in ``reason`` (``pluggy <2.0,>=1.5``, ``x (>=2.0)``)."""
    words = "[-_.]".join(re.escape(part) for part in re.split(r"[-_.]+", name))
    pattern = rf"(?<![\w.-]){words}(?:\[[^\]]*\])?\s*\(?\s*({_CLAUSE}(?:\s*,\s*{_CLAUSE})*)"
    return [m.group(1) for m in re.finditer(pattern, reason, re.IGNORECASE)]


def _excludes(specifier: str, version: str) -> bool:
    try:
        spec = SpecifierSet(re.sub(r"\s+", "", specifier))
        return not spec.contains(Version(version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return False


def plan_violations(document: Mapping[str, Any], managed: Mapping[str, str]) -> list[str]:
    """Lines naming each change of ``document`` that breaks a property (see module docstring).

    ``managed``: canonical name -> installed version of the image's
    distributions (the ``from`` of a change is used when present).
    """
    problems: list[str] = []
    for env in document.get("environments", ()):
        for change in env.get("changes", ()):
            if change.get("manager") != "pip":
                continue
            action, name = change.get("action"), str(change.get("name"))
            where = f"{env.get('name')}: {action} {name}"
            if action in ("upgrade", "downgrade") and change.get("refused"):
                version = change.get("from") or managed.get(canonicalize_name(name))
                reason = str(change.get("reason") or "")
                quoted = quoted_specifiers(reason, name)
                if version and not any(_excludes(s, str(version)) for s in quoted):
                    problems.append(
                        f"{where}: the refusal quotes no requirement that managed {name} "
                        f"{version} fails (quoted: {quoted or 'none'}): {reason!r}"
                    )
            if (
                action in ("install", "upgrade", "downgrade")
                and not change.get("requested")
                and not change.get("required_by")
            ):
                problems.append(f"{where}: not requested, yet required_by is empty")
    return problems
