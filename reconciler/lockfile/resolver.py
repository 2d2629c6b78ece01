"""The ``LockedResolver``: an environment's pip and conda sides answered from its lock.

When the lock holds for an environment (:func:`reconciler.lockfile.fresh.staleness`),
no resolver preview runs: the plan is the difference between the locked overlay
and what is installed, classified by the same policy as a resolved plan (a
locked version that would move a managed or foreign package is refused).
:func:`use_lock` attaches a resolver to each environment whose lock holds, and
a notice to each whose lock does not (or, with ``required``, refuses).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.backends.conda import SolvedRecord
from reconciler.backends.pip import Resolved
from reconciler.errors import ReconcilerError, StalePlanError
from reconciler.lockfile.fresh import read_lock, staleness
from reconciler.lockfile.model import LockedEnvironment, LockedRecord, LockedWheel, lock_path
from reconciler.manifest.model import Manifest, PipSettings
from reconciler.plan.clashes import refuse_clashes
from reconciler.plan.conda_side import CondaSidePlan
from reconciler.plan.conda_side import _classify as classify_conda
from reconciler.plan.model import Plan
from reconciler.plan.pip_side import PipSidePlan
from reconciler.plan.pip_side import _classify as classify_pip
from reconciler.plan.planner import EnvironmentInputs
from reconciler.plan.policy import Ownership
from reconciler.state.environment import InstalledState, image_identity
from reconciler.values import replace, value

if TYPE_CHECKING:
    from reconciler.backends.wheels import RecordEntry
    from reconciler.plan.clashes import WheelContents

__all__ = ["LockedResolver", "StaleLockError", "check_saved_locked", "use_lock"]


class StaleLockError(ReconcilerError):
    """``--locked``: the lock file is missing or does not hold for an environment."""


@value
class LockedResolver:
    """Plans one environment from its fresh lock entry (``lock_name``: ``team.lock``)."""

    locked: LockedEnvironment
    lock_name: str

    def pip_side(
        self,
        state: InstalledState,
        ownership: Ownership,
        requested: Mapping[str, str],
        wheels: WheelContents | None,
        settings: PipSettings,
    ) -> tuple[PipSidePlan, tuple[str, ...]]:
        """The pip changes, and the requirement lines (with hashes) that install them.

        ``requested``: canonical name -> requirement text of the manifest's requests.
        The file-clash check runs as on a resolved plan, reading each locked wheel's
        RECORD from the cache by its sha256 first (no network on a restore).
        """
        moving = [w for w in self.locked.pip if _pip_differs(state, w)]
        satisfied = tuple(
            f"{w.name}=={w.version}" for w in self.locked.pip if not _pip_differs(state, w)
        )
        changes = classify_pip(
            state,
            state.packages(),
            ownership,
            [Resolved(w.name, w.version) for w in moving],
            requested,
        )
        if wheels is not None and moving:
            contents = _LockedContents({(w.name, w.version): w for w in moving}, wheels)
            changes = refuse_clashes(state, ownership, changes, contents, settings)
        constraints = ownership.pip_pins(state) if moving else ()
        plan = PipSidePlan(tuple(changes), satisfied, (), constraints, False)
        return plan, tuple(w.requirement_line() for w in moving)

    def conda_side(
        self, state: InstalledState, ownership: Ownership, requested: set[str]
    ) -> tuple[CondaSidePlan, tuple[LockedRecord, ...]]:
        """The conda changes, and the exact records that make them."""
        moving = [r for r in self.locked.conda if _conda_differs(state, r)]
        satisfied = tuple(
            f"{r.name}=={r.version}={r.build}"
            for r in self.locked.conda
            if not _conda_differs(state, r)
        )
        records = [SolvedRecord(r.name, r.version, r.build, r.depends) for r in moving]
        changes = classify_conda(state, ownership, records, requested, {})
        pinned = ownership.conda_pins(state) if moving else ()
        return CondaSidePlan(tuple(changes), satisfied, (), pinned, False), tuple(moving)


class _LockedContents:
    """RECORDs of locked wheels: from the records cache by sha256 when it holds them,
    else from the plan's own :class:`~reconciler.plan.clashes.WheelContents`."""

    def __init__(self, locked: Mapping[tuple[str, str], LockedWheel], real: WheelContents) -> None:
        self._locked = locked
        self._real = real
        self._cache_dir: Path | None = getattr(real, "cache_dir", None)

    def record(
        self, python: Path, name: str, version: str, settings: PipSettings
    ) -> Sequence[RecordEntry] | None:
        if self.local(name, version):
            from reconciler.backends.wheel_records import WheelFile, read_record

            wheel = self._locked[(name, version)]
            found = WheelFile(name, version, wheel.filename, "", wheel.sha256, wheel.source)
            return read_record(found, self._cache_dir)
        return self._real.record(python, name, version, settings)

    def local(self, name: str, version: str) -> bool:
        """Is the locked wheel's RECORD in the records cache (read without the network)?"""
        wheel = self._locked.get((name, version))
        if wheel is None or self._cache_dir is None:
            return False
        from reconciler.backends.wheel_records import record_cache_file

        return record_cache_file(self._cache_dir, wheel.sha256).is_file()


def _pip_differs(state: InstalledState, wheel: LockedWheel) -> bool:
    dist = state.dists.get(wheel.name)
    return dist is None or dist.system_site or dist.version != wheel.version


def _conda_differs(state: InstalledState, record: LockedRecord) -> bool:
    installed = state.conda.get(record.name)
    return installed is None or (installed.version, installed.build) != (
        record.version,
        record.build,
    )


def use_lock(
    manifest: Manifest, inputs: Sequence[EnvironmentInputs], *, required: bool = False
) -> list[EnvironmentInputs]:
    """Attach a :class:`LockedResolver` to each environment whose lock holds.

    Without a lock file nothing changes (unless ``required``). An environment whose
    lock does not hold gets a notice and is resolved afresh; with ``required``
    (``--locked``) that is a :class:`StaleLockError` instead, before anything runs.
    """
    path = lock_path(manifest.path)
    lock = read_lock(path)
    hint = f"run `reconciler lock {manifest.path.name}` and commit {path.name} with it"
    if lock is None:
        if required:
            raise StaleLockError(
                f"--locked: there is no lock file {path.name} beside {manifest.path.name}; "
                "nothing was changed",
                hint=hint,
            )
        return list(inputs)
    out: list[EnvironmentInputs] = []
    stale: list[str] = []
    for item in inputs:
        locked = lock.environments.get(item.env.name)
        why = staleness(
            locked, item.env, item.state, item.ownership, image_identity(item.env.prefix)
        )
        if why is None and locked is not None:
            out.append(replace(item, locked=LockedResolver(locked, path.name)))
            continue
        stale.append(f"{path.name} is stale for environment {item.env.name!r}: {why}")
        note = f"{stale[-1]}; resolved afresh (`reconciler lock` updates the lock file)"
        out.append(replace(item, notices=(*item.notices, note)))
    if required and stale:
        raise StaleLockError("--locked: " + "; ".join(stale) + "; nothing was changed", hint=hint)
    return out


def check_saved_locked(plan: Plan, inputs: Sequence[EnvironmentInputs]) -> None:
    """A saved plan made from the lock installs only what the lock, fresh now, holds.

    A plan file anyone could edit must not add a hash-pinned line the lock never had.
    """
    by_name = {i.env.name: i for i in inputs}
    for env_plan in plan.environments:
        if not (env_plan.pip_locked or env_plan.conda_locked):
            continue
        item = by_name[env_plan.name]
        problem = ""
        if item.locked is None:
            problem = "it was made from a lock file that does not hold any more"
        else:
            lines = {w.requirement_line() for w in item.locked.locked.pip}
            extra = [line for line in env_plan.pip_locked if line not in lines]
            extra += [r.name for r in env_plan.conda_locked if r not in item.locked.locked.conda]
            if extra:
                problem = f"it installs {extra[0]!r}, which the lock file does not hold"
        if problem:
            raise StalePlanError(
                f"the saved plan for environment {env_plan.name!r} cannot be applied: {problem}",
                hint="make it again with `reconciler plan --out FILE`",
            )
