"""``apply --background``: the apply runs detached; the caller waits up to a budget.

What a SageMaker lifecycle script needs: it must exit before Studio's 5-minute
limit, while a slow apply goes on (under the environment locks) and reports
through ``reconciler status``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from reconciler.apply.status import FORMAT_VERSION, status_path
from reconciler.backends.process import spawn_detached
from reconciler.state.store import write_json_atomic

__all__ = ["start_background"]

POLL_SECONDS = 0.2


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
    deadline = time.monotonic() + wait
    while True:
        code = proc.poll()
        if code is not None:
            out(console.read_text(encoding="utf-8", errors="replace"))
            return code
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    out(
        f"apply continues in the background (pid {proc.pid}); `reconciler status` shows its "
        f"progress; output: {console}"
    )
    return 0
