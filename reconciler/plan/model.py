"""A Plan is a value: it can be printed, saved, compared and applied later."""

from __future__ import annotations

import re

from reconciler.values import field, value

TYPE_CHECKING = False
if TYPE_CHECKING:  # loaded by the two readers of saved plans: a plan made now needs none
    from typing import Any

    from reconciler.lockfile.model import LockedRecord

__all__ = [
    "ACTIONS",
    "UNRESOLVED",
    "Change",
    "EnvironmentPlan",
    "HeldBack",
    "Holder",
    "Plan",
    "validate_plan_document",
]

#: The reason of an install into an environment that does not exist yet: the
#: installer resolves it when the environment is created.
UNRESOLVED = "resolved when the environment exists"

ACTIONS = ("create", "install", "upgrade", "downgrade", "reinstall", "remove", "register-kernel")


@value
class Holder:
    """A managed or foreign package that keeps a request from its newest release."""

    name: str
    version: str  # installed
    requirement: str  # the newest release's requirement it does not satisfy
    status: str = "managed"  # or "foreign"

    def to_json(self) -> dict[str, str]:
        """An item of ``held_back.by`` in ``plan.v1.schema.json``."""
        return {
            "name": self.name,
            "version": self.version,
            "requirement": self.requirement,
            "status": self.status,
        }


@value
class HeldBack:
    """A request resolved to an older release than the newest available, and why."""

    newest: str
    by: tuple[Holder, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The optional ``held_back`` of a change in ``plan.v1.schema.json``."""
        return {"newest": self.newest, "by": [h.to_json() for h in self.by]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HeldBack:
        """Inverse of :meth:`to_json`."""
        return cls(
            str(data["newest"]),
            tuple(
                Holder(
                    str(h["name"]),
                    str(h["version"]),
                    str(h["requirement"]),
                    str(h.get("status", "managed")),
                )
                for h in data.get("by", ())
            ),
        )


@value
class Change:
    """One step of a plan, allowed or refused, with why."""

    action: str
    manager: str  # "conda" | "pip"
    name: str
    from_version: str | None
    to_version: str | None
    requested: bool
    refused: bool = False
    reason: str = ""
    required_by: tuple[str, ...] = ()
    held_back: HeldBack | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``changes[]`` item of ``plan.v1.schema.json`` (``held_back`` only when set)."""
        doc: dict[str, Any] = {
            "action": self.action,
            "manager": self.manager,
            "name": self.name,
            "from": self.from_version,
            "to": self.to_version,
            "requested": self.requested,
            "refused": self.refused,
            "reason": self.reason,
            "required_by": list(self.required_by),
        }
        if self.held_back is not None:
            doc["held_back"] = self.held_back.to_json()
        return doc

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        """Inverse of :meth:`to_json`."""
        return cls(
            action=str(data["action"]),
            manager=str(data["manager"]),
            name=str(data["name"]),
            from_version=data.get("from"),
            to_version=data.get("to"),
            requested=bool(data["requested"]),
            refused=bool(data["refused"]),
            reason=str(data.get("reason", "")),
            required_by=tuple(data.get("required_by", ())),
            held_back=HeldBack.from_json(data["held_back"]) if data.get("held_back") else None,
        )


@value
class EnvironmentPlan:
    """What would happen to one environment.

    ``pip_requirements``/``pip_constraints``/``conda_specs`` are exactly what the
    executor passes to the installers, so a saved plan is applied as reviewed.
    """

    name: str
    prefix: str
    kind: str  # "conda" | "venv"
    exists: bool
    fingerprint: str
    changes: tuple[Change, ...] = ()
    satisfied: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()
    resolver_ran: bool = False
    pip_requirements: tuple[str, ...] = ()
    pip_constraints: tuple[str, ...] = ()
    conda_specs: tuple[str, ...] = ()
    conda_pinned: tuple[str, ...] = ()
    #: From a fresh lock file: its name, and the exact files the installers get
    #: (``name==version --hash=sha256:...`` lines; conda records).
    lock: str = ""
    pip_locked: tuple[str, ...] = ()
    conda_locked: tuple[LockedRecord, ...] = ()

    @property
    def refused(self) -> tuple[Change, ...]:
        """The refused changes."""
        return tuple(c for c in self.changes if c.refused)

    @property
    def pending(self) -> bool:
        """True when anything would change."""
        return bool(self.changes)

    def to_json(self) -> dict[str, Any]:
        """The ``environments[]`` item of ``plan.v1.schema.json``."""
        return {
            "name": self.name,
            "prefix": self.prefix,
            "kind": self.kind,
            "exists": self.exists,
            "fingerprint": self.fingerprint,
            "changes": [c.to_json() for c in self.changes],
            "satisfied": list(self.satisfied),
            "notices": list(self.notices),
            "resolver_ran": self.resolver_ran,
            "pip_requirements": list(self.pip_requirements),
            "pip_constraints": list(self.pip_constraints),
            "conda_specs": list(self.conda_specs),
            "conda_pinned": list(self.conda_pinned),
            "lock": self.lock or None,
            "pip_locked": list(self.pip_locked),
            "conda_locked": [r.to_json() for r in self.conda_locked],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EnvironmentPlan:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=str(data["name"]),
            prefix=str(data["prefix"]),
            kind=str(data["kind"]),
            exists=bool(data["exists"]),
            fingerprint=str(data["fingerprint"]),
            changes=tuple(Change.from_json(c) for c in data.get("changes", ())),
            satisfied=tuple(data.get("satisfied", ())),
            notices=tuple(data.get("notices", ())),
            resolver_ran=bool(data.get("resolver_ran", False)),
            pip_requirements=tuple(data.get("pip_requirements", ())),
            pip_constraints=tuple(data.get("pip_constraints", ())),
            conda_specs=tuple(data.get("conda_specs", ())),
            conda_pinned=tuple(data.get("conda_pinned", ())),
            lock=str(data.get("lock") or ""),
            pip_locked=tuple(data.get("pip_locked", ())),
            conda_locked=_locked_records(data.get("conda_locked", ())),
        )


@value
class Plan:
    """The plan for a whole manifest."""

    manifest_path: str
    manifest_sha256: str
    environments: tuple[EnvironmentPlan, ...] = field(default_factory=tuple)

    @property
    def refused(self) -> bool:
        """True when any change in any environment is refused."""
        return any(env.refused for env in self.environments)

    @property
    def pending(self) -> bool:
        """True when anything would change."""
        return any(env.pending for env in self.environments)

    def summary(self) -> dict[str, int]:
        """Counts per action, plus ``refused`` and ``environments``."""
        counts = {action: 0 for action in ACTIONS}
        refused = 0
        for env in self.environments:
            for change in env.changes:
                counts[change.action] += 1
                refused += change.refused
        counts["refused"] = refused
        counts["environments"] = len(self.environments)
        return counts

    def to_json(self) -> dict[str, Any]:
        """The document described by ``schemas/plan.v1.schema.json``."""
        return {
            "format_version": "1",
            "manifest": {"path": self.manifest_path, "sha256": self.manifest_sha256},
            "environments": [env.to_json() for env in self.environments],
            "summary": self.summary(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        """Inverse of :meth:`to_json` (for ``apply --plan``)."""
        return cls(
            manifest_path=str(data["manifest"]["path"]),
            manifest_sha256=str(data["manifest"]["sha256"]),
            environments=tuple(EnvironmentPlan.from_json(e) for e in data["environments"]),
        )


def validate_plan_document(doc: Any) -> str | None:
    """Why ``doc`` is not a plan.v1 document as ``plan --out`` writes it, or None.

    Checked before :meth:`Plan.from_json` reads a saved plan. Its installer inputs
    (requirements, pins, specs) are held to the manifest's own rules: a plan file
    cannot smuggle in an option, a URL or a shell metacharacter.
    """
    from reconciler.manifest.specs import SpecError, parse_conda, parse_pip

    def strings(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    if not isinstance(doc, dict) or doc.get("format_version") != "1":
        return 'no format_version "1"'
    manifest = doc.get("manifest")
    if not (
        isinstance(manifest, dict)
        and isinstance(manifest.get("path"), str)
        and isinstance(manifest.get("sha256"), str)
    ):
        return "bad 'manifest'"
    environments = doc.get("environments")
    if not isinstance(environments, list):
        return "bad 'environments'"
    for env in environments:
        if not isinstance(env, dict):
            return "bad 'environments'"
        where = f"environment {env.get('name')!r}"
        if not all(isinstance(env.get(k), str) for k in ("name", "prefix", "fingerprint")):
            return f"{where}: bad name, prefix or fingerprint"
        if env.get("kind") not in ("conda", "venv") or not isinstance(env.get("exists"), bool):
            return f"{where}: bad kind or exists"
        lists = ("satisfied", "notices", "pip_requirements", "pip_constraints", "conda_specs")
        for key in (*lists, "conda_pinned"):
            if not strings(env.get(key)):
                return f"{where}: bad {key!r}"
        changes = env.get("changes")
        if not isinstance(changes, list):
            return f"{where}: bad 'changes'"
        problem = _locked_problem(env)
        if problem is not None:
            return f"{where}: {problem}"
        pip_inputs = [*env["pip_requirements"], *env["pip_constraints"]]
        conda_inputs = list(env["conda_specs"])
        for change in changes:
            if not (
                isinstance(change, dict)
                and change.get("action") in ACTIONS
                and change.get("manager") in ("conda", "pip")
                and isinstance(change.get("name"), str)
                and isinstance(change.get("requested"), bool)
                and isinstance(change.get("refused"), bool)
                and isinstance(change.get("from"), (str, type(None)))
                and isinstance(change.get("to"), (str, type(None)))
                and isinstance(change.get("reason", ""), str)
                and strings(change.get("required_by", []))
                and _held_back_ok(change.get("held_back"))
            ):
                return f"{where}: bad change {change!r}"[:300]
            pinned = change["to"] and change.get("reason") != UNRESOLVED
            if change["action"] in ("create", "register-kernel", "remove") or change["refused"]:
                continue
            if change["manager"] == "pip":
                pip_inputs.append(f"{change['name']}=={change['to']}" if pinned else change["name"])
            else:
                conda_inputs.append(
                    f"{change['name']} =={change['to']}" if pinned else change["name"]
                )
        try:
            for text in pip_inputs:
                parse_pip(text)
            for text in conda_inputs:
                parse_conda(text)
            for name in env["conda_pinned"]:
                parse_conda(name)
        except SpecError as exc:
            return f"{where}: {exc}"
    return None


_LOCKED_LINE = re.compile(
    r"^[a-z0-9]+(?:-[a-z0-9]+)*==[A-Za-z0-9.+!_-]+ --hash=sha256:[0-9a-f]{64}$"
)
_RECORD_TEXT = re.compile(r"^[A-Za-z0-9._+!-]+$")


def _locked_records(records: Any) -> tuple[LockedRecord, ...]:
    if not records:
        return ()
    from reconciler.lockfile.model import LockedRecord

    return tuple(LockedRecord.from_json(r) for r in records)


_RECORD_URL = re.compile(r"^(?:https?|file)://[^\s]+$")


def _locked_problem(env: dict[str, Any]) -> str | None:
    """Why the locked installer inputs of a saved plan are not as ``plan`` writes them."""
    lines = env.get("pip_locked", [])
    if not isinstance(lines, list) or not all(
        isinstance(x, str) and _LOCKED_LINE.match(x) for x in lines
    ):
        return "bad 'pip_locked'"
    records = env.get("conda_locked", [])
    if not isinstance(records, list):
        return "bad 'conda_locked'"
    if records:
        from reconciler.lockfile.model import LockedRecord
    for record in records:
        try:
            parsed = LockedRecord.from_json(record)
        except (KeyError, TypeError, ValueError, AttributeError):
            return "bad 'conda_locked'"
        texts = (parsed.name, parsed.version, parsed.build, parsed.subdir)
        if not all(_RECORD_TEXT.match(t) for t in texts) or not _RECORD_URL.match(parsed.url):
            return f"bad conda_locked record {parsed.name!r}"[:300]
        if not re.fullmatch(r"[0-9a-f]{64}", parsed.sha256):
            return f"bad conda_locked record {parsed.name!r}"[:300]
    if env.get("lock") is not None and not isinstance(env.get("lock"), str):
        return "bad 'lock'"
    return None


def _held_back_ok(value: Any) -> bool:
    """An absent ``held_back``, or ``{newest, by: [{name, version, requirement}]}``."""
    if value is None:
        return True
    if not isinstance(value, dict) or not isinstance(value.get("newest"), str):
        return False
    by = value.get("by")
    return isinstance(by, list) and all(
        isinstance(h, dict)
        and all(isinstance(h.get(k), str) for k in ("name", "version"))
        and isinstance(h.get("requirement"), str)
        for h in by
    )
