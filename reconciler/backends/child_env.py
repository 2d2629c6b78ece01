"""The environment every installer process gets, and where reconciler's uv is (imports
only :mod:`os` and :mod:`sys`).

:mod:`reconciler.backends.process` builds it for every process it starts, and the
speculative previews of :mod:`reconciler.backends.speculative` build it before the rest
of reconciler is imported: one definition, so that both give uv the same variables.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is not imported at run time (the entry point uses this module)
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["UNCONTROLLED_VARIABLES", "child_environment", "uv_in_venv"]

#: Variables never passed to an installer. The caller's environment is not a terminal's:
#: ipykernel sets FORCE_COLOR=1 and CLICOLOR_FORCE=1 for every child of a notebook, and
#: with them pip colours the JSON of ``--report -`` so that it no longer parses. Verbosity
#: and progress settings put log lines where reconciler reads a report; ``PIP_USER``,
#: ``PIP_TARGET``, ``PIP_PREFIX``, ``PIP_ROOT`` and ``PIP_DRY_RUN`` would move (or skip)
#: the install away from the environment that was planned. Index and network settings
#: (``PIP_INDEX_URL``, ``UV_INDEX_URL``, timeouts...) are the user's and stay.
UNCONTROLLED_VARIABLES = frozenset(
    {
        "FORCE_COLOR",
        "CLICOLOR_FORCE",
        "CLICOLOR",
        "PY_COLORS",
        "PIP_VERBOSE",
        "PIP_QUIET",
        "PIP_PROGRESS_BAR",
        "PIP_USER",
        "PIP_TARGET",
        "PIP_PREFIX",
        "PIP_ROOT",
        "PIP_DRY_RUN",
        "PIP_REPORT",
    }
)


def child_environment(additions: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without :data:`UNCONTROLLED_VARIABLES`, with
    ``NO_COLOR=1``, then ``additions``."""
    merged = {k: v for k, v in os.environ.items() if k not in UNCONTROLLED_VARIABLES}
    merged["NO_COLOR"] = "1"
    if additions:
        merged.update(additions)
    return merged


def uv_in_venv() -> str | None:
    """``find_uv_bin()``'s answer without sysconfig, when reconciler runs in a venv on POSIX
    (Python 3.11+), where the answer is its first candidate: the scripts directory of the
    "venv" scheme, ``sys.prefix/bin``. (sysconfig's variables cost ~2 ms to load.) None
    anywhere else, or when that file is missing: find_uv_bin then searches as it does."""
    if os.name != "posix" or sys.version_info < (3, 11) or sys.prefix == sys.base_prefix:
        return None
    scripts = os.path.normpath(os.path.join(os.path.normpath(sys.prefix), "bin"))
    path = os.path.join(scripts, "uv")
    return path if os.path.isfile(path) else None
