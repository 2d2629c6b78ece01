"""What the repositories say about a distribution, without an installer: its versions
and the ``Requires-Dist`` of one release.

uv's dry run names what it would install but not why; the requirement texts a
chain prints come from the wheels' core metadata instead: a wheel in a local
``find_links`` directory is opened (a zip: only ``*.dist-info/METADATA`` is
read), an index is asked for its PEP 503 page and the PEP 658 ``.metadata``
file next to the wheel, so no wheel is downloaded. The sources are asked in
the installer's order (``find_links``, then ``index_url``, then
``extra_index_urls``); the first that lists the project answers. Anything
unreadable is simply unknown: the caller falls back to edges without
specifiers. Nothing here raises for a repository fault; a SIGTERM stop request
ends a read at once (:class:`reconciler.faults.Interrupted`).

Pages are read and parsed as :mod:`reconciler.backends.wheels` reads them (one
simple-API client, :class:`reconciler.backends.http.HttpClient`: credentials
sent to their host only, never shown). Project pages are shared with the clash
check (:func:`reconciler.backends.wheels.project_page`); pages and metadata files
are kept for :data:`CACHE_SECONDS` in this process, or until :func:`forget` (each
plan starts with it), so one plan reads each of them once.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from packaging.version import Version

from reconciler.backends.wheel_filenames import (
    InvalidFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from reconciler.backends.wheels import (
    SIMPLE_JSON,
    forget_pages,
    html_links,
    json_links,
    project_page,
    project_url,
)
from reconciler.backends.wheels import Link as _Link
from reconciler.errors import BackendError
from reconciler.manifest.model import PipSettings
from reconciler.names import canonical_name
from reconciler.plan.requirements import version_or_none
from reconciler.values import value

if TYPE_CHECKING:
    from zipfile import ZipFile

    from reconciler.backends.http import HttpClient, Response

T = TypeVar("T")

__all__ = [
    "DEFAULT_INDEX",
    "Listing",
    "ReleaseFile",
    "forget",
    "listing",
    "requirements_of",
    "sources_text",
]

DEFAULT_INDEX = "https://pypi.org/simple"
#: Seconds to wait for an index page or a metadata file (chains are a nicety).
FETCH_TIMEOUT = 10.0


@value
class ReleaseFile:
    """One file of a project in a repository."""

    version: str
    url: str  # a local path or an http(s) URL, credentials included (never displayed)
    wheel: bool
    metadata_url: str | None = None  # PEP 658, when the index advertises it


@value
class Listing:
    """A project's files in the first repository that lists it (``source`` redacted)."""

    source: str
    files: tuple[ReleaseFile, ...]

    def versions(self, *, wheels_only: bool = False) -> list[str]:
        """Distinct versions, newest first."""
        seen = {f.version for f in self.files if f.wheel or not wheels_only}
        return sorted(seen, key=_version_key, reverse=True)


def _version_key(text: str) -> tuple[bool, Version, str]:
    """Sortable: PEP 440 versions by value, anything else below them."""
    version = version_or_none(text)
    return (version is not None, version or Version("0"), text)


def _sources(settings: PipSettings) -> list[str]:
    sources = list(settings.find_links)
    if not settings.no_index:
        sources.append(settings.index_url or DEFAULT_INDEX)
        sources += settings.extra_index_urls
    return sources


def sources_text(settings: PipSettings) -> str:
    """The repositories of ``settings`` for messages, credentials redacted."""
    from reconciler.backends.process import redact

    return ", ".join(redact(s) for s in _sources(settings)) or "no repository"


def _parse_file(name: str, filename: str, url: str, metadata_url: str | None) -> ReleaseFile | None:
    try:
        if filename.endswith(".whl"):
            project, version, _, _ = parse_wheel_filename(filename)
            wheel = True
        else:
            project, version = parse_sdist_filename(filename)
            wheel = False
    except InvalidFilename:
        return None
    if canonical_name(project) != name:
        return None
    return ReleaseFile(str(version), url, wheel, metadata_url)


#: Seconds a metadata file read stays valid in this process (project pages: see
#: wheels.PAGE_SECONDS); each plan starts with :func:`forget`.
CACHE_SECONDS = 60.0
_cache: dict[tuple[str, str], tuple[float, object]] = {}
_cache_lock = threading.Lock()
_client: list[HttpClient] = []


def forget() -> None:
    """Drop the pages read so far: the next plan in this process reads them again."""
    forget_pages()
    with _cache_lock:
        _cache.clear()


def _http() -> HttpClient:
    """The client of these reads: wheels.py's bounded, SIGTERM-interruptible GETs with
    per-host credentials, with this module's shorter timeout and no retries (chains
    are a nicety: an unreadable page is simply unknown)."""
    with _cache_lock:
        if not _client:
            from reconciler.backends.http import HttpClient

            _client.append(HttpClient(timeout=FETCH_TIMEOUT, retries=0))
        return _client[0]


def _cached(kind: str, url: str, read: Callable[[], T]) -> T:
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get((kind, url))
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]  # type: ignore[return-value]
    value = read()
    with _cache_lock:
        _cache[(kind, url)] = (now, value)
    return value


def _get(url: str, accept: str) -> Response | None:
    """GET ``url``; None for a repository fault (unknown). A SIGTERM stop request
    (:class:`reconciler.faults.Interrupted`) is not a fault: it ends the plan."""
    try:
        return _http().get(url, {"Accept": accept})
    except (BackendError, OSError, ValueError):
        return None


def _page_links(page: str) -> list[_Link]:
    """The links of a simple-API project page or a find-links page (PEP 691 JSON when
    the index offers it, PEP 503 HTML otherwise), read once per plan
    (:func:`reconciler.backends.wheels.project_page`, shared with the clash check)."""

    try:
        response = project_page(_http(), page)
    except (BackendError, OSError, ValueError):
        return []
    if response.status != 200:
        return []
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    try:
        if kind == SIMPLE_JSON:
            return json_links(response.body, response.url)
        return html_links(response.body, response.url)
    except ValueError:
        return []


def _metadata_text(url: str) -> str | None:
    def read() -> str | None:
        response = _get(url, "*/*")
        if response is None or response.status != 200:
            return None
        return response.body.decode("utf-8", "replace")

    return _cached("metadata", url, read)


def _local_dir(source: str) -> Path | None:
    if source.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(source).path))
    if "://" not in source:
        return Path(source).expanduser()
    return None


def _list_source(source: str, name: str, find_links: bool) -> list[ReleaseFile]:
    directory = _local_dir(source)
    if directory is not None:
        from reconciler.backends.local_dirs import project_files

        files = (
            _parse_file(name, n, str(directory / n), None) for n in project_files(directory, name)
        )
        return [f for f in files if f is not None]
    # A find-links URL is a page of links itself (as pip reads it); an index has a
    # page per project.
    page = source if find_links else project_url(source, name)
    found = []
    for link in _page_links(page):
        parsed = _parse_file(name, link.filename, link.url, link.metadata_url)
        if parsed is not None:
            found.append(parsed)
    return found


def listing(name: str, settings: PipSettings) -> Listing | None:
    """The files of project ``name`` in the first source that lists it, or None."""
    from reconciler.backends.process import redact

    name = canonical_name(name)
    for source in _sources(settings):
        files = _list_source(source, name, source in settings.find_links)
        if files:
            return Listing(redact(source), tuple(files))
    return None


def _metadata_requires(text: str) -> tuple[str, ...]:
    requires = []
    for line in text.splitlines():
        if not line:
            break  # the headers end at the first empty line; the body is the description
        if line[:1] in (" ", "\t"):
            continue  # a folded continuation (a multi-line License), blank or not
        key, _, value = line.partition(":")
        if key.strip().lower() == "requires-dist":
            requires.append(value.strip())
    return tuple(requires)


def _wheel_metadata(path: str, name: str) -> str | None:
    return _read_metadata(path, name)[1]


def _read_metadata(source: str | IO[bytes], name: str) -> tuple[bool, str | None]:
    """``(readable, METADATA of project name)`` of a wheel (a path or an open file)."""
    import zipfile  # a wheel not read before (with shutil, bz2 and lzma)

    try:
        with zipfile.ZipFile(source) as archive:
            return True, _metadata_of(archive, name)
    except (OSError, zipfile.BadZipFile, KeyError):
        return False, None


def _metadata_of(archive: ZipFile, name: str) -> str | None:
    for entry in archive.namelist():
        top, _, leaf = entry.partition("/")
        if leaf == "METADATA" and top.endswith(".dist-info"):
            stem = top[: -len(".dist-info")].rsplit("-", 1)[0]
            if canonical_name(stem) == name:
                return archive.read(entry).decode("utf-8", "replace")
    return None


def _local_requires(path: str, name: str, cache_dir: Path | None) -> tuple[str, ...] | None:
    """``Requires-Dist`` of the local wheel at ``path``, None when it has no readable
    METADATA. With ``cache_dir``, kept in ``<cache_dir>/metadata/`` with the identity of
    the open file (device, inode, size, mtime, ctime): a changed wheel is read anew."""
    if cache_dir is None:
        text = _wheel_metadata(path, name)
        return None if text is None else _metadata_requires(text)
    import json
    import os

    from reconciler.digest import sha256

    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            identity = [path, name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
            identity.append(st.st_ctime_ns)
            key = sha256(os.fsencode(path)).hexdigest()
            cache_file = cache_dir / "metadata" / f"local-{key}.json"
            try:
                data = json.loads(cache_file.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("identity") == identity:
                    found = data["requires"]
                    return None if found is None else tuple(str(r) for r in found)
            except (OSError, ValueError, TypeError, KeyError):
                pass
            readable, text = _read_metadata(f, name)
            if not readable:
                return None
    except OSError:
        return None
    requires = None if text is None else _metadata_requires(text)
    from reconciler.state.store import write_json_atomic

    body = {"identity": identity, "requires": None if requires is None else list(requires)}
    with contextlib.suppress(OSError):  # derived data
        write_json_atomic(cache_file, body, derived=True)
    return requires


def _release_requires(
    name: str, version: str, settings: PipSettings, cache_dir: Path | None = None
) -> tuple[str, ...] | None:
    found = listing(name, settings)
    if found is None:
        return None
    wanted = version_or_none(version)
    for release in found.files:
        if not release.wheel:
            continue
        if release.version != version and (
            wanted is None or version_or_none(release.version) != wanted
        ):
            continue
        if release.metadata_url is not None:
            text = _metadata_text(release.metadata_url)
            if text is not None:
                return _metadata_requires(text)
        elif "://" not in release.url:
            requires = _local_requires(release.url, name, cache_dir)
            if requires is not None:
                return requires
    return None


def requirements_of(
    items: Iterable[tuple[str, str]], settings: PipSettings, cache_dir: Path | None = None
) -> dict[str, tuple[str, ...]]:
    """``name -> Requires-Dist`` of each ``(name, version)`` whose metadata could be read
    (a local wheel's kept under ``cache_dir``, see :func:`_local_requires`).

    Projects are looked up concurrently (index round trips dominate).
    """
    todo: Sequence[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]
    if not todo:
        return {}

    def one(item: tuple[str, str]) -> tuple[str, tuple[str, ...] | None]:
        return item[0], _release_requires(item[0], item[1], settings, cache_dir)

    if len(todo) == 1 or all(_local_dir(s) is not None for s in _sources(settings)):
        results = [one(item) for item in todo]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
            results = list(pool.map(one, todo))
    return {name: requires for name, requires in results if requires is not None}
