"""The lock file as values, and its one deterministic text form.

``team.lock`` beside ``team.yaml``: JSON, ``format_version "1"``, described by
``schemas/lock.v1.schema.json``. Per environment it records what the lock was
resolved against (the image identity, a digest of the managed set, the
environment's manifest entries) and every package the manifest adds, requested
or transitive. Nothing managed is in it: it is an overlay on the image.

The text is written by :func:`dumps` only: keys sorted, environments sorted by
name, packages sorted by name, one package a line, so that two runs on the same
inputs are byte-identical and the diff of a change is one line per package.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.lockfile import lock_path as lock_path
from reconciler.values import field, value

__all__ = [
    "FORMAT_VERSION",
    "Entries",
    "LockFile",
    "LockedEnvironment",
    "LockedRecord",
    "LockedWheel",
    "dumps",
    "lock_path",
]

FORMAT_VERSION = "1"


@value
class Entries:
    """The manifest entries of one environment that its lock was resolved from.

    Index and find-links locations are kept without credentials: changing a
    password does not make a lock stale, changing where packages come from does.
    """

    pip: tuple[str, ...]
    conda: tuple[str, ...]
    channels: tuple[str, ...]
    indexes: tuple[str, ...]
    find_links: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "channels": list(self.channels),
            "conda": list(self.conda),
            "find_links": list(self.find_links),
            "indexes": list(self.indexes),
            "pip": list(self.pip),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entries:
        """Inverse of :meth:`to_json`."""
        return cls(
            pip=tuple(data["pip"]),
            conda=tuple(data["conda"]),
            channels=tuple(data["channels"]),
            indexes=tuple(data["indexes"]),
            find_links=tuple(data["find_links"]),
        )


@value
class LockedWheel:
    """One pip-side distribution: the exact wheel, where it came from, and its hash."""

    name: str  # canonical
    version: str
    filename: str
    sha256: str
    source: str  # the index URL or find-links location, without credentials

    def requirement_line(self) -> str:
        """The requirements-file line that installs exactly this file."""
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "filename": self.filename,
            "name": self.name,
            "sha256": self.sha256,
            "source": self.source,
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockedWheel:
        """Inverse of :meth:`to_json`."""
        return cls(
            str(data["name"]),
            str(data["version"]),
            str(data["filename"]),
            str(data["sha256"]),
            str(data["source"]),
        )


@value
class LockedRecord:
    """One conda record: enough to link exactly this package file without a solve."""

    name: str
    version: str
    build: str
    build_number: int
    channel: str
    subdir: str
    url: str
    sha256: str
    noarch: str | None = None  # "python" | "generic"
    depends: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "build": self.build,
            "build_number": self.build_number,
            "channel": self.channel,
            "depends": list(self.depends),
            "name": self.name,
            "noarch": self.noarch,
            "sha256": self.sha256,
            "subdir": self.subdir,
            "url": self.url,
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockedRecord:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            build=str(data["build"]),
            build_number=int(data["build_number"]),
            channel=str(data["channel"]),
            subdir=str(data["subdir"]),
            url=str(data["url"]),
            sha256=str(data["sha256"]),
            noarch=data.get("noarch"),
            depends=tuple(data.get("depends", ())),
        )


@value
class LockedEnvironment:
    """One environment's overlay and what it was resolved against."""

    image: str
    managed_sha256: str
    entries: Entries
    pip: tuple[LockedWheel, ...] = ()
    conda: tuple[LockedRecord, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (packages sorted by name)."""
        return {
            "conda": [r.to_json() for r in sorted(self.conda, key=lambda r: r.name)],
            "entries": self.entries.to_json(),
            "image": self.image,
            "managed_sha256": self.managed_sha256,
            "pip": [w.to_json() for w in sorted(self.pip, key=lambda w: w.name)],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockedEnvironment:
        """Inverse of :meth:`to_json`."""
        return cls(
            image=str(data["image"]),
            managed_sha256=str(data["managed_sha256"]),
            entries=Entries.from_json(data["entries"]),
            pip=tuple(LockedWheel.from_json(w) for w in data.get("pip", ())),
            conda=tuple(LockedRecord.from_json(r) for r in data.get("conda", ())),
        )


@value
class LockFile:
    """A whole lock file: the manifest's name and each locked environment."""

    path: Path
    manifest: str  # the manifest's file name, as written in the lock
    environments: Mapping[str, LockedEnvironment] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The document described by ``schemas/lock.v1.schema.json``."""
        return {
            "environments": {
                name: self.environments[name].to_json() for name in sorted(self.environments)
            },
            "format_version": FORMAT_VERSION,
            "manifest": self.manifest,
        }

    @classmethod
    def from_json(cls, path: Path, data: Mapping[str, Any]) -> LockFile:
        """Inverse of :meth:`to_json` (``data`` already checked against the schema)."""
        envs = {
            str(name): LockedEnvironment.from_json(env)
            for name, env in data["environments"].items()
        }
        return cls(path, str(data["manifest"]), envs)


def _line(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _list(items: Sequence[Any], indent: str) -> str:
    """A list with one item a line (or ``[]``)."""
    if not items:
        return "[]"
    inner = ",\n".join(f"{indent}  {_line(i)}" for i in items)
    return f"[\n{inner}\n{indent}]"


def dumps(lock: LockFile) -> str:
    """The lock file's text: sorted keys, one package (or manifest entry) a line."""
    doc = lock.to_json()
    envs: list[str] = []
    for name, env in doc["environments"].items():
        entries = ",\n".join(
            f"        {_line(key)}: {_list(value, '        ')}"
            for key, value in env["entries"].items()
        )
        body = [
            f'      "conda": {_list(env["conda"], "      ")}',
            f'      "entries": {{\n{entries}\n      }}',
            f'      "image": {_line(env["image"])}',
            f'      "managed_sha256": {_line(env["managed_sha256"])}',
            f'      "pip": {_list(env["pip"], "      ")}',
        ]
        envs.append(f"    {_line(name)}: {{\n" + ",\n".join(body) + "\n    }")
    environments = "{\n" + ",\n".join(envs) + "\n  }" if envs else "{}"
    return (
        "{\n"
        f'  "environments": {environments},\n'
        f'  "format_version": {_line(doc["format_version"])},\n'
        f'  "manifest": {_line(doc["manifest"])}\n'
        "}\n"
    )
