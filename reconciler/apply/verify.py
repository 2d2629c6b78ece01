"""Verify after an install: every planned change happened, and nothing protected moved.

Versions are compared on the state re-read after the installers ran. Files too: a
managed or foreign distribution whose RECORD lists a file that an installed wheel
also lists, and whose content no longer has the recorded hash, was overwritten
(:func:`reconciler.state.files.changed_files`).

Which protected RECORDs list one of the written paths is the costly part: an image
has hundreds of distributions and tens of megabytes of RECORDs, and parsing every
row of each costs more than the installer. :func:`overwritten` asks the same
question of each RECORD in one C-level pass first (a regular expression anchored at
the start of each row), and parses in full, with the same code as before, only the
RECORDs that may list such a path, or whose text that pass cannot read with
certainty (quoted rows, line breaks other than ``\\n``): the answer is the same.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.plan.model import UNRESOLVED, EnvironmentPlan
from reconciler.plan.planner import EnvironmentInputs
from reconciler.plan.policy import OWNED
from reconciler.state.environment import InstalledState
from reconciler.state.files import changed_files, hashed_entries
from reconciler.state.python import Distribution

__all__ = ["RecordScan", "overwritten", "verify"]

_WRITES = ("install", "upgrade", "downgrade", "reinstall")

#: Bytes of the characters after which ``str.splitlines`` (which RECORD parsing uses)
#: starts a row, besides ``\n``: a RECORD holding one is parsed in full. The text is
#: read with universal newlines, so ``\r`` counts too unless it is part of ``\r\n``.
#: A double quote means quoted (csv) rows. The non-ASCII ones are looked for only in
#: a RECORD that is not all ASCII (a search for them is slow, and rarely needed).
_UNSURE = (b'"', b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")
_UNSURE_NON_ASCII = tuple(c.encode() for c in "\x85\u2028\u2029")
#: Beyond this many row heads, one pass per RECORD is no cheaper than parsing it.
_MAX_HEADS = 256


def verify(
    env_plan: EnvironmentPlan,
    item: EnvironmentInputs,
    after: InstalledState,
    ahead: RecordScan | None = None,
) -> None:
    """Every planned change happened; no managed or foreign package moved.

    ``ahead``: the protected RECORDs read while the install ran (:class:`RecordScan`);
    the answer is the same with or without it."""
    problems: list[str] = []
    packages_after = after.packages()
    for key, pkg in item.state.packages().items():
        if item.ownership.status(pkg) == OWNED:
            continue
        now = packages_after.get(key)
        if now is None:
            problems.append(f"{pkg.name} {pkg.version} was removed")
        elif (now.version, now.build) != (pkg.version, pkg.build):
            problems.append(f"{pkg.name} moved from {pkg.version} to {now.version}")
    for change in env_plan.changes:
        if change.refused or change.action in ("create", "register-kernel", "remove"):
            continue
        if change.manager == "conda":
            record = after.conda.get(change.name)
            found = record.version if record else None
        else:
            dist = after.dists.get(change.name)
            found = dist.version if dist else None
        resolved = change.reason != UNRESOLVED
        if found is None or (resolved and change.to_version and found != change.to_version):
            problems.append(
                f"{change.manager} {change.name} should be {change.to_version or 'installed'}, "
                f"found {found or 'nothing'}"
            )
    problems += _overwritten_files(env_plan, item, after, ahead)
    if problems:
        raise ReconcilerError(
            f"verification of {item.env.name} ({item.env.prefix}) failed: " + "; ".join(problems),
            hint="see the apply log; `reconciler drift` shows the environment's state",
        )


def _moved(env_plan: EnvironmentPlan) -> set[str]:
    """The pip distributions the plan installs or moves (their files are written)."""
    return {
        c.name
        for c in env_plan.changes
        if c.manager == "pip" and not c.refused and c.action not in ("create", "register-kernel")
    }


def _protected(item: EnvironmentInputs, moved: Collection[str]) -> list[Distribution]:
    """The managed and foreign distributions, which no install may overwrite."""
    packages = item.state.packages()
    return [
        d
        for d in item.state.dists.values()
        if d.name not in moved
        and item.ownership.status(packages[item.state.package_for_dist(d.name)]) != OWNED
    ]


def _overwritten_files(
    env_plan: EnvironmentPlan,
    item: EnvironmentInputs,
    after: InstalledState,
    ahead: RecordScan | None = None,
) -> list[str]:
    """Managed and foreign files that the installed wheels overwrote (their RECORD hash)."""
    moved = _moved(env_plan)
    written = [after.dists[n] for n in moved if n in after.dists]
    packages = item.state.packages()
    return [
        f"{path} of {item.ownership.status(packages[item.state.package_for_dist(d.name)])} "
        f"{d.display_name} {d.version} was overwritten"
        for d, path in overwritten(after, written, _protected(item, moved), ahead)
    ]


class RecordScan:
    """Which protected RECORDs may list a row starting with one of the heads of the
    paths the planned wheels write, read in a thread while the installer runs.

    Verification uses a RECORD's answer only when the paths actually written have no
    other heads and the file's stat (device, inode, size, mtime, ctime) is what it was
    when it was read, with mtime and ctime older than the read by :data:`SLACK_NS`: a
    change made since would have given it a newer ctime (the kernel's file clock lags
    the wall clock by less than a tick), so the bytes read are the bytes there now.
    Any other RECORD is read after the install, as without a scan.
    """

    #: How much older than the read a RECORD's mtime and ctime must be to be trusted.
    SLACK_NS = 50_000_000

    def __init__(
        self, state: InstalledState, protected: Iterable[Distribution], paths: Collection[str]
    ) -> None:
        self.heads = _row_heads(paths)
        self._site = state.site_packages
        self._protected = tuple(protected)
        self._found: dict[str, tuple[tuple[int, ...], bool]] = {}
        self._thread: threading.Thread | None = None

    @classmethod
    def start(
        cls, env_plan: EnvironmentPlan, item: EnvironmentInputs, wheels: object
    ) -> RecordScan | None:
        """Start reading ahead for the pip writes of ``env_plan``, with the paths the
        plan's clash check found in each wheel (``wheels.answered``: nothing is read
        here); None when one is unknown, or there is nothing to read ahead."""
        answered = getattr(wheels, "answered", None)
        site = item.state.site_packages
        if answered is None or site is None:
            return None
        from reconciler.plan.clashes import install_paths

        python = item.env.prefix / "bin" / "python"
        prefix = str(item.env.prefix)
        site_rel = os.path.relpath(site, prefix)
        paths: set[str] = set()
        for change in env_plan.changes:
            if change.manager != "pip" or change.refused or change.action not in _WRITES:
                continue
            rows = None
            if change.to_version:
                rows = answered(python, change.name, change.to_version, item.env.pip_settings)
            if rows is None:
                return None
            # As an installed RECORD lists them: relative to site-packages.
            paths.update(
                os.path.relpath(os.path.join(prefix, target), site)
                for target, _, _ in install_paths(rows, site_rel, item.state.python_version)
            )
        scan = cls(item.state, _protected(item, _moved(env_plan)), paths)
        return scan if scan.begin() else None

    def begin(self) -> bool:
        """Start the thread; False (no scan) when there is nothing to search for, or too
        much (then every RECORD is parsed in full anyway)."""
        if not self.heads or len(self.heads) > _MAX_HEADS or self._site is None:
            return False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # a RECORD not read ahead is read after
            self._read_ahead()

    def _read_ahead(self) -> None:
        finder = _finder(self.heads)
        newest = time.time_ns() - self.SLACK_NS
        for dist in self._protected:
            path = _record_file(self._site, dist)
            if path is None:
                continue
            try:
                with open(path, "rb", buffering=0) as f:
                    st = os.fstat(f.fileno())
                    data = f.read()
            except OSError:
                continue
            if st.st_mtime_ns < newest and st.st_ctime_ns < newest:
                self._found[path] = (_identity(st), _may_list_data(data, self.heads, finder))

    def answers(self, heads: Collection[bytes]) -> dict[str, tuple[tuple[int, ...], bool]]:
        """Wait for the scan; its answers by RECORD path, if ``heads`` are among its own
        (else none: a scan for fewer heads cannot rule a RECORD out)."""
        if self._thread is not None:
            self._thread.join()
        return self._found if set(heads) <= set(self.heads) else {}


def overwritten(
    state: InstalledState,
    written_by: Iterable[Distribution],
    protected: Iterable[Distribution],
    ahead: RecordScan | None = None,
) -> list[tuple[Distribution, str]]:
    """``(protected distribution, shown path)`` for each file that one of ``written_by``
    (just installed) also lists and that no longer has the protected RECORD's hash.

    The answer of :func:`reconciler.state.files.overwritten`, which parses every
    protected RECORD; here only those that :func:`_may_list` (or the same test made
    ahead, ``ahead``, on the same bytes) cannot rule out."""
    written = {path for dist in written_by for path, _, _ in hashed_entries(state, dist)}
    if not written:
        return []
    heads = _row_heads(written)
    finder = _finder(heads) if len(heads) <= _MAX_HEADS else None
    known = ahead.answers(heads) if ahead is not None and finder is not None else {}

    def may_list(dist: Distribution) -> bool:
        assert finder is not None
        path = _record_file(state.site_packages, dist) if known else None
        if path is not None and path in known:
            identity, answer = known[path]
            try:
                if _identity(os.stat(path)) == identity:
                    return answer
            except OSError:
                pass
        return _may_list(state, dist, heads, finder)

    return [
        (d, path)
        for d in protected
        if finder is None or may_list(d)
        for path in changed_files(state, d, written)
    ]


def _row_heads(paths: Collection[str]) -> tuple[bytes, ...]:
    """Text that a RECORD row listing one of ``paths`` starts with: the row is
    ``path,sha256=...``, so its start is the path's first directory with its slash
    (``pkg/``), or, for a file at the top or outside site-packages, the whole path and
    the comma (``six.py,``, ``../../../bin/tool,``)."""
    heads = set()
    for path in paths:
        first, slash, _ = path.partition("/")
        heads.add(f"{first}/" if slash and first != ".." else f"{path},")
    return tuple(sorted(h.encode() for h in heads))


def _finder(heads: Sequence[bytes]) -> re.Pattern[bytes]:
    """Finds a row after the first that starts with one of ``heads``."""
    return re.compile(b"\n(?:" + b"|".join(re.escape(h) for h in heads) + b")")


def _may_list(
    state: InstalledState, dist: Distribution, heads: tuple[bytes, ...], finder: re.Pattern[bytes]
) -> bool:
    """False only when ``dist``'s RECORD surely has no row that one of ``heads`` begins
    (nor a hashed row at all: :func:`hashed_entries` would yield nothing)."""
    path = _record_file(state.site_packages, dist)
    if path is None:
        return False
    try:
        with open(path, "rb", buffering=0) as f:
            data = f.read()
    except OSError:
        return False  # hashed_entries reads nothing either
    return _may_list_data(data, heads, finder)


def _record_file(site: Path | None, dist: Distribution) -> str | None:
    """The RECORD that :func:`hashed_entries` reads for ``dist``; None when it reads none."""
    if site is None or dist.system_site or not dist.directory.endswith(".dist-info"):
        return None
    return f"{site}{os.sep}{dist.directory}{os.sep}RECORD"


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _may_list_data(data: bytes, heads: tuple[bytes, ...], finder: re.Pattern[bytes]) -> bool:
    """:func:`_may_list` of a RECORD's bytes. The bytes are searched as read (UTF-8 text
    searched as UTF-8): decoding them, as the full parse does, costs as much as the search."""
    if any(c in data for c in _UNSURE):
        return True
    if not data.isascii() and any(c in data for c in _UNSURE_NON_ASCII):
        return True
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return True
    return data.startswith(heads) or finder.search(data) is not None
