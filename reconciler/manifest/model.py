"""The validated manifest as frozen values. Built only by :mod:`reconciler.manifest.loader`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.values import value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from reconciler.manifest.optional import Create, Kernel

__all__ = [
    "CondaRequest",
    "Create",
    "Environment",
    "Kernel",
    "Manifest",
    "PipRequest",
    "PipSettings",
    "pip_requests",
    "select_environments",
]

_OPTIONAL = frozenset({"Create", "Kernel"})


def __getattr__(name: str) -> Any:
    """``Create`` and ``Kernel``, from :mod:`reconciler.manifest.optional` on first use."""
    if name in _OPTIONAL:
        from reconciler.manifest import optional

        return getattr(optional, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@value
class PipRequest:
    """A PEP 508 requirement for one distribution, merged across the environment and ``all:``.

    ``name`` is the canonical name; ``requirement`` the merged requirement string
    (``polars>=1,<2``); ``sources`` the manifest paths it came from
    (``environments.base.pip[0]``, ``all.pip[1]``).
    """

    name: str
    requirement: str
    sources: tuple[str, ...]


@value
class CondaRequest:
    """A conda MatchSpec for one package, merged across the environment and ``all:``."""

    name: str
    spec: str
    sources: tuple[str, ...]


@value
class PipSettings:
    """Where the pip side finds distributions. ``no_index`` disables the default index."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False


@value
class Environment:
    """One environment of the manifest, with ``all:`` and ``defaults`` already applied."""

    name: str
    prefix: Path
    conda: tuple[CondaRequest, ...]
    pip: tuple[PipRequest, ...]
    channels: tuple[str, ...]
    pip_settings: PipSettings
    installer: str  # "auto" | "uv" | "pip"
    create: Create | None = None
    kernel: Kernel | None = None


@value
class Manifest:
    """A validated manifest. ``protect`` holds glob patterns over package names."""

    path: Path
    sha256: str
    protect: tuple[str, ...]
    environments: tuple[Environment, ...]

    def environment(self, name: str) -> Environment:
        """The environment called ``name``; KeyError if there is none."""
        for env in self.environments:
            if env.name == name:
                return env
        raise KeyError(name)


def pip_requests(env: Environment) -> tuple[PipRequest, ...]:
    """The environment's pip requests, plus ipykernel when it has a kernel."""
    if env.kernel is None or any(r.name == "ipykernel" for r in env.pip):
        return env.pip
    return (*env.pip, PipRequest("ipykernel", "ipykernel", (f"environments.{env.name}.kernel",)))


def select_environments(manifest: Manifest, names: Sequence[str]) -> tuple[Environment, ...]:
    """The environments ``--env NAME...`` selects (all of them when ``names`` is empty).

    Every command that takes ``--env`` calls this before it reads or changes anything:
    an unknown name is one error listing the known ones, never "all environments".
    """
    known = [e.name for e in manifest.environments]
    unknown = list(dict.fromkeys(n for n in names if n not in known))
    if unknown:
        noun = "environment" if len(unknown) == 1 else "environments"
        raise ReconcilerError(
            f"no {noun} named {', '.join(repr(n) for n in unknown)} in {manifest.path}",
            hint="environments: " + ", ".join(known),
        )
    return tuple(e for e in manifest.environments if not names or e.name in names)
