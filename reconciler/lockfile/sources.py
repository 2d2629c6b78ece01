"""Find the exact wheel a resolved ``name==version`` installs, with its sha256 and origin.

The resolver (uv) says which versions; this says which file: the most specific
wheel compatible with the environment's interpreter, looked up where the
installer would look (``index_url``, then ``extra_index_urls`` in order, then
``find_links``). An index link's ``#sha256=`` is the hash the installer checks;
a link without one, and a find-links file, are hashed here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from reconciler.errors import BackendError
from reconciler.lockfile.fresh import strip_credentials
from reconciler.lockfile.model import LockedWheel
from reconciler.manifest.model import PipSettings

__all__ = ["Candidate", "WheelLocator", "target_tags"]

DEFAULT_INDEX = "https://pypi.org/simple/"
TIMEOUT = 30.0


@dataclass(frozen=True)
class Candidate:
    """A wheel file offered by one source."""

    filename: str
    url: str  # with credentials, for fetching; never stored
    sha256: str | None
    source: str  # without credentials


def target_tags(python_version: str | None) -> list[Tag]:
    """Tags of a CPython ``X.Y`` on this machine, most specific first."""
    from packaging import tags

    if not python_version:
        return list(tags.sys_tags())
    major, minor = (int(p) for p in python_version.split(".")[:2])
    version = (major, minor)
    return [*tags.cpython_tags(version), *tags.compatible_tags(version)]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def _fetch(url: str) -> bytes:
    import base64
    import urllib.request

    parts = urlsplit(url)
    headers = {"User-Agent": "reconciler-lock", "Accept": "text/html"}
    if parts.username is not None:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        url = strip_credentials(url)
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        data: bytes = response.read()
        return data


class WheelLocator:
    """Looks wheels up in an environment's sources; one index page fetch per project."""

    def __init__(self, settings: PipSettings) -> None:
        self._settings = settings
        self._pages: dict[tuple[str, str], list[Candidate]] = {}

    def locate(self, name: str, version: str, tags: Sequence[Tag]) -> LockedWheel:
        """The wheel of ``name==version`` the installer would pick for ``tags``."""
        from packaging.version import Version

        rank = {tag: i for i, tag in enumerate(tags)}
        wanted = canonicalize_name(name)
        best: tuple[int, Candidate] | None = None
        for candidate in self._candidates(wanted):
            try:
                dist, wheel_version, _, wheel_tags = parse_wheel_filename(candidate.filename)
            except InvalidWheelFilename:
                continue
            if dist != wanted or wheel_version != Version(version):
                continue
            score = min((rank[t] for t in wheel_tags if t in rank), default=None)
            if score is not None and (best is None or score < best[0]):
                best = (score, candidate)
        if best is None:
            raise BackendError(
                f"cannot lock {name} {version}: no compatible wheel of it was found on "
                f"{', '.join(self._described()) or 'any index'}",
                hint="check the package index and find_links in the manifest",
            )
        found = best[1]
        sha256 = found.sha256 or hashlib.sha256(self._read(found.url)).hexdigest()
        return LockedWheel(wanted, version, found.filename, sha256, found.source)

    def _described(self) -> list[str]:
        return [strip_credentials(s) for s in (*self._indexes(), *self._settings.find_links)]

    def _indexes(self) -> list[str]:
        s = self._settings
        if s.no_index:
            return []
        return [s.index_url or DEFAULT_INDEX, *s.extra_index_urls]

    def _candidates(self, project: str) -> Iterator[Candidate]:
        for index in self._indexes():
            # uv takes a package from the first index that has it (first-index).
            found = self._index_page(index, project)
            if found:
                yield from found
                break
        for link in self._settings.find_links:
            yield from self._find_links(link)

    def _index_page(self, index: str, project: str) -> list[Candidate]:
        key = (index, project)
        if key not in self._pages:
            page = urljoin(index if index.endswith("/") else index + "/", f"{project}/")
            try:
                text = _fetch(page).decode("utf-8", "replace")
            except OSError as exc:
                if getattr(exc, "code", None) == 404:
                    self._pages[key] = []
                    return []
                raise BackendError(
                    f"cannot read {strip_credentials(page)} to lock {project}: {exc}",
                    hint="check that the index is reachable",
                ) from exc
            self._pages[key] = list(_links(text, page, strip_credentials(index)))
        return self._pages[key]

    def _find_links(self, link: str) -> Iterator[Candidate]:
        if "://" in link and not link.startswith("file://"):
            key = (link, "")
            if key not in self._pages:
                text = _fetch(link).decode("utf-8", "replace")
                self._pages[key] = list(_links(text, link, strip_credentials(link)))
            yield from self._pages[key]
            return
        directory = Path(unquote(urlsplit(link).path) if link.startswith("file://") else link)
        try:
            names = sorted(os.listdir(directory.expanduser()))
        except OSError:
            return
        for filename in names:
            if filename.endswith(".whl"):
                path = directory.expanduser() / filename
                yield Candidate(filename, path.as_uri(), None, link)

    def _read(self, url: str) -> bytes:
        if url.startswith("file://"):
            return Path(unquote(urlsplit(url).path)).read_bytes()
        return _fetch(url)


def _links(text: str, base: str, source: str) -> Iterator[Candidate]:
    parser = _Links()
    parser.feed(text)
    for href in parser.hrefs:
        url, fragment = urldefrag(urljoin(base, href))
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        if not filename.endswith(".whl"):
            continue
        sha256 = fragment[len("sha256=") :] if fragment.startswith("sha256=") else None
        yield Candidate(filename, url, sha256, source)
