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
specifiers. Nothing here raises for a repository fault.
"""

from __future__ import annotations

import base64
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from reconciler.manifest.model import PipSettings
from reconciler.plan.requirements import version_or_none

__all__ = [
    "DEFAULT_INDEX",
    "Listing",
    "ReleaseFile",
    "listing",
    "requirements_of",
    "sources_text",
]

DEFAULT_INDEX = "https://pypi.org/simple"
#: Seconds to wait for an index page or a metadata file (chains are a nicety).
FETCH_TIMEOUT = 10.0


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a project in a repository."""

    version: str
    url: str  # a local path or an http(s) URL, credentials included (never displayed)
    wheel: bool
    metadata_url: str | None = None  # PEP 658, when the index advertises it


@dataclass(frozen=True)
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
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    if canonicalize_name(project) != name:
        return None
    return ReleaseFile(str(version), url, wheel, metadata_url)


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            values = dict(attrs)
            href = values.get("href")
            if href:
                self.links.append((href, values))


def _open(url: str) -> bytes:
    """GET ``url`` (basic auth from its userinfo, which urllib does not send itself)."""
    parts = urllib.parse.urlsplit(url)
    from reconciler.backends.http import USER_AGENT

    headers = {"Accept": "text/html", "User-Agent": USER_AGENT}
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
        return bytes(response.read(32 * 1024 * 1024))


def _local_dir(source: str) -> Path | None:
    if source.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(source).path))
    if "://" not in source:
        return Path(source).expanduser()
    return None


def _list_source(source: str, name: str) -> list[ReleaseFile]:
    directory = _local_dir(source)
    if directory is not None:
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            return []
        files = (_parse_file(name, p.name, str(p), None) for p in entries)
        return [f for f in files if f is not None]
    page = source.rstrip("/") + f"/{name}/"
    try:
        text = _open(page).decode("utf-8", "replace")
    except (OSError, ValueError):
        return []
    anchors = _Anchors()
    anchors.feed(text)
    found = []
    for href, attrs in anchors.links:
        url = urllib.parse.urljoin(page, href)
        bare = urllib.parse.urldefrag(url).url
        filename = urllib.parse.unquote(bare.rsplit("/", 1)[-1])
        core = attrs.get("data-core-metadata") or attrs.get("data-dist-info-metadata")
        meta = bare + ".metadata" if core and core != "false" else None
        parsed = _parse_file(name, filename, bare, meta)
        if parsed is not None:
            found.append(parsed)
    return found


def listing(name: str, settings: PipSettings) -> Listing | None:
    """The files of project ``name`` in the first source that lists it, or None."""
    from reconciler.backends.process import redact

    name = canonicalize_name(name)
    for source in _sources(settings):
        files = _list_source(source, name)
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
    try:
        with zipfile.ZipFile(path) as archive:
            for entry in archive.namelist():
                top, _, leaf = entry.partition("/")
                if leaf == "METADATA" and top.endswith(".dist-info"):
                    stem = top[: -len(".dist-info")].rsplit("-", 1)[0]
                    if canonicalize_name(stem) == name:
                        return archive.read(entry).decode("utf-8", "replace")
    except (OSError, zipfile.BadZipFile, KeyError):
        return None
    return None


def _release_requires(name: str, version: str, settings: PipSettings) -> tuple[str, ...] | None:
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
        text: str | None = None
        if release.metadata_url is not None:
            try:
                text = _open(release.metadata_url).decode("utf-8", "replace")
            except (OSError, ValueError):
                text = None
        elif "://" not in release.url:
            text = _wheel_metadata(release.url, name)
        if text is not None:
            return _metadata_requires(text)
    return None


def requirements_of(
    items: Iterable[tuple[str, str]], settings: PipSettings
) -> dict[str, tuple[str, ...]]:
    """``name -> Requires-Dist`` of each ``(name, version)`` whose metadata could be read.

    Projects are looked up concurrently (index round trips dominate).
    """
    todo: Sequence[tuple[str, str]] = [(canonicalize_name(n), v) for n, v in items]
    if not todo:
        return {}

    def one(item: tuple[str, str]) -> tuple[str, tuple[str, ...] | None]:
        return item[0], _release_requires(item[0], item[1], settings)

    if len(todo) == 1 or all(_local_dir(s) is not None for s in _sources(settings)):
        results = [one(item) for item in todo]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
            results = list(pool.map(one, todo))
    return {name: requires for name, requires in results if requires is not None}
