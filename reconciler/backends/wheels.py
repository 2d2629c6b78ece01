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
* :func:`read_record` - the wheel's ``*.dist-info/RECORD`` rows: from a local file
  with :mod:`zipfile`; from a URL with HTTP range requests on the zip's central
  directory (as pip's lazy wheel does: the tail, then the RECORD member), or, when
  the server ignores ``Range``, a full download into the cache directory (removed
  after reading). Rows are cached by the wheel's sha256 under
  ``<cache_dir>/records/``. :func:`read_listing` adds the scripts that its
  ``entry_points.txt`` makes the installer generate.

:class:`WheelRecords` puts the three behind one call for the planner.

Network reads use :class:`reconciler.backends.http.HttpClient` (the installers'
timeouts and retries). Failures raise :class:`reconciler.errors.BackendError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit

from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from reconciler.backends.process import redact
from reconciler.backends.wheel_tags import target_tags
from reconciler.errors import BackendError
from reconciler.manifest.model import PipSettings
from reconciler.state.python import RecordEntry, parse_record

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


def _local_path(url_path: str) -> str:
    """The file system path of a ``file://`` URL's path (POSIX)."""
    return unquote(url_path)


class _Lazy:
    """An :class:`HttpClient`, made at the first request (or the one given)."""

    def __init__(self, client: HttpClient | None) -> None:
        self._client = client

    def get(self) -> HttpClient:
        if self._client is None:
            from reconciler.backends.http import HttpClient

            self._client = HttpClient()
        return self._client


@dataclass(frozen=True)
class WheelFile:
    """One wheel file of a resolved distribution.

    ``url`` is where to read it (``file://`` for a local wheel) and may carry the
    index's credentials: never display it; ``source`` is the find-links location
    or index URL it came from, credentials redacted. ``sha256`` is the hash the
    index advertised (computed for a local file), ``metadata_url`` the PEP 658
    core-metadata file when the index offers one.
    """

    name: str  # canonical
    version: str
    filename: str
    url: str
    sha256: str | None
    source: str
    metadata_url: str | None = None

    @property
    def path(self) -> Path | None:
        """The local file, for a ``file://`` wheel."""
        parts = urlsplit(self.url)
        return Path(_local_path(parts.path)) if parts.scheme == "file" else None


# --- locating ----------------------------------------------------------------------


@dataclass(frozen=True)
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


def _best(links: Sequence[Link], name: str, version: Version, tags: Sequence[Tag]) -> Link | None:
    rank = {tag: i for i, tag in enumerate(tags)}
    best: tuple[int, tuple[int, str] | tuple[()], Link] | None = None
    for link in links:
        try:
            wname, wversion, build, wtags = parse_wheel_filename(link.filename)
        except InvalidWheelFilename:
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
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(_local_path(parts.path)), location
    if parts.scheme in ("http", "https"):
        return None, location
    return Path(os.path.expanduser(location)), location


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
    tags: Sequence[Tag],
    *,
    client: HttpClient | None = None,
    hash_local: bool = True,
) -> WheelFile | None:
    """The wheel of ``name==version`` the installer would take (see module docstring),
    or None when no location offers a compatible wheel of that version.

    A local wheel's sha256 is computed from the file; ``hash_local=False`` leaves it
    None (reading a large local wheel costs seconds, its RECORD milliseconds)."""
    canonical = canonicalize_name(name)
    try:
        wanted = Version(version)
    except InvalidVersion:
        return None
    http = _Lazy(client)
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
        sha256 = _file_sha256(Path(_local_path(parts.path)))
    return WheelFile(str(name), version, link.filename, link.url, sha256, source, link.metadata_url)


def _file_sha256(path: Path) -> str | None:
    import hashlib  # OpenSSL's: file contents (reconciler.digest is for small inputs)

    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


# --- RECORD -------------------------------------------------------------------------


def record_cache_file(cache_dir: Path, sha256: str) -> Path:
    """Where :func:`read_record` keeps the RECORD rows of the wheel with ``sha256``."""
    return cache_dir / "records" / f"{sha256}.json"


@dataclass(frozen=True)
class WheelListing:
    """What a wheel would write: its RECORD rows, and the console and GUI scripts
    (``entry_points.txt``) that the installer generates into ``bin/`` besides."""

    record: tuple[RecordEntry, ...]
    scripts: tuple[str, ...] = ()


def read_record(
    wheel: WheelFile, cache_dir: Path | None = None, *, client: HttpClient | None = None
) -> tuple[RecordEntry, ...]:
    """The RECORD rows of ``wheel`` (see module docstring), cached by sha256."""
    return read_listing(wheel, cache_dir, client=client).record


def read_listing(
    wheel: WheelFile, cache_dir: Path | None = None, *, client: HttpClient | None = None
) -> WheelListing:
    """RECORD rows and generated scripts of ``wheel``, read as :func:`read_record` reads."""
    cache_file = None
    if cache_dir is not None and wheel.sha256:
        cache_file = record_cache_file(cache_dir, wheel.sha256)
        try:
            data = json.loads(cache_file.read_text(encoding="utf-8"))
            rows = tuple(RecordEntry(str(p), str(h), s) for p, h, s in data["record"])
            return WheelListing(rows, tuple(str(x) for x in data["scripts"]))
        except (OSError, ValueError, TypeError, KeyError):
            pass
    local = wheel.path
    if local is not None:
        try:
            with zipfile.ZipFile(local) as archive:
                listing = _listing_of(archive, wheel)
        except (OSError, zipfile.BadZipFile) as exc:
            raise _unreadable(wheel, str(exc)) from exc
    else:
        listing = _remote_listing(wheel, cache_dir, _Lazy(client).get())
    if cache_file is not None:
        from reconciler.state.store import write_json_atomic

        rows_json = [[e.path, e.hash, e.size] for e in listing.record]
        with contextlib.suppress(OSError):  # derived data
            write_json_atomic(cache_file, {"record": rows_json, "scripts": list(listing.scripts)})
    return listing


def _remote_listing(wheel: WheelFile, cache_dir: Path | None, http: HttpClient) -> WheelListing:
    # A server without range support sends the whole wheel: it lands in the cache dir.
    where = cache_dir / "wheels" if cache_dir is not None else Path(tempfile.gettempdir())
    where.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".whl", dir=where)
    try:
        with os.fdopen(fd, "wb") as sink:
            from reconciler.backends.lazy_zip import open_remote_zip

            opened = open_remote_zip(http, wheel.url, sink)
        if opened is not None:
            with zipfile.ZipFile(opened) as archive:
                return _listing_of(archive, wheel)
        if wheel.sha256 and _file_sha256(Path(tmp)) != wheel.sha256:
            raise _unreadable(wheel, "its sha256 differs from the one the index advertises")
        with zipfile.ZipFile(tmp) as archive:
            return _listing_of(archive, wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise _unreadable(wheel, str(exc)) from exc
    finally:
        os.unlink(tmp)


def _listing_of(archive: zipfile.ZipFile, wheel: WheelFile) -> WheelListing:
    records = [
        n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/RECORD")
    ]
    if not records:
        raise _unreadable(wheel, "it has no .dist-info/RECORD")
    # One dist-info is the rule; with several, the one named after the distribution.
    chosen = next(
        (r for r in records if canonicalize_name(r.split("-", 1)[0]) == wheel.name), records[0]
    )
    record = parse_record(archive.read(chosen).decode("utf-8", errors="replace"))
    entry_points = chosen[: -len("RECORD")] + "entry_points.txt"
    scripts: tuple[str, ...] = ()
    if entry_points in archive.namelist():
        scripts = _scripts(archive.read(entry_points).decode("utf-8", errors="replace"))
    return WheelListing(record, scripts)


def _scripts(text: str) -> tuple[str, ...]:
    """Names in the ``[console_scripts]`` and ``[gui_scripts]`` sections."""
    out: list[str] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section in ("console_scripts", "gui_scripts") and "=" in line:
            name = line.split("=", 1)[0].strip()
            if name and "/" not in name and name not in (".", ".."):
                out.append(name)
    return tuple(out)


def _unreadable(wheel: WheelFile, why: str) -> BackendError:
    return BackendError(
        f"cannot read the file list of {wheel.filename} from {wheel.source}: {redact(why)}",
        hint="check the wheel on the index or in find-links; a damaged wheel cannot be installed",
    )


class WheelRecords:
    """``record(python, name, version, settings)``: what the wheel the installer would
    install into ``python``'s environment writes, as RECORD rows, or None when no
    location has that wheel. Generated scripts come as ``<name>.data/scripts/<script>``
    rows without a hash (where a wheel's own scripts are listed).

    Tags are computed once per interpreter; listings are cached under ``cache_dir``.
    """

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir
        self._tags: dict[str, tuple[Tag, ...]] = {}
        self._client = _Lazy(None)

    def _http(self, settings: PipSettings) -> HttpClient | None:
        """The shared client, unless every location is local (then none is made)."""
        remote = not settings.no_index or any(
            urlsplit(link).scheme in ("http", "https") for link in settings.find_links
        )
        return self._client.get() if remote else None

    def record(
        self, python: Path, name: str, version: str, settings: PipSettings
    ) -> tuple[RecordEntry, ...] | None:
        """See the class docstring."""
        tags = self._tags.get(str(python))
        if tags is None:
            tags = self._tags[str(python)] = target_tags(python, self.cache_dir)
        wheel = locate_wheel(
            name, version, settings, tags, client=self._http(settings), hash_local=False
        )
        if wheel is None:
            return None
        listing = read_listing(wheel, self.cache_dir, client=self._http(settings))
        data = f"{name.replace('-', '_')}-{version}.data/scripts"
        return listing.record + tuple(RecordEntry(f"{data}/{s}", "", None) for s in listing.scripts)
