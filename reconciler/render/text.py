"""Plans and drift as text for people: ``+`` add, ``~`` change, ``!`` refused.

With ``color`` (the CLI decides: a TTY, ``NO_COLOR`` unset, see :func:`use_color`)
the markers, severities and summaries are coloured with ANSI codes; otherwise the
text is plain, byte for byte what the tests assert.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from reconciler.plan.model import Change, EnvironmentPlan, Plan
from reconciler.render.words import noop_line, plural

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from reconciler.apply.execute import ApplyResult
    from reconciler.plan.drift import Drift, Finding
    from reconciler.state.store import Baseline

__all__ = [
    "apply_summary",
    "baseline_replacement",
    "change_line",
    "drift_text",
    "held_back_text",
    "noop_line",
    "plan_summary",
    "plan_text",
    "refusal_hints",
    "status_text",
    "use_color",
]

_ADD = {"create", "install", "register-kernel"}
_SPEC_START = tuple("<>=!~")  # a `to` that is a specifier, not a version (not resolved yet)
_COLORS = {"+": "32", "~": "33", "!": "31", "-": "31", "error": "31", "warning": "33"}
_BOLD, _RED, _GREEN = "1", "31", "32"


def use_color(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Colour on a terminal unless ``NO_COLOR`` is set (no-color.org) or ``TERM=dumb``.

    ``FORCE_COLOR`` is not honoured: ipykernel sets it for every process a notebook
    starts, so it does not mean that the user asked, and output captured off a
    terminal (a log, the ``%reconcile`` magic, ``| grep``) stays plain."""
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _paint(text: str, code: str | None, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and code else text


def _marker(change: Change) -> str:
    if change.refused:
        return "!"
    if change.action in _ADD:
        return "+"
    return "-" if change.action == "remove" else "~"


def change_line(
    change: Change, *, color: bool = False, kernels: Mapping[str, str] | None = None
) -> str:
    """``  + install pip polars 1.2.0`` / ``  ! upgrade pip numpy 1.26.4 -> 2.0: reason``.

    ``kernels`` maps kernel names to their display names (from the manifest).
    """
    marker = _paint(_marker(change), _COLORS[_marker(change)], color)
    refusal = f"\n      refused: {change.reason}" if change.refused else ""
    if change.action == "create":
        kind = "conda environment" if change.manager == "conda" else "venv"
        return f"  {marker} create {kind} {change.name} (python {change.to_version}){refusal}"
    if change.action == "register-kernel":
        shown = (kernels or {}).get(change.name)
        return (
            f"  {marker} register kernel {change.name}"
            + (f" ({shown})" if shown else "")
            + (refusal)
        )
    to, name = change.to_version, change.name
    spec = bool(to) and str(to).startswith(_SPEC_START)  # not resolved yet: `alpha>=2`
    if change.from_version and to:
        what = f"{name} {change.from_version} -> {name + to if spec else to}"
    elif to:
        what = f"{name}{to}" if spec else f"{name} {to}"
    else:
        what = name
    line = f"  {marker} {change.action} {change.manager} {what}"
    # "requested" only when the manifest's own entry for the package causes the change;
    # an upgrade another package needs shows that package (the reason names it if refused).
    if change.required_by and not change.refused:
        line += " (required by " + " <- ".join(reversed(change.required_by)) + ")"
    elif change.requested and not change.required_by:
        line += " (requested)"
    if change.held_back is not None:
        refusal += f"\n      held back: {held_back_text(change)}"
    return line + refusal


def held_back_text(change: Change) -> str:
    """``newest is 24.1.0; black 24.1.0 requires packaging>=22.0; packaging is managed
    at 21.3`` (what keeps a request below its newest release)."""
    held = change.held_back
    assert held is not None
    text = f"newest is {held.newest}"
    if held.by:
        text += "; " + "; ".join(
            f"{change.name} {held.newest} requires {h.requirement}; {h.name} is {h.status} at "
            f"{h.version}"
            for h in held.by
        )
    return text


def _partial_environments(plan: Plan) -> list[str]:
    """Environments ``--partial`` would apply: changes, none refused."""
    return [e.name for e in plan.environments if e.changes and not e.refused]


def plan_summary(plan: Plan, *, partial: bool = False, color: bool = False) -> str:
    """One line: counts of what would happen. ``partial``: the apply runs with --partial."""
    s = plan.summary()
    if not plan.pending:
        return _paint(noop_line(s["environments"]), _GREEN, color)
    parts = [
        f"{s[a]} to {a}" for a in ("create", "install", "upgrade", "downgrade", "reinstall") if s[a]
    ]
    if s["register-kernel"]:
        parts.append(f"{plural(s['register-kernel'], 'kernel')} to register")
    text = _paint("Plan:", _BOLD, color) + " " + (", ".join(parts) if parts else "nothing allowed")
    if s["refused"]:
        applied = _partial_environments(plan)
        if partial and applied:
            why = f"--partial applies {', '.join(applied)} only"
        else:
            why = "apply would change nothing"
        text += _paint(f"; {s['refused']} refused ({why})", _RED, color)
    return text + "."


def _roots(change: Change, by_name: Mapping[str, Change]) -> list[str]:
    """The manifest's requests behind ``change``: follow ``required_by`` up to them."""
    roots: list[str] = []
    seen: set[str] = set()
    stack = [change.name] if change.requested and not change.required_by else []
    stack += list(change.required_by[:1])
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        parent = by_name.get(name)
        if parent is not None and parent.required_by and parent is not change:
            stack += list(parent.required_by[:1])
        elif name not in roots:
            roots.append(name)
    return roots


def _environment_hints(env: EnvironmentPlan) -> list[str]:
    by_name = {c.name: c for c in env.changes}
    causes: dict[str, list[Change]] = {}
    for change in env.refused:
        for root in _roots(change, by_name) or [change.name]:
            causes.setdefault(root, []).append(change)
    hints: list[str] = []
    for root, changes in causes.items():
        own = by_name.get(root)
        if own is not None and own in changes and own.from_version and own.action != "create":
            hints.append(
                f"{root} is installed at {own.from_version} and reconciler may not change it: "
                f"pin {root}=={own.from_version} in the manifest, or remove it"
            )
        moved = [f"{c.name} {c.from_version}" for c in changes if c.from_version and c is not own]
        if moved:
            hints.append(
                f"{root} needs {', '.join(moved)} to change: remove {root} from the manifest, "
                f"or pin a version of {root} that works with {'it' if len(moved) == 1 else 'them'}"
            )
        if not any(c.from_version for c in changes):
            hints.append(f"remove {root} from the manifest, or act on the reason above")
    return [f"{env.name}: {h}" for h in hints]


def refusal_hints(plan: Plan, *, partial: bool = False) -> list[str]:
    """What to do next about a refused plan, one hint per cause (empty when none)."""
    if not plan.refused:
        return []
    hints = [h for env in plan.environments for h in _environment_hints(env)]
    applied = _partial_environments(plan)
    if applied and not partial:
        hints.append(
            f"or apply only the environments without refusals ({', '.join(applied)}): "
            f"reconciler apply {plan.manifest_path} --partial"
        )
    return hints


def plan_text(
    plan: Plan,
    *,
    verbose: bool = False,
    partial: bool = False,
    color: bool = False,
    kernels: Mapping[str, str] | None = None,
) -> str:
    """The whole plan; environments with nothing to do are one line each; a refused plan
    ends with what to do next."""
    lines: list[str] = []
    for env in plan.environments:
        head = f"{env.name} ({env.prefix}, {env.kind}{'' if env.exists else ', new'})"
        if env.lock:
            head += f" (from {env.lock})"
        if not env.changes:
            lines.append(f"{head}: up to date")
        else:
            lines.append(f"{head}:")
            lines += [change_line(c, color=color, kernels=kernels) for c in env.changes]
        if verbose and env.satisfied:
            lines.append(f"  = already satisfied: {', '.join(env.satisfied)}")
        lines += [f"  note: {n}" for n in env.notices]
    lines.append(plan_summary(plan, partial=partial, color=color))
    lines += [f"  hint: {h}" for h in refusal_hints(plan, partial=partial)]
    return "\n".join(lines)


def apply_summary(result: ApplyResult, log: Path | None) -> str:
    """``Applied 1 environment; log: ...`` (the log only when one was written)."""
    done = sum(r.status == "done" for r in result.results)
    return f"Applied {plural(done, 'environment')}" + (f"; log: {log}" if log else ".")


def baseline_replacement(name: str, old: Baseline, new: Baseline) -> str:
    """``e: a baseline was captured at ...; capturing again would ...``, each change named."""
    added, dropped, moved = old.changes_to(new)
    parts = []
    if added:
        parts.append(f"make {plural(len(added), 'package')} managed ({', '.join(added)})")
    if dropped:
        parts.append(f"stop managing {plural(len(dropped), 'package')} ({', '.join(dropped)})")
    if moved:
        parts.append(
            f"manage {plural(len(moved), 'package')} at another version ({', '.join(moved)})"
        )
    return (
        f"{name}: a baseline was captured at {old.captured_at}; capturing again would "
        + "; ".join(parts)
    )


def _what(finding: Finding) -> str:
    expected, actual = finding.expected, finding.actual
    if expected and actual:
        return f" expected {expected}, found {actual}"
    if actual:
        return f" {actual}"
    if expected and expected != finding.name:
        return f" (expected {expected})"
    return ""


def drift_text(drift: Drift, *, quiet: bool = False, color: bool = False) -> str:
    """Findings per environment and a one-line summary.

    A detail shared by several findings of one kind (the same long sentence on 34
    ``orphaned`` lines) is printed once, after them. ``quiet``: only warnings and
    errors, and the summary.
    """
    lines: list[str] = []
    for env in drift.environments:
        shown = [f for f in env.findings if not (quiet and f.severity == "info")]
        if not shown:
            if not quiet:
                lines.append(f"{env.name} ({env.prefix}): no drift")
        else:
            lines.append(f"{env.name} ({env.prefix}):")
            shared = Counter((f.kind, f.detail) for f in shown)
            for f in shown:
                severity = _paint(f.severity, _COLORS.get(f.severity), color)
                line = f"  {severity}: {f.kind} {f.manager} {f.name}{_what(f)}"
                lines.append(line if shared[(f.kind, f.detail)] > 1 else f"{line}: {f.detail}")
            lines += [
                f"  {kind} ({count} above): {detail}"
                for (kind, detail), count in shared.items()
                if count > 1
            ]
        if not quiet:
            lines += [f"  note: {n}" for n in env.notices]
    s = drift.summary()
    if drift.found:
        counts = [
            plural(s["error"], "error"),
            plural(s["warning"], "warning"),
            f"{s['info']} info",
        ]
        nonzero = [c for c, n in zip(counts, (s["error"], s["warning"], s["info"])) if n]
        text = f"{_paint('Drift:', _BOLD, color)} {plural(s['findings'], 'finding')} "
        text += f"({', '.join(nonzero)})"
        if quiet and s["info"]:
            text += "; info not shown (-q)"
        lines.append(text + ".")
    else:
        lines.append(_paint("No drift.", _GREEN, color))
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
