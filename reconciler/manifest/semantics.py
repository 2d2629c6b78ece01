"""Checks a schema cannot express, and the frozen model they produce.

Runs on a document that may still hold schema errors: every value is
type-checked again here and skipped when it is not what the schema wants
(the schema error has been reported already).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from reconciler.manifest.model import (
    Create,
    Environment,
    Kernel,
    Manifest,
    PipSettings,
)
from reconciler.manifest.specs import (
    CondaEntry,
    PipEntry,
    SpecError,
    merge_conda,
    merge_pip,
    parse_conda,
    parse_pip,
    unsafe_character,
)
from reconciler.manifest.yaml_nodes import Document, ManifestPath

__all__ = ["DEFAULT_CHANNELS", "DEFAULT_INSTALLER", "build_manifest"]

DEFAULT_CHANNELS = ("conda-forge",)
DEFAULT_INSTALLER = "auto"
_INSTALLERS = ("auto", "uv", "pip")

#: Characters refused in channels, URLs and paths (they never reach a shell; no reason to accept).
_LOCATION_METACHARACTERS = "`$|&;\\<>\"'"
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)*$")


@dataclass(frozen=True)
class _Shared:
    """What every environment inherits: defaults and ``all:``."""

    channels: tuple[str, ...]
    pip_settings: PipSettings
    installer: str
    conda: tuple[CondaEntry, ...]
    pip: tuple[PipEntry, ...]


def build_manifest(
    document: Document, *, path: Path, sha256: str, check_prefixes: bool
) -> Manifest:
    """Check ``document`` beyond the schema (reporting into it) and build the model."""
    data = _mapping(document.data)
    protect = tuple(text for _, text in _strings(document, data.get("protect"), ("protect",)))
    shared = _shared(document, data)
    environments: list[Environment] = []
    prefixes: dict[Path, str] = {}
    kernels: dict[str, str] = {}
    for name, raw in _mapping(data.get("environments")).items():
        base: ManifestPath = ("environments", name)
        if not isinstance(raw, dict):
            continue
        environment = _environment(document, name, raw, shared, check_prefixes=check_prefixes)
        if environment is None:
            continue
        other = prefixes.setdefault(environment.prefix, name)
        if other != name:
            document.report(
                (*base, "prefix"),
                f"prefix {environment.prefix} is already used by environment {other!r}",
            )
        if environment.kernel is not None:
            other = kernels.setdefault(environment.kernel.name, name)
            if other != name:
                document.report(
                    (*base, "kernel", "name"),
                    f"kernel name "
                    f"{environment.kernel.name!r} is already used by environment "
                    f"{other!r}",
                )
        environments.append(environment)
    return Manifest(path, sha256, protect, tuple(environments))


def _shared(document: Document, data: dict[str, object]) -> _Shared:
    defaults = _mapping(data.get("defaults"))
    channels = _channels(document, defaults.get("channels"), ("defaults", "channels"))
    installer = defaults.get("installer")
    everywhere = _mapping(data.get("all"))
    return _Shared(
        channels=DEFAULT_CHANNELS if channels is None else channels,
        pip_settings=_pip_settings(document, defaults.get("pip")),
        installer=installer
        if isinstance(installer, str) and installer in _INSTALLERS
        else DEFAULT_INSTALLER,
        conda=tuple(_conda_entries(document, everywhere.get("conda"), ("all", "conda"))),
        pip=tuple(_pip_entries(document, everywhere.get("pip"), ("all", "pip"))),
    )


def _environment(
    document: Document,
    name: str,
    raw: dict[str, object],
    shared: _Shared,
    *,
    check_prefixes: bool,
) -> Environment | None:
    base: ManifestPath = ("environments", name)
    own_conda = list(_conda_entries(document, raw.get("conda"), (*base, "conda")))
    own_pip = list(_pip_entries(document, raw.get("pip"), (*base, "pip")))
    conda, conda_conflicts = merge_conda([*own_conda, *shared.conda])
    pip, pip_conflicts = merge_pip([*own_pip, *shared.pip])
    for conflict in conda_conflicts + pip_conflicts:
        document.report(conflict.path, conflict.message)
    channels = _channels(document, raw.get("channels"), (*base, "channels"))
    create = _create(document, raw.get("create"), (*base, "create"))
    kernel = _kernel(raw.get("kernel"))
    prefix = _path_value(document, raw.get("prefix"), (*base, "prefix"), "prefix")
    if prefix is None:
        return None
    # Where to point at when conda packages are not possible: the list to fix.
    conda_at: ManifestPath = (*base, "conda") if own_conda else (*base, "prefix")
    origin = "" if own_conda else " (from all.conda)"
    if conda and create is not None and create.venv is not None:
        document.report(
            conda_at,
            f"environment {name!r} is created as a venv (create.venv) "
            f"but has conda packages{origin}; a venv cannot hold conda packages",
        )
    elif check_prefixes and os.path.lexists(prefix):
        if not os.path.isdir(prefix):
            document.report((*base, "prefix"), f"prefix {prefix} exists and is not a directory")
        elif not os.path.isdir(os.path.join(prefix, "conda-meta")):
            if conda:
                document.report(
                    conda_at,
                    f"environment {name!r} has conda packages{origin} but "
                    f"{prefix} is not a conda environment (no conda-meta/)",
                )
            if create is not None and create.python is not None:
                document.report(
                    (*base, "create", "python"),
                    f"create.python makes a conda "
                    f"environment, but {prefix} exists and is not one (no conda-meta/)",
                )
    return Environment(
        name=name,
        prefix=Path(prefix),
        conda=conda,
        pip=pip,
        channels=shared.channels if channels is None else channels,
        pip_settings=shared.pip_settings,
        installer=shared.installer,
        create=create,
        kernel=kernel,
    )


def _pip_entries(document: Document, value: object, path: ManifestPath) -> Iterator[PipEntry]:
    for where, text in _strings(document, value, path):
        try:
            yield PipEntry(text, where, parse_pip(text))
        except SpecError as exc:
            document.report(where, str(exc))


def _conda_entries(document: Document, value: object, path: ManifestPath) -> Iterator[CondaEntry]:
    for where, text in _strings(document, value, path):
        parsed = document.conda_memo.get(text)
        if parsed is None:
            try:
                parsed = parse_conda(text)
            except SpecError as exc:
                document.report(where, str(exc))
                continue
            document.conda_memo[text] = parsed
        yield CondaEntry(text, where, *parsed)


def _channels(document: Document, value: object, path: ManifestPath) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    channels = []
    for where, text in _strings(document, value, path):
        try:
            if "://" in text:
                _check_url(text, "channel")
            else:
                _check_location(text)
                if not _CHANNEL_NAME.match(text):
                    raise SpecError(
                        f"channel {text!r} is neither a channel name (conda-forge) "
                        "nor an http(s):// or file:// URL"
                    )
        except SpecError as exc:
            document.report(where, str(exc))
        else:
            channels.append(text)
    return tuple(channels)


def _pip_settings(document: Document, value: object) -> PipSettings:
    raw = _mapping(value)
    base: ManifestPath = ("defaults", "pip")
    index_url = raw.get("index_url")
    if isinstance(index_url, str) and (*base, "index_url") not in document.invalid:
        try:
            _check_url(index_url, "index_url")
        except SpecError as exc:
            document.report((*base, "index_url"), str(exc))
    extra = []
    for where, text in _strings(document, raw.get("extra_index_urls"), (*base, "extra_index_urls")):
        try:
            extra.append(_check_url(text, "extra index URL"))
        except SpecError as exc:
            document.report(where, str(exc))
    links = []
    for where, text in _strings(document, raw.get("find_links"), (*base, "find_links")):
        if "://" in text:
            try:
                links.append(_check_url(text, "find_links URL"))
            except SpecError as exc:
                document.report(where, str(exc))
        else:
            normalised = _path_value(document, text, where, "find_links path")
            if normalised is not None:
                links.append(normalised)
    no_index = raw.get("no_index") is True
    if no_index and not links and (*base, "find_links") not in document.invalid:
        document.report(
            (*base, "no_index"),
            "no_index is true but find_links is empty: the pip "
            "side could not find any distribution",
        )
    return PipSettings(
        index_url=index_url if isinstance(index_url, str) else None,
        extra_index_urls=tuple(extra),
        find_links=tuple(links),
        no_index=no_index,
    )


def _create(document: Document, value: object, path: ManifestPath) -> Create | None:
    if not isinstance(value, dict) or len(value) != 1:
        return None
    python, venv = value.get("python"), value.get("venv")
    if isinstance(venv, str):
        venv = _path_value(document, venv, (*path, "venv"), "create.venv")
        return Create(venv=venv) if venv is not None else None
    return Create(python=python) if isinstance(python, str) else None


def _kernel(value: object) -> Kernel | None:
    raw = _mapping(value)
    name, display_name = raw.get("name"), raw.get("display_name")
    if isinstance(name, str) and isinstance(display_name, str):
        return Kernel(name, display_name)
    return None


def _path_value(document: Document, value: object, path: ManifestPath, what: str) -> str | None:
    """``value`` as a normalised absolute path ('~' expanded), or None after reporting why not."""
    if not isinstance(value, str) or path in document.invalid:
        return None
    problem = unsafe_character(value, "", ascii_only=False)
    if problem:
        document.report(path, problem)
        return None
    expanded = os.path.expanduser(value) if value.startswith("~") else value
    if expanded.startswith("~"):
        document.report(
            path, f"{what} {value!r} names another user's home; use ~/ or an absolute path"
        )
    elif not os.path.isabs(expanded):
        document.report(
            path, f"{what} {value!r} is relative; write an absolute path or one starting with ~/"
        )
    elif ".." in expanded.split(os.sep):
        document.report(path, f"{what} {value!r} contains '..'; write the path without it")
    else:
        return os.path.normpath(expanded)
    return None


def _check_url(text: str, what: str) -> str:
    _check_location(text)
    parts = urlsplit(text)
    if parts.scheme in ("http", "https") and parts.netloc:
        return text
    if parts.scheme == "file" and parts.path.startswith("/"):
        return text
    raise SpecError(f"{what} {text!r} is not an http(s):// or file:// URL")


def _check_location(text: str) -> None:
    problem = unsafe_character(text, _LOCATION_METACHARACTERS)
    if problem:
        raise SpecError(problem)
    if any(char.isspace() for char in text):
        raise SpecError(f"{text!r} contains whitespace")


def _mapping(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _strings(
    document: Document, value: object, path: ManifestPath
) -> Iterator[tuple[ManifestPath, str]]:
    """The string items of the list ``value`` that no earlier check reported."""
    if not isinstance(value, list):
        return
    for index, item in enumerate(value):
        where = (*path, index)
        if isinstance(item, str) and where not in document.invalid:
            yield where, item
