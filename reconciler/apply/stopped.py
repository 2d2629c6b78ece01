"""What an interrupted ``add`` left behind, said as a person reads it (Ctrl-C, a stop button).

The stop button of a notebook interrupts the kernel's process group: reconciler and
the installer it runs both get SIGINT. The installer dies of it (its half-done files
are removed again, see :mod:`reconciler.backends.pip_failures`), the apply records
the failure in the environment's journal, and ``add`` writes the manifest only
after a successful apply. Which of these had happened when the interrupt came is
not guessed: :class:`Before` is taken before the ``add`` starts, and
:func:`stopped_text` compares it with what is there now.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.apply.journal import Journal, JournalEntry
from reconciler.errors import ReconcilerError
from reconciler.state.python import find_site_packages
from reconciler.values import value

__all__ = ["Before", "stopped_text"]

_INSTALLS = ("install", "upgrade", "downgrade", "reinstall")


def _listings(prefix: Path) -> tuple[tuple[str, ...], ...]:
    """The names in ``conda-meta`` and ``site-packages``: a package installed, removed or
    moved renames or adds one (as the no-op fast path's stamp relies on)."""
    site, _ = find_site_packages(prefix)
    out: list[tuple[str, ...]] = []
    for directory in (prefix / "conda-meta", site):
        try:
            out.append(tuple(sorted(os.listdir(directory))) if directory else ())
        except OSError:
            out.append(("<missing>",))
    return tuple(out)


@value
class Before:
    """The manifest's bytes, the environment's journal entry and package listings
    before an ``add``."""

    manifest: Path
    manifest_bytes: bytes | None
    prefix: Path
    journal: Journal
    entry: JournalEntry | None
    listings: tuple[tuple[str, ...], ...]

    @classmethod
    def take(cls, manifest: Path, prefix: Path, state_dir: Path) -> Before:
        """Read it now (an unreadable journal counts as none: the apply will say so)."""
        journal = Journal(state_dir)
        try:
            entry = journal.read()
        except ReconcilerError:
            entry = None
        try:
            data: bytes | None = manifest.read_bytes()
        except OSError:
            data = None
        return cls(manifest, data, prefix, journal, entry, _listings(prefix))


def stopped_text(before: Before) -> str:
    """What an interrupted ``add`` changed: the manifest, and the environment as its
    journal and its packages now show it. One line, after ``interrupted: ``."""
    try:
        wrote = before.manifest.read_bytes() != before.manifest_bytes
    except OSError:
        wrote = before.manifest_bytes is not None
    head = (
        f"{before.manifest} was written" if wrote else f"nothing was written to {before.manifest}"
    )
    prefix = before.prefix
    try:
        entry = before.journal.read()
    except ReconcilerError as exc:
        return f"{head}; {exc.message}"
    if entry is None or entry == before.entry:
        return f"{head}; nothing was installed into {prefix}"
    if entry.status == "done":
        finished = f"{head}; the install into {prefix} had finished and was verified"
        return (
            finished if wrote else finished + ": the same add again writes it, installing nothing"
        )
    recorded = f"the journal {before.journal.path} records it as {entry.status}"
    if _listings(prefix) == before.listings:
        return (
            f"{head}; the install into {prefix} was stopped before it changed a package: "
            f"the environment is as it was ({recorded})"
        )
    from reconciler.state.environment import read_state

    state = read_state(prefix)
    packages = state.packages()
    done, moved = [], []
    for change in entry.changes:
        if change.refused or change.action not in _INSTALLS:
            continue
        key = state.package_for_change(change.manager, change.name)
        pkg = packages.get(key)
        now = pkg.version if pkg is not None else None
        if now == change.to_version:
            done.append(f"{change.name} {now}")
        elif now != change.from_version:
            moved.append(f"{change.name} {change.from_version or '(none)'} -> {now or '(none)'}")
    parts = [f"installed before it stopped: {', '.join(done)}"] if done else []
    parts += [f"left part way: {', '.join(moved)}"] if moved else []
    return (
        f"{head}; the install into {prefix} was stopped part way"
        + (f" ({'; '.join(parts)})" if parts else "")
        + f"; `reconciler drift` shows the environment, and the same add again finishes "
        f"it ({recorded})"
    )
