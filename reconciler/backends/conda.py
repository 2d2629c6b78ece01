"""The conda side with py-rattler: solve with the installed records pinned.

``pinned_packages`` forbids moving a record (a solve that needs to fails with
``... is locked, but another version is required``); ``locked_packages`` only
prefers it. Managed and foreign records are pinned, owned ones locked.
rattler is imported lazily: it costs ~60 ms.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reconciler.errors import BackendError
from reconciler.state.cache import ReadCache

__all__ = [
    "CondaSolution",
    "CondaSolver",
    "RattlerSolver",
    "SolvedRecord",
    "SpecMatcher",
    "spec_matches",
]

SOLVE_TIMEOUT = 300.0


@dataclass(frozen=True)
class SolvedRecord:
    """One record of a solution."""

    name: str
    version: str
    build: str
    depends: tuple[str, ...]


@dataclass(frozen=True)
class CondaSolution:
    """A solve result, or the solver's refusal with the pinned names it blamed."""

    ok: bool
    records: tuple[SolvedRecord, ...] = ()
    message: str = ""
    blamed: tuple[str, ...] = ()


class CondaSolver(Protocol):
    """Solves conda specs for a prefix."""

    def solve(
        self,
        prefix: Path,
        channels: Sequence[str],
        specs: Sequence[str],
        pinned: Sequence[str],
        locked: Sequence[str],
    ) -> CondaSolution:
        """Solve ``specs`` with the installed records named in ``pinned``/``locked``."""
        ...


def _rattler() -> Any:
    if sys.version_info < (3, 10):
        raise BackendError(
            "conda operations need py-rattler, which needs Python >= 3.10",
            hint="install reconciler with Python 3.10 or newer",
        )
    import rattler

    return rattler


def spec_matches(spec: str, name: str, version: str, build: str) -> bool:
    """Does the installed record ``name-version-build`` satisfy MatchSpec ``spec``?"""
    rattler = _rattler()
    match_spec = rattler.MatchSpec(spec, strict=False)
    if match_spec.name is None or match_spec.name.normalized != name.lower():
        return False
    if match_spec.version is not None and not rattler.VersionSpec(str(match_spec.version)).matches(
        rattler.Version(version)
    ):
        return False
    if match_spec.build is not None:
        import fnmatch

        return fnmatch.fnmatchcase(build, str(match_spec.build))
    return True


class SpecMatcher:
    """:func:`spec_matches` remembered in the read cache (a pure function of its inputs)."""

    def __init__(self, cache: ReadCache | None = None) -> None:
        self._cache = cache if cache is not None else ReadCache()

    def __call__(self, spec: str, name: str, version: str, build: str) -> bool:
        """Does ``name-version-build`` satisfy ``spec``?"""
        key = f"{spec}\0{name}-{version}-{build}"
        hit = self._cache.match(key)
        if hit is None:
            hit = spec_matches(spec, name, version, build)
            self._cache.put_match(key, hit)
        return hit


_LOCKED = re.compile(r"([A-Za-z0-9_.+-]+)[^\n]*?is locked, but another version is required")


def _load_prefix_records(rattler: Any, prefix: Path, names: Sequence[str]) -> list[Any]:
    wanted = set(names)
    records = []
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        stem = path.name[: -len(".json")].rsplit("-", 2)
        if len(stem) == 3 and stem[0] in wanted:
            records.append(rattler.PrefixRecord.from_path(path))
    return records


class RattlerSolver:
    """Solve with ``rattler.solve`` against the manifest's channels."""

    def solve(
        self,
        prefix: Path,
        channels: Sequence[str],
        specs: Sequence[str],
        pinned: Sequence[str],
        locked: Sequence[str],
    ) -> CondaSolution:
        """Solve; a pin conflict is returned as data, other failures raise BackendError."""
        rattler = _rattler()
        pinned_records = _load_prefix_records(rattler, prefix, pinned) if prefix.is_dir() else []
        locked_records = _load_prefix_records(rattler, prefix, locked) if prefix.is_dir() else []
        platforms = [str(rattler.Subdir.current()), "noarch"]
        import asyncio

        try:
            solved = asyncio.run(
                rattler.solve(
                    sources=[_channel(rattler, c) for c in channels],
                    specs=list(specs),
                    platforms=platforms,
                    pinned_packages=pinned_records,
                    locked_packages=locked_records,
                    virtual_packages=rattler.VirtualPackage.detect(),
                    timeout=_timedelta(SOLVE_TIMEOUT),
                )
            )
        except Exception as exc:  # rattler raises its own exception classes
            message = str(exc)
            if "Cannot solve" in message or "cannot be installed" in message or "locked" in message:
                blamed = tuple(dict.fromkeys(m.group(1) for m in _LOCKED.finditer(message)))
                return CondaSolution(ok=False, message=message, blamed=blamed)
            raise BackendError(
                f"conda solve failed: {message.splitlines()[0] if message else type(exc).__name__}",
                hint="check the channels in the manifest are reachable",
            ) from exc
        return CondaSolution(
            ok=True,
            records=tuple(
                SolvedRecord(r.name.normalized, str(r.version), str(r.build), tuple(r.depends))
                for r in solved
            ),
        )


def _channel(rattler: Any, name: str) -> Any:
    return rattler.Channel(name)


def _timedelta(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)
