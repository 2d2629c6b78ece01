"""Who owns what: managed, owned, foreign (SPEC "Ownership").

managed = the baseline + ``protect`` globs + ``conda-meta/pinned`` names;
owned = what reconciler installed; foreign = anything else present. apply
treats foreign like managed: it never moves either.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from reconciler.plan.requirements import plain_version, version_or_none
from reconciler.state.environment import InstalledState, Package
from reconciler.state.store import Baseline, Owned
from reconciler.values import value

__all__ = ["FOREIGN", "MANAGED", "OWNED", "Ownership"]

MANAGED = "managed"
OWNED = "owned"
FOREIGN = "foreign"

_SPEC_NAME = re.compile(r"^(?:[^:]+::)?([A-Za-z0-9_.+-]+)")


@value
class Ownership:
    """Classifies the packages of one environment."""

    managed: frozenset[str]  # package keys
    owned: frozenset[str]
    protect: tuple[str, ...]
    pinned_names: frozenset[str]
    frozen: bool
    baseline_missing: bool

    @classmethod
    def build(
        cls,
        state: InstalledState,
        baseline: Baseline | None,
        owned: Owned,
        protect: Sequence[str],
    ) -> Ownership:
        """Combine the baseline (or, before the first capture, everything present)."""
        if baseline is not None:
            managed = frozenset(baseline.packages)
        else:
            managed = frozenset(key for key, pkg in state.packages().items() if not owned.owns(pkg))
        pinned = frozenset(
            m.group(1).lower() for m in (_SPEC_NAME.match(s) for s in state.pinned) if m
        )
        return cls(
            managed=managed,
            owned=frozenset(owned.packages),
            protect=tuple(protect),
            pinned_names=pinned,
            frozen=state.frozen,
            baseline_missing=baseline is None,
        )

    def is_protected(self, package: Package) -> bool:
        """``protect`` globs match the conda name or the Python distribution's name."""
        names = {package.name}
        if package.dist is not None:
            names.add(package.dist.name)
        return any(fnmatch.fnmatchcase(n, pat) for n in names for pat in self.protect) or (
            package.manager == "conda" and package.name in self.pinned_names
        )

    def status(self, package: Package) -> str:
        """MANAGED, OWNED or FOREIGN for an installed package."""
        if package.key in self.managed or self.is_protected(package):  # the set lookup first
            return MANAGED
        if package.key in self.owned:
            return OWNED
        return FOREIGN

    def may_move(self, package: Package) -> bool:
        """Only owned packages may be upgraded, downgraded or reinstalled."""
        return not self.frozen and self.status(package) == OWNED

    def pinned_dists(self, state: InstalledState) -> frozenset[str]:
        """The keys (``state.dists``) of every distribution that may not move."""
        packages = state.packages()
        return frozenset(
            key
            for key, dist in state.dists.items()
            if not self.may_move(packages[state.package_for_dist(dist.name)])
        )

    def pip_pins(
        self, state: InstalledState, pinned: frozenset[str] | None = None
    ) -> tuple[str, ...]:
        """``name==version`` for every distribution that may not move (the constraints
        file); ``pinned``: :meth:`pinned_dists`, when worked out already."""
        keys = self.pinned_dists(state) if pinned is None else pinned
        dists = state.dists
        return tuple(sorted(_pin(dists[k].name, dists[k].version) for k in keys))

    def conda_pins(self, state: InstalledState) -> tuple[str, ...]:
        """Names of the conda records the solver may not move."""
        packages = state.packages()
        return tuple(
            sorted(name for name in state.conda if not self.may_move(packages[f"conda:{name}"]))
        )


def _pin(name: str, version: str) -> str:
    # A version that is not PEP 440 (conda-style) can only be pinned by arbitrary equality.
    # Most installed versions are in PEP 440's normal form (1.26.4, 0.64b0: valid by its
    # grammar), known without parsing each of the image's 620 with packaging.
    if plain_version(version) or version_or_none(version) is not None:
        return f"{name}=={version}"
    return f"{name}==={version}"
