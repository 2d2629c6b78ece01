"""Progress of an apply goes through a reporter; the base class ignores everything.

Only the CLI turns these events into output (a TTY display or timestamped lines).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.plan.model import Plan

__all__ = ["Reporter"]


class Reporter:
    """Receives progress events. Subclasses override what they show."""

    def notice(self, text: str) -> None:
        """Something worth knowing that is not progress (a recovered journal, a new baseline)."""

    def resolving(self, names: list[str]) -> None:
        """The environments ``names`` are being read and resolved (the plan)."""

    def planned(self, plan: Plan) -> None:
        """The plan is made and nothing is changed yet (``add`` shows it here, first)."""

    def environment_started(self, name: str, steps: int) -> None:
        """``name`` starts; it has ``steps`` steps."""

    def step(self, name: str, index: int, text: str) -> None:
        """Step ``index`` (1-based) of environment ``name`` starts: ``text``."""

    def environment_finished(self, name: str, status: str, message: str) -> None:
        """``name`` ended with ``status`` (done, unchanged, refused, failed, skipped)."""
