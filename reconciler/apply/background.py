"""``apply --background``: the apply runs detached; the caller waits up to a budget.

What a SageMaker lifecycle script needs: it must exit before Studio's 5-minute
limit, while a slow apply goes on (under the environment locks) and reports
through ``reconciler status``.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reconciler.apply.status import FORMAT_VERSION, status_path
from reconciler.backends.process import spawn_detached
from reconciler.state.store import write_json_atomic

__all__ = ["announce", "child_args", "start_background"]


def child_args(args: Any, manifest: Path) -> list[str]:
    """The arguments of the foreground apply the background one runs, with the same
    options (``args``: argparse's namespace, or :class:`reconciler.cli_args.Arguments`)."""
    argv = []
    if args.state_dir:
        argv += ["--state-dir", str(args.state_dir)]
    argv += [
        "apply",
        str(manifest.resolve()),
        "--detached",
        "--lock-timeout",
        str(args.lock_timeout),
    ]
    for name in args.env:
        argv += ["--env", name]
    if args.plan:
        argv += ["--plan", str(args.plan.resolve())]
    if args.partial:
        argv.append("--partial")
    if args.locked:
        argv.append("--locked")
    return argv


def start_background(
    state_dir: Path, args: Sequence[str], wait: float, out: Callable[[str], None]
) -> int:
    """Start ``reconciler ARGS`` (:func:`child_args`) detached; return its exit code if it
    ends within ``wait`` s, else 0."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    console = state_dir / "logs" / f"background-{stamp}-{os.getpid()}.log"
    pid = _forked(args, console, state_dir)
    if pid is None:
        pid = spawn_detached([sys.executable, "-m", "reconciler", *args], console).pid
        # A new Python takes tens of milliseconds before the apply writes anything (a
        # forked one waits for this: _forked).
        announce(state_dir, pid, console)
    code = _wait(pid, wait)
    if code is not None:
        out(console.read_text(encoding="utf-8", errors="replace"))
        return code
    out(
        f"apply continues in the background (pid {pid}); `reconciler status` shows its "
        f"progress; output: {console}"
    )
    return 0


def announce(state_dir: Path, pid: int, console: Path) -> None:
    """The status of the detached apply ``pid`` before its first event: running, output
    in ``console``. Visible at once to ``reconciler status``; the apply replaces it."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json_atomic(
        status_path(state_dir),
        {
            "format_version": FORMAT_VERSION,
            "state": "running",
            "pid": pid,
            "started_at": now,
            "updated_at": now,
            "steps_total": 0,
            "steps_done": 0,
            "current": ["reading the environments and planning"],
            "environments": {},
            "notices": [],
            "log": str(console),
        },
        derived=True,  # not fsynced, as the apply's progress: only its result is
    )


def _forked(args: Sequence[str], console: Path, state_dir: Path) -> int | None:
    """``reconciler ARGS`` in a child forked from this process, as
    :func:`reconciler.backends.process.spawn_detached` starts it (its own session, output
    appended to ``console``, no other descriptor of this process kept), without starting
    Python and importing again what this process has; its pid, once its status is
    written (:func:`announce`): the child runs only after that (or after this process
    ended), so that the status cannot replace one the apply wrote. None, to spawn it
    instead, where forking could copy what is not reconciler's: a caller that is not the
    console script (its streams and exit handlers), or a thread other than this one."""
    threading = sys.modules.get("threading")
    entry = sys.modules.get("reconciler.entry")
    if (
        not hasattr(os, "fork")
        or not getattr(entry, "RUNNING_AS_SCRIPT", False)
        or not _own_streams()
        or (threading is not None and threading.active_count() > 1)
    ):
        return None
    import atexit
    import fcntl
    import signal

    console.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    gate, opened = os.pipe()  # the child reads its end until this process closes its own
    fds = [gate, opened]
    try:
        sink = os.open(console, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        fds.append(sink)
        pid = os.fork()
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    if pid:
        os.close(sink)
        os.close(gate)
        try:
            announce(state_dir, pid, console)
        finally:
            os.close(opened)
        return pid
    code = 1
    try:
        # Out of the caller's session first: a signal to its group (a timeout's SIGTERM,
        # a Ctrl-C, the terminal's hangup) never reaches the apply, even before it runs.
        os.setsid()
        # The apply waits for its installers: not reaped for it if its caller was.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(opened)
        while os.read(gate, 1):  # the end of the pipe: the status is written (or failed)
            continue
        os.close(gate)
        # Above 2 first: with the caller's stdin closed, the log itself may be fd 0.
        low = (os.open(os.devnull, os.O_RDONLY), sink)
        devnull, output = (fcntl.fcntl(fd, fcntl.F_DUPFD, 3) for fd in low)
        os.dup2(devnull, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        _close_from(3)  # the caller's pipes end when it ends, as with exec
        atexit._clear()  # the caller's exit handlers, not this run's
        from reconciler.entry import finish, main

        finish(main(list(args)))  # as `python -m reconciler ARGS` ends
    except SystemExit as stop:  # a thread still running: Python's exit, which waits
        code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
        _exit_as_python_does()
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)  # never back into the caller's frames


def _own_streams() -> bool:
    """Whether the standard streams are still the ones Python made at start."""
    return sys.stdout is sys.__stdout__ and sys.stderr is sys.__stderr__


def _exit_as_python_does() -> None:
    """What the interpreter does at exit before it tears down: wait for the threads that
    are not daemons, run the exit handlers, flush the standard streams."""
    import atexit
    import threading

    from reconciler import entry

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    entry.ENDING_WITHOUT_TEARDOWN = True  # os._exit follows: nothing is finalized
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()


def _close_from(low: int) -> None:
    """Close every descriptor from ``low`` up: those ``/proc/self/fd`` lists (above the
    soft limit too), else up to the limit."""
    try:
        listed = [int(name) for name in os.listdir("/proc/self/fd")]
    except (OSError, ValueError):
        try:
            limit = os.sysconf("SC_OPEN_MAX")
        except (OSError, ValueError):
            limit = 65_536
        os.closerange(low, max(limit, low))
        return
    for fd in listed:
        if fd >= low:
            with contextlib.suppress(OSError):  # the listing's own, closed by now
                os.close(fd)


def _wait(pid: int, seconds: float) -> int | None:
    """Child ``pid``'s exit code (``-N`` when killed by signal N) once it ends within
    ``seconds``, else None; woken by the exit itself (a pidfd) where Linux has one, so
    that a start that is done returns at once."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: wait in steps of 50 ms
        deadline = time.monotonic() + seconds
        while True:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped for us (SIGCHLD ignored): as subprocess
                return 0
            if done:
                return os.waitstatus_to_exitcode(status)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(left, 0.05))
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + seconds
        # A day at a time: poll's milliseconds overflow past ~24.8 days.
        while not poller.poll(min(max(0.0, deadline - time.monotonic()), 86_400.0) * 1000):
            if time.monotonic() >= deadline:
                return None
    finally:
        os.close(pidfd)
    try:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    except ChildProcessError:  # reaped for us (SIGCHLD ignored): its code is lost, and
        return 0  # subprocess says 0 then too
