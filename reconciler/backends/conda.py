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
from pathlib import Path

from reconciler import faults
from reconciler.backends.process import first_lines
from reconciler.errors import BackendError
from reconciler.state.cache import ReadCache
from reconciler.values import value

TYPE_CHECKING = False
if TYPE_CHECKING:  # built only by a solve (rattler) or a lock: a plan that needs neither skips it
    from typing import Any, Protocol

    from reconciler.lockfile.model import LockedRecord

__all__ = [  # (and CondaSolver, to the checker)
    "CondaSolution",
    "RattlerSolver",
    "SolvedRecord",
    "SpecMatcher",
    "spec_matches",
]

SOLVE_TIMEOUT = 300.0


@value
class SolvedRecord:
    """One record of a solution."""

    name: str
    version: str
    build: str
    depends: tuple[str, ...]


@value
class CondaSolution:
    """A solve result, or the solver's refusal with the pinned names it blamed."""

    ok: bool
    records: tuple[SolvedRecord, ...] = ()
    message: str = ""
    blamed: tuple[str, ...] = ()


if TYPE_CHECKING:  # (typing is not imported at run time: a protocol only the checker reads)

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

        def install(
            self,
            prefix: Path,
            channels: Sequence[str],
            specs: Sequence[str],
            pinned: Sequence[str],
            locked: Sequence[str],
        ) -> tuple[SolvedRecord, ...]:
            """Solve as :meth:`solve` and install additively; returns the records linked."""
            ...

        def install_locked(
            self, prefix: Path, records: Sequence[LockedRecord]
        ) -> tuple[SolvedRecord, ...]:
            """Link exactly ``records`` (from the lock file; no solve), additively."""
            ...


#: How long the interpreter waits at exit after py-rattler ran an async operation.
SETTLE_SECONDS = 0.1
_SETTLE_REGISTERED: list[bool] = []


def _settle_at_exit() -> None:
    """Let py-rattler's tokio threads finish before the interpreter finalizes.

    A rattler coroutine delivers its result from a tokio thread through
    ``loop.call_soon_threadsafe``; that thread drops its Python references only
    after the main thread has the result. When the process exits right then (a
    failed solve is the last thing an apply does), the thread touches Python
    objects while the interpreter is being finalized, and the process dies with
    SIGSEGV or SIGABRT ("PyGILState_Release ... must be current") instead of exiting
    1 (py-rattler 0.28, about 5% of runs under load). Sleeping briefly at exit, with
    the GIL released, lets the thread finish first (0 crashes in 400 such runs).
    A process that ends without finalizing (:func:`reconciler.entry.finish`, which
    every command ends with) leaves nothing for the thread to touch: it does not wait.
    """
    if not _SETTLE_REGISTERED:
        import atexit

        atexit.register(_settle)
        _SETTLE_REGISTERED.append(True)


def _settle() -> None:
    """The wait of :func:`_settle_at_exit`, unless the interpreter will not be finalized."""
    entry = sys.modules.get("reconciler.entry")
    if getattr(entry, "ENDING_WITHOUT_TEARDOWN", False):
        return
    settle()


def settle() -> None:
    """Wait :data:`SETTLE_SECONDS` if py-rattler ran an async operation in this process."""
    if _SETTLE_REGISTERED:
        import time

        time.sleep(SETTLE_SECONDS)


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


#: A string, compiled by the first failed solve (``re`` keeps it), not at every import.
_LOCKED = r"([A-Za-z0-9_.+-]+)[^\n]*?is locked, but another version is required"


def _load_prefix_records(rattler: Any, prefix: Path, names: Sequence[str] | None) -> list[Any]:
    """Installed PrefixRecords named in ``names`` (all when None)."""
    wanted = None if names is None else set(names)
    records = []
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        stem = path.name[: -len(".json")].rsplit("-", 2)
        if len(stem) == 3 and (wanted is None or stem[0] in wanted):
            records.append(rattler.PrefixRecord.from_path(path))
    return records


def _solved(record: Any) -> SolvedRecord:
    return SolvedRecord(
        record.name.normalized, str(record.version), str(record.build), tuple(record.depends)
    )


def _append_history(
    prefix: Path, added: Sequence[Any], removed: Sequence[Any], specs: Sequence[str]
) -> None:
    """Append a transaction block to ``conda-meta/history`` in conda's format."""
    import time

    if not added and not removed:
        return
    lines = [f"==> {time.strftime('%Y-%m-%d %H:%M:%S')} <==", "# cmd: reconciler apply"]
    lines += [f"-{_history_name(r)}" for r in removed]
    lines += [f"+{_history_name(r)}" for r in added]
    lines.append(f"# update specs: {list(specs)!r}")
    history = prefix / "conda-meta" / "history"
    with history.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def _history_name(record: Any) -> str:
    channel = str(getattr(record, "channel", "") or "").rstrip("/")
    subdir = str(getattr(record, "subdir", "") or "noarch")
    nvb = f"{record.name.normalized}-{record.version}-{record.build}"
    return f"{channel}/{subdir}::{nvb}" if channel else nvb


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
        solution, _ = self._solve(prefix, channels, specs, pinned, locked)
        return solution

    def install(
        self,
        prefix: Path,
        channels: Sequence[str],
        specs: Sequence[str],
        pinned: Sequence[str],
        locked: Sequence[str],
    ) -> tuple[SolvedRecord, ...]:
        """Solve, then link the solution plus every installed record it leaves out.

        ``rattler.install`` makes the prefix equal to the records it is given, so the
        untouched installed records are passed too: nothing is ever removed. A
        history block is appended as conda does, which keeps the image identity
        (the first block) intact.
        """
        solution, solved = self._solve(prefix, channels, specs, pinned, locked)
        if not solution.ok:
            raise BackendError(
                f"conda solve for {prefix} no longer succeeds: {first_lines(solution.message)}",
                hint="the channel or the environment changed since the plan; run plan again",
            )
        return self._link(prefix, solved, specs)

    def install_locked(
        self, prefix: Path, records: Sequence[LockedRecord]
    ) -> tuple[SolvedRecord, ...]:
        """Link exactly the locked records plus every installed record they leave out.

        rattler checks each package file against the record's sha256 (from its cache
        when the file is there, which needs no network); a file that differs or is
        gone fails before anything is linked.
        """
        for record in records:
            _check_local_file(prefix, record)
        rattler = _rattler()
        exact = [_repodata_record(rattler, r) for r in records]
        specs = [f"{r.name} =={r.version} {r.build}" for r in records]
        try:
            return self._link(prefix, exact, specs)
        except BackendError as exc:
            raise BackendError(
                f"the locked conda packages could not be installed into {prefix} (a file is "
                f"gone from the channel and not in rattler's cache, or differs from the lock): "
                f"{exc.message}",
                hint="check the channel, or lock again (`reconciler lock MANIFEST --upgrade`)",
            ) from exc

    def solve_for_lock(
        self,
        prefix: Path,
        channels: Sequence[str],
        specs: Sequence[str],
        pinned: Sequence[str],
        locked: Sequence[str],
        constraints: Sequence[str] = (),
    ) -> tuple[CondaSolution, tuple[LockedRecord, ...]]:
        """Solve as :meth:`solve`, ``constraints`` limiting packages without requesting
        them; every record of the solution as the lock file holds it."""
        solution, solved = self._solve(prefix, channels, specs, pinned, locked, constraints)
        return solution, tuple(_locked_record(r) for r in solved)

    def _link(
        self, prefix: Path, solved: Sequence[Any], specs: Sequence[str]
    ) -> tuple[SolvedRecord, ...]:
        import asyncio

        rattler = _rattler()
        installed = _load_prefix_records(rattler, prefix, None) if prefix.is_dir() else []
        before = {r.name.normalized: r for r in installed}
        names = {r.name.normalized for r in solved}
        union = list(solved) + [r for r in installed if r.name.normalized not in names]
        faults.point("in-conda", after=0.05)
        _settle_at_exit()
        try:
            asyncio.run(rattler.install(union, prefix, show_progress=False))
        except Exception as exc:  # rattler raises its own exception classes
            raise BackendError(
                f"conda install into {prefix} failed: {first_lines(str(exc))}",
                hint="the full error is in the apply log",
            ) from exc
        linked = [
            r
            for r in solved
            if r.name.normalized not in before
            or (str(before[r.name.normalized].version), str(before[r.name.normalized].build))
            != (str(r.version), str(r.build))
        ]
        _append_history(
            prefix,
            linked,
            [before[r.name.normalized] for r in linked if r.name.normalized in before],
            specs,
        )
        return tuple(_solved(r) for r in linked)

    def _solve(
        self,
        prefix: Path,
        channels: Sequence[str],
        specs: Sequence[str],
        pinned: Sequence[str],
        locked: Sequence[str],
        constraints: Sequence[str] = (),
    ) -> tuple[CondaSolution, list[Any]]:
        rattler = _rattler()
        pinned_records = _load_prefix_records(rattler, prefix, pinned) if prefix.is_dir() else []
        locked_records = _load_prefix_records(rattler, prefix, locked) if prefix.is_dir() else []
        platforms = [str(rattler.Subdir.current()), "noarch"]
        import asyncio

        _settle_at_exit()
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
                    constraints=list(constraints) or None,
                )
            )
        except Exception as exc:  # rattler raises its own exception classes
            message = str(exc)
            if "Cannot solve" in message or "cannot be installed" in message or "locked" in message:
                blamed = tuple(dict.fromkeys(m.group(1) for m in re.finditer(_LOCKED, message)))
                return CondaSolution(ok=False, message=message, blamed=blamed), []
            raise BackendError(
                f"conda solve failed: {message.splitlines()[0] if message else type(exc).__name__}",
                hint="check the channels in the manifest are reachable",
            ) from exc
        return CondaSolution(ok=True, records=tuple(_solved(r) for r in solved)), list(solved)


def _locked_record(record: Any) -> LockedRecord:
    from reconciler.lockfile.model import LockedRecord

    noarch = record.noarch
    kind = "python" if noarch.python else "generic" if noarch.generic else None
    return LockedRecord(
        name=record.name.normalized,
        version=str(record.version),
        build=str(record.build),
        build_number=int(record.build_number),
        channel=str(record.channel or ""),
        subdir=str(record.subdir),
        url=str(record.url),
        sha256=record.sha256.hex() if record.sha256 else "",
        noarch=kind,
        depends=tuple(record.depends),
    )


def _check_local_file(prefix: Path, record: LockedRecord) -> None:
    """A ``file://`` package is checked here, before anything is linked; rattler checks
    downloads itself."""
    if not record.url.startswith("file://"):
        return
    import hashlib
    from urllib.parse import unquote, urlsplit

    what = f"{record.name}-{record.version}-{record.build}"
    digest = hashlib.sha256()
    try:
        with open(unquote(urlsplit(record.url).path), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        return  # gone from the channel: rattler's package cache may still hold it
    except OSError as exc:
        raise BackendError(
            f"cannot read the locked conda package {what} at {record.url}: {exc}; "
            f"nothing was installed into {prefix}",
            hint="check the channel's permissions",
        ) from exc
    if digest.hexdigest() != record.sha256:
        raise BackendError(
            f"the file of conda package {what} does not match the sha256 in the lock file; "
            f"nothing was installed into {prefix}",
            hint="if it was republished on purpose, lock it again (`reconciler lock MANIFEST "
            f"--upgrade-package {record.name}`); otherwise check the channel",
        )


def _repodata_record(rattler: Any, record: LockedRecord) -> Any:
    package = rattler.PackageRecord(
        name=record.name,
        version=record.version,
        build=rattler.BuildString(record.build),
        build_number=record.build_number,
        subdir=record.subdir,
        noarch=record.noarch,
        depends=list(record.depends),
        sha256=bytes.fromhex(record.sha256),
    )
    file_name = record.url.rsplit("/", 1)[-1]
    return rattler.RepoDataRecord(package, file_name, record.url, record.channel)


def _channel(rattler: Any, name: str) -> Any:
    return rattler.Channel(name)


def _timedelta(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)
