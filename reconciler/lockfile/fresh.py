"""Reading a lock file, and whether its entry for an environment is fresh.

A locked environment is fresh when the environment's manifest entries, its
image identity and its managed set are what the lock was resolved against.
Otherwise :func:`staleness` says why, in words that follow "team.lock is
stale for environment 'dl': ".
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from reconciler.digest import sha256
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
    # CPython's own SHA-256 (reconciler.digest): the same digest without loading OpenSSL.
    return sha256("\n".join(lines).encode()).hexdigest()


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


_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_TEXT = re.compile(r"^[A-Za-z0-9._+!-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_WHEEL = re.compile(r"^[A-Za-z0-9._+!-]+\.whl$")
_URL = re.compile(r"^(?:https?|file)://\S+$")
_ENV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CONDA_NAME = re.compile(r"^[a-z0-9_.+-]+$")
_BUILD = re.compile(r"^[A-Za-z0-9._+-]+$")
_SUBDIR = re.compile(r"^[a-z0-9_-]+$")
_ENTRY_KEYS = ("pip", "conda", "channels", "indexes", "find_links")


def _schema_problem(doc: object) -> str | None:
    """Why ``doc`` is not a lock.v1 document, or None.

    The same rules as ``schemas/lock.v1.schema.json`` (a test holds them together),
    checked by hand: jsonschema costs ~0.2 s to import on every app start. What the
    installers get from a lock (names, versions, hashes, URLs) is held to patterns,
    so a lock file cannot smuggle an option into a requirements file.
    """
    if not isinstance(doc, dict) or set(doc) != {"format_version", "manifest", "environments"}:
        return "(top level): needs exactly format_version, manifest and environments"
    if doc["format_version"] != "1":
        return 'format_version: not "1"'
    if not isinstance(doc["manifest"], str) or not doc["manifest"]:
        return "manifest: not a file name"
    if not isinstance(doc["environments"], dict):
        return "environments: not an object"
    for name, env in doc["environments"].items():
        problem = _environment_problem(env)
        if not _ENV.match(str(name)):
            problem = "not an environment name"
        if problem is not None:
            return f"environments/{name}: {problem}"
    return None


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _environment_problem(env: object) -> str | None:
    keys = {"image", "managed_sha256", "entries", "pip", "conda"}
    if not isinstance(env, dict) or set(env) != keys:
        return f"needs exactly {', '.join(sorted(keys))}"
    if not isinstance(env["image"], str) or not env["image"]:
        return "image: not a string"
    if not isinstance(env["managed_sha256"], str) or not _SHA256.match(env["managed_sha256"]):
        return "managed_sha256: not a sha256"
    entries = env["entries"]
    if not isinstance(entries, dict) or set(entries) != set(_ENTRY_KEYS):
        return f"entries: needs exactly {', '.join(_ENTRY_KEYS)}"
    if not all(_strings(entries[k]) for k in _ENTRY_KEYS):
        return "entries: not lists of strings"
    if not isinstance(env["pip"], list) or not isinstance(env["conda"], list):
        return "pip and conda: not lists"
    for i, wheel in enumerate(env["pip"]):
        problem = _wheel_problem(wheel)
        if problem is not None:
            return f"pip/{i}: {problem}"
    for i, record in enumerate(env["conda"]):
        problem = _record_problem(record)
        if problem is not None:
            return f"conda/{i}: {problem}"
    return None


def _wheel_problem(wheel: object) -> str | None:
    keys = {"name", "version", "filename", "sha256", "source"}
    if not isinstance(wheel, dict) or set(wheel) != keys:
        return f"needs exactly {', '.join(sorted(keys))}"
    if not all(isinstance(wheel[k], str) for k in keys):
        return "not strings"
    checks = (
        (_NAME, "name"), (_TEXT, "version"), (_WHEEL, "filename"), (_SHA256, "sha256"),
    )  # fmt: skip
    for pattern, key in checks:
        if not pattern.match(wheel[key]):
            return f"{key}: {wheel[key]!r} is not allowed"[:200]
    return None


def _record_problem(record: object) -> str | None:
    keys = {"name", "version", "build", "build_number", "channel", "subdir", "url", "sha256"}
    keys |= {"noarch", "depends"}
    if not isinstance(record, dict) or set(record) != keys:
        return f"needs exactly {', '.join(sorted(keys))}"
    texts = ("name", "version", "build", "channel", "subdir", "url", "sha256")
    if not all(isinstance(record[k], str) for k in texts) or not _strings(record["depends"]):
        return "not strings"
    number = record["build_number"]
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        return "build_number: not a non-negative integer"
    if record["noarch"] not in (None, "python", "generic"):
        return "noarch: not null, python or generic"
    checks = (
        (_CONDA_NAME, "name"), (_TEXT, "version"), (_BUILD, "build"), (_SUBDIR, "subdir"),
        (_URL, "url"), (_SHA256, "sha256"),
    )  # fmt: skip
    for pattern, key in checks:
        if not pattern.match(record[key]):
            return f"{key}: {record[key]!r} is not allowed"[:200]
    return None
