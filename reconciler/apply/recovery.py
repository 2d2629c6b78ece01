"""Recovery from a killed apply: what it installed as planned becomes owned.

A journal left ``running`` means the apply that wrote it was killed (the lock is
held now, so it is not running). The next apply reports it and adopts what the
killed one had installed exactly as planned, then converges as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reconciler.apply.journal import Journal
from reconciler.apply.report import Reporter
from reconciler.manifest.model import Environment
from reconciler.plan.model import UNRESOLVED, Change
from reconciler.state.environment import read_state
from reconciler.state.store import Owned, OwnedPackage, StateStore

__all__ = ["adopt", "recover"]


def recover(env: Environment, store: StateStore, reporter: Reporter) -> None:
    """A journal left running by a killed apply: adopt what it installed as intended."""
    journal = Journal(store.env_dir(env.prefix))
    entry = journal.read()
    if entry is None or entry.status != "running":
        return
    reporter.notice(
        f"{env.name}: the apply started {entry.started_at} (pid {entry.pid}) did not finish "
        f"(last step: {entry.step or 'before installing'}); re-reading {env.prefix} and "
        "converging"
    )
    adopt(store, env.prefix, entry.changes)
    journal.update(entry, status="interrupted")


def adopt(store: StateStore, prefix: Path, changes: Sequence[Change]) -> None:
    """Record as owned what an unfinished apply installed exactly as it had planned."""
    state = read_state(prefix)
    owned = store.owned(prefix)
    adopted = dict(owned.packages)
    packages = state.packages()
    for change in changes:
        if change.refused or change.action not in ("install", "upgrade", "downgrade", "reinstall"):
            continue
        key = state.package_for_change(change.manager, change.name)
        pkg = packages.get(key)
        if pkg is not None and (change.reason == UNRESOLVED or change.to_version == pkg.version):
            adopted[key] = OwnedPackage(pkg.name, pkg.manager, pkg.version)
    if adopted != dict(owned.packages):
        store.save_owned(prefix, Owned(adopted))
