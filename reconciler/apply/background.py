"""``apply --background``: the apply runs detached; the caller waits up to a budget.

What a SageMaker lifecycle script needs: it must exit before Studio's 5-minute
limit, while a slow apply goes on (under the environment locks) and reports
through ``reconciler status``.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reconciler.apply.status import FORMAT_VERSION, status_path
from reconciler.backends.process import spawn_detached
from reconciler.state.store import write_json_atomic

__all__ = ["child_argv", "start_background"]


def child_argv(args: Any, manifest: Path) -> list[str]:
    """The foreground apply the background one runs, with the same options (``args``:
    argparse's namespace, or :class:`reconciler.cli_args.Arguments`)."""
    argv = [sys.executable, "-m", "reconciler"]
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
    state_dir: Path, argv: Sequence[str], wait: float, out: Callable[[str], None]
) -> int:
    """Start ``argv`` detached; return its exit code if it ends within ``wait`` s, else 0."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    console = state_dir / "logs" / f"background-{stamp}-{os.getpid()}.log"
    proc = spawn_detached(argv, console)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # Visible at once to `reconciler status`; the apply replaces it at its first event.
    write_json_atomic(
        status_path(state_dir),
        {
            "format_version": FORMAT_VERSION,
            "state": "running",
            "pid": proc.pid,
            "started_at": now,
            "updated_at": now,
            "steps_total": 0,
            "steps_done": 0,
            "current": ["reading the environments and planning"],
            "environments": {},
            "notices": [],
            "log": str(console),
        },
    )
    code = _wait(proc, wait)
    if code is not None:
        out(console.read_text(encoding="utf-8", errors="replace"))
        return code
    out(
        f"apply continues in the background (pid {proc.pid}); `reconciler status` shows its "
        f"progress; output: {console}"
    )
    return 0


def _wait(proc: subprocess.Popen[bytes], seconds: float) -> int | None:
    """``proc``'s exit code once it ends within ``seconds``, else None; woken by the exit
    itself (a pidfd) where Linux has one, so that a start that is done returns at once."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: Popen's own wait, 50 ms steps
        try:
            return proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None
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
    return proc.wait()
