"""One root error. Each error says what went wrong, where, and what to do.

Only :mod:`reconciler.cli` turns these into messages and exit codes.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing (like dataclasses) is not imported here at run time
if TYPE_CHECKING:
    from typing import Any

    from reconciler.manifest.problem import Problem

__all__ = [
    "BackendError",
    "LockError",
    "ManifestError",
    "Problem",
    "ReconcilerError",
    "StalePlanError",
    "StateError",
]


class ReconcilerError(Exception):
    """Root of every error the tool reports. ``exit_code`` is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ManifestError(ReconcilerError):
    """The manifest is invalid; carries every problem found in one run."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            "\n".join(str(p) for p in self.problems),
            hint=f"{count} {noun}; fix the manifest and run `reconciler validate` again",
        )


class StateError(ReconcilerError):
    """Installed state or the tool's own state files could not be read or written."""


class BackendError(ReconcilerError):
    """An installer or resolver (pip, uv, rattler) failed for a reason other than a refusal.

    ``output`` is what the installer printed (credentials redacted), for the apply log.
    """

    def __init__(self, message: str, *, hint: str | None = None, output: str = "") -> None:
        super().__init__(message, hint=hint)
        self.output = output


class LockError(ReconcilerError):
    """An environment lock could not be taken."""


class StalePlanError(ReconcilerError):
    """A saved plan no longer matches the installed state."""


def __getattr__(name: str) -> Any:
    """``Problem``, from :mod:`reconciler.manifest.problem` on first use: a run whose
    manifest loads without one never builds the value class."""
    if name == "Problem":
        from reconciler.manifest.problem import Problem

        return Problem
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
