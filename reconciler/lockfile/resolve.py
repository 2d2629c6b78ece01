"""Resolve one environment's additions for the lock file.

The additions are resolved against the managed set only: every managed and
foreign distribution is pinned to its installed version, and the owned ones
(installed by an earlier apply) are resolved afresh as if absent (uv's
``--reinstall-package``), so that a lock made after an apply still holds the
whole overlay. Versions of the previous lock are kept where they still fit,
except for the packages being upgraded: the resolver is first asked with them
pinned and, if that has no solution, without.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from reconciler.backends.conda import RattlerSolver
from reconciler.backends.pip import UvCli
from reconciler.backends.process import first_lines
from reconciler.errors import BackendError, ReconcilerError
from reconciler.lockfile.fresh import entries_of, managed_digest
from reconciler.lockfile.model import LockedEnvironment, LockedRecord, LockedWheel
from reconciler.lockfile.sources import locate_locked, tags_of
from reconciler.names import canonical_name
from reconciler.plan.planner import EnvironmentInputs, pip_requests
from reconciler.plan.policy import OWNED
from reconciler.state.environment import image_identity
from reconciler.values import value

__all__ = ["Upgrade", "resolve_environment"]


@value
class Upgrade:
    """What ``lock`` may move from the previous lock: everything, or these names."""

    everything: bool = False
    names: frozenset[str] = frozenset()

    def keeps(self, name: str) -> bool:
        """True when the previous lock's version of ``name`` is preferred."""
        return not self.everything and canonical_name(name) not in self.names


def resolve_environment(
    inputs: EnvironmentInputs,
    previous: LockedEnvironment | None,
    upgrade: Upgrade,
    cache_dir: Path | None = None,
) -> LockedEnvironment:
    """The lock entry of one existing environment (see module docstring); ``cache_dir``
    receives the locked wheels' RECORDs (see :func:`~reconciler.lockfile.sources.locate_locked`)."""
    env, state = inputs.env, inputs.state
    if not state.exists:
        raise ReconcilerError(
            f"environment {env.name!r}: {env.prefix} does not exist yet; a lock is made "
            "against the environment's image",
            hint="run `reconciler apply` first (it creates the environment), then lock",
        )
    image = image_identity(env.prefix)
    if image is None:
        raise ReconcilerError(
            f"environment {env.name!r}: {env.prefix} has no image identity (no "
            "conda-meta/history and no pyvenv.cfg), so a lock could not tell when it is stale",
            hint="lock only conda environments and venvs",
        )
    kept = previous if previous is not None and previous.image == image else None
    return LockedEnvironment(
        image=image,
        managed_sha256=managed_digest(state, inputs.ownership),
        entries=entries_of(env),
        pip=_pip_side(inputs, kept, upgrade, cache_dir),
        conda=_conda_side(inputs, kept, upgrade),
    )


def _pip_side(
    inputs: EnvironmentInputs,
    previous: LockedEnvironment | None,
    upgrade: Upgrade,
    cache_dir: Path | None,
) -> tuple[LockedWheel, ...]:
    env, state, ownership = inputs.env, inputs.state, inputs.ownership
    requests = [r.requirement for r in pip_requests(env)]
    if not requests:
        return ()
    packages = state.packages()
    owned = sorted(
        name
        for name in state.dists
        if ownership.status(packages[state.package_for_dist(name)]) == OWNED
    )
    pins = ownership.pip_pins(state)
    prefer = [
        f"{w.name}=={w.version}"
        for w in (previous.pip if previous else ())
        if upgrade.keeps(w.name) and w.name not in {p.split("==")[0] for p in pins}
    ]
    python = state.prefix / "bin" / "python"
    uv, settings = UvCli(), env.pip_settings
    refresh = None if upgrade.everything else sorted(upgrade.names)
    preview = uv.preview(
        python, requests, [*pins, *prefer], settings, reinstall=owned, refresh=refresh
    )
    if not preview.ok and prefer:
        preview = uv.preview(python, requests, pins, settings, reinstall=owned, refresh=refresh)
    if not preview.ok:
        raise BackendError(
            f"cannot lock environment {env.name!r}: the pip requests cannot be installed "
            f"without moving managed packages: {first_lines(preview.message)}",
            hint=f"run `reconciler plan MANIFEST --env {env.name}` to see which managed "
            "package stands in the way",
        )
    pinned = {canonical_name(p.split("==")[0]) for p in pins}
    additions = sorted(
        {(i.name, i.version) for i in preview.installs if i.name not in pinned},
    )
    tags = tags_of(python)
    return tuple(locate_locked(n, v, settings, tags, cache_dir) for n, v in additions)


def _conda_side(
    inputs: EnvironmentInputs, previous: LockedEnvironment | None, upgrade: Upgrade
) -> tuple[LockedRecord, ...]:
    env, state, ownership = inputs.env, inputs.state, inputs.ownership
    if not env.conda:
        return ()
    pinned = ownership.conda_pins(state)
    owned = tuple(sorted(set(state.conda) - set(pinned)))
    specs = [r.spec for r in env.conda]
    prefer = [
        f"{r.name} =={r.version} {r.build}"
        for r in (previous.conda if previous else ())
        if upgrade.keeps(r.name) and r.name not in pinned
    ]
    solver = RattlerSolver()
    locked = () if upgrade.everything else _kept(owned, upgrade.names)
    # The previous lock's versions constrain (never request): a package the manifest no
    # longer needs drops out of the lock.
    solution, records = solver.solve_for_lock(
        state.prefix, env.channels, specs, pinned, locked, prefer
    )
    if not solution.ok and prefer:
        solution, records = solver.solve_for_lock(state.prefix, env.channels, specs, pinned, locked)
    if not solution.ok:
        raise BackendError(
            f"cannot lock environment {env.name!r}: the conda requests cannot be solved "
            f"without moving managed packages: {first_lines(solution.message)}",
            hint=f"run `reconciler plan MANIFEST --env {env.name}` to see which managed "
            "package stands in the way",
        )
    return tuple(r for r in records if r.name not in pinned)


def _kept(owned: Sequence[str], upgrading: Collection[str]) -> tuple[str, ...]:
    return tuple(n for n in owned if n not in upgrading)
