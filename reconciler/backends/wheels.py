"""Which wheel file an installer would install for a resolved ``name==version``, and
the files that wheel would write (its RECORD), read without installing it.

Three calls, for the plan's clash check and the lock file:

* :func:`target_tags` - the wheel tags the target interpreter accepts, best first
  (``packaging.tags`` fed by a one-time ``python -c`` probe of the interpreter,
  cached by its real path, size and mtime).
* :func:`locate_wheel` - the :class:`WheelFile` for ``name==version``: first the
  find-links locations (local directories, ``file://`` URLs, HTML pages), then the
  indexes in uv's ``first-index`` order (``index_url``, ``extra_index_urls``, or
  PyPI without ``index_url``; see :func:`reconciler.backends.pip_args.repository_args`):
  the first index that has the project is the only one asked for the version, so a
  public index cannot shadow an internal one. Indexes are read through the PEP 691
  JSON simple API when offered, PEP 503 HTML otherwise (``#sha256=`` fragments,
  PEP 658/714 ``data-core-metadata`` / ``data-dist-info-metadata``). Among the
  files of that version, the one whose best tag ranks highest for the target wins
  (then the highest build tag), as pip and uv choose.
* :func:`read_record` - the wheel's ``*.dist-info/RECORD`` rows, read and cached
  by :mod:`reconciler.backends.wheel_records` (re-exported here).

:class:`WheelRecords` puts the three behind one call for the planner.

Network reads use :class:`reconciler.backends.http.HttpClient` (the installers'
timeouts and retries). Failures raise :class:`reconciler.errors.BackendError`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit

from packaging.version import InvalidVersion, Version

from reconciler.backends.process import redact
from reconciler.backends.wheel_filenames import InvalidFilename, parse_wheel_filename
from reconciler.backends.wheel_records import (
    LazyClient,
    WheelFile,
    WheelListing,
    file_sha256,
    local_path,
    read_listing,
    read_record,
    record_cache_file,
)
from reconciler.backends.wheel_tags import (
    cached_tags,
    probe_key,
    probe_uncached,
    remember_probe,
    target_tags,
    with_tags,
)
from reconciler.errors import BackendError
from reconciler.manifest.model import PipSettings
from reconciler.names import canonical_name
from reconciler.state.python import RecordEntry, parse_record
from reconciler.values import value

if TYPE_CHECKING:  # urllib.request costs ~20 ms to import: only remote reads need it
    from reconciler.backends.http import HttpClient, Response

__all__ = [
    "PYPI_SIMPLE",
    "SIMPLE_ACCEPT",
    "SIMPLE_JSON",
    "Link",
    "RecordEntry",
    "WheelFile",
    "WheelListing",
    "WheelRecords",
    "forget_pages",
    "html_links",
    "json_links",
    "locate_wheel",
    "parse_record",
    "project_page",
    "project_url",
    "read_listing",
    "read_record",
    "record_cache_file",
    "target_tags",
]

#: The default index, used when the manifest gives no ``index_url`` (as uv and pip do).
PYPI_SIMPLE = "https://pypi.org/simple/"

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_ACCEPT = f"{SIMPLE_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"


# --- locating ----------------------------------------------------------------------


@value
class Link:
    """A file link of a simple-API page: file name, URL (no fragment), advertised sha256
    and PEP 658 metadata URL."""

    filename: str
    url: str
    sha256: str | None
    metadata_url: str | None


def _fragment_sha256(url: str) -> tuple[str, str | None]:
    base, _, fragment = url.partition("#")
    name, _, value = fragment.partition("=")
    return base, (value.lower() if name == "sha256" and value else None)


def html_links(page: bytes, page_url: str) -> list[Link]:
    """The links of a PEP 503 HTML page (or a find-links page), ``<base>`` honoured."""
    from reconciler.backends.html_anchors import Anchors

    parser = Anchors()
    parser.feed(page.decode("utf-8", errors="replace"))
    base = urljoin(page_url, parser.base) if parser.base else page_url
    links: list[Link] = []
    for attrs in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, sha256 = _fragment_sha256(urljoin(base, href))
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        meta = attrs.get("data-core-metadata") or attrs.get("data-dist-info-metadata")
        has_meta = meta is not None and meta.lower() != "false"
        links.append(Link(filename, url, sha256, f"{url}.metadata" if has_meta else None))
    return links


def json_links(page: bytes, page_url: str) -> list[Link]:
    """The files of a PEP 691 JSON project page (ValueError when it is not JSON)."""
    data = json.loads(page)
    links: list[Link] = []
    for item in data.get("files", []) if isinstance(data, dict) else []:
        if not isinstance(item, dict) or not item.get("url"):
            continue
        url, fragment = _fragment_sha256(urljoin(page_url, str(item["url"])))
        hashes = item.get("hashes")
        given = hashes.get("sha256") if isinstance(hashes, dict) else None
        sha256 = str(given).lower() if given else fragment
        meta = item.get("core-metadata", item.get("dist-info-metadata"))
        links.append(
            Link(str(item.get("filename", "")), url, sha256, f"{url}.metadata" if meta else None)
        )
    return links


#: The rank of each tag of the last tag list :func:`_best` saw (~900 tags: building the
#: map for every wheel located cost more than choosing the wheel).
_last_ranks: list[tuple[Sequence[str], dict[str, int]]] = []


def _ranks(tags: Sequence[str]) -> dict[str, int]:
    last = _last_ranks[0] if _last_ranks else None
    if last is not None and last[0] is tags:
        return last[1]
    rank = {tag: i for i, tag in enumerate(tags)}
    if isinstance(tags, tuple):  # kept only for an immutable list of tags
        _last_ranks[:] = [(tags, rank)]  # one item replaced at once: safe across threads
    return rank


def _best(links: Sequence[Link], name: str, version: Version, tags: Sequence[str]) -> Link | None:
    if not links:
        return None
    rank = _ranks(tags)
    best: tuple[int, tuple[int, str] | tuple[()], Link] | None = None
    for link in links:
        try:
            wname, wversion, build, wtags = parse_wheel_filename(link.filename)
        except InvalidFilename:
            continue  # an sdist or another file: reconciler never builds
        if wname != name or wversion != version:
            continue
        ranks = [rank[t] for t in wtags if t in rank]
        if not ranks:
            continue
        key = (-min(ranks), build)
        if best is None or key > (best[0], best[1]):
            best = (key[0], key[1], link)
    return best[2] if best else None


def _find_links_location(location: str) -> tuple[Path | None, str]:
    from reconciler.backends.local_dirs import local_directory

    local = local_directory(location)
    return (None if local is None else Path(local)), location


def _local_links(directory: Path, name: str) -> list[Link]:
    """Project ``name``'s files in a local directory (its listing is read once a plan)."""
    from reconciler.backends.local_dirs import project_files

    return [
        Link(n, (directory / n).resolve().as_uri(), None, None)
        for n in project_files(directory, name)
    ]


def locate_wheel(
    name: str,
    version: str,
    settings: PipSettings,
    tags: Sequence[str],
    *,
    client: HttpClient | None = None,
    hash_local: bool = True,
) -> WheelFile | None:
    """The wheel of ``name==version`` the installer would take (see module docstring),
    or None when no location offers a compatible wheel of that version.

    A local wheel's sha256 is computed from the file; ``hash_local=False`` leaves it
    None (reading a large local wheel costs seconds, its RECORD milliseconds)."""
    canonical = canonical_name(name)
    try:
        wanted = Version(version)
    except InvalidVersion:
        return None
    http = LazyClient(client)
    for location in settings.find_links:
        directory, source = _find_links_location(location)
        if directory is not None:
            links = _local_links(directory, canonical)
        else:
            response = http.get().get(location)
            links = html_links(response.body, response.url) if response.status == 200 else []
        found = _best(links, canonical, wanted, tags)
        if found is not None:
            return _wheel(found, canonical, version, redact(source), hash_local)
    for index in _indexes(settings):
        page = project_url(index, canonical)
        response = project_page(http.get(), page)
        if response.status in (404, 410):
            continue  # not on this index: the next one may have it
        if response.status != 200:
            raise BackendError(
                f"cannot read {redact(page)}: HTTP {response.status}",
                hint="check the index URL and its credentials",
            )
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        parse = json_links if kind == SIMPLE_JSON else html_links
        found = _best(parse(response.body, response.url), canonical, wanted, tags)
        # first-index: the first index with the project decides, found or not.
        return _wheel(found, canonical, version, redact(index), True) if found else None
    return None


#: How long a project page read stays valid in this process (each plan forgets them).
PAGE_SECONDS = 60.0
_pages: dict[str, tuple[float, Response]] = {}
_pages_lock = threading.Lock()


def project_url(index: str, name: str) -> str:
    """The simple-API page of project ``name`` (canonical) on ``index``."""
    return urljoin(index if index.endswith("/") else index + "/", f"{name}/")


def project_page(http: HttpClient, url: str) -> Response:
    """GET a simple-API project page (PEP 691 JSON preferred), read once per process:
    the clash check and the chains' metadata share it. Only a page or a "not here"
    (404, 410) is kept; :func:`forget_pages` (at the start of each plan) or
    :data:`PAGE_SECONDS` make the next read go to the index again."""
    now = time.monotonic()
    with _pages_lock:
        hit = _pages.get(url)
    if hit is not None and now - hit[0] < PAGE_SECONDS:
        return hit[1]
    response = http.get(url, {"Accept": SIMPLE_ACCEPT})
    if response.status in (200, 404, 410):
        with _pages_lock:
            _pages[url] = (now, response)
    return response


def forget_pages() -> None:
    """Drop the project pages and local directory listings read so far (see
    :func:`project_page`)."""
    with _pages_lock:
        _pages.clear()
    from reconciler.backends.local_dirs import forget

    forget()  # the local find-links listings too


def _indexes(settings: PipSettings) -> list[str]:
    if settings.no_index:
        return []
    extras = list(settings.extra_index_urls)
    return [settings.index_url, *extras] if settings.index_url else [*extras, PYPI_SIMPLE]


def _wheel(link: Link, name: str, version: str, source: str, hash_local: bool) -> WheelFile:
    sha256 = link.sha256
    parts = urlsplit(link.url)
    if sha256 is None and parts.scheme == "file" and hash_local:
        sha256 = file_sha256(Path(local_path(parts.path)))
    return WheelFile(str(name), version, link.filename, link.url, sha256, source, link.metadata_url)


class WheelRecords:
    """``record(python, name, version, settings)``: what the wheel the installer would
    install into ``python``'s environment writes, as RECORD rows, or None when no
    location has that wheel. Generated scripts come as ``<name>.data/scripts/<script>``
    rows without a hash (where a wheel's own scripts are listed).

    Tags are computed once per interpreter; listings are cached under ``cache_dir``.
    """

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir
        self._tags: dict[str, tuple[str, ...]] = {}
        #: Probes made by :meth:`prepare`, not yet in the tags cache: (key, probe, tags).
        self._probed: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {}
        self._tags_lock = threading.Lock()  # guards the dicts and the tags cache file
        #: One lock per interpreter: a probe of one never holds up the others' threads.
        self._locks: dict[str, threading.Lock] = {}
        self._client = LazyClient(None)

    def _http(self, settings: PipSettings) -> HttpClient | None:
        """The shared client, unless every location is local (then none is made)."""
        from reconciler.backends.local_dirs import local_only

        return None if local_only(settings) else self._client.get()

    def _lock(self, python: Path) -> threading.Lock:
        with self._tags_lock:
            return self._locks.setdefault(str(python), threading.Lock())

    def _target_tags(self, python: Path) -> tuple[str, ...]:
        with self._lock(python):  # one probe per interpreter, not one per thread
            tags = self._tags.get(str(python))
            if tags is not None:
                return tags
            if self.cache_dir is None:
                tags = target_tags(python)
            else:
                tags = self._keep_probed(python, self.cache_dir)
                if tags is None:
                    tags, probed = self._cached_or_probed(python, self.cache_dir)
                    if probed is not None:
                        key, probe, tags = probed
                        with self._tags_lock:  # the tags cache file: one writer at a time
                            remember_probe(self.cache_dir, key, probe)
                if tags is None:  # the cache was damaged between two reads: probe it
                    tags = target_tags(python)
            self._tags[str(python)] = tags
            return tags

    def _keep_probed(self, python: Path, cache_dir: Path) -> tuple[str, ...] | None:
        """Write the probe :meth:`prepare` kept for ``python`` to the tags cache, and
        give its tags; None when there is none, or when the interpreter was replaced
        since it was probed (then it is probed again)."""
        probed = self._probed.pop(str(python), None)
        if probed is None or probe_key(python) != probed[0]:
            return None
        key, probe, tags = probed
        with self._tags_lock:  # the tags cache file: one writer at a time
            remember_probe(cache_dir, key, probe)
        return tags

    @staticmethod
    def _cached_or_probed(
        python: Path, cache_dir: Path
    ) -> tuple[tuple[str, ...] | None, tuple[str, dict[str, Any], tuple[str, ...]] | None]:
        """From the tags cache: ``(tags, None)``; else the probe, run now and not
        written: ``(None, (key, probe, tags))``; ``(None, None)`` when the cache came to
        hold the interpreter between the two reads."""
        tags = cached_tags(python, cache_dir)
        if tags is not None:
            return tags, None
        found = probe_uncached(python, cache_dir)
        return None, None if found is None else (found[0], *with_tags(found[1]))

    def prepare(self, python: Path) -> None:
        """Work out ``python``'s tags ahead of the first :meth:`record` (the planner
        calls it while the resolver's preview runs). From the tags cache when it holds
        them; else the probe runs now and is kept in memory, written to the cache only
        by that first :meth:`record` (a plan that never reads a wheel leaves the cache
        dir as it was). A failure is left for that call to raise."""
        if self.cache_dir is None:
            return
        with contextlib.suppress(Exception), self._lock(python):
            if str(python) in self._tags or str(python) in self._probed:
                return
            tags, probed = self._cached_or_probed(python, self.cache_dir)
            if probed is not None:
                self._probed[str(python)] = probed
                tags = probed[2]
            elif tags is not None:
                self._tags[str(python)] = tags
            else:
                return
            _ranks(tags)

    def keep_prepared(self) -> None:
        """Write to the tags cache what :meth:`prepare` worked out and no read wrote: a
        plan whose pip changes were all refused reads no wheel, and would compute the
        tags again at every run. Called by ``plan`` only: a refused apply leaves the
        state dir as it was."""
        if self.cache_dir is None:
            return
        with self._tags_lock:
            pending = list(self._probed)
        for python in pending:
            # Derived data: never let keeping it turn a plan into a failure.
            with contextlib.suppress(Exception), self._lock(Path(python)):
                tags = self._keep_probed(Path(python), self.cache_dir)
                if tags is not None:
                    self._tags[python] = tags

    def record(
        self, python: Path, name: str, version: str, settings: PipSettings
    ) -> tuple[RecordEntry, ...] | None:
        """See the class docstring."""
        tags = self._target_tags(python)
        wheel = locate_wheel(
            name, version, settings, tags, client=self._http(settings), hash_local=False
        )
        if wheel is None:
            return None
        listing = read_listing(wheel, self.cache_dir, client=self._http(settings))
        data = f"{name.replace('-', '_')}-{version}.data/scripts"
        rows = listing.record + tuple(RecordEntry(f"{data}/{s}", "", None) for s in listing.scripts)
        return rows
