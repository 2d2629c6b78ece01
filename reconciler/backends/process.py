"""The one place that starts processes. Arguments are lists, never a shell string.

Tests swap :data:`RUNNER` to count or forbid process starts; credentials in URLs
are redacted from everything this module returns for display.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from reconciler import faults
from reconciler.backends import outside
from reconciler.backends.child_env import UNCONTROLLED_VARIABLES as UNCONTROLLED_VARIABLES
from reconciler.backends.child_env import child_environment
from reconciler.errors import BackendError
from reconciler.values import value

POLL_SECONDS = 0.2

__all__ = [
    "INHERITED_FDS",
    "UNCONTROLLED_VARIABLES",
    "Completed",
    "beside",
    "exit_text",
    "finish",
    "first_lines",
    "forget_beside",
    "notify_started",
    "redact",
    "run",
    "spawn_detached",
    "when_started",
]

#: File descriptors every installer inherits: the environment locks' flock (see
#: :mod:`reconciler.apply.envlock`), so that a killed apply's installer keeps them.
INHERITED_FDS: set[int] = set()

_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


_STARTED = threading.local()


@contextmanager
def when_started(callback: Callable[[bool], None]) -> Iterator[None]:
    """Call ``callback(ended)`` right after :func:`run` starts a process in this thread
    inside the block (the first one): work that overlaps the process then starts after
    it, not before. ``ended``: the process had exited already (a speculative preview
    taken after its end), so that work has nothing left to overlap. Not called when no
    process starts; an error it raises is ignored."""
    previous = getattr(_STARTED, "callback", None)
    _STARTED.callback = callback
    try:
        yield
    finally:
        _STARTED.callback = previous


#: Work queued by :func:`beside`, for the next process a thread waits for.
_BESIDE: list[Callable[[], None]] = []
_BESIDE_LOCK = threading.Lock()


def beside(job: Callable[[], None]) -> None:
    """Run ``job`` once, right after the next process :func:`run` starts (or a speculative
    preview is taken), in the thread that will wait for it, before that wait: derived
    work the command needs only at its end (a plan's stamp of what it read) then costs
    nothing while the process runs. Not run when no process starts; an error it raises
    is ignored."""
    with _BESIDE_LOCK:
        _BESIDE.append(job)


def forget_beside() -> None:
    """Drop the work queued :func:`beside` that no process started for (the command it
    was queued for has ended: a kernel runs the next one in the same process)."""
    with _BESIDE_LOCK:
        _BESIDE.clear()


def notify_started(ended: bool = False) -> None:
    """A process this thread waits for has started (``ended``: and exited): call the
    :func:`when_started` callback of the block, if any (:func:`run`; a speculative
    preview taken instead), then the work queued :func:`beside` it."""
    started = getattr(_STARTED, "callback", None)
    if started is not None:
        _STARTED.callback = None
        with suppress(Exception):  # an overlap is an optimisation: the process runs on
            started(ended)
    if _BESIDE:
        with _BESIDE_LOCK:
            jobs = _BESIDE[:]
            _BESIDE.clear()
        for job in jobs:
            with suppress(Exception):  # derived work: its owner does it itself without
                job()


def first_lines(message: str) -> str:
    """The first three non-blank lines of a tool's message, joined, at most 400 characters."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return " ".join(lines[:3])[:400]


#: Why a process may have died of a signal, for the few a user meets.
_SIGNAL_CAUSES = {
    signal.SIGINT: "an interrupt: Ctrl-C, or a notebook's stop button",
    signal.SIGTERM: "asked to stop",
    signal.SIGKILL: "out of memory, or kill -9",
}


def exit_text(returncode: int) -> str:
    """How a process ended, for messages: ``exit 3``, or for one that died of a signal
    (a negative return code), which signal: ``killed by SIGINT (an interrupt: ...)``."""
    if returncode >= 0:
        return f"exit {returncode}"
    try:
        sig = signal.Signals(-returncode)
    except ValueError:
        return f"killed by signal {-returncode}"
    cause = _SIGNAL_CAUSES.get(sig)
    return f"killed by {sig.name}" + (f" ({cause})" if cause else "")


def redact(text: str) -> str:
    """Replace ``user:secret@`` in URLs by ``***@``."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", text)


@value
class Completed:
    """A finished process: its redacted command line, exit code and output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def exit_text(self) -> str:
        """How it ended: ``exit 1``, ``killed by SIGINT (...)`` (see :func:`exit_text`)."""
        return exit_text(self.returncode)

    @property
    def signalled(self) -> bool:
        """It died of a signal (its own output, if any, is then not why it ended)."""
        return self.returncode < 0

    @property
    def display(self) -> str:
        """The command line for messages, credentials redacted."""
        return redact(" ".join(self.argv))


def run(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    cwd: Path | None = None,
    fault_point: str | None = None,
) -> Completed:
    """Run ``argv`` to completion and capture its output (no shell, no stdin)."""
    args = [str(a) for a in argv]
    merged = child_environment(env)
    outside.note(f"process {redact(args[0])}")  # a repeated plan that ran it is not replayed
    try:
        proc = subprocess.Popen(
            args,
            env=merged,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=tuple(sorted(INHERITED_FDS)),
        )
    except FileNotFoundError as exc:
        raise BackendError(
            f"cannot run {redact(args[0])}: not found",
            hint="check that the environment's interpreter exists",
        ) from exc
    except OSError as exc:
        raise BackendError(
            f"cannot run {redact(args[0])}: {exc.strerror or exc}",
            hint="check the file exists and is executable",
        ) from exc
    try:
        notify_started()
    except BaseException:  # an interrupt in what overlaps it: the process is not left
        proc.kill()
        proc.communicate()
        raise
    if fault_point:
        faults.point(fault_point)
    return finish(proc, args, timeout)


def finish(proc: subprocess.Popen[str], args: list[str], timeout: float | None) -> Completed:
    """Wait for ``proc`` (started with ``args``, output piped as text) as :func:`run`
    does: the same timeout and stop handling, the same captured, redacted result."""
    stdout, stderr = _wait(proc, args, timeout)
    return Completed(tuple(redact(a) for a in args), proc.returncode, stdout, stderr)


def _wait(proc: subprocess.Popen[str], args: list[str], timeout: float | None) -> tuple[str, str]:
    """Wait for ``proc``; on a stop request give it the grace period, then terminate it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            return proc.communicate(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        if faults.stop_deadline_passed():
            proc.terminate()
            proc.communicate()
            raise faults.Interrupted(
                f"stopped by {faults.stop_reason()}: {redact(args[0])} was terminated after "
                f"{faults.GRACE_SECONDS:g} s",
                hint="run `reconciler apply` again to finish",
            )
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            raise BackendError(
                f"{redact(' '.join(args[:4]))} ... did not finish within {timeout:.0f} s",
                hint="check the package index is reachable, or raise the timeout",
            )


def spawn_detached(argv: Sequence[str | Path], output: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (``setsid``), output appended to ``output``.

    It outlives its parent and is not in the parent's process group, so a
    lifecycle script that ends (or is killed at its time limit) leaves it running.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    outside.note(f"process {redact(str(argv[0]))}")
    with output.open("ab") as sink:
        return subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
