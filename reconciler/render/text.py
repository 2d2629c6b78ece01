"""Plans and drift as text for people: ``+`` add, ``~`` change, ``!`` refused."""

from __future__ import annotations

from typing import Any

from reconciler.plan.drift import Drift
from reconciler.plan.model import Change, Plan

__all__ = [
    "change_line",
    "drift_text",
    "held_back_text",
    "plan_summary",
    "plan_text",
    "status_text",
]

_ADD = {"create", "install", "register-kernel"}


def change_line(change: Change) -> str:
    """``  + install pip polars 1.2.0`` / ``  ! upgrade pip numpy 1.26.4 -> 2.0: reason``."""
    if change.refused:
        marker = "!"
    elif change.action in _ADD:
        marker = "+"
    elif change.action == "remove":
        marker = "-"
    else:
        marker = "~"
    if change.from_version and change.to_version and change.action != "register-kernel":
        versions = f" {change.from_version} -> {change.to_version}"
    elif change.to_version and change.action != "register-kernel":
        versions = f" {change.to_version}"
    else:
        versions = ""
    if change.action == "create":
        kind = "conda environment" if change.manager == "conda" else "venv"
        line = f"  {marker} create {kind} {change.name} (python {change.to_version})"
        return line + (f"\n      refused: {change.reason}" if change.refused else "")
    line = f"  {marker} {change.action} {change.manager} {change.name}{versions}"
    notes = []
    if change.requested and change.action not in ("create", "register-kernel"):
        notes.append("requested")
    if change.required_by and not change.refused:
        notes.append("required by " + " <- ".join(reversed(change.required_by)))
    if notes:
        line += f" ({', '.join(notes)})"
    if change.refused:
        line += f"\n      refused: {change.reason}"
    if change.held_back is not None:
        line += f"\n      held back: {held_back_text(change)}"
    return line


def held_back_text(change: Change) -> str:
    """``newest is 24.1.0; black 24.1.0 requires packaging>=22.0, packaging is managed
    at 21.3`` (what keeps a request below its newest release)."""
    held = change.held_back
    assert held is not None
    text = f"newest is {held.newest}"
    if held.by:
        text += "; " + "; ".join(
            f"{change.name} {held.newest} requires {h.requirement}, {h.name} is installed at "
            f"{h.version} and may not move"
            for h in held.by
        )
    return text


def plan_summary(plan: Plan) -> str:
    """One line: counts of what would happen."""
    s = plan.summary()
    if not plan.pending:
        n = s["environments"]
        if n == 1:
            return "No changes: the environment already matches the manifest."
        return f"No changes: {n} environments already match the manifest."
    parts = [
        f"{s[a]} to {a}" for a in ("create", "install", "upgrade", "downgrade", "reinstall") if s[a]
    ]
    if s["register-kernel"]:
        parts.append(
            f"{s['register-kernel']} kernel{'s' if s['register-kernel'] != 1 else ''} to register"
        )
    text = "Plan: " + ", ".join(parts) if parts else "Plan: nothing allowed"
    if s["refused"]:
        text += f"; {s['refused']} refused (apply would change nothing)"
    return text + "."


def plan_text(plan: Plan, *, verbose: bool = False) -> str:
    """The whole plan; environments with nothing to do are one line each."""
    lines: list[str] = []
    for env in plan.environments:
        head = f"{env.name} ({env.prefix}, {env.kind}{'' if env.exists else ', new'})"
        if env.lock:
            head += f" (from {env.lock})"
        if not env.changes:
            lines.append(f"{head}: up to date")
        else:
            lines.append(f"{head}:")
            lines += [change_line(c) for c in env.changes]
        if verbose and env.satisfied:
            lines.append(f"  = already satisfied: {', '.join(env.satisfied)}")
        lines += [f"  note: {n}" for n in env.notices]
    lines.append(plan_summary(plan))
    return "\n".join(lines)


def drift_text(drift: Drift) -> str:
    """Findings per environment and a one-line summary."""
    lines: list[str] = []
    for env in drift.environments:
        if not env.findings:
            lines.append(f"{env.name} ({env.prefix}): no drift")
        else:
            lines.append(f"{env.name} ({env.prefix}):")
            for f in env.findings:
                what = f"{f.name}"
                if f.expected or f.actual:
                    what += f" expected {f.expected or '-'}, found {f.actual or '-'}"
                lines.append(f"  {f.severity}: {f.kind} {f.manager} {what}: {f.detail}")
        lines += [f"  note: {n}" for n in env.notices]
    s = drift.summary()
    if drift.found:
        lines.append(
            f"Drift: {s['findings']} findings ({s['error']} errors, {s['warning']} "
            f"warnings, {s['info']} info)."
        )
    else:
        lines.append("No drift.")
    return "\n".join(lines)


def status_text(doc: dict[str, Any] | None) -> str:
    """``reconciler status`` for people."""
    if doc is None:
        return "No apply has run yet."
    lines = [
        f"apply {doc.get('state', 'unknown')}"
        + (f" (pid {doc['pid']}, started {doc.get('started_at')})" if doc.get("pid") else "")
    ]
    if doc.get("error"):
        lines.append(f"  error: {doc['error']}")
    total, done = doc.get("steps_total", 0), doc.get("steps_done", 0)
    if total:
        lines.append(f"  steps: {done} of {total} done")
    for current in doc.get("current") or ():
        lines.append(f"  now: {current}")
    for name, env in (doc.get("environments") or {}).items():
        message = f": {env['message']}" if env.get("message") else ""
        lines.append(f"  {name}: {env.get('status')}{message}")
    lines += [f"  note: {n}" for n in doc.get("notices") or ()]
    if doc.get("log"):
        lines.append(f"  log: {doc['log']}")
    return "\n".join(lines)
