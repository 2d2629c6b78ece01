"""Build a Plan: read each environment, then plan its conda side, pip side and kernel.

Reading (``read_inputs``) is the only I/O besides the resolver previews, which go
through the small backend protocols in :class:`Backends`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from reconciler.backends import outside
from reconciler.backends.conda import RattlerSolver, SpecMatcher
from reconciler.backends.pip import check_index_order, select_installer
from reconciler.errors import ReconcilerError
from reconciler.manifest.model import Environment, Manifest, pip_requests, select_environments
from reconciler.names import canonical_name
from reconciler.plan.clashes import LazyWheelRecords
from reconciler.plan.conda_side import plan_conda_side
from reconciler.plan.model import UNRESOLVED, Change, EnvironmentPlan, Plan
from reconciler.plan.pip_side import LaterNotes, plan_pip_side
from reconciler.plan.policy import Ownership
from reconciler.plan.requirements import use_tables
from reconciler.state.cache import ReadCache
from reconciler.state.environment import (
    InstalledState,
    image_identity,
    migrated_identity,
    read_state,
)
from reconciler.state.store import Baseline, Owned, StateStore
from reconciler.values import replace, value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.backends.conda import CondaSolver
    from reconciler.backends.pip import PipInstaller
    from reconciler.lockfile.model import LockedRecord
    from reconciler.lockfile.resolver import LockedResolver
    from reconciler.plan.clashes import WheelContents

__all__ = [
    "Backends",
    "EnvironmentInputs",
    "build_plan",
    "conda_matches",
    "forget_index_reads",
    "pip_requests",
    "plan_environment",
    "read_inputs",
    "requested_names",
]


@value
class Backends:
    """The resolvers a plan may consult."""

    conda: CondaSolver
    pip: Callable[[str, Path], PipInstaller]
    wheels: WheelContents | None = None  # the file-clash check reads wheels' RECORDs
    #: Where the held-back notes are left to be worked out later (an apply: while it
    #: installs); None: each plan has them when it returns.
    later: LaterNotes | None = None

    @classmethod
    def default(cls, cache_dir: Path | None = None) -> Backends:
        """py-rattler for conda; uv (``auto``/``uv``) or the env's pip for the pip side;
        wheel RECORDs from find-links or the index (cached under ``cache_dir``)."""
        return cls(RattlerSolver(), select_installer, LazyWheelRecords(cache_dir))


@value
class EnvironmentInputs:
    """Everything read about one environment before planning."""

    env: Environment
    state: InstalledState
    baseline: Baseline | None  # as recorded (None before the first capture)
    owned: Owned
    ownership: Ownership
    image_changed: bool
    notices: tuple[str, ...]
    conda_matches: Mapping[str, bool]  # declared conda spec -> installed record satisfies it
    #: Set when the lock file holds for the environment (reconciler.lockfile.resolver.use_lock).
    locked: LockedResolver | None = None


def read_inputs(
    manifest: Manifest,
    store: StateStore,
    names: Sequence[str] = (),
    *,
    read_baselines: bool = True,
    cache: ReadCache | None = None,
) -> list[EnvironmentInputs]:
    """Read the installed state, baseline and owned set of the selected environments.

    ``read_baselines=False`` (``baseline capture``) ignores the recorded baselines, so
    that capturing can replace one that is corrupt. With ``cache`` the caller owns
    the read cache (and saves it); otherwise it is loaded and saved here.
    """
    selected = select_environments(manifest, names)
    owns_cache = cache is None
    cache = store.read_cache() if cache is None else cache
    use_tables(cache)  # requirement answers are read from and added to it
    matcher = SpecMatcher(cache)
    out: list[EnvironmentInputs] = []
    for env in selected:
        state = read_state(env.prefix, cache)
        baseline = store.baseline(env.prefix) if read_baselines else None
        owned = store.owned(env.prefix)
        notices: list[str] = []
        image_changed = False
        if baseline is not None and state.exists:
            current = image_identity(env.prefix)
            upgraded = migrated_identity(baseline.image or "", env.prefix)
            if upgraded is not None:  # an older form of the same identity: record the new one
                baseline = replace(baseline, image=upgraded)
                store.save_baseline(env.prefix, baseline)
            elif baseline.image and current and baseline.image != current:
                image_changed = True
                notices.append(
                    f"the image under {env.prefix} changed since the baseline of "
                    f"{baseline.captured_at}; its packages are the new managed set and a new "
                    "baseline is recorded at the next apply"
                )
        if baseline is not None and baseline.replaced and not image_changed:
            notices.append(
                f"baseline refreshed at {baseline.captured_at} after an image change (the "
                f"previous baseline was captured {baseline.replaced}); that is not drift"
            )
        if baseline is None and state.exists:
            notices.append(
                "no baseline recorded yet: everything installed now is treated as managed "
                "(recorded at the first apply, or with `reconciler baseline capture`)"
            )
        effective_owned = Owned(packages={}) if image_changed else owned
        effective_baseline = None if image_changed else baseline
        ownership = Ownership.build(state, effective_baseline, effective_owned, manifest.protect)
        out.append(
            EnvironmentInputs(
                env,
                state,
                baseline,
                effective_owned,
                ownership,
                image_changed,
                tuple(notices),
                conda_matches(env, state, matcher),
            )
        )
    if owns_cache:
        store.save_read_cache(cache)
    return out


def conda_matches(env: Environment, state: InstalledState, matcher: SpecMatcher) -> dict[str, bool]:
    """Declared conda spec -> whether the installed record satisfies it (memoised)."""
    matches: dict[str, bool] = {}
    for request in env.conda:
        record = state.conda.get(request.name)
        if record is not None:
            matches[request.spec] = matcher(request.spec, record.name, record.version, record.build)
    return matches


def _kernel_change(env: Environment) -> Change | None:
    if env.kernel is None:
        return None
    from reconciler.state.kernels import read_kernelspec  # only environments with a kernel

    spec = read_kernelspec(env.kernel.name)
    python = str(env.prefix / "bin" / "python")
    if spec.exists and spec.python == python and spec.display_name == env.kernel.display_name:
        return None
    if spec.exists and not spec.owned:
        return Change(
            "register-kernel",
            "pip",
            env.kernel.name,
            spec.python,
            python,
            True,
            True,
            f"kernelspec {env.kernel.name!r} exists and was not written by reconciler; "
            "rename the kernel in the manifest or remove the existing kernelspec",
        )
    return Change("register-kernel", "pip", env.kernel.name, spec.python, python, True)


def _specifier(requirement: str) -> str | None:
    """``alpha>=2`` -> ``>=2``: the version part shown for a not-yet-resolved install."""
    from reconciler.plan.requirements import parse_request

    return parse_request(requirement).spec or None


def _new_environment(
    env: Environment, backends: Backends, state: InstalledState
) -> EnvironmentPlan:
    if env.create is None:
        raise ReconcilerError(
            f"environment {env.name!r}: {env.prefix} does not exist",
            hint='add `create: {python: "3.11"}` (conda) or `create: {venv: /usr/bin/python3}` '
            "to the environment in the manifest, or fix the prefix",
        )
    kind = "conda" if env.create.python else "venv"
    changes = [
        Change(
            "create",
            kind if kind == "conda" else "pip",
            env.name,
            None,
            env.create.python or env.create.venv,
            True,
        )
    ]
    conda_specs: tuple[str, ...] = ()
    if kind == "conda":
        conda = plan_conda_side(
            state,
            env.conda,
            Ownership.build(state, None, Owned({}), ()),
            backends.conda,
            env.channels,
            extra_specs=(f"python {env.create.python}.*",),
        )
        changes += conda.changes
        conda_specs = conda.specs
    requests = pip_requests(env)
    changes += [
        Change(
            "install",
            "pip",
            r.name,
            None,
            _specifier(r.requirement),
            True,
            reason=UNRESOLVED,
        )
        for r in requests
    ]
    kernel = _kernel_change(env)
    if kernel is not None:
        changes.append(kernel)
    return EnvironmentPlan(
        name=env.name,
        prefix=str(env.prefix),
        kind=kind,
        exists=False,
        fingerprint=state.fingerprint,
        changes=tuple(changes),
        pip_requirements=tuple(r.requirement for r in requests),
        conda_specs=conda_specs,
        resolver_ran=kind == "conda",
    )


def plan_environment(inputs: EnvironmentInputs, backends: Backends) -> EnvironmentPlan:
    """Plan one environment."""
    env, state = inputs.env, inputs.state
    if not state.exists:
        # A new environment gets its installer at apply time; refuse an unsafe one now,
        # before the environment is created.
        check_index_order(env.installer, env.pip_settings)
        plan = _new_environment(env, backends, state)
        return replace(plan, notices=inputs.notices)
    installer = backends.pip(env.installer, state.prefix / "bin" / "python")
    # Before any resolver runs: pip with extra indexes is a dependency-confusion risk.
    check_index_order(installer.name, env.pip_settings)
    pip_locked: tuple[str, ...] = ()
    conda_locked: tuple[LockedRecord, ...] = ()
    if inputs.locked is not None:
        # A fresh lock answers both sides: no resolver runs (reconciler.lockfile).
        wanted = requested_names(env)
        conda, conda_locked = inputs.locked.conda_side(state, inputs.ownership, wanted)
        texts = {r.name: r.requirement for r in pip_requests(env)}
        pip, pip_locked = inputs.locked.pip_side(
            state, inputs.ownership, texts, backends.wheels, env.pip_settings
        )
    else:
        conda = plan_conda_side(
            state,
            env.conda,
            inputs.ownership,
            backends.conda,
            env.channels,
            satisfied_specs=inputs.conda_matches,
        )
        requests = pip_requests(env)
        pip = plan_pip_side(
            state, requests, inputs.ownership, installer, env.pip_settings, backends.wheels,
            backends.later,
        )  # fmt: skip
    if conda.resolver_ran:
        outside.note("conda solve")  # channels are not stamped: such a plan is not replayed
    changes = [*conda.changes, *pip.changes]
    kernel = _kernel_change(env)
    if kernel is not None:
        changes.append(kernel)
    if state.frozen and changes:
        changes = [
            replace(
                c,
                refused=True,
                reason=f"{state.prefix} is frozen (conda-meta/frozen): nothing in it may change",
            )
            for c in changes
        ]
    return EnvironmentPlan(
        name=env.name,
        prefix=str(env.prefix),
        kind=state.kind,
        exists=True,
        fingerprint=state.fingerprint,
        changes=tuple(changes),
        satisfied=(*conda.satisfied, *pip.satisfied),
        notices=inputs.notices,
        resolver_ran=conda.resolver_ran or pip.resolver_ran,
        pip_requirements=pip.requirements,
        pip_constraints=pip.constraints,
        conda_specs=conda.specs,
        conda_pinned=conda.pinned,
        lock=inputs.locked.lock_name if inputs.locked is not None else "",
        pip_locked=pip_locked,
        conda_locked=conda_locked,
    )


def forget_index_reads() -> None:
    """Forget the index pages and metadata an earlier plan or lock in this process read
    (a kernel's ``%reconcile``, in-process tests): they may be stale. The modules are
    not imported for it when nothing has read any."""
    metadata, wheels = (sys.modules.get(f"reconciler.backends.{m}") for m in ("metadata", "wheels"))
    if metadata is not None:
        metadata.forget()  # its metadata files, and the project pages
    elif wheels is not None:
        wheels.forget_pages()


def build_plan(manifest: Manifest, inputs: Sequence[EnvironmentInputs], backends: Backends) -> Plan:
    """The plan for every environment in ``inputs``.

    Environments are planned concurrently: their resolver previews are separate
    processes (uv, pip) or release the GIL (rattler), so three environments take
    about as long as the slowest one.
    """
    forget_index_reads()
    if len(inputs) <= 1:
        environments = tuple(plan_environment(i, backends) for i in inputs)
    else:
        from reconciler.threads import each_in_thread

        planned = each_in_thread(lambda i: plan_environment(i, backends), inputs, at_most=8)
        environments = tuple(planned)
    return Plan(
        manifest_path=str(manifest.path),
        manifest_sha256=manifest.sha256,
        environments=environments,
    )


def requested_names(env: Environment) -> set[str]:
    """Canonical names of everything the environment declares."""
    return {canonical_name(r.name) for r in pip_requests(env)} | {r.name for r in env.conda}
