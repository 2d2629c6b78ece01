"""The apply journal: intent before any installer runs, completion after verification.

A journal left ``running`` by a process that no longer holds the lock means that
apply was killed; the next run reports it, re-reads the environment and
converges, adopting as owned what the killed run had installed as intended.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconciler.errors import StateError
from reconciler.plan.model import Change
from reconciler.state.store import write_json_atomic
from reconciler.values import value

__all__ = ["FORMAT", "STATUSES", "Journal", "JournalEntry"]

FORMAT = 1
#: Every status a journal entry can have ("interrupted": a later run finished a killed one).
STATUSES = ("running", "done", "failed", "interrupted")


@value
class JournalEntry:
    """What an apply of one environment set out to do, and how far it got."""

    status: str  # "running" | "done" | "failed"
    pid: int
    started_at: str
    changes: tuple[Change, ...]
    step: str = ""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "format": FORMAT,
            "status": self.status,
            "pid": self.pid,
            "started_at": self.started_at,
            "step": self.step,
            "error": self.error,
            "changes": [c.to_json() for c in self.changes],
        }


class Journal:
    """The journal file of one environment."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "journal.json"

    def read(self) -> JournalEntry | None:
        """The last entry, or None. A damaged journal is an error, not a silent reset."""
        try:
            with self.path.open(encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise self._corrupt(f"unreadable or corrupt ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise self._corrupt(f"not a reconciler v{FORMAT} apply journal")
        status, pid, changes = data.get("status"), data.get("pid"), data.get("changes", [])
        if status not in STATUSES:
            raise self._corrupt(f"unknown status {status!r}")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            raise self._corrupt(f"bad pid {pid!r}")
        if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
            raise self._corrupt("bad 'changes'")
        try:
            return JournalEntry(
                status=status,
                pid=pid,
                started_at=str(data["started_at"]),
                changes=tuple(Change.from_json(c) for c in changes),
                step=str(data.get("step", "")),
                error=str(data.get("error", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise self._corrupt(f"corrupt ({type(exc).__name__}: {exc})") from exc

    def _corrupt(self, why: str) -> StateError:
        return StateError(
            f"apply journal {self.path} is {why}",
            hint="check the environment with `reconciler drift`, then move the journal aside "
            "(the next apply re-reads the environment and writes a new one)",
        )

    def begin(self, changes: Sequence[Change], step: str = "") -> JournalEntry:
        """Record the intent (atomically) before anything is installed, with the first
        ``step`` that may start after it: the same entry that an :meth:`update` to it
        would write next, one fsync fewer."""
        entry = JournalEntry(
            "running", os.getpid(), time.strftime("%Y-%m-%dT%H:%M:%S%z"), tuple(changes), step
        )
        write_json_atomic(self.path, entry.to_json())
        return entry

    def update(
        self,
        entry: JournalEntry,
        *,
        step: str | None = None,
        status: str | None = None,
        error: str | None = None,
    ) -> JournalEntry:
        """Record progress (``step``), or the end (``status``, ``error``)."""
        from reconciler.values import replace

        fields = (
            entry.step if step is None else step,
            entry.status if status is None else status,
            entry.error if error is None else error,
        )
        if fields == (entry.step, entry.status, entry.error):
            return entry  # what the file holds already (the step begin wrote)
        updated = replace(entry, step=fields[0], status=fields[1], error=fields[2])
        write_json_atomic(self.path, updated.to_json())
        return updated
