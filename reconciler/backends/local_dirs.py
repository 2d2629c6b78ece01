"""The files of local ``find_links`` directories, listed once per plan.

Every distribution a plan resolves is looked up in each local directory twice
(its wheel for the clash check, its metadata for the chains). Listing the
directory, resolving and parsing every file name each time cost ~5 ms per lookup
(12 lookups for a real stack of 12 installs). :func:`project_files` lists a
directory once and groups its file names by project, as ``packaging`` reads the
name part of a wheel (``name-version(-build)-tags.whl``) and of an sdist
(``name-version.tar.gz`` / ``.zip``); callers still parse the few names they get.

The listing is kept until :func:`forget` (every plan starts with it, through
:func:`reconciler.backends.wheels.forget_pages`) or until the directory's inode or
modification time changes (a file added, removed or renamed).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from reconciler.manifest.model import PipSettings
from reconciler.names import canonical_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from packaging.version import Version

__all__ = [
    "forget",
    "local_directories",
    "local_only",
    "may_offer_several",
    "newer_offered",
    "offered_versions",
    "project_files",
    "project_key",
]

_listings: dict[str, tuple[tuple[int, int, int], dict[str, tuple[str, ...]]]] = {}
_lock = threading.Lock()


def project_key(filename: str) -> str | None:
    """The canonical project name that ``packaging`` would parse from ``filename``
    (``parse_wheel_filename`` / ``parse_sdist_filename``), or None when it is neither
    a wheel nor an sdist name. A file that fails the full parse is still grouped."""
    if filename.endswith(".whl"):
        return canonical_name(filename.split("-", 1)[0])
    if filename.endswith(".tar.gz"):
        stem = filename[: -len(".tar.gz")]
    elif filename.endswith(".zip"):
        stem = filename[: -len(".zip")]
    else:
        return None
    return canonical_name(stem.rpartition("-")[0])


def project_files(directory: Path, name: str) -> tuple[str, ...]:
    """The names, sorted, of the files in ``directory`` that belong to project ``name``
    (canonical); () when the directory cannot be listed."""
    try:
        st = os.stat(directory)
    except OSError:
        return ()
    key = str(directory)
    stamp = (st.st_dev, st.st_ino, st.st_mtime_ns)
    with _lock:
        hit = _listings.get(key)
    if hit is None or hit[0] != stamp:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return ()
        groups: dict[str, list[str]] = {}
        for filename in names:
            project = project_key(filename)
            if project is not None:
                groups.setdefault(project, []).append(filename)
        hit = (stamp, {k: tuple(v) for k, v in groups.items()})
        with _lock:
            _listings[key] = hit
    return hit[1].get(name, ())


def forget() -> None:
    """Drop the listings read so far: the next lookup lists the directory again."""
    with _lock:
        _listings.clear()


def local_only(settings: PipSettings) -> bool:
    """Every location of ``settings`` is on this machine: no index, and find-links
    that are directories or ``file://`` URLs (no network read, nothing to wait for)."""
    return settings.no_index and all(
        urlsplit(link).scheme not in ("http", "https") for link in settings.find_links
    )


def newer_offered(name: str, version: str, settings: PipSettings) -> bool:
    """Could a location of ``settings`` offer a release of project ``name`` (canonical)
    newer than ``version``? False only when every location is a local directory and
    every file of the project in them parses to a version at most ``version``; an index,
    a find-links page or file, an unparsable version or file name all say True."""
    from packaging.version import InvalidVersion, Version

    try:
        chosen = Version(version)
    except InvalidVersion:
        return True
    offered = offered_versions(name, settings)  # None for any location not a directory
    return offered is None or any(v > chosen for v in offered)


def offered_versions(name: str, settings: PipSettings) -> frozenset[Version] | None:
    """The versions of project ``name`` (canonical) that the locations of ``settings``
    offer, when every location is a local directory and every file of the project in
    them parses; None otherwise (anything may be offered)."""
    from reconciler.backends.wheel_filenames import (
        InvalidFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    files = _local_files(name, settings)
    if files is None:
        return None
    found: set[Version] = set()
    for filename in files:
        try:
            if filename.endswith(".whl"):
                found.add(parse_wheel_filename(filename)[1])
            else:
                found.add(parse_sdist_filename(filename)[1])
        except InvalidFilename:
            return None
    return frozenset(found)


def may_offer_several(name: str, settings: PipSettings) -> bool:
    """Could the locations of ``settings`` offer two releases of project ``name``
    (canonical)? False only when every location is a local directory whose files of
    the project all name one version, as written (``1.0`` and ``1.0.0`` count as two:
    this reads file names without ``packaging``, which costs ~10 ms to import)."""
    files = _local_files(name, settings)
    if files is None:
        return True
    written = set()
    for filename in files:
        if filename.endswith(".whl"):
            written.add(filename.split("-")[1] if filename.count("-") >= 4 else filename)
        else:
            written.add(filename)  # an sdist: its name alone (a superset does no harm)
    return len(written) > 1


def _local_files(name: str, settings: PipSettings) -> list[str] | None:
    """The file names of project ``name`` in the locations of ``settings``, or None when
    one of them is not a local directory."""
    if not local_only(settings):
        return None
    files: list[str] = []
    for path in local_directories(settings):
        if not os.path.isdir(path):
            return None
        files += project_files(Path(path), name)
    return files


def local_directory(location: str) -> str | None:
    """A find-links location on this machine as a path (a ``file://`` URL's path, or a
    plain path with ``~`` expanded); None for an ``http(s)`` page."""
    parts = urlsplit(location)
    if parts.scheme in ("http", "https"):
        return None
    return unquote(parts.path) if parts.scheme == "file" else os.path.expanduser(location)


def local_directories(settings: PipSettings) -> list[str]:
    """The find-links locations of ``settings`` on this machine, as paths: ``file://``
    URLs and plain paths (an ``http(s)`` page is not one)."""
    found = (local_directory(location) for location in settings.find_links)
    return [path for path in found if path is not None]
