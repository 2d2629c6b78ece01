"""What ``add``, ``remove`` and ``adopt`` tell the user (the CLI and ``%reconcile`` print it)."""

from __future__ import annotations

from pathlib import Path

from reconciler.edit import AddResult, AdoptResult, RemoveResult

__all__ = ["add_text", "adopt_text", "remove_text"]


def add_text(result: AddResult, manifest: Path, side: str, *, no_apply: bool, log: Path) -> str:
    """The closing lines of ``add``: what was written, or why nothing was and what to do."""
    if result.refused:
        return (
            "Not added: the plan refuses a change (above), so nothing was installed and "
            f"{manifest} is unchanged.\n"
            "  what to do: choose a version that the managed packages allow (the refusal "
            "quotes the requirement), or add the package to an environment of its own."
        )
    lines: list[str] = []
    if result.failed:
        assert result.applied is not None
        lines += [f"{r.name}: failed: {r.message}" for r in result.applied.results
                  if r.status == "failed"]  # fmt: skip
        lines.append(f"Not added: the install failed, so {manifest} is unchanged; log: {log}")
        return "\n".join(lines)
    done = "" if no_apply else " and installed"
    where = f"environments.{result.env}.{side}"
    lines.append(f"Added to {where} in {manifest}{done}: {', '.join(result.written)}")
    if result.replaced:
        lines.append(f"  replaced: {', '.join(result.replaced)}")
    lines += [
        f"  note: all.{side} also declares {name}; both specs apply" for name in result.shared
    ]
    if no_apply:
        lines.append(f"  not installed (--no-apply): `reconciler apply {manifest}` installs it")
    return "\n".join(lines)


def remove_text(result: RemoveResult, manifest: Path) -> str:
    """What ``remove`` dropped; that nothing was uninstalled and what drift will say."""
    lines = [
        f"Removed from environments.{result.env} in {manifest}: {', '.join(result.removed)}",
        "  nothing was uninstalled: reconciler never uninstalls",
    ]
    if result.owned:
        lines.append(
            f"  `reconciler drift` now shows {', '.join(result.owned)} as orphaned "
            "(installed by reconciler, no longer declared)"
        )
    return "\n".join(lines)


def adopt_text(result: AdoptResult, manifest: Path, *, dry_run: bool) -> str:
    """What ``adopt`` wrote (or, dry run, the diff it would write)."""
    lines = [f"note: {notice}" for notice in result.notices]
    if not result.adopted:
        lines.append(f"Nothing to adopt: {result.env} has no package installed by hand (foreign)")
        return "\n".join(lines)
    adopted = ", ".join(result.adopted)
    if dry_run:
        lines.append(result.diff.rstrip("\n"))
        lines.append(f"Would adopt into environments.{result.env}: {adopted} (dry run)")
    else:
        lines.append(f"Adopted into environments.{result.env} in {manifest}: {adopted}")
    if result.dependencies:
        lines.append(
            f"  not written, required by an adopted package: {', '.join(result.dependencies)}"
        )
    return "\n".join(lines)
