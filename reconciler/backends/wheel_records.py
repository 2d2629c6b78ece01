"""A wheel file, and the files it would write (its RECORD), read without installing it.

:func:`read_record` reads a wheel's ``*.dist-info/RECORD`` rows: from a local file
with :mod:`zipfile`; from a URL with HTTP range requests on the zip's central
directory (as pip's lazy wheel does: the tail, then the RECORD member), or, when
the server ignores ``Range``, a full download into the cache directory (removed
after reading). Rows are cached under ``<cache_dir>/records/``: by the wheel's
sha256 when it is known, and a local wheel without one by its path, with the
file's identity (device, inode, size, mtime and ctime) they were read from, so
that a repeated plan neither rehashes nor reopens it and a changed file is read
anew. :func:`read_listing` adds the scripts that its ``entry_points.txt`` makes
the installer generate.

Locating the wheel is :mod:`reconciler.backends.wheels`' part.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from reconciler.backends.process import redact
from reconciler.errors import BackendError
from reconciler.names import canonical_name
from reconciler.state.python import RecordEntry, parse_record
from reconciler.values import value

if TYPE_CHECKING:  # urllib.request costs ~20 ms to import: only remote reads need it
    from zipfile import ZipFile

    from reconciler.backends.http import HttpClient

__all__ = [
    "LazyClient",
    "WheelFile",
    "WheelListing",
    "file_sha256",
    "local_path",
    "local_record_cache_file",
    "read_listing",
    "read_record",
    "record_cache_file",
]


def local_path(url_path: str) -> str:
    """The file system path of a ``file://`` URL's path (POSIX)."""
    return unquote(url_path)


class LazyClient:
    """An :class:`HttpClient`, made at the first request (or the one given)."""

    def __init__(self, client: HttpClient | None) -> None:
        self._client = client

    def get(self) -> HttpClient:
        if self._client is None:
            from reconciler.backends.http import HttpClient

            self._client = HttpClient()
        return self._client


@value
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
        return Path(local_path(parts.path)) if parts.scheme == "file" else None


def file_sha256(path: Path) -> str | None:
    """The sha256 of a local file, None when it cannot be read."""
    import hashlib  # OpenSSL's: file contents (reconciler.digest is for small inputs)

    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def record_cache_file(cache_dir: Path, sha256: str) -> Path:
    """Where :func:`read_record` keeps the RECORD rows of the wheel with ``sha256``."""
    return cache_dir / "records" / f"{sha256}.json"


@value
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
    cache_file: Path | None = None
    identity: list[object] | None = None
    if cache_dir is not None and wheel.sha256:
        cache_file = record_cache_file(cache_dir, wheel.sha256)
        cached = _cached(cache_file, None)
        if cached is not None:
            return cached
    local = wheel.path
    if local is None:
        listing = _remote_listing(wheel, cache_dir, LazyClient(client).get())
    else:
        try:
            with open(local, "rb") as f:
                if cache_file is None and cache_dir is not None:
                    # No sha256 (hashing a large wheel costs more than reading it): the
                    # open file's identity keys the rows, so a changed wheel is read anew.
                    st = os.fstat(f.fileno())
                    identity = [str(local), st.st_dev, st.st_ino, st.st_size]
                    identity += [st.st_mtime_ns, st.st_ctime_ns]
                    cache_file = local_record_cache_file(cache_dir, local)
                    cached = _cached(cache_file, identity)
                    if cached is not None:
                        return cached
                import zipfile  # a wheel not read before (with shutil, bz2 and lzma)

                try:
                    with zipfile.ZipFile(f) as archive:
                        listing = _listing_of(archive, wheel)
                except zipfile.BadZipFile as exc:
                    raise _unreadable(wheel, str(exc)) from exc
        except OSError as exc:
            raise _unreadable(wheel, str(exc)) from exc
    if cache_file is not None:
        from reconciler.state.store import write_json_atomic

        rows_json = [[e.path, e.hash, e.size] for e in listing.record]
        body: dict[str, object] = {"record": rows_json, "scripts": list(listing.scripts)}
        if identity is not None:
            body["identity"] = identity
        with contextlib.suppress(OSError):  # derived data
            write_json_atomic(cache_file, body, derived=True)
    return listing


def local_record_cache_file(cache_dir: Path, path: Path) -> Path:
    """Where :func:`read_listing` keeps the rows of the local wheel file at ``path``
    (without a sha256), with the file identity they were read from."""
    from reconciler.digest import sha256

    key = sha256(os.fsencode(str(path))).hexdigest()
    return cache_dir / "records" / f"local-{key}.json"


def _cached(cache_file: Path, identity: list[object] | None) -> WheelListing | None:
    """The listing kept in ``cache_file``; None when absent, damaged, or (for a local
    wheel) read from a file whose identity differs from ``identity``."""
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
        if identity is not None and data.get("identity") != identity:
            return None
        rows = tuple(RecordEntry(str(p), str(h), s) for p, h, s in data["record"])
        return WheelListing(rows, tuple(str(x) for x in data["scripts"]))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _remote_listing(wheel: WheelFile, cache_dir: Path | None, http: HttpClient) -> WheelListing:
    import tempfile  # a remote wheel's: local ones never get here
    import zipfile

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
        if wheel.sha256 and file_sha256(Path(tmp)) != wheel.sha256:
            raise _unreadable(wheel, "its sha256 differs from the one the index advertises")
        with zipfile.ZipFile(tmp) as archive:
            return _listing_of(archive, wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise _unreadable(wheel, str(exc)) from exc
    finally:
        os.unlink(tmp)


def _listing_of(archive: ZipFile, wheel: WheelFile) -> WheelListing:
    records = [
        n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/RECORD")
    ]
    if not records:
        raise _unreadable(wheel, "it has no .dist-info/RECORD")
    # One dist-info is the rule; with several, the one named after the distribution.
    chosen = next(
        (r for r in records if canonical_name(r.split("-", 1)[0]) == wheel.name), records[0]
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
