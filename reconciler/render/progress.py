"""Apply progress for people: a live display on a TTY, timestamped lines otherwise.

Off a TTY (a lifecycle script, CloudWatch) every event is one plain line with a
UTC timestamp; in a notebook cell (``--notebook``, the ``%reconcile`` magic) the
same lines without it. Installer output goes to a log file under the state dir, never
to the console.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from reconciler.apply.report import Reporter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from reconciler.plan.model import Plan

__all__ = ["ConsoleReporter", "new_log_path", "resolving"]


class ConsoleReporter(Reporter):
    """Prints apply progress to ``stream``."""

    def __init__(
        self,
        stream: TextIO,
        *,
        quiet: bool = False,
        stamps: bool = True,
        plan_text: Callable[[Plan], str] | None = None,
    ) -> None:
        self._stream = stream
        self._quiet = quiet
        self._plan_text = plan_text
        #: The plan was printed (by :meth:`planned`), before any progress line.
        self.shown_plan = False
        self._tty = stream.isatty()
        self._stamps = stamps and not self._tty  # a person reads a terminal or a notebook
        self._lock = threading.Lock()
        self._steps: dict[str, int] = {}

    def _line(self, text: str) -> None:
        with self._lock:
            if not self._stamps:
                self._stream.write(f"{text}\n")
            else:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                self._stream.write(f"{stamp} {text}\n")
            self._stream.flush()

    def notice(self, text: str) -> None:
        """Always shown, even with -q."""
        self._line(f"note: {text}")

    def resolving(self, names: list[str]) -> None:
        """On a TTY, say what is being resolved (off a TTY a no-op apply stays one line)."""
        if self._tty and not self._quiet:
            self._line(f"resolving {', '.join(names)} ...")

    def planned(self, plan: Plan) -> None:
        """With ``plan_text``: print what it makes of the plan (a block: no timestamps)."""
        text = self._plan_text(plan) if self._plan_text is not None and not self._quiet else ""
        if text:
            with self._lock:
                self._stream.write(text if text.endswith("\n") else text + "\n")
                self._stream.flush()
            self.shown_plan = True

    def environment_started(self, name: str, steps: int) -> None:
        """Remember the step count for ``[name 2/4]`` prefixes."""
        self._steps[name] = steps
        if not self._quiet:
            self._line(f"[{name}] applying ({steps} steps)")

    def step(self, name: str, index: int, text: str) -> None:
        """One line per step."""
        if not self._quiet:
            self._line(f"[{name} {index}/{self._steps.get(name, index)}] {text}")

    def environment_finished(self, name: str, status: str, message: str) -> None:
        """Failures are shown even with -q."""
        if status == "failed" or not self._quiet:
            self._line(f"[{name}] {status}" + (f": {message}" if message else ""))


def new_log_path(state_dir: Path) -> Path:
    """Where this apply's log goes (created only if something is written to it).

    Never the path of an existing log: two applies of one process in the same second
    (a notebook) must not share one, or a refused apply would name the other's log.
    """
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}"
    base = state_dir / "logs" / f"apply-{stamp}-{os.getpid()}"
    path, n = base.with_suffix(".log"), 1
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}.log"), n + 1
    return path


@contextlib.contextmanager
def resolving(stream: TextIO, inputs: Sequence[Any], *, show: bool) -> Iterator[None]:
    """On a terminal, ``resolving image (3 packages), tools (2 packages) ...`` on stderr
    while the resolvers run, erased when they are done (stdout stays the plan only)."""
    if not (show and inputs and stream.isatty()):
        yield
        return
    from reconciler.plan.planner import pip_requests
    from reconciler.render.words import plural

    what = ", ".join(
        f"{i.env.name} ({plural(len(i.env.conda) + len(pip_requests(i.env)), 'package')})"
        for i in inputs
    )
    dumb = os.environ.get("TERM") == "dumb"
    stream.write(f"resolving {what} ...{chr(10) if dumb else ''}")
    stream.flush()
    try:
        yield
    finally:
        if not dumb:
            stream.write("\r\x1b[2K")  # erase the line: what follows starts clean
            stream.flush()
