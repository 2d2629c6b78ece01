"""The console entry point: answers ``--version`` and a repeated no-op ``apply`` or ``plan``.

Every app start runs ``reconciler apply MANIFEST --background --wait S`` (the
lifecycle script; the apply itself runs detached as ``apply MANIFEST --detached``)
and every pull request ``reconciler plan MANIFEST``. When nothing changed since the
manifest was last met, :mod:`reconciler.fastpath` proves it from directory listings
and file stamps, without importing the planner (YAML, packaging, argparse...). A
no-op ``plan`` replays the output the full path printed for the same inputs and the
same options; a repeated pending ``plan`` does too, once the uv previews it ran,
started again at process start, answer exactly as they did (:func:`_replayable`).
Everything else goes to :func:`reconciler.cli.main`; for a plain call, the uv
previews its last run recorded are started first
(:mod:`reconciler.backends.speculative`), so that uv runs while the planner loads.
"""

from __future__ import annotations

import os
import sys
import time

from reconciler import __version__

# typing (and collections.abc, contextlib: they import collections and functools) are
# not imported at run time: they cost more than the whole no-op answer.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = ["main", "run"]

#: How far back a change may have been stamped with a coarse file-system clock and
#: still have happened while the full plan ran (Linux ticks are at most 10 ms).
_CLOCK_SLACK_NS = 50_000_000
#: How long a replay waits for each preview it asked again; past it, the plan is made
#: in full (with the preview's own timeout).
_REPLAY_TIMEOUT = 60.0
#: The exit codes of a plan that can be replayed (reconciler.cli's EXIT_OK, EXIT_PENDING
#: with --detailed-exitcode, EXIT_REFUSED): a plan to the end, not an error.
_PLANNED = (0, 2, 3)


class _Call:
    """A plain ``apply MANIFEST`` or ``plan MANIFEST`` (the only shapes the fast path answers)."""

    def __init__(
        self,
        command: str,
        state_dir: str,
        manifest: str,
        envs: list[str],
        flags: set[str],
        env_prefix: str | None = None,
    ) -> None:
        self.command = command
        self.state_dir = state_dir
        self.manifest = manifest
        self.envs = envs
        self.flags = flags
        #: ``plan --env-prefix PATH`` (the notebook shim), as the full path reads it.
        self.env_prefix = env_prefix

    @property
    def shape(self) -> str:
        """Which of ``plan``'s renderings the options select (as cli.py chooses it)."""
        for flag in ("json", "quiet", "verbose"):
            if flag in self.flags:
                return flag
        return "text"


#: Options each command may have on the fast path; anything else takes the full path.
_OPTIONS = {
    "apply": {
        "-q": "quiet",
        "--quiet": "quiet",
        # The lifecycle script's `apply --background --wait S`, and the apply it starts
        # detached (`--detached`, with the same manifest and selection).
        "--background": "background",
        "--detached": "detached",
    },
    "plan": {
        "-q": "quiet",
        "--quiet": "quiet",
        "-v": "verbose",
        "--verbose": "verbose",
        "--json": "json",
        "--detailed-exitcode": "detailed",
        "--notebook": "notebook",
    },
}


def _plain_call(args: Sequence[str]) -> _Call | None:
    """Recognise ``[--state-dir D] [-q] apply MANIFEST [--env N]... [--lock-timeout S]
    [--background [--wait S] | --detached]`` and
    ``[--state-dir D] [-q|-v] [--notebook] plan MANIFEST [--env N]... [--env-prefix P]
    [--json] [--detailed-exitcode]`` (the notebook shim's ``%reconcile plan``)."""
    state_dir = os.path.expanduser(  # as state.store.default_state_dir reads it
        os.environ.get("RECONCILER_STATE_DIR") or "~/.local/state/reconciler"
    )
    manifest: str | None = None
    envs: list[str] = []
    flags: set[str] = set()
    early: list[str] = []  # global options before the command
    env_prefix: str | None = None
    command = ""
    it = iter(args)
    for arg in it:
        if arg == "--state-dir":
            state_dir = os.path.expanduser(next(it, ""))
        elif arg.startswith("--state-dir="):
            state_dir = os.path.expanduser(arg.split("=", 1)[1])
        elif not command and arg in _OPTIONS:
            command = arg
        elif not command and arg in ("-q", "--quiet", "-v", "--verbose", "--notebook"):
            early.append(arg)
        elif command and arg in _OPTIONS[command]:
            flags.add(_OPTIONS[command][arg])
        elif arg == "--env" and command:
            envs.append(next(it, ""))
        elif arg == "--env-prefix" and command == "plan" and env_prefix is None:
            env_prefix = next(it, "")
            if not env_prefix:
                return None
        elif arg in ("--lock-timeout", "--wait") and command == "apply":
            if arg == "--wait":
                flags.add("wait")
            next(it, "")
        elif command and manifest is None and not arg.startswith("-"):
            manifest = arg
        else:
            return None  # anything else (--plan, --partial, --out, ...) takes the full path
    if not command or not manifest or not state_dir or "" in envs:
        return None
    if env_prefix is not None and envs:
        return None  # the full path's error: --env and --env-prefix both name it
    if {"background", "detached"} <= flags or ("wait" in flags and "background" not in flags):
        return None  # what the full path reads (or refuses) as it always did
    for arg in early:
        if arg not in _OPTIONS[command]:
            return None
        flags.add(_OPTIONS[command][arg])
    if env_prefix is not None:
        env_prefix = os.path.abspath(env_prefix)  # as edit_commands.env_by_prefix reads it
    return _Call(command, state_dir, manifest, envs, flags, env_prefix)


def _selection(call: _Call) -> list[str]:
    # Where kernelspecs are looked up is part of what the no-op decision depends on.
    context = [
        f"{k}={os.environ.get(k, '')}" for k in ("HOME", "JUPYTER_DATA_DIR", "XDG_DATA_HOME")
    ]
    if call.command == "plan":
        # The printed plan names the manifest as given and resolved, in this shape, and
        # may be coloured for a terminal.
        context += [f"plan={call.shape}", f"manifest={call.manifest}", f"cwd={os.getcwd()}"]
        context += [f"tty={int(sys.stdout.isatty())}"]
        context += [f"{k}={os.environ.get(k, '')}" for k in ("NO_COLOR", "FORCE_COLOR", "TERM")]
        if "notebook" in call.flags:
            context.append("notebook=1")
        if "detailed" in call.flags:
            context.append("detailed-exitcode=1")  # a pending plan's exit code
        if call.env_prefix is not None:
            # Which environment it names is decided again from the stamp (see _remember).
            context.append(f"env-prefix={call.env_prefix}")
    return [*(f"env={e}" for e in call.envs), *context]


def _remember(
    call: _Call,
    manifest: Any,
    output: str | None = None,
    since_ns: int | None = None,
    *,
    code: int = 0,
    answers: Sequence[str] = (),
    checked: Sequence[str] = (),
    measured: Any = None,
) -> None:
    """After a successful apply or a no-op plan: remember the stamp of everything the plan
    depended on (and, for a plan, what it printed). ``manifest``: the model the full
    path loaded (and checked the prefixes of). With ``answers`` (a pending plan): its
    exit ``code`` too, and the stamp covers the local find-links directories, each
    environment's interpreter and the files ``checked`` (the clash check's targets).
    ``measured``: what :func:`_measure` read of the inputs beside the plan's first process."""
    from pathlib import Path

    from reconciler import fastpath

    found = _inputs(call, manifest, pending=bool(answers))
    if found is None:
        return  # the full path said so (an error): nothing to remember
    inputs, count = found
    inputs.checked[:0] = checked
    raw = Path(call.manifest).read_bytes()
    from reconciler.digest import sha256

    if sha256(raw).hexdigest() != manifest.sha256:
        return  # edited since the full path read it: what it met is not what is there now
    fastpath.remember(
        call.state_dir, __version__, raw, _selection(call), inputs, count,
        output=output, unchanged_since_ns=since_ns, code=code, answers=answers,
        measured=measured,
    )  # fmt: skip


def _inputs(call: _Call, manifest: Any, *, pending: bool) -> tuple[Any, int] | None:
    """The stamp's :class:`reconciler.fastpath.Inputs` of ``call`` on ``manifest`` (for a
    ``pending`` plan, the local find-links directories and each interpreter too), and how
    many environments it covers; None when ``--env-prefix`` names none of them."""
    from pathlib import Path

    from reconciler import fastpath
    from reconciler.lockfile import lock_path
    from reconciler.state.environment import system_site_dirs
    from reconciler.state.python import find_site_packages
    from reconciler.state.store import StateStore

    store = StateStore(Path(call.state_dir))
    names = call.envs
    # What every prefix is, selected or not: one that comes to be a symbolic link makes
    # the manifest invalid, and ``--env-prefix`` compares prefixes as files
    # (os.path.samefile), so what each path names now decides which environment it is.
    identities = [str(e.prefix) for e in manifest.environments]
    if call.env_prefix is not None:
        from reconciler.edit import kernel_environment

        chosen = kernel_environment(manifest, call.env_prefix)
        if chosen is None:
            return None
        names = [chosen.name]
        identities.append(call.env_prefix)
    prefixes, sites, files, state_files, sources, checked = [], [], [], [], [], []
    for env in manifest.environments:
        if names and env.name not in names:
            continue
        prefixes.append(str(env.prefix))
        if pending:
            from reconciler.backends.local_dirs import local_directories

            sources += [os.path.abspath(d) for d in local_directories(env.pip_settings)]
            checked.append(str(env.prefix / "bin" / "python"))  # its tags, its version
        site, version = find_site_packages(env.prefix)
        sites += [str(s) for s in (site, *system_site_dirs(env.prefix, version)) if s]
        if env.kernel is not None:
            from reconciler.state.kernels import kernels_dir  # a dataclass: only with a kernel

            files.append(str(kernels_dir() / env.kernel.name / "kernel.json"))
        directory = store.env_dir(env.prefix)
        state_files += [str(directory / f) for f in ("baseline.json", "owned.json", "journal.json")]
    state_files.append(str(lock_path(Path(call.manifest))))  # a new lock changes the plan
    inputs = fastpath.Inputs(prefixes, sites, files, state_files, identities, sources, checked)
    return inputs, len(prefixes)


def _measure(call: _Call, manifest: Any, into: dict[str, Any]) -> None:
    """What a plan's stamp reads, read beside its first process (the dry run): the stamp
    at its end takes it (:func:`reconciler.fastpath.measure`)."""
    from reconciler import fastpath

    found = _inputs(call, manifest, pending=True)
    if found is not None:
        into["read"] = fastpath.measure(found[0])


def _noop_plan(plan: Any) -> bool:
    """A plan whose output depends only on what the stamp covers: nothing pending and no
    resolver consulted (a preview's answer depends on the index, which is not stamped)."""
    return not plan.pending and not any(env.resolver_ran for env in plan.environments)


def _replayable(plan: Any, manifest: Any, consulted: Sequence[str]) -> bool:
    """A plan whose output depends only on what the stamp covers (with the local
    find-links directories) and on the answers of its uv previews, which a replay asks
    again: nothing else was consulted (no index or find-links page read, no other
    process, no conda solve: ``consulted``, :func:`reconciler.backends.outside.asked`;
    a refusal explained by further uv questions asked them as previews, answered too),
    every environment exists and was planned without a lock file, and every pip
    request is a name, not a URL or a path (whose files the stamp does not cover)."""
    if consulted:
        return False
    selected = {env.name: env for env in manifest.environments}
    for planned in plan.environments:
        env = selected.get(planned.name)
        if env is None or not planned.exists or planned.lock:
            return False
        for request in env.pip:
            text = request.requirement
            if any(c in text for c in "@/\\:") or text.startswith((".", "-", "~")):
                return False
    return True


def _replay(found: Any, speculative: Any) -> int | None:
    """A repeated pending plan: when the stamp holds (checked while its previews, started
    again, run) and they answer as they did, print what it printed and return its exit
    code. None otherwise (the full path plans; a failure here is derived data too)."""
    try:
        hit = found.check(__version__)
        if hit is None or hit.output is None:
            speculative.discard(questions_only=True)  # the dry runs are left for the planner
            return None
        if not speculative.replay(hit.answers, _REPLAY_TIMEOUT):
            return None
    except KeyboardInterrupt:  # as the full path reports it (cli.main)
        sys.stderr.write("interrupted\n")
        return 130
    except Exception:
        speculative.discard(questions_only=True)  # (it raises nothing: each kill is guarded)
        return None
    sys.stdout.write(hit.output)
    code: int = hit.code
    return code


def _speculate(call: _Call, speculative: Any, *, newest: Sequence[str] = ()) -> str | None:
    """Start the previews recorded for this manifest and selection (with ``newest``, the
    answers of the plan a replay compares, the questions of what is newest it asked too);
    derived data: a failure to start them changes nothing.

    The key is the manifest's bytes and the environments selected, not the command or
    how a plan is shown: ``plan``, ``plan --json`` and then ``apply`` of the same
    manifest run the same previews. (What else a preview depends on, the planner
    compares before it takes one: see :mod:`reconciler.backends.speculative`.)"""
    from reconciler.fastpath import _key

    try:
        with open(call.manifest, "rb") as f:
            manifest = f.read(1_048_577)
        selection = [f"env={e}" for e in call.envs]
        if call.env_prefix is not None:
            selection.append(f"env-prefix={call.env_prefix}")
        key = _key(manifest, selection)
        speculative.begin(call.state_dir, key, newest=newest)
    except Exception:  # a speculation never turns into a failure
        return None
    return key.partition(":")[0]  # the key starts with the bytes' sha256


#: Set by :func:`run`: this process is the console script, its standard streams and exit
#: handlers reconciler's (``apply --background`` may then fork its detached apply).
RUNNING_AS_SCRIPT = False
#: Set by :func:`finish` while it runs the exit handlers before ``os._exit``: the
#: interpreter is not finalized, so what guards its teardown need not wait.
ENDING_WITHOUT_TEARDOWN = False


def _terminated(signum: int, frame: Any) -> None:
    """SIGTERM while speculative previews may run (a plan has no stop handler; an apply
    installs its own under the locks): kill them, taken or not, remove what they left,
    and exit at once, as the default action would, without waiting for the threads
    that plan each environment."""
    from reconciler.backends import speculative

    speculative.kill_all()
    os._exit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run reconciler; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        sys.stdout.write(f"reconciler {__version__}\n")
        return 0
    call = _plain_call(args)
    found = None
    if call is not None:
        from reconciler import fastpath

        if "detached" not in call.flags:  # its parent answered (and wrote its status)
            found = fastpath.remembered(call.state_dir, call.manifest, _selection(call))
        hit = found.check(__version__) if found is not None and not found.pending else None
        if hit is not None and call.command == "apply":
            from reconciler.render.words import noop_line

            sys.stdout.write(noop_line(hit.count) + "\n")
            return 0
        if hit is not None and hit.output is not None:
            sys.stdout.write(hit.output)
            return 0  # a no-op plan: nothing pending, nothing refused
    if call is None or "background" in call.flags:
        # A background apply's parent previews nothing: its detached child does, and
        # records (and remembers a met manifest) under the same key.
        from reconciler.cli import main as full

        return full(args)
    started = time.time_ns() - _CLOCK_SLACK_NS
    import contextlib  # the full path imports it anyway

    from reconciler.backends import outside, speculative

    printed: list[tuple[Any, str]] = []
    loaded: list[Any] = []
    measured: dict[str, Any] = {}  # what the stamp reads, read beside the first process
    replayable = False
    keyed: str | None = None
    previous: Any = None
    installed = finished = False
    try:
        # The uv previews the last run of this call made start now, while the planner
        # is imported; it takes their results only for the very same invocations.
        import threading  # imported by now (speculative uses it)

        if threading.current_thread() is threading.main_thread():
            import signal  # before the launch: a SIGTERM right after it kills it too

            previous = signal.signal(signal.SIGTERM, _terminated)
            installed = True
        pending = found is not None and found.pending
        outside.want_files(call.command == "plan")  # only a plan is remembered with them
        keyed = _speculate(call, speculative, newest=found.answers if found and pending else ())
        if found is not None and pending and speculative.started():
            replayed = _replay(found, speculative)
            if replayed is not None:
                return replayed
        from reconciler.cli import main as full

        def manifest_loaded(manifest: Any) -> None:
            loaded.append(manifest)
            if call.command == "plan":  # (an apply's stamp is of what it installed)
                from reconciler.backends.process import beside

                beside(lambda: _measure(call, manifest, measured))

        code = full(
            args,
            on_plan=lambda plan, text: printed.append((plan, text)),
            on_manifest=manifest_loaded,
        )
        finished = code in (0, 2)  # planned to the end: success, or changes pending
        answers = speculative.answers()  # (before end() forgets them)
        consulted, depended = outside.asked(), outside.files()
        with contextlib.suppress(Exception):  # derived data
            replayable = (
                call.command == "plan"
                and code in _PLANNED
                and bool(printed and loaded and answers)
                and "\x1b[" not in printed[-1][1]  # coloured for a terminal: not for replay
                and not (code == 0 and _noop_plan(printed[-1][0]))
                and _replayable(printed[-1][0], loaded[-1], consulted)
            )
    finally:
        with contextlib.suppress(Exception):  # derived data, as remembering below
            # The unclaimed ones killed and reaped; this run's recorded under the bytes
            # it was keyed by, when they are the manifest it planned (its questions of
            # what is newest too, when a replay of it may ask them again).
            speculative.end(
                record=bool(loaded) and loaded[-1].sha256 == keyed,
                finished=finished,
                questions=replayable,
            )
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        outside.want_files(True)  # (the default of every other caller)
        process = sys.modules.get("reconciler.backends.process")
        if process is not None:
            process.forget_beside()  # queued for a process this call never started

    # Derived data: never let remembering turn a success into a failure.
    with contextlib.suppress(Exception):
        if call.command == "apply" and code == 0 and loaded:
            _remember(call, loaded[-1])
        elif (
            call.command == "plan"
            and code == 0
            and printed
            and loaded
            and _noop_plan(printed[-1][0])
            and "\x1b[" not in printed[-1][1]  # coloured for a terminal: not for replay
        ):
            # The plan wrote nothing the stamp covers; a change seen since it started
            # may not be in what it printed, so that output is not remembered.
            _remember(
                call, loaded[-1], output=printed[-1][1], since_ns=started,
                measured=measured.get("read"),
            )  # fmt: skip
        elif replayable:  # (the same conditions on a change seen since it started)
            _remember(
                call, loaded[-1], output=printed[-1][1], since_ns=started, code=code,
                answers=answers or (), checked=depended, measured=measured.get("read"),
            )  # fmt: skip
    return code


def run() -> None:
    """The console script (and ``python -m reconciler``): :func:`main`, then the exit.

    The process ends without tearing the interpreter down once nothing is left that
    the teardown would do for it: the exit handlers have run, the standard streams are
    flushed, and no thread but daemons is alive. Freeing every module and object a run
    made costs ~15 ms of a plan of the image, as much as reconciler's own planning
    after the preview. Otherwise (a stream that cannot be flushed, such as a closed
    pipe, or a thread still running) it exits as Python does."""
    global RUNNING_AS_SCRIPT
    RUNNING_AS_SCRIPT = True
    import gc

    # A run is short and what it allocates is freed at its exit: the cyclic collector's
    # passes over the growing heap (56 of them in an apply of the bench's image, ~3 ms
    # of a first plan) would find little to free. A notebook's `%reconcile` runs
    # main() in its kernel, which keeps collecting.
    gc.disable()
    finish(main())


def finish(code: int) -> None:
    """End the process with ``code`` after a run, as :func:`run` does."""
    global ENDING_WITHOUT_TEARDOWN
    threading = sys.modules.get("threading")  # not imported: no thread was started
    if threading is not None and any(
        t.is_alive() and not t.daemon and t is not threading.main_thread()
        for t in threading.enumerate()
    ):
        raise SystemExit(code)
    import atexit

    handled = False
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        ENDING_WITHOUT_TEARDOWN = handled = True  # what exit handlers ask (backends.conda)
        atexit._run_exitfuncs()
        atexit._clear()  # run once, whichever way the process ends
        sys.stdout.flush()  # what the handlers wrote
        sys.stderr.flush()
    except BaseException:
        ENDING_WITHOUT_TEARDOWN = False
        conda = sys.modules.get("reconciler.backends.conda")
        if handled and conda is not None:
            conda.settle()  # its exit handler ran believing there would be no teardown
        raise SystemExit(code) from None
    os._exit(code)
