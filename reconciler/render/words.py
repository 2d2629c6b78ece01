"""Small wording helpers shared by every output (cheap to import: the fast path uses them)."""

from __future__ import annotations

__all__ = ["noop_line", "plural"]


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 finding`` / ``2 findings`` (``many`` for irregular plurals)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def noop_line(environments: int) -> str:
    """The one line of a plan or apply with nothing to do (the same for both)."""
    if environments == 1:
        return "No changes: the environment already matches the manifest."
    return f"No changes: {environments} environments already match the manifest."
