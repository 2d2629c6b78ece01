"""What the fault tests watch: process creation, a canary file, and the CLI's error shape.

* :func:`guard_processes` replaces every way Python starts a process
  (``subprocess.Popen``, ``os.fork``/``posix_spawn``/``exec*``/``spawn*``/``system``,
  ``_posixsubprocess.fork_exec``) with a recorder that raises
  :class:`ProcessAttempted`, a ``BaseException`` so that no ``except Exception``
  in the code under test can swallow it.
* :data:`CANARY` is the file every hostile payload tries to create
  (``touch {canary}``); it must never appear.
* :data:`REJECTED` counts the hostile inputs that were checked, by category and
  field, for the session summary (``hostile inputs rejected: N``).
"""

from __future__ import annotations

import _posixsubprocess
import os
import re
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.manifests import run_cli

__all__ = [
    "CANARY",
    "REJECTED",
    "CliError",
    "ProcessAttempted",
    "assert_cli_error",
    "guard_processes",
    "record_rejected",
    "yaml_quote",
]

#: The file hostile payloads try to create. Fixed (not per process) so that
#: parametrized ids are stable; it is only ever created by a bug.
CANARY = Path(tempfile.gettempdir()) / "reconciler-faults-CANARY"

#: category -> {(field, value)} of hostile inputs that were rejected as required.
REJECTED: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)

_OS_SPAWNERS = (
    "fork",
    "forkpty",
    "posix_spawn",
    "posix_spawnp",
    "system",
    "popen",
    "execv",
    "execve",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "execvp",
    "execvpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
    "spawnl",
    "spawnle",
    "spawnlp",
    "spawnlpe",
)


class ProcessAttempted(BaseException):
    """The code under test tried to start a process (a BaseException: never swallowed)."""


def guard_processes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every process-creating call record itself and raise; returns the record."""
    attempts: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{name}{args[:3]!r}")
            raise ProcessAttempted(f"{name} called with {args[:3]!r}")

        return refused

    def popen_init(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        attempts.append(f"subprocess.Popen{args[:1]!r}")
        raise ProcessAttempted(f"subprocess.Popen({args[:1]!r})")

    monkeypatch.setattr(subprocess.Popen, "__init__", popen_init)
    monkeypatch.setattr(_posixsubprocess, "fork_exec", refuse("_posixsubprocess.fork_exec"))
    for name in _OS_SPAWNERS:
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse(f"os.{name}"))
    return attempts


def yaml_quote(value: str) -> str:
    """``value`` as a one-line YAML double-quoted scalar: printable ASCII as is, the rest escaped.

    Escapes keep every hostile character (NUL, line breaks, bidi overrides) intact
    in the loaded value while the file stays one line per entry.
    """
    out = []
    for char in value:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


@dataclass(frozen=True)
class CliError:
    """One problem of an error as the CLI printed it."""

    line: int
    column: int
    rest: str  # "path: message" or "message"


def assert_cli_error(
    capsys: pytest.CaptureFixture[str],
    manifest: Path,
    state_dir: Path,
    command: str,
    attempts: list[str],
) -> CliError:
    """Run ``reconciler --state-dir STATE COMMAND MANIFEST``; it must fail as a manifest error.

    Exit 1, nothing on stdout, stderr one ``error: FILE:LINE:COL: ...`` line and
    its ``hint: 1 problem`` line, no traceback, no process started, no canary,
    nothing written to the state dir. Returns the problem's position and text.
    """
    code, out, err = run_cli(capsys, "--state-dir", state_dir, command, manifest)
    assert attempts == [], f"{command}: a process was started: {attempts}"
    assert not CANARY.exists(), f"{command}: the canary {CANARY} was created"
    assert (code, out) == (1, ""), f"{command}: exit {code}, stdout {out!r}, stderr {err!r}"
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.splitlines()
    assert len(lines) == 2, f"{command}: expected one problem and its hint, got {err!r}"
    assert lines[1] == (
        "  hint: 1 problem; fix the manifest and run `reconciler validate` again"
    ), err
    match = re.fullmatch(rf"error: {re.escape(str(manifest))}:(\d+):(\d+): (.+)", lines[0])
    assert match is not None, f"{command}: no file:line:col in {lines[0]!r}"
    assert not state_dir.exists(), f"{command}: wrote to the state dir"
    return CliError(int(match.group(1)), int(match.group(2)), match.group(3))


def record_rejected(category: str, field: str, value: str) -> None:
    """Count one hostile input as rejected (for the session summary)."""
    REJECTED[category].add((field, value))


def summary_lines() -> list[str]:
    """``hostile inputs rejected: N`` and its breakdown, for the terminal summary."""
    pairs = {(c, f, v) for c, values in REJECTED.items() for f, v in values}
    if not pairs:
        return []
    by_field: defaultdict[str, int] = defaultdict(int)
    for _, field, _ in pairs:
        by_field[field] += 1
    lines = [f"hostile inputs rejected: {len(pairs)}"]
    lines.append(
        "  by category: "
        + ", ".join(f"{c} {len(v)}" for c, v in sorted(REJECTED.items(), key=lambda i: i[0]))
    )
    lines.append("  by field: " + ", ".join(f"{f} {n}" for f, n in sorted(by_field.items())))
    return lines
