"""Checks a schema cannot express, and the frozen model they produce.

Runs on a document that may still hold schema errors: every value is
type-checked again here and skipped when it is not what the schema wants
(the schema error has been reported already).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from reconciler.manifest.merge import CondaEntry, PipEntry, merge_conda, merge_pip
from reconciler.manifest.model import (
    Create,
    Environment,
    Kernel,
    Manifest,
    PipSettings,
)
from reconciler.manifest.specs import (
    SpecError,
    channel_name_problem,
    check_conda_text,
    invisible_character,
    parse_conda,
    parse_pip,
    unsafe_character,
)
from reconciler.manifest.world import prefix_kind, symlink_in
from reconciler.manifest.yaml_nodes import Document, ManifestPath
from reconciler.values import value

__all__ = ["DEFAULT_CHANNELS", "DEFAULT_INSTALLER", "build_manifest"]

DEFAULT_CHANNELS = ("conda-forge",)
DEFAULT_INSTALLER = "auto"
_INSTALLERS = ("auto", "uv", "pip")

#: Characters refused in channels, URLs and paths (they never reach a shell; no reason to accept).
_LOCATION_METACHARACTERS = "`$|&;\\<>\"'"
#: Letters that look like Latin ones: a path component mixing them with Latin is a lookalike.
_LOOKALIKE_SCRIPTS = ("CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE")


@value
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
    _check_text(document, document.data, ())
    data = _mapping(document.data)
    protect = tuple(_protect(document, data.get("protect")))
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


def _protect(document: Document, value: object) -> Iterator[str]:
    """The protect patterns; one that cannot match a package name (``-x``, ``.x``) is refused."""
    for where, text in _strings(document, value, ("protect",)):
        if text[:1].isascii() and (text[:1].isalnum() or text[:1] in "_*?["):
            yield text
        else:
            document.report(
                where,
                f"protect pattern {text!r} can never match a package name; start it with a "
                "letter, a digit, '_' or a glob character (* ? [)",
            )


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
    kernel = _kernel(document, raw.get("kernel"), (*base, "kernel"))
    prefix = _path_value(
        document, raw.get("prefix"), (*base, "prefix"), "prefix", real=check_prefixes
    )
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
    elif check_prefixes and (kind := prefix_kind(prefix)) != "absent":
        # What is read here is what world.prefixes_allow checks for a remembered model.
        if kind == "other":
            document.report((*base, "prefix"), f"prefix {prefix} exists and is not a directory")
        elif kind == "plain":
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
        try:
            if parsed is None:
                parsed = parse_conda(text)
                document.conda_memo[text] = parsed
            else:  # remembered: the parse is skipped, never the safety checks
                check_conda_text(text)
        except SpecError as exc:
            document.report(where, str(exc))
            continue
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
                problem = channel_name_problem(text)
                if problem:
                    raise SpecError(problem)
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


def _kernel(document: Document, value: object, path: ManifestPath) -> Kernel | None:
    """The kernel; its name becomes a directory under Jupyter's kernels dir.

    The schema allows ``[a-z0-9._-]+``; a name must also start with a letter or a
    digit, so it is never ``.`` or ``..`` (the kernels dir or its parent), a hidden
    directory, or read as an option by ``jupyter kernelspec``. The whole name is
    checked again here, as a directory name must not rely on the schema alone (a
    remembered schema pass skips it). ``display_name`` is
    free text, stored verbatim in kernel.json (it never reaches a shell); only the
    characters refused in every string (control, invisible) are refused there.
    """
    raw = _mapping(value)
    name, display_name = raw.get("name"), raw.get("display_name")
    where = (*path, "name")
    if (
        isinstance(name, str)
        and where not in document.invalid
        and not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name)
    ):
        document.report(
            where,
            f"invalid kernel name {name!r}: start with a lowercase letter or digit, then use "
            "only lowercase letters, digits, '.', '_' or '-'",
        )
        return None
    if isinstance(name, str) and isinstance(display_name, str):
        return Kernel(name, display_name)
    return None


def _path_value(
    document: Document, value: object, path: ManifestPath, what: str, *, real: bool = False
) -> str | None:
    """``value`` as a normalised absolute path ('~' expanded), or None after reporting why not.

    With ``real`` (prefixes, when the machine may be looked at), a path that resolves
    through a symbolic link is refused: an environment has one name, so that its lock,
    baseline and owned set, and the check that no two environments share a prefix,
    all hold; the message gives the real path to write instead.
    """
    if not isinstance(value, str) or path in document.invalid:
        return None
    problem = unsafe_character(value, _LOCATION_METACHARACTERS, ascii_only=False)
    if problem is None:
        problem = _lookalike(value)
    if problem:
        document.report(path, problem)
        return None
    expanded = os.path.expanduser(value) if value == "~" or value.startswith("~/") else value
    if expanded.startswith("~"):  # ~user: whether it expands depends on the machine
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
        normalised = os.path.normpath(expanded)
        if normalised.startswith("//"):  # POSIX keeps a leading '//'; it is '/' here
            normalised = "/" + normalised.lstrip("/")
        link = symlink_in(normalised) if real else None
        if link is None:
            return normalised
        document.report(
            path,
            f"{what} {value!r} resolves through the symbolic link {link} to "
            f"{os.path.realpath(normalised)}; write the real path (an environment has one "
            "name: its lock, baseline and owned packages are kept under it)",
        )
    return None


def _lookalike(text: str) -> str | None:
    """Why the path ``text`` is a lookalike of another one, or None.

    Non-ASCII letters are fine in a path (a home directory may have them); a
    compatibility form (fullwidth letters, ligatures) or a component mixing Latin
    letters with Cyrillic or Greek ones is refused: it reads as a different path.
    """
    if unicodedata.normalize("NFKC", text) != unicodedata.normalize("NFC", text):
        odd = next(c for c in text if unicodedata.normalize("NFKC", c) != c)
        return (
            f"{text!r} contains the compatibility character {odd!r} (U+{ord(odd):04X} "
            f"{unicodedata.name(odd, 'unnamed character')}); write the plain character"
        )
    for component in text.split("/"):
        scripts = {unicodedata.name(c, "").split(" ")[0] for c in component if c.isalpha()}
        lookalikes = sorted(scripts.intersection(_LOOKALIKE_SCRIPTS))
        if "LATIN" in scripts and lookalikes:
            return (
                f"{text!r} mixes Latin and {lookalikes[0].title()} letters in {component!r}; "
                "they look alike, write the path in one script"
            )
    return None


def _check_url(text: str, what: str) -> str:
    _check_location(text)
    parts = urlsplit(text)
    path = unquote(parts.path)
    problem = unsafe_character(path, "", ascii_only=False)
    if problem:
        reason = problem.split(" ", 1)[1]  # "contains ..."
        raise SpecError(f"{what} {text!r} decodes to a path that {reason}")
    if ".." in path.split("/"):
        raise SpecError(f"{what} {text!r} contains '..'; write the URL without it")
    if parts.scheme in ("http", "https") and parts.netloc:
        return text
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and path.startswith("/"):
        return text
    raise SpecError(f"{what} {text!r} is not an http(s):// or file:// URL")


def _check_text(document: Document, value: object, path: ManifestPath) -> None:
    """Report every key and string that hides what it says (control, invisible characters)."""
    if path in document.invalid:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            entry = (*path, key)
            if entry in document.invalid:
                continue
            problem = invisible_character(key)
            if problem:
                document.report(entry, f"key {problem}", key=True)
            else:
                _check_text(document, item, entry)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(document, item, (*path, index))
    elif isinstance(value, str):
        problem = invisible_character(value)
        if problem:
            document.report(path, problem)


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
