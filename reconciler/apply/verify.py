"""Verify after an install: every planned change happened, and nothing protected moved.

Versions are compared on the state re-read after the installers ran. Files too: a
managed or foreign distribution whose RECORD lists a file that an installed wheel
also lists, and whose content no longer has the recorded hash, was overwritten
(:func:`reconciler.state.files.changed_files`).

Which protected RECORDs list one of the written paths is the costly part: an image
has hundreds of distributions and tens of megabytes of RECORDs, and parsing every
row of each costs more than the installer. :func:`overwritten` parses in full, with
the same code as before, only the RECORDs whose row heads
(:mod:`reconciler.apply.record_heads`: kept by file stamp in the state dir, read
ahead while the installer runs) include one of the written paths' heads, or that
cannot be split into rows with certainty: the answer is the same.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Collection, Iterable
from pathlib import Path

from reconciler.apply.record_heads import RecordHeads, row_heads, simple_head
from reconciler.errors import ReconcilerError
from reconciler.plan.model import UNRESOLVED, EnvironmentPlan
from reconciler.plan.planner import EnvironmentInputs
from reconciler.plan.policy import OWNED
from reconciler.state.environment import InstalledState
from reconciler.state.files import changed_files, hashed_entries
from reconciler.state.python import Distribution

__all__ = ["RecordScan", "overwritten", "verify"]


def verify(
    env_plan: EnvironmentPlan,
    item: EnvironmentInputs,
    after: InstalledState,
    heads: RecordHeads | None = None,
    ahead: RecordScan | None = None,
) -> None:
    """Every planned change happened; no managed or foreign package moved.

    ``heads``: the row heads of RECORDs kept so far; ``ahead``: their read-ahead while
    the install ran (:class:`RecordScan`), waited for. The answer is the same without."""
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
    problems += _overwritten_files(env_plan, item, after, heads, ahead)
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
    heads: RecordHeads | None,
    ahead: RecordScan | None,
) -> list[str]:
    """Managed and foreign files that the installed wheels overwrote (their RECORD hash)."""
    moved = _moved(env_plan)
    written = [after.dists[n] for n in moved if n in after.dists]
    packages = item.state.packages()
    return [
        f"{path} of {item.ownership.status(packages[item.state.package_for_dist(d.name)])} "
        f"{d.display_name} {d.version} was overwritten"
        for d, path in overwritten(after, written, _protected(item, moved), heads, ahead)
    ]


class RecordScan:
    """The row heads of the protected RECORDs, read into a :class:`RecordHeads` in a
    thread while the installer runs (what is kept already is only stat'ed)."""

    def __init__(self, heads: RecordHeads, site: str, directories: Iterable[str]) -> None:
        self._heads = heads
        self._site = site
        self._directories = tuple(directories)
        self._thread: threading.Thread | None = None

    @classmethod
    def start(
        cls, env_plan: EnvironmentPlan, item: EnvironmentInputs, heads: RecordHeads
    ) -> RecordScan | None:
        """Start reading the RECORDs that verifying ``env_plan``'s pip writes asks about;
        None when there are none."""
        site = item.state.site_packages
        protected = _protected(item, _moved(env_plan))
        directories = [d.directory for d in protected if _record_file(site, d) is not None]
        if site is None or not directories:
            return None
        scan = cls(heads, str(site), directories)
        scan._thread = threading.Thread(target=scan._run, name="record-scan", daemon=True)
        scan._thread.start()
        return scan

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # a RECORD not read ahead is read after
            self._heads.warm(self._site, self._directories)

    def wait(self) -> None:
        """Until the read-ahead is over."""
        if self._thread is not None:
            self._thread.join()


def overwritten(
    state: InstalledState,
    written_by: Iterable[Distribution],
    protected: Iterable[Distribution],
    heads: RecordHeads | None = None,
    ahead: RecordScan | None = None,
) -> list[tuple[Distribution, str]]:
    """``(protected distribution, shown path)`` for each file that one of ``written_by``
    (just installed) also lists and that no longer has the protected RECORD's hash.

    The answer of :func:`reconciler.state.files.overwritten`, which parses every
    protected RECORD; here only those whose row heads (``heads``, after the read-ahead
    ``ahead``) include a written path's head, or that have no certain heads."""
    written = {path for dist in written_by for path, _, _ in hashed_entries(state, dist)}
    if not written:
        return []
    wanted = row_heads(written)
    if ahead is not None:
        ahead.wait()  # its answers are in ``heads``: a RECORD is not read twice at once
    known = heads if heads is not None else RecordHeads(None)
    site = str(state.site_packages)
    simple = all(simple_head(h) for h in wanted)

    def may_list(dist: Distribution) -> bool:
        if _record_file(state.site_packages, dist) is None:
            return False  # hashed_entries reads nothing
        if not simple:
            return True
        found = known.of(site, dist.directory)
        return found is None or not found.isdisjoint(wanted)

    return [
        (d, path) for d in protected if may_list(d) for path in changed_files(state, d, written)
    ]


def _record_file(site: Path | None, dist: Distribution) -> str | None:
    """The RECORD that :func:`hashed_entries` reads for ``dist``; None when it reads none."""
    if site is None or dist.system_site or not dist.directory.endswith(".dist-info"):
        return None
    return f"{site}{os.sep}{dist.directory}{os.sep}RECORD"
