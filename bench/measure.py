"""Running commands the way users do, timed, with each child's own peak memory.

Every child gets :func:`isolated_env`: the machine's pip/uv configuration is cut
off (``PIP_*``/``UV_*`` dropped, ``UV_NO_CONFIG=1``, ``PIP_CONFIG_FILE=/dev/null``),
``HOME`` is a per-run directory, and ``PYTHONDONTWRITEBYTECODE`` is removed so
that Python children write and use ``.pyc`` files as on a user's machine.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

_LEAKY_PREFIXES = ("PIP_", "UV_", "CONDA_", "RATTLER_", "XDG_", "JUPYTER", "RECONCILER_")
_LEAKY_NAMES = (
    "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONNOUSERSITE",
    "PYTHONDONTWRITEBYTECODE", "PYTHONSTARTUP", "PYTHONPYCACHEPREFIX", "PYTHONPROFILEIMPORTTIME",
    "PYTHONWARNINGS", "PYTHONDEVMODE", "PYTHONMALLOC", "PYTHONTRACEMALLOC",
)  # fmt: skip


def isolated_env(home: Path, uv_cache: Path, pythonpath: Path | None = None) -> dict[str, str]:
    """A copy of ``os.environ`` that keeps pip and uv away from the machine's configuration."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_LEAKY_PREFIXES) and k not in _LEAKY_NAMES
    }
    env.update(
        {
            "HOME": str(home),
            "UV_NO_CONFIG": "1",
            "UV_CACHE_DIR": str(uv_cache),
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_PROGRESS": "1",
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
        }
    )
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


@dataclass(frozen=True)
class Run:
    """One finished child: wall time, exit code, output, its own peak RSS."""

    argv: tuple[str, ...]
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    maxrss_kib: int
    #: The child's own CPU time, user + system (wait4): less sensitive to other load.
    cpu_seconds: float = 0.0

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"
        )


class CheckFailed(RuntimeError):
    """A measured command did not do what the benchmark expects."""


def run_timed(argv: Sequence[str | Path], env: Mapping[str, str], cwd: Path | None = None) -> Run:
    """Start ``argv`` (no shell), wait for it with ``wait4``: wall time and its ru_maxrss."""
    args = tuple(str(a) for a in argv)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=dict(env), cwd=cwd
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
        return _ended(args, seconds, status, usage, out, err)


def _ended(
    args: tuple[str, ...], seconds: float, status: int, usage: Any, out: IO[bytes], err: IO[bytes]
) -> Run:
    """The :class:`Run` of a child reaped with ``wait4`` (its status and rusage), whose
    output went to the files ``out`` and ``err``."""
    out.seek(0)
    err.seek(0)
    return Run(
        args,
        seconds,
        os.waitstatus_to_exitcode(status),
        out.read().decode(errors="replace"),
        err.read().decode(errors="replace"),
        usage.ru_maxrss,  # KiB on Linux
        usage.ru_utime + usage.ru_stime,
    )


def run_together(
    argvs: Sequence[Sequence[str | Path]], env: Mapping[str, str], cwd: Path | None = None
) -> tuple[float, list[Run]]:
    """Start every ``argv`` at once (no shell) and wait for all: the wall time until the
    last one ended, and each one's :class:`Run` (its own time is from the common start)."""
    with contextlib.ExitStack() as stack:
        files = [
            (
                stack.enter_context(tempfile.TemporaryFile()),
                stack.enter_context(tempfile.TemporaryFile()),
            )
            for _ in argvs
        ]
        commands = [tuple(str(a) for a in argv) for argv in argvs]
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=dict(env), cwd=cwd
            )
            for args, (out, err) in zip(commands, files)
        ]
        ended: dict[int, tuple[float, int, Any]] = {}
        while len(ended) < len(procs):
            pid, status, usage = os.wait4(-1, 0)
            ended[pid] = (time.perf_counter() - start, status, usage)
        for proc in procs:
            proc.returncode = os.waitstatus_to_exitcode(ended[proc.pid][1])  # reaped
        runs = [
            _ended(args, *ended[proc.pid], out, err)
            for args, proc, (out, err) in zip(commands, procs, files)
        ]
        return max(r.seconds for r in runs), runs


@dataclass
class Series:
    """Repeated timings of one thing (seconds), plus peak memory when tracked."""

    label: str
    command: str = ""
    times: list[float] = field(default_factory=list)
    maxrss_kib: list[int] = field(default_factory=list)

    def add(self, seconds: float, maxrss_kib: int = 0) -> None:
        self.times.append(seconds)
        self.maxrss_kib.append(maxrss_kib)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def peak_mib(self) -> float:
        return max(self.maxrss_kib) / 1024 if self.maxrss_kib else 0.0

    def spread(self) -> str:
        if not self.times:
            return "-"
        return f"{min(self.times):.3f}-{max(self.times):.3f}"
