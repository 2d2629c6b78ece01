"""The environment every installer process gets (imports only :mod:`os`).

:mod:`reconciler.backends.process` builds it for every process it starts, and the
speculative previews of :mod:`reconciler.backends.speculative` build it before the rest
of reconciler is imported: one definition, so that both give uv the same variables.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing is not imported at run time (the entry point uses this module)
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["UNCONTROLLED_VARIABLES", "child_environment"]

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
