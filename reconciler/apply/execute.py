"""Apply is a transaction per environment: verify -> execute -> record.

Under the environment locks: re-read the state (and, for a saved plan, refuse it
when stale), capture the baseline before the first change, write the journal's
intent, run one conda install and one pip install with the same pins as the
preview, register the kernel, verify that every planned change happened and
that no managed or foreign package moved, record what is now owned, and mark
the journal done. The checks of a saved plan are in :mod:`reconciler.apply.saved`,
the recovery from a killed apply in :mod:`reconciler.apply.recovery`.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from reconciler import faults
from reconciler.apply.envlock import EnvironmentLock, hold_all
from reconciler.apply.journal import Journal
from reconciler.apply.record_heads import RecordHeads
from reconciler.apply.recovery import adopt, recover
from reconciler.apply.report import Reporter
from reconciler.apply.saved import check_fresh, trusted_plan
from reconciler.apply.schedule import StartGate, generations, in_threads
from reconciler.apply.verify import RecordScan, verify
from reconciler.backends import speculative
from reconciler.backends.process import Completed, redact, when_started
from reconciler.errors import BackendError, ReconcilerError
from reconciler.manifest.model import Environment, Manifest, select_environments
from reconciler.plan.model import UNRESOLVED, Change, EnvironmentPlan, Plan
from reconciler.plan.planner import (
    Backends,
    EnvironmentInputs,
    build_plan,
    conda_matches,
    read_inputs,
)
from reconciler.plan.policy import Ownership
from reconciler.render.words import plural
from reconciler.state.cache import ReadCache
from reconciler.state.environment import InstalledState, read_state
from reconciler.state.store import Baseline, Owned, OwnedPackage, StateStore
from reconciler.values import replace, value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.backends.pip import PipInstaller

__all__ = ["ApplyResult", "EnvironmentResult", "apply"]

DEFAULT_LOCK_TIMEOUT = 300.0
_CACHE_LOCK = threading.Lock()  # the read cache is shared by the environment threads


@value
class EnvironmentResult:
    """How one environment ended."""

    name: str
    status: str  # done | unchanged | refused | skipped | failed
    message: str = ""


@value
class ApplyResult:
    """The plan that was applied and what happened to each environment."""

    plan: Plan
    results: tuple[EnvironmentResult, ...]

    @property
    def failed(self) -> bool:
        """True when an environment failed."""
        return any(r.status == "failed" for r in self.results)

    @property
    def refused(self) -> bool:
        """True when an environment was not applied because of refusals."""
        return any(r.status == "refused" for r in self.results)


class _Log:
    """The apply log (installer output), shared by the environment threads.

    The file is created at the first write: a no-op apply leaves no log behind.
    Logs beyond the newest 20 are removed then.
    """

    KEEP = 20

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._created = False

    def write(self, name: str, text: str) -> None:
        if self._path is None:
            return
        # The log is for people; failing to write it (a full disk) must not replace
        # the error being reported or fail an apply that worked.
        with self._lock, contextlib.suppress(OSError):
            if not self._created:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                for old in sorted(self._path.parent.glob("apply-*.log"))[: -self.KEEP]:
                    old.unlink(missing_ok=True)
                self._created = True
            with self._path.open("a", encoding="utf-8") as f:
                for line in redact(text).rstrip().splitlines():
                    f.write(f"[{name}] {line}\n")

    def process(self, name: str, proc: Completed) -> None:
        self.write(name, f"$ {proc.display}\n{proc.stdout}\n{proc.stderr}")


def apply(
    manifest: Manifest,
    store: StateStore,
    backends: Backends,
    *,
    names: Sequence[str] = (),
    partial: bool = False,
    saved: Plan | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    reporter: Reporter | None = None,
    log: Path | None = None,
    locked: bool = False,
) -> ApplyResult:
    """Plan (or take ``saved``) and execute it under the environment locks.

    The lock file beside the manifest is used for each environment it holds for;
    ``locked`` (``--locked``) makes a missing or stale lock an error before any change.
    """
    reporter = reporter or Reporter()
    selected = list(select_environments(manifest, names))
    if saved is not None:
        planned = {e.name for e in saved.environments}
        selected = [e for e in selected if e.name in planned]
        # `--env` narrows a saved plan too: only the selected environments are checked and run.
        chosen = {e.name for e in selected}
        saved = replace(
            saved, environments=tuple(e for e in saved.environments if e.name in chosen)
        )
    locks = [EnvironmentLock(store.env_dir(e.prefix), e.name) for e in selected]
    with hold_all(locks, lock_timeout), _stop_on_sigterm():
        if any(lock.waited for lock in locks):
            # Another apply held an environment: what was previewed before its end
            # may not hold now. Previews run again, under the locks.
            speculative.discard()
        faults.point("after-lock")
        for env in selected:
            recover(env, store, reporter)
        cache = store.read_cache()
        inputs = (
            read_inputs(manifest, store, [e.name for e in selected], cache=cache)
            if selected
            else []
        )
        if saved is not None:
            check_fresh(saved, manifest, inputs)
            plan = trusted_plan(saved, inputs, backends.wheels)
            if any(e.pip_locked or e.conda_locked for e in plan.environments) or locked:
                from reconciler.lockfile.resolver import check_saved_locked, use_lock

                check_saved_locked(plan, use_lock(manifest, inputs, required=locked))
        else:
            from reconciler.lockfile import has_lock_file

            if locked or has_lock_file(manifest.path):  # without one, use_lock changes nothing
                from reconciler.lockfile.resolver import use_lock

                inputs = use_lock(manifest, inputs, required=locked)
            if any(i.locked is None for i in inputs):
                reporter.resolving([i.env.name for i in inputs if i.locked is None])
            plan = build_plan(manifest, inputs, backends)
        reporter.planned(plan)
        heads = RecordHeads(store.root / "cache" / "record-heads.json")
        context = _Context(
            manifest, store, backends, reporter, _Log(log), cache, heads, saved is None
        )
        result = _execute(context, plan, inputs, partial)
        if backends.later is not None:  # the notes asked while it installed
            done = backends.later.complete(result.plan, stopped=faults.stop_requested)
            result = replace(result, plan=done)
        if not (result.refused and not any(r.status == "done" for r in result.results)):
            store.save_read_cache(cache)  # a refused apply leaves the state dir as it was
            heads.save()
        if any(r.status == "done" for r in result.results):
            from reconciler.tempfiles import remove_leftovers

            with contextlib.suppress(Exception):  # housekeeping: never fails an apply
                remove_leftovers()  # what an apply killed before its own cleanup left
        return result


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM asks for a stop at the next safe point instead of killing the apply."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    faults.clear_stop()  # a stop asked of an earlier apply of this process (a kernel)
    previous = signal.signal(signal.SIGTERM, faults.request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@value
class _Context:
    """What every environment's transaction shares."""

    manifest: Manifest
    store: StateStore
    backends: Backends
    reporter: Reporter
    log: _Log
    cache: ReadCache
    #: The row heads of installed RECORDs, for verification (kept in the state dir).
    heads: RecordHeads
    #: The plan was made by this apply, not read from a file (``apply --plan``): its
    #: changes can be installed as they are. A saved plan's changes only pin versions.
    planned_here: bool = True


def _execute(
    context: _Context, plan: Plan, inputs: Sequence[EnvironmentInputs], partial: bool
) -> ApplyResult:
    by_name = {i.env.name: i for i in inputs}
    results: dict[str, EnvironmentResult] = {}
    todo: list[EnvironmentPlan] = []
    for env_plan in plan.environments:
        if env_plan.refused:
            results[env_plan.name] = EnvironmentResult(
                env_plan.name,
                "refused",
                plural(len(env_plan.refused), "refused change"),
            )
        elif not env_plan.changes:
            results[env_plan.name] = EnvironmentResult(env_plan.name, "unchanged")
            # A recovered environment that needs nothing more has converged.
            journal = Journal(context.store.env_dir(Path(env_plan.prefix)))
            entry = journal.read()
            if entry is not None and entry.status == "interrupted":
                journal.update(entry, status="done")
        else:
            todo.append(env_plan)
    if plan.refused and not partial:
        for env_plan in todo:
            results[env_plan.name] = EnvironmentResult(
                env_plan.name, "skipped", "another environment has refused changes"
            )
        todo = []
    later = context.backends.later
    if later is not None:  # what installs nothing asks what is newest now, not at the end
        running = {e.name for e in todo}
        for env_plan in plan.environments:
            if env_plan.name not in running:
                later.start(env_plan.prefix)

    reporter = context.reporter

    def run(env_plan: EnvironmentPlan, gate: StartGate) -> EnvironmentResult:
        try:
            _apply_environment(context, env_plan, by_name[env_plan.name], gate)
        except ReconcilerError as exc:
            reporter.environment_finished(env_plan.name, "failed", exc.message)
            return EnvironmentResult(env_plan.name, "failed", str(exc))
        finally:
            gate.arrive(env_plan.name)  # (when it ended before its first process)
        reporter.environment_finished(env_plan.name, "done", "")
        return EnvironmentResult(env_plan.name, "done")

    for generation in generations(todo, by_name):
        gate = StartGate(len(generation))
        for result in in_threads(functools.partial(run, gate=gate), generation):
            results[result.name] = result
    ordered = tuple(results[e.name] for e in plan.environments)
    return ApplyResult(plan, ordered)


def _apply_environment(
    context: _Context, env_plan: EnvironmentPlan, item: EnvironmentInputs, gate: StartGate
) -> None:
    env, before = item.env, item.state
    store, backends, reporter, log = context.store, context.backends, context.reporter, context.log
    allowed = [c for c in env_plan.changes if not c.refused]
    conda_changes = [c for c in allowed if c.manager == "conda" and c.action != "create"]
    pip_changes = [
        c for c in allowed if c.manager == "pip" and c.action not in ("create", "register-kernel")
    ]
    create = next((c for c in allowed if c.action == "create"), None)
    kernel = next((c for c in allowed if c.action == "register-kernel"), None)
    # (the journal's name of a step, what the reporter shows) of each step to take
    planned_steps = [
        (step, shown)
        for step, shown, wanted in (
            ("create", "create the environment", create),
            ("conda", "conda install", conda_changes),
            ("pip", "pip install", pip_changes),
            ("kernel", "register the kernel", kernel),
            ("verify", "verify", True),
        )
        if wanted
    ]
    steps = [shown for _, shown in planned_steps]
    reporter.environment_started(env.name, len(steps))
    counter = iter(range(1, len(steps) + 1))

    if before.exists and (item.baseline is None or item.image_changed):
        # The managed set is what the environment held before the tool's first change.
        baseline = Baseline.from_state(before, item.owned)
        if item.image_changed and item.baseline is not None:
            baseline = replace(baseline, replaced=item.baseline.captured_at)
        store.save_baseline(env.prefix, baseline)
        if item.image_changed:
            store.save_owned(env.prefix, item.owned)
            reporter.notice(f"{env.name}: the image changed; recorded a new baseline")
    faults.check_stop("before changing anything")
    ahead: RecordScan | None = None
    journal = Journal(store.env_dir(env.prefix))
    entry = journal.begin(env_plan.changes, step=planned_steps[0][0])  # the first that may start
    faults.point("after-journal")
    try:
        if create is not None:
            entry = journal.update(entry, step="create")
            reporter.step(env.name, next(counter), steps[0])
            _together(gate, env.name)
            _create(env, backends, log)
            # The bare new environment is its own baseline: what the installer seeded
            # (pip, setuptools; or python) is managed, what follows is owned.
            with _CACHE_LOCK:
                before = read_state(env.prefix, context.cache)
            store.save_baseline(env.prefix, Baseline.from_state(before, Owned({})))
            item = replace(
                item,
                state=before,
                ownership=Ownership.build(
                    before, store.baseline(env.prefix), Owned({}), context.manifest.protect
                ),
            )
            faults.point("after-create")
            faults.check_stop("after creating the environment")
        if conda_changes:
            entry = journal.update(entry, step="conda")
            reporter.step(
                env.name, next(counter), f"conda: solving and linking {_count(conda_changes)}"
            )
            _together(gate, env.name)
            if env_plan.conda_locked:  # from the lock file: exactly these records
                linked = backends.conda.install_locked(env.prefix, env_plan.conda_locked)
            else:
                specs = [*env_plan.conda_specs]
                specs += [f"{c.name} =={c.to_version}" for c in conda_changes if c.to_version]
                pinned = env_plan.conda_pinned if env_plan.exists else tuple(sorted(before.conda))
                locked = sorted(set(before.conda) - set(pinned))
                linked = backends.conda.install(env.prefix, env.channels, specs, pinned, locked)
            log.write(
                env.name,
                "conda linked: "
                + (", ".join(f"{r.name}-{r.version}-{r.build}" for r in linked) or "nothing"),
            )
            faults.point("after-conda")
            faults.check_stop("after the conda install")
        if pip_changes:
            entry = journal.update(entry, step="pip")
            reporter.step(
                env.name,
                next(counter),
                f"pip ({env.installer}): downloading and installing {_count(pip_changes)}",
            )
            python = env.prefix / "bin" / "python"
            installer = backends.pip(env.installer, python)
            # The RECORDs are read, and what is newest for the held-back notes asked,
            # while it installs: from its start on, not before (the read would hold the
            # interpreter lock while the install is spawned; the question, a uv
            # process, would compete with the checks before it).
            scans: list[RecordScan | None] = []

            def installing(_ended: bool) -> None:
                scans.append(RecordScan.start(env_plan, item, context.heads))
                if backends.later is not None:
                    backends.later.start(str(env.prefix))

            started = when_started(installing)
            exact = [
                f"{c.name}=={c.to_version}"
                for c in pip_changes
                if c.to_version and c.reason != UNRESOLVED
            ]
            _together(gate, env.name)
            with started:
                proc = _install(context, env, env_plan, installer, python, pip_changes, exact)
            ahead = scans[0] if scans else None
            log.process(env.name, proc)
        if kernel is not None and env.kernel is not None:
            entry = journal.update(entry, step="kernel")
            reporter.step(env.name, next(counter), "register the kernel")
            from reconciler.apply.kernels import write_kernelspec

            write_kernelspec(env.kernel, env.prefix, context.manifest.path, env.name)
        # Not a step of the journal, which names the last step that changed the
        # environment (a killed verification leaves it as that step did): one fsync
        # fewer between the installer's end and the apply's.
        reporter.step(env.name, next(counter), "verify")
        with _CACHE_LOCK:
            # Only a pip install ran (none wrote a conda record): the records read
            # before it are taken again while conda-meta lists what it listed then.
            pip_only = create is None and not conda_changes
            after = read_state(env.prefix, context.cache, conda_again=pip_only)
            _remember_matches(env, after, context.cache)
        verify(env_plan, item, after, context.heads, ahead)
        faults.point("before-record")
        _record_owned(store, item, after)
    except ReconcilerError as exc:
        if isinstance(exc, BackendError) and exc.output:
            log.write(env.name, exc.output)  # the failed installer's own words
        # What was installed as planned before the failure is reconciler's: record it,
        # so that it is not mistaken for foreign (and frozen) by the next run.
        adopt(store, env.prefix, env_plan.changes)
        status = "interrupted" if isinstance(exc, faults.Interrupted) else "failed"
        journal.update(entry, status=status, error=exc.message)
        raise
    journal.update(entry, status="done")


def _together(gate: StartGate, name: str) -> None:
    """Wait for the generation's other environments before the first process of
    ``name``; a stop asked meanwhile is honoured there (nothing has changed yet)."""
    if gate.arrive(name):
        faults.check_stop("before changing anything")


def _install(
    context: _Context,
    env: Environment,
    env_plan: EnvironmentPlan,
    installer: PipInstaller,
    python: Path,
    pip_changes: Sequence[Change],
    exact: Sequence[str],
) -> Completed:
    """The pip step's one installer call: the lock file's files, the preview's outcome
    pinned, or the requirements resolved again under the pins."""
    from reconciler.backends.pip_args import pins_for

    # Both install without dependencies: of the pins, only those of what they install
    # are given (the others hold unsaid; reconciler.backends.pip_args.pins_for).
    if env_plan.pip_locked:  # from the lock file: exactly these files, hash-checked
        pins = pins_for(env_plan.pip_constraints, env_plan.pip_locked)
        return installer.install_locked(python, env_plan.pip_locked, pins, env.pip_settings)
    if context.planned_here and _exactly(env_plan, pip_changes):
        # The preview's outcome, pinned, without resolving again: nothing else can
        # be installed or moved.
        pins = pins_for(env_plan.pip_constraints, exact)
        return installer.install(python, exact, pins, env.pip_settings, no_deps=True)
    return installer.install(
        python, env_plan.pip_requirements, [*env_plan.pip_constraints, *exact], env.pip_settings
    )


def _exactly(env_plan: EnvironmentPlan, pip_changes: Sequence[Change]) -> bool:
    """The pip install can be the exact set the preview resolved (``--no-deps``, pinned):
    each change has its resolved version and installs or moves it, and no conda install
    or creation before it changes the environment the preview saw. A reinstall of the
    same version keeps the resolving install (a pinned one would be a no-op)."""
    return (
        env_plan.exists
        and not any(
            c.manager == "conda" or c.action == "create" for c in env_plan.changes if not c.refused
        )
        and all(
            c.to_version
            and c.reason != UNRESOLVED
            and c.action in ("install", "upgrade", "downgrade")
            for c in pip_changes
        )
    )


def _count(changes: Sequence[Change]) -> str:
    return f"{len(changes)} package{'s' if len(changes) != 1 else ''}"


def _remember_matches(env: Environment, after: InstalledState, cache: ReadCache) -> None:
    """Cache whether the records now installed satisfy the declared conda specs.

    The next run's check that nothing is left to do then answers from the cache,
    so the apply that follows this one, a no-op, writes nothing (not even the cache).
    """
    from reconciler.backends.conda import SpecMatcher

    conda_matches(env, after, SpecMatcher(cache))


def _create(env: Environment, backends: Backends, log: _Log) -> None:
    assert env.create is not None
    if env.create.venv:
        from reconciler.backends.process import run

        proc = run([env.create.venv, "-m", "venv", env.prefix], timeout=600)
        log.process(env.name, proc)
        if proc.returncode != 0:
            raise ReconcilerError(
                f"creating the venv {env.prefix} with {env.create.venv} failed "
                f"({proc.exit_text}): {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}",
                hint="check that create.venv names a working Python with the venv module",
            )
        return
    backends.conda.install(env.prefix, env.channels, [f"python {env.create.python}.*"], (), ())


def _record_owned(store: StateStore, item: EnvironmentInputs, after: InstalledState) -> None:
    """Owned: what was owned before, plus every package this apply added or moved
    (verification has just shown that nothing managed or foreign moved)."""
    owned: dict[str, OwnedPackage] = dict(item.owned.packages)
    packages_before = item.state.packages()
    for key, pkg in after.packages().items():
        previous = packages_before.get(key)
        moved = previous is None or (previous.version, previous.build) != (pkg.version, pkg.build)
        if moved or key in owned:
            owned[key] = OwnedPackage(pkg.name, pkg.manager, pkg.version)
    store.save_owned(item.env.prefix, Owned(owned))


def apply_summary(result: ApplyResult) -> dict[str, Any]:
    """Per-environment results for ``apply --json``."""
    return {r.name: {"status": r.status, "message": r.message} for r in result.results}
