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

import os
import re
from collections.abc import Collection, Iterable, Sequence

from reconciler.errors import ReconcilerError
from reconciler.plan.model import UNRESOLVED, EnvironmentPlan
from reconciler.plan.planner import EnvironmentInputs
from reconciler.plan.policy import OWNED
from reconciler.state.environment import InstalledState
from reconciler.state.files import changed_files, hashed_entries
from reconciler.state.python import Distribution

__all__ = ["overwritten", "verify"]

#: Bytes of the characters after which ``str.splitlines`` (which RECORD parsing uses)
#: starts a row, besides ``\n``: a RECORD holding one is parsed in full. The text is
#: read with universal newlines, so ``\r`` counts too unless it is part of ``\r\n``.
#: A double quote means quoted (csv) rows. The non-ASCII ones are looked for only in
#: a RECORD that is not all ASCII (a search for them is slow, and rarely needed).
_UNSURE = (b'"', b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")
_UNSURE_NON_ASCII = tuple(c.encode() for c in "\x85\u2028\u2029")
#: Beyond this many row heads, one pass per RECORD is no cheaper than parsing it.
_MAX_HEADS = 256


def verify(env_plan: EnvironmentPlan, item: EnvironmentInputs, after: InstalledState) -> None:
    """Every planned change happened; no managed or foreign package moved."""
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
    problems += _overwritten_files(env_plan, item, after)
    if problems:
        raise ReconcilerError(
            f"verification of {item.env.name} ({item.env.prefix}) failed: " + "; ".join(problems),
            hint="see the apply log; `reconciler drift` shows the environment's state",
        )


def _overwritten_files(
    env_plan: EnvironmentPlan, item: EnvironmentInputs, after: InstalledState
) -> list[str]:
    """Managed and foreign files that the installed wheels overwrote (their RECORD hash)."""
    moved = {
        c.name
        for c in env_plan.changes
        if c.manager == "pip" and not c.refused and c.action not in ("create", "register-kernel")
    }
    written = [after.dists[n] for n in moved if n in after.dists]
    packages = item.state.packages()
    protected = {
        d.name: d
        for d in item.state.dists.values()
        if d.name not in moved
        and item.ownership.status(packages[item.state.package_for_dist(d.name)]) != OWNED
    }
    return [
        f"{path} of {item.ownership.status(packages[item.state.package_for_dist(d.name)])} "
        f"{d.display_name} {d.version} was overwritten"
        for d, path in overwritten(after, written, protected.values())
    ]


def overwritten(
    state: InstalledState, written_by: Iterable[Distribution], protected: Iterable[Distribution]
) -> list[tuple[Distribution, str]]:
    """``(protected distribution, shown path)`` for each file that one of ``written_by``
    (just installed) also lists and that no longer has the protected RECORD's hash.

    The answer of :func:`reconciler.state.files.overwritten`, which parses every
    protected RECORD; here only those that :func:`_may_list` cannot rule out."""
    written = {path for dist in written_by for path, _, _ in hashed_entries(state, dist)}
    if not written:
        return []
    heads = _row_heads(written)
    finder = _finder(heads) if len(heads) <= _MAX_HEADS else None
    return [
        (d, path)
        for d in protected
        if finder is None or _may_list(state, d, heads, finder)
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
    (nor a hashed row at all: :func:`hashed_entries` would yield nothing).

    The bytes are searched as read (UTF-8 text searched as UTF-8): decoding them, as the
    full parse does, costs as much as the search."""
    site = state.site_packages
    if site is None or dist.system_site or not dist.directory.endswith(".dist-info"):
        return False
    try:
        with open(f"{site}{os.sep}{dist.directory}{os.sep}RECORD", "rb", buffering=0) as f:
            data = f.read()
    except OSError:
        return False  # hashed_entries reads nothing either
    if any(c in data for c in _UNSURE):
        return True
    if not data.isascii() and any(c in data for c in _UNSURE_NON_ASCII):
        return True
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return True
    return data.startswith(heads) or finder.search(data) is not None
