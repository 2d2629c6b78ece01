"""The status of the last or running apply (``reconciler status``), as a JSON file.

Written atomically by :class:`StatusReporter` at every event, so a user opening a
notebook while a background apply runs can see what is left. A ``running``
status whose process is gone is reported as ``failed`` (interrupted).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.apply.report import Reporter
from reconciler.backends.process import redact
from reconciler.errors import StateError
from reconciler.state.store import write_json_atomic
from reconciler.values import field, value

if TYPE_CHECKING:
    from reconciler.plan.model import Plan

__all__ = ["FORMAT_VERSION", "STATES", "StatusReporter", "read_status", "status_path"]

#: ``format_version`` of the status file, as in every other JSON reconciler writes
#: (files written before it was named so carry ``"format": 1`` and are still read).
FORMAT_VERSION = "1"


def status_path(state_dir: Path) -> Path:
    """Where the status file lives."""
    return state_dir / "status.json"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@value(frozen=False, slots=False)  # written out with vars()
class _Env:
    status: str = "pending"
    steps_total: int = 0
    steps_done: int = 0
    current: str = ""
    message: str = ""


@value(frozen=False)
class StatusReporter(Reporter):
    """Keeps ``status.json`` current and forwards every event to ``inner``."""

    path: Path
    inner: Reporter
    log: str | None = None
    environments: dict[str, _Env] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    started_at: str = field(default_factory=_now)
    state: str = "running"
    error: str = ""
    eager: bool = False  # write from the start (background applies), not at the first change
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _begun: bool = False

    def _write(self, *, final: bool = False) -> None:
        # A no-op apply writes nothing: the file appears with the first real event.
        # Progress is rewritten at every step: only the final result is fsynced.
        if not (self._begun or self.eager):
            return
        with self._lock:
            envs = {name: vars(env).copy() for name, env in self.environments.items()}
            doc = {
                "format_version": FORMAT_VERSION,
                "state": self.state,
                "pid": os.getpid(),
                "started_at": self.started_at,
                "updated_at": _now(),
                "steps_total": sum(e.steps_total for e in self.environments.values()),
                "steps_done": sum(e.steps_done for e in self.environments.values()),
                "current": [
                    f"{name}: {e.current}"
                    for name, e in self.environments.items()
                    if e.status == "running"
                ],
                "environments": envs,
                "notices": [redact(n) for n in self.notices],
                "log": self.log,
                "error": self.error,
            }
            write_json_atomic(self.path, doc, derived=not final)

    def begin(self, names: list[str]) -> None:
        """The apply starts with these environments."""
        self.environments = {name: _Env() for name in names}
        self._write()

    def notice(self, text: str) -> None:
        """Remember and forward."""
        self.notices.append(text)
        self._write()
        self.inner.notice(text)

    def resolving(self, names: list[str]) -> None:
        """Forward (the status file shows planning until an environment starts)."""
        self.inner.resolving(names)

    def planned(self, plan: Plan) -> None:
        """Forward."""
        self.inner.planned(plan)

    def environment_started(self, name: str, steps: int) -> None:
        """Running, with ``steps`` steps. Written at the apply's first start (a kill
        before any step leaves the status of this apply, not of the one before);
        the next environments' starts are written with their first steps, which the
        apply reports right after (each environment's thread wrote one file fewer
        before its installer could start)."""
        with self._lock:
            first = not self._begun
            self._begun = True
            self.environments[name] = _Env(status="running", steps_total=steps)
        if first:
            self._write()
        self.inner.environment_started(name, steps)

    def step(self, name: str, index: int, text: str) -> None:
        """Steps before ``index`` are done."""
        with self._lock:  # (another thread's _write reads the environments)
            env = self.environments.setdefault(name, _Env(status="running"))
            env.steps_done, env.current = index - 1, text
        self._write()
        self.inner.step(name, index, text)

    def environment_finished(self, name: str, status: str, message: str) -> None:
        """Ended."""
        with self._lock:
            env = self.environments.setdefault(name, _Env())
            env.status, env.message, env.current = status, redact(message), ""
            if status == "done":
                env.steps_done = env.steps_total
        self._write()
        self.inner.environment_finished(name, status, message)

    def finish(self, state: str, results: dict[str, tuple[str, str]], error: str = "") -> None:
        """The whole apply ended (``finished``, ``refused`` or ``failed``); ``results`` per
        environment. A refused apply is recorded even though nothing started: `status`
        must show it, not the apply before it."""
        if state == "refused":
            self._begun = True
        self.error = redact(error)
        if self.log and not Path(self.log).exists():
            self.log = None  # nothing ran, so no log was written
        for name, (status, message) in results.items():
            env = self.environments.setdefault(name, _Env())
            if env.status in ("pending", "running"):
                env.status, env.message = status, redact(message)
        self.state = state
        self._write(final=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: The states a status file may be in.
STATES = ("running", "finished", "refused", "failed")
_MAX_PID = 2**22  # Linux's pid_max ceiling; a larger number is not a process


def _problem(doc: object) -> str | None:
    """Why ``doc`` is not a status document this version wrote, or None."""
    if not isinstance(doc, dict):
        return "it is not a JSON object"
    if doc.get("format_version") != FORMAT_VERSION and doc.get("format") != 1:
        return f"unknown format_version {doc.get('format_version', doc.get('format'))!r}"
    if doc.get("state") not in STATES:
        return f"unknown state {doc.get('state')!r}"
    pid = doc.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= _MAX_PID:
        return f"bad pid {pid!r}"
    for key in ("steps_total", "steps_done"):
        value = doc.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            return f"bad {key!r}"
    for key in ("current", "notices"):
        value = doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"bad {key!r}"
    for key in ("started_at", "updated_at", "error", "log"):
        if not isinstance(doc.get(key, ""), (str, type(None))):
            return f"bad {key!r}"
    environments = doc.get("environments", {})
    if not isinstance(environments, dict) or not all(
        isinstance(env, dict)
        and all(isinstance(env.get(k, ""), str) for k in ("status", "message", "current"))
        for env in environments.values()
    ):
        return "bad 'environments'"
    return None


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The status document, with a dead ``running`` apply turned into ``failed``.

    None when no apply has run. A damaged file is a StateError naming it: it is
    derived data that the next apply rewrites, so the hint says to remove it.
    """
    path = status_path(state_dir)
    try:
        with path.open(encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        problem: str | None = f"unreadable or corrupt ({exc})"
    else:
        problem = _problem(doc)
    if problem is not None:
        raise StateError(
            f"status file {path} is {problem}",
            hint="the next apply rewrites it; remove it to clear this error "
            "(`reconciler status` then says no apply has run)",
        )
    if "format_version" not in doc:  # written before the key was renamed
        doc["format_version"] = FORMAT_VERSION
        doc.pop("format", None)
    if doc.get("state") == "running" and not _alive(doc["pid"]):
        doc["state"] = "failed"
        doc["error"] = f"the apply (pid {doc.get('pid')}) stopped before finishing"
    return dict(doc)
