"""Reading a lock file, and whether its entry for an environment is fresh.

A locked environment is fresh when the environment's manifest entries, its
image identity and its managed set are what the lock was resolved against.
Otherwise :func:`staleness` says why, in words that follow "team.lock is
stale for environment 'dl': ".
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.lockfile.model import Entries, LockedEnvironment, LockFile
from reconciler.manifest.model import Environment
from reconciler.plan.policy import Ownership
from reconciler.state.environment import InstalledState

__all__ = ["entries_of", "managed_digest", "read_lock", "staleness", "strip_credentials"]

_USERINFO = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def strip_credentials(url: str) -> str:
    """``https://user:secret@host/simple/`` -> ``https://host/simple/``: never stored."""
    return _USERINFO.sub(lambda m: m.group("scheme"), url)


def entries_of(env: Environment) -> Entries:
    """The manifest entries a lock of ``env`` depends on (kernel's ipykernel included)."""
    from reconciler.plan.planner import pip_requests

    settings = env.pip_settings
    indexes = [] if settings.no_index else [settings.index_url or "default"]
    indexes += list(settings.extra_index_urls)
    return Entries(
        pip=tuple(sorted(r.requirement for r in pip_requests(env))),
        conda=tuple(sorted(r.spec for r in env.conda)),
        channels=tuple(env.channels) if env.conda else (),
        indexes=tuple(strip_credentials(u) for u in indexes),
        find_links=tuple(strip_credentials(f) for f in settings.find_links),
    )


def managed_digest(state: InstalledState, ownership: Ownership) -> str:
    """sha256 over the managed packages present (manager, name, version, build), sorted.

    Before the first baseline every package not owned is managed; after it, the
    baseline's packages. Either way the additions a lock installs are not in it,
    so installing them (or losing them in an image reset) keeps the digest.
    """
    lines = sorted(
        f"{p.manager}:{p.name}=={p.version}:{p.build}"
        for key, p in state.packages().items()
        if key in ownership.managed
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _changed(kind: str, old: tuple[str, ...], new: tuple[str, ...]) -> str:
    added = [e for e in new if e not in old]
    removed = [e for e in old if e not in new]
    parts = [f"+{e}" for e in added] + [f"-{e}" for e in removed]
    return f"{kind} {' '.join(parts)}" if parts else f"{kind} order"


def staleness(
    locked: LockedEnvironment | None,
    env: Environment,
    state: InstalledState,
    ownership: Ownership,
    image: str | None,
) -> str | None:
    """Why the lock does not hold for ``env`` now, or None when it is fresh."""
    if locked is None:
        return "it is not in the lock file"
    if not state.exists:
        return f"{env.prefix} does not exist yet (lock it after the first apply)"
    entries = entries_of(env)
    if entries != locked.entries:
        changes = [
            _changed(kind, getattr(locked.entries, kind), getattr(entries, kind))
            for kind in ("pip", "conda", "channels", "indexes", "find_links")
            if getattr(locked.entries, kind) != getattr(entries, kind)
        ]
        return f"its manifest entries changed ({'; '.join(changes)})"
    if image != locked.image:
        return f"the image under {env.prefix} changed since it was locked"
    if managed_digest(state, ownership) != locked.managed_sha256:
        return f"the managed packages in {env.prefix} changed since it was locked"
    return None


def read_lock(path: Path) -> LockFile | None:
    """The lock file at ``path``; None when there is none. A damaged one is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ReconcilerError(
            f"cannot read the lock file {path}: {exc.strerror or exc}",
            hint="check its permissions, or delete it and run `reconciler lock` again",
        ) from exc
    hint = "fix it, or delete it and run `reconciler lock` again"
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ReconcilerError(f"{path} is not valid JSON: {exc}", hint=hint) from exc
    problem = _schema_problem(doc)
    if problem is not None:
        raise ReconcilerError(f"{path} is not a reconciler lock file: {problem}", hint=hint)
    return LockFile.from_json(path, doc)


def _schema_problem(doc: object) -> str | None:
    import jsonschema

    from reconciler.resources import load_schema

    validator = jsonschema.Draft202012Validator(load_schema("lock.v1.schema.json"))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    first = errors[0]
    where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
    return f"{where}: {first.message}"[:300]
