"""``reconciler lock``: write the lock file beside the manifest.

Only environments whose entry is stale (or missing) are resolved again, unless
``--upgrade`` (all selected environments, no preferences) or
``--upgrade-package NAME`` (the selected environments that lock or declare
NAME, keeping every other locked version that still fits). The file is written
atomically, and only when its text changes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.lockfile.fresh import read_lock, staleness
from reconciler.lockfile.model import LockedEnvironment, LockFile, dumps, lock_path
from reconciler.lockfile.resolve import Upgrade, resolve_environment
from reconciler.manifest.model import Manifest
from reconciler.names import canonical_name
from reconciler.plan.planner import forget_index_reads, read_inputs, requested_names
from reconciler.state.environment import image_identity
from reconciler.state.store import StateStore
from reconciler.values import value

__all__ = ["LockOutcome", "LockResult", "embedded_lock", "upgrade_from_args", "write_lock"]


@value
class LockOutcome:
    """What ``lock`` did for one environment: ``locked``, ``unchanged`` or ``skipped``."""

    name: str
    status: str
    detail: str = ""


@value
class LockResult:
    """The lock file's path, whether its text changed, and each environment's outcome."""

    path: Path
    written: bool
    outcomes: tuple[LockOutcome, ...]

    def text(self, *, quiet: bool = False) -> str:
        """``name: status (why)`` a line, then ``Wrote PATH`` / ``Unchanged: PATH``."""
        lines = [] if quiet else [
            f"{o.name}: {o.status}" + (f" ({o.detail})" if o.detail else "") for o in self.outcomes
        ]  # fmt: skip
        lines.append(f"{'Wrote' if self.written else 'Unchanged:'} {self.path}")
        return "\n".join(lines)


def _mentions(env: LockedEnvironment | None, names: frozenset[str]) -> bool:
    if env is None:
        return False
    return bool(names & ({w.name for w in env.pip} | {r.name for r in env.conda}))


def write_lock(
    manifest: Manifest, store: StateStore, names: Sequence[str], upgrade: Upgrade
) -> LockResult:
    """Lock the selected environments (all when ``names`` is empty); see module docstring."""
    forget_index_reads()  # a lock resolves afresh: no index page an earlier run read
    path = lock_path(manifest.path)
    previous = read_lock(path)
    old = dict(previous.environments) if previous is not None else {}
    inputs = read_inputs(manifest, store, names)
    if upgrade.names:
        known: set[str] = set()
        for item in inputs:
            known |= requested_names(item.env)
            entry = old.get(item.env.name)
            if entry is not None:
                known |= {w.name for w in entry.pip} | {r.name for r in entry.conda}
        unknown = sorted(n for n in upgrade.names if n not in known)
        if unknown:
            raise ReconcilerError(
                f"--upgrade-package: {', '.join(unknown)} is neither declared nor locked in "
                f"the selected environments of {manifest.path.name}",
                hint="name a package of the manifest or of the lock file",
            )
    environments = {} if not names else dict(old)
    outcomes: list[LockOutcome] = []
    for item in inputs:
        env = item.env
        entry = old.get(env.name)
        if not item.state.exists:
            if names:
                resolve_environment(item, entry, upgrade)  # raises: it does not exist
            outcomes.append(LockOutcome(env.name, "skipped", f"{env.prefix} does not exist yet"))
            if entry is not None:
                environments[env.name] = entry
            continue
        why = staleness(entry, env, item.state, item.ownership, image_identity(env.prefix))
        wanted = upgrade.everything or (
            upgrade.names
            and (_mentions(entry, upgrade.names) or upgrade.names & requested_names(env))
        )
        if why is None and not wanted and entry is not None:
            environments[env.name] = entry
            outcomes.append(LockOutcome(env.name, "unchanged"))
            continue
        environments[env.name] = resolve_environment(item, entry, upgrade, store.root / "cache")
        changed = environments[env.name] != entry
        detail = why or ("upgraded" if wanted else "")
        outcomes.append(LockOutcome(env.name, "locked" if changed else "unchanged", detail))
    text = dumps(LockFile(path, manifest.path.name, environments))
    written = _write_if_changed(path, text)
    return LockResult(path, written, tuple(outcomes))


def _write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def upgrade_from_args(everything: bool, packages: Sequence[str]) -> Upgrade:
    """``--upgrade`` / ``--upgrade-package NAME...`` as an :class:`Upgrade`."""
    return Upgrade(everything, frozenset(canonical_name(p) for p in packages))


def embedded_lock(manifest: Path, *, embed: bool, locked: bool) -> str | None:
    """The lock file's text for ``lifecycle`` to embed beside the manifest (None: there is
    none, or the script reads both from the home volume). It must validate."""
    path = lock_path(manifest)
    if not embed:
        return None
    if not path.is_file():
        if locked:
            raise ReconcilerError(
                f"--locked: there is no lock file {path.name} beside {manifest.name}",
                hint=f"run `reconciler lock {manifest.name}` first",
            )
        return None
    read_lock(path)  # refuse to embed a lock file that does not validate
    return path.read_text(encoding="utf-8")
