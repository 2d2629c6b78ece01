"""Running an installer on locked files: a requirements file of ``name==version
--hash=sha256:...`` lines, hashes required, no dependency resolution."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from reconciler.backends.pip_args import constraints_file, isolation_env, temp_text_file
from reconciler.backends.process import Completed, run
from reconciler.tempfiles import LOCKED

__all__ = ["INSTALL_TIMEOUT", "not_cached", "run_locked"]

INSTALL_TIMEOUT = 3600.0

#: uv --offline: a locked file is not in the cache (then the index is asked).
#: A string, compiled by the first failed offline install that needs it (``re`` keeps it).
NOT_CACHED = (
    r"(?i)(?:not|n.t) found in the cache|network (?:was|is) disabled|connectivity is disabled"
)


def run_locked(
    argv: Sequence[str | Path], flag: str, lines: Sequence[str], constraints: Sequence[str]
) -> Completed:
    """Run an installer on a requirements file of locked lines, hashes required."""
    locked = "".join(f"{line}\n" for line in lines)
    with (
        temp_text_file(LOCKED, locked) as name,
        constraints_file(constraints) as cfile,
    ):
        pins: list[str | Path] = [flag, cfile] if cfile is not None else []
        return run(
            [*argv, "--require-hashes", "--no-deps", *pins, "-r", name],
            env=isolation_env(),
            timeout=INSTALL_TIMEOUT,
            fault_point="in-installer",
        )


def not_cached(proc: Completed) -> bool:
    """True when ``uv --offline`` failed only because a file is not in its cache."""
    return proc.returncode != 0 and re.search(NOT_CACHED, proc.stderr) is not None
