"""Plan the pip side of one existing environment.

1. Requests already met by a consistent installed closure need no resolver.
2. A request that would move a managed or foreign package is refused directly.
3. Otherwise a dry run (uv or pip) with every managed and foreign distribution
   pinned. A met request whose whole installed closure those pins hold (the
   image's own packages a manifest lists) is left out of what it resolves: the
   resolver could only keep it as it is (``requirements.settled``). If the
   resolver finds no solution, an unpinned dry run of every request shows which
   managed packages it would have had to move, and why (the chain).

In a ``--system-site-packages`` venv the base interpreter's distributions are
present and managed, but uv does not see them: a request they satisfy is not
passed to the installer (uv would install a second copy that shadows them), and
a preview that installs one of them anyway is refused.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from reconciler.backends.pip import PipPreview, Resolved
from reconciler.backends.pip_failures import unavailable
from reconciler.backends.process import first_lines
from reconciler.errors import BackendError, ReconcilerError
from reconciler.manifest.model import PipRequest, PipSettings
from reconciler.plan.clashes import refuse_clashes
from reconciler.plan.model import Change, Plan
from reconciler.plan.pip_reasons import chains_of, held_back
from reconciler.plan.policy import OWNED, Ownership
from reconciler.plan.requirements import (
    ParsedRequirement,
    marker_environment,
    parse_request,
    satisfies,
    settled,
    unmet,
    version_or_none,
)
from reconciler.state.environment import InstalledState, Package
from reconciler.values import replace, value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from reconciler.backends.pip import PipInstaller
    from reconciler.plan.clashes import WheelContents

__all__ = ["LaterNotes", "PipSidePlan", "held_whole", "plan_pip_side"]


@value
class PipSidePlan:
    """Changes, what was already satisfied, and the installer inputs."""

    changes: tuple[Change, ...]
    satisfied: tuple[str, ...]
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    resolver_ran: bool


def _direction(installed: str, req: ParsedRequirement) -> str:
    """upgrade or downgrade: the side of the installed version that the first clause it
    fails points to (``<2`` over 2.0 is a downgrade, ``>=2`` over 1.0 an upgrade)."""
    have = version_or_none(installed)
    for clause in req.specifier:
        if have is None or clause.contains(have, prereleases=True):
            continue
        if clause.operator in ("<", "<="):
            return "downgrade"
        if clause.operator in (">", ">="):
            return "upgrade"
        bound = version_or_none(clause.version.rstrip(".*"))
        if bound is not None and bound < have:
            return "downgrade"
        return "upgrade"
    return "upgrade"


def _describe(pkg: Package, status: str) -> str:
    what = "managed" if status != "foreign" else "foreign (installed outside reconciler)"
    if pkg.dist is not None and pkg.dist.system_site:
        return (
            f"{pkg.name} {pkg.version} comes from the base interpreter's site-packages "
            f"({what}); installing it into the venv would shadow it"
        )
    return f"{pkg.name} is {what} at {pkg.version}"


def _with_removal(reason: str, state: InstalledState, dist_name: str, status: str) -> str:
    """``reason``, and when a conda package ships ``dist_name``, that pip replacing it
    would uninstall that package's files and leave a stale conda record: one refused
    change with both reasons (reconciler never uninstalls)."""
    conda_name = state.dist_owner.get(dist_name)
    if conda_name is None:
        return reason
    record = state.conda[conda_name]
    removal = (
        f"pip would replace {dist_name} {state.dists[dist_name].version}, which conda package "
        f"{conda_name} {record.version} ({status}) ships, and so remove conda {conda_name}; "
        "reconciler never uninstalls a package. Request it on the conda side instead"
    )
    return f"{reason}; {removal}" if reason else removal


class LaterNotes:
    """The held-back notes of requested installs (``held back: newest is ...``), worked
    out once the caller asks for them (:meth:`complete`) rather than before the plan
    returns: an apply installs while what is newest is asked, since the notes change
    nothing it does. Each environment's work is kept under its prefix."""

    def __init__(self) -> None:
        import threading

        self._pending: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[], None]]] = {}
        self._starts: dict[str, Callable[[], None]] = {}
        self._lock = threading.Lock()

    def add(
        self,
        prefix: str,
        finish: Callable[[], dict[str, Any]],
        drop: Callable[[], None],
        start: Callable[[], None] = lambda: None,
    ) -> None:
        """``finish()`` returns the held-back note of each change (by name) of ``prefix``
        (starting what it asks, if :meth:`start` did not); ``drop()`` only waits for what
        runs in the background; ``start()`` starts asking."""
        with self._lock:
            self._pending[prefix] = (finish, drop)
            self._starts[prefix] = start

    def start(self, prefix: str) -> None:
        """Start asking what ``prefix``'s notes need (its installer has started)."""
        with self._lock:
            start = self._starts.pop(prefix, None)
        if start is not None:
            start()

    def complete(self, plan: Plan, stopped: Callable[[], bool] = lambda: False) -> Plan:
        """``plan`` with every note kept here set on its change; what is asked in the
        background is waited for. Call it before the read cache is saved (the notes
        parse requirements into its tables), in the thread that called the planner,
        once the plan is made. The notes are a nicety: one that fails to be worked out
        (an index read that fails, or is stopped) is left out, never an error of the
        apply that went on without it, and none is worked out once ``stopped()``."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._starts.clear()  # (what never started is asked by finish(), or not at all)
        environments = []
        try:
            for env in plan.environments:
                finish, drop = pending.pop(env.prefix, (None, None))
                notes: dict[str, Any] = {}
                if finish is not None and drop is not None:
                    if stopped():
                        drop()
                    else:
                        try:
                            notes = finish()  # (waits for the question, even when it fails)
                        except Exception:
                            notes = {}
                if notes:
                    changes = tuple(
                        replace(c, held_back=notes[c.name])
                        if c.manager == "pip" and c.name in notes
                        else c
                        for c in env.changes
                    )
                    env = replace(env, changes=changes)
                environments.append(env)
        finally:
            for _, drop in pending.values():  # environments not in the plan, or an error
                drop()
        return replace(plan, environments=tuple(environments))

    def close(self) -> None:
        """Wait for what is asked in the background, without working out its notes (an
        apply that failed or was stopped before :meth:`complete`: nothing more is read)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._starts.clear()  # (what never started is asked by finish(), or not at all)
        for _, drop in pending.values():
            with contextlib.suppress(Exception):
                drop()


def plan_pip_side(
    state: InstalledState,
    requests: Sequence[PipRequest],
    ownership: Ownership,
    installer: PipInstaller,
    settings: PipSettings,
    wheels: WheelContents | None = None,
    later: LaterNotes | None = None,
) -> PipSidePlan:
    """Plan the pip requests of an existing environment (see module docstring).

    With ``wheels``, an allowed write whose wheel would overwrite a managed or
    foreign package's file is refused (:mod:`reconciler.plan.clashes`). With
    ``later``, the held-back notes are left to it (:class:`LaterNotes`)."""
    packages = state.packages()
    env = marker_environment(state.python_version)
    satisfied: list[str] = []
    changes: list[Change] = []
    to_resolve: list[str] = []
    roots: list[tuple[str, frozenset[str]]] = []
    pending = False
    for request in requests:
        req = parse_request(request.requirement)
        dist = state.dists.get(request.name)
        if satisfies(req, dist):
            satisfied.append(request.requirement)
            roots.append((request.name, req.extras))
            if dist is not None and not dist.system_site:
                to_resolve.append(request.requirement)
            continue
        if dist is not None:
            pkg = packages[state.package_for_dist(request.name)]
            if not ownership.may_move(pkg):
                status = ownership.status(pkg)
                action = _direction(dist.version, req)
                reason = (
                    f"requested {request.requirement} would {action} {status} "
                    f"{pkg.name} {pkg.version}"
                )
                changes.append(
                    Change(
                        action=action,
                        manager="pip",
                        name=request.name,
                        from_version=dist.version,
                        to_version=req.spec or None,
                        requested=True,
                        refused=True,
                        reason=_with_removal(reason, state, request.name, status),
                    )
                )
                continue
        pending = True
        to_resolve.append(request.requirement)

    if not pending and (not to_resolve or not unmet(roots, state.dists, env)):
        return PipSidePlan(tuple(changes), tuple(satisfied), tuple(to_resolve), (), False)

    pinned = ownership.pinned_dists(state)
    constraints = ownership.pip_pins(state, pinned)
    # A satisfied request whose installed closure the pins hold whole is left out of what
    # the installer resolves (the image's requests: uv's dry run of the bench's image
    # 28 against 18 ms): it could only keep that closure as it is. A refusal is still
    # explained with every request (what would move to take them all).
    unpruned = to_resolve
    held = held_whole(state, requests, pinned)
    to_resolve = [text for text in to_resolve if not held.get(text, False)]
    if not to_resolve:  # nothing pending: only what the base's site-packages holds was unmet
        return PipSidePlan(tuple(changes), tuple(satisfied), (), (), False)
    python = state.prefix / "bin" / "python"
    cache_dir = getattr(wheels, "cache_dir", None)  # where wheel metadata read is kept
    texts = {r.name: r.requirement for r in requests}
    early = _EarlyNewest(installer, python, texts, to_resolve, settings)
    handed_over = False  # to ``later``, which then waits for the early question
    prepare = getattr(wheels, "prepare", None)
    try:
        with _BesidePreview(
            None if prepare is None else functools.partial(prepare, python), starts=early.start()
        ):
            preview = installer.preview(python, to_resolve, constraints, settings)
        if not preview.ok:
            missing = unavailable(preview.message, to_resolve, settings)
            if missing is not None:
                raise BackendError(f"{state.prefix}: {missing[0]}", hint=missing[1])
            # No cache_dir: a refused plan leaves the state dir as it found it.
            changes += _explain_refusal(
                state, packages, ownership, installer, settings, unpruned, texts, preview
            )
            return PipSidePlan(
                tuple(changes), tuple(satisfied), tuple(to_resolve), constraints, True
            )
        # What is newest, for the requests the preview installs (held back or not),
        # is asked while the chains and the clash check are worked out. Not before the
        # preview: a failing index would see every request twice. Not at all when the
        # local directories that are the only locations offer nothing newer (then it
        # may have been asked with the preview, and is waited for only after the chains
        # and the clash check: that answer serves when it names every request asked).
        from reconciler.backends.local_dirs import newer_offered

        ask_newest = [
            texts[i.name]
            for i in preview.installs
            if i.name in texts
            and not parse_request(texts[i.name]).pins_exactly()
            and newer_offered(i.name, i.version, settings)
        ]
        early_may_serve = early.may_serve(ask_newest)
        newest = _Background(
            installer.newest, python, [] if early_may_serve else ask_newest, settings
        )
        # A plan asks it now, beside the chains and the clash check; an apply once its
        # installer has started (LaterNotes.start): beside the install, not beside the
        # checks the install waits for.
        newest_of_background = newest.result if later is not None else newest.__enter__()
        wait = _waiting(newest, early)
        try:
            chains: dict[str, tuple[str, tuple[str, ...]]] = {}
            if any(i.name not in texts for i in preview.installs):
                # Transitive changes: say which request needs each (the chain).
                chains = chains_of(
                    state, installer, settings, to_resolve, texts, preview, cache_dir=cache_dir
                )
            found = _classify(state, packages, ownership, preview.installs, texts, chains=chains)
            checked = found
            if wheels is not None:
                checked = refuse_clashes(state, ownership, found, wheels, settings)

            def notes() -> list[Change]:
                """``found`` with the held-back notes (what is newest waited for)."""
                try:
                    if not early_may_serve:
                        newest_of = newest_of_background()
                    elif (served := early.serves(ask_newest)) is not None:
                        newest_of = served
                    else:  # the early question ended without the answer: asked again, alone
                        newest_of = _asked_now(installer, python, ask_newest, settings)
                    return held_back(
                        state, ownership, settings, texts, found, newest_of,
                        cache_dir=getattr(wheels, "cache_dir", None),
                    )  # fmt: skip
                finally:
                    wait()

            if later is not None:
                later.add(
                    str(state.prefix),
                    lambda: {c.name: c.held_back for c in notes() if c.held_back is not None},
                    wait,
                    newest.start,
                )
                handed_over = True
                changes += checked
            else:
                changes += [_merged(c, h) for c, h in zip(checked, notes())]
        finally:
            if not handed_over:  # (waiting again after notes() is harmless: it only waits)
                newest.__exit__(None, None, None)
    finally:
        if not handed_over:
            early.wait()
    return PipSidePlan(tuple(changes), tuple(satisfied), tuple(to_resolve), constraints, True)


def held_whole(
    state: InstalledState, requests: Sequence[PipRequest], pinned: frozenset[str]
) -> dict[str, bool]:
    """Requirement text -> whether the pins (``pinned``: :meth:`Ownership.pinned_dists`)
    hold its installed closure whole (``requirements.settled``), for each of ``requests``
    that an installed distribution of the environment's own site-packages meets: what
    :func:`plan_pip_side` leaves out of what the installer resolves, and what a saved
    plan that left one out needs still to hold (``apply.saved``)."""
    roots: dict[str, tuple[str, frozenset[str]]] = {}
    for request in requests:
        dist = state.dists.get(request.name)
        if dist is None or dist.system_site:
            continue
        req = parse_request(request.requirement)
        if satisfies(req, dist):
            roots[request.requirement] = (request.name, req.extras)
    env = marker_environment(state.python_version)
    held = settled(roots.values(), state.dists, env, pinned.__contains__)
    return {text: root in held for text, root in roots.items()}


def _waiting(newest: _Background, early: _EarlyNewest) -> Callable[[], None]:
    """What waits for both questions of what is newest, without their answers."""

    def wait() -> None:
        try:
            newest.__exit__(None, None, None)
        finally:
            early.wait()

    return wait


def _asked_now(
    installer: PipInstaller, python: Path, asked: Sequence[str], settings: PipSettings
) -> dict[str, str]:
    """What is newest of ``asked``, asked now (as :class:`_Background` would)."""
    with _Background(installer.newest, python, asked, settings) as newest:
        return newest()


def _merged(checked: Change, held: Change) -> Change:
    """One change of the clash check (``checked``) and of :func:`held_back` (``held``),
    both made from the same classified change: held back, and refused by a clash.
    held_back sees the change before the clash check, as it always did."""
    if held.held_back is None:
        return checked
    return replace(checked, held_back=held.held_back)


class _BesidePreview:
    """While the block runs (the preview: a process to wait for), each job runs in a
    thread of its own, waited for at the end of the block: preparing the clash check
    (its imports and the target's wheel tags). ``starts`` is called when the job
    threads start (it starts a thread of its own that the block does not wait for:
    :meth:`_EarlyNewest.start`), unless the preview's process has ended by then (a
    speculative preview taken after its end): what it asks beside the preview is then
    asked after it, only where the preview's outcome needs it. The threads start once
    the preview's process has started, not before, so that they do not hold up the
    start. Results and errors stay those of the checks themselves (without a process
    started, nothing runs beside it, and each check does its own work after it)."""

    def __init__(
        self, *jobs: Callable[[], None] | None, starts: Callable[[], None] | None = None
    ) -> None:
        self._jobs = [job for job in jobs if job is not None]
        self._starts = starts
        self._threads: list[Any] = []
        self._block: Any = None

    def __enter__(self) -> None:
        if self._jobs or self._starts is not None:
            from reconciler.backends.process import when_started

            self._block = when_started(self._start)
            self._block.__enter__()

    def _start(self, ended: bool) -> None:
        from reconciler.threads import InThread

        self._threads = [InThread(_quietly, job) for job in self._jobs]
        if self._starts is not None and not ended:
            self._starts()

    def __exit__(self, *exc: object) -> None:
        if self._block is not None:
            self._block.__exit__(None, None, None)
        for thread in self._threads:
            thread.wait()


def _quietly(job: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):  # the checks after the preview report faults
        job()


class _EarlyNewest:
    """What is newest, asked beside the preview when local directories are the only
    locations (no index can see a request twice): for each request to resolve that is
    not pinned exactly and could be held back, which needs two versions offered.
    ``installer.newest`` answers each request alone (``uv pip compile --no-deps``), so
    asking more changes no request's answer; one it cannot answer fails the whole
    question, which then serves nothing (:meth:`serves`). Its thread is waited for only
    when its answer is needed (:meth:`serves`), or at the end (:meth:`wait`): when the
    preview chose the newest of every request, the chains and the clash check need not
    wait for it; what it cannot answer (:meth:`may_serve`) is asked again beside them."""

    def __init__(
        self,
        installer: PipInstaller,
        python: Path,
        texts: Mapping[str, str],
        to_resolve: Sequence[str],
        settings: PipSettings,
    ) -> None:
        self._installer, self._python, self._settings = installer, python, settings
        self._texts, self._to_resolve = texts, to_resolve
        self._answer: dict[str, str] = {}
        self._asked: list[str] = []
        self._thread: Any = None

    def start(self) -> Callable[[], None] | None:
        """What starts the question in a thread beside the preview, or None when there
        can be none."""
        from reconciler.backends.local_dirs import local_only

        return self._start if local_only(self._settings) else None

    def _start(self) -> None:
        from reconciler.backends.local_dirs import may_offer_several
        from reconciler.threads import InThread

        resolving = set(self._to_resolve)
        self._asked = [
            text
            for name, text in self._texts.items()
            if text in resolving
            and not parse_request(text).pins_exactly()
            and may_offer_several(name, self._settings)
        ]
        self._thread = InThread(_quietly, self._run)

    def asked(self) -> bool:
        """Whether the question was started (the preview's process started)."""
        return self._thread is not None

    def wait(self) -> None:
        """Wait for the question's thread, if one was started."""
        if self._thread is not None:
            self._thread.wait()

    def _run(self) -> None:
        if self._asked:
            answer = self._installer.newest(self._python, self._asked, self._settings)
            self._answer = dict(answer)

    def may_serve(self, ask_newest: Sequence[str]) -> bool:
        """Whether the question can answer the requests ``ask_newest``: started, asking
        each of them, and not ended with an answer that leaves one out. When it cannot,
        they are asked again at once (beside the chains and the clash check)."""
        if self._thread is None:
            return False
        wanted = {parse_request(text).key for text in ask_newest}
        if not wanted <= {parse_request(text).key for text in self._asked}:
            return False
        return not self._thread.done() or wanted <= self._answer.keys()

    def serves(self, ask_newest: Sequence[str]) -> dict[str, str] | None:
        """The answer for the requests ``ask_newest`` (what ``installer.newest`` would
        say of them) when it names every one, else None (they are asked again, alone);
        waits for the question first."""
        asked = {parse_request(text).key for text in ask_newest}
        if not asked:
            return {}
        self.wait()
        if not asked <= self._answer.keys():
            return None
        return {k: v for k, v in self._answer.items() if k in asked}


class _Background:
    """``call(*args)`` in a thread while the block runs (previews are processes, so they
    overlap), or from :meth:`start` on; :meth:`result` returns its result (starting it
    if nothing did). Nothing runs without arguments."""

    def __init__(self, call: Callable[..., dict[str, str]], *args: Any) -> None:
        import threading

        self._call, self._args = call, args
        self._running: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> Callable[[], dict[str, str]]:
        self.start()
        return self.result

    def start(self) -> None:
        """Start the call now (once)."""
        with self._lock:
            if self._running is None and self._args and self._args[1]:
                from reconciler.threads import InThread

                self._running = InThread(self._call, *self._args)

    def result(self) -> dict[str, str]:
        self.start()
        if self._running is None:
            return {}
        try:
            return dict(self._running.result())
        except ReconcilerError:
            return {}  # what is newest is a nicety; the main preview reports real faults

    def __exit__(self, *exc: object) -> None:
        if self._running is not None:
            self._running.wait()


def _classify(
    state: InstalledState,
    packages: dict[str, Package],
    ownership: Ownership,
    installs: Sequence[Resolved],
    requested: Mapping[str, str],
    *,
    chains: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
) -> list[Change]:
    changes: list[Change] = []
    for item in installs:
        dist = state.dists.get(item.name)
        chain_reason, via = (chains or {}).get(item.name, ("", ()))
        if dist is None:
            changes.append(
                Change(
                    "install",
                    "pip",
                    item.name,
                    None,
                    item.version,
                    item.name in requested,
                    required_by=via,
                )
            )
            continue
        have, want = version_or_none(dist.version), version_or_none(item.version)
        if have is not None and want is not None and have != want:
            action = "upgrade" if want > have else "downgrade"
        elif dist.version == item.version or have == want:
            action = "reinstall"
        else:
            action = "upgrade"
        pkg = packages[state.package_for_dist(item.name)]
        status = ownership.status(pkg)
        conda_ships = item.name in state.dist_owner
        refused = status != OWNED or ownership.frozen or conda_ships
        reason = ""
        if refused:
            reason = "; ".join(p for p in (chain_reason, _describe(pkg, status)) if p)
            reason = _with_removal(reason, state, item.name, status)
        changes.append(
            Change(
                action,
                "pip",
                item.name,
                dist.version,
                item.version,
                item.name in requested,
                refused,
                reason,
                via,
            )
        )
    return changes


def _explain_refusal(
    state: InstalledState,
    packages: dict[str, Package],
    ownership: Ownership,
    installer: PipInstaller,
    settings: PipSettings,
    requirements: Sequence[str],
    requested: Mapping[str, str],
    pinned: PipPreview,
    cache_dir: Path | None = None,
) -> list[Change]:
    """The pinned resolve failed: find what it would have had to move, and why.

    The unpinned preview runs with the plan's own installer (uv unless ``installer:
    pip``); uv's requirement texts come from the wheels' metadata (see :func:`_graph`).
    """
    python = state.prefix / "bin" / "python"
    free = installer.preview(python, requirements, (), settings)
    if not free.ok:
        missing = unavailable(free.message, requirements, settings)
        if missing is not None:
            raise BackendError(f"{state.prefix}: {missing[0]}", hint=missing[1])
        raise BackendError(
            f"{state.prefix}: the requested pip packages cannot be installed together, "
            f"even ignoring managed packages: {first_lines(free.message)}",
            hint="check the versions in the manifest against the package index",
        )
    chains = chains_of(
        state, installer, settings, requirements, requested, free, pinned.edges, cache_dir=cache_dir
    )
    changes = _classify(state, packages, ownership, free.installs, requested, chains=chains)
    if not any(c.refused for c in changes):
        # The resolver blamed the pins but an unpinned resolve moves nothing we protect.
        changes.append(
            Change(
                "install",
                "pip",
                ", ".join(sorted(requested)),
                None,
                None,
                True,
                True,
                f"the resolver found no solution that keeps managed "
                f"packages in place: {first_lines(pinned.message)}",
            )
        )
    return changes
