"""Read the Python distributions installed in a site-packages directory.

A header-only METADATA parser (stop at the first blank line) is several times
faster than ``importlib.metadata`` and gives the same data (NOTES.md). Names
come from METADATA, never from directory names.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from reconciler.names import canonical_name
from reconciler.state.cache import ReadCache
from reconciler.values import value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.state.cache import DistEntry

__all__ = [
    "Distribution",
    "RecordEntry",
    "find_site_packages",
    "parse_record",
    "read_distributions",
    "read_metadata_headers",
    "read_record",
]

_PYTHON_DIR = re.compile(r"^python(\d+)\.(\d+)t?$")


@value
class Distribution:
    """One installed Python distribution."""

    name: str  # canonical (PEP 503)
    display_name: str
    version: str
    requires: tuple[str, ...]  # Requires-Dist, markers included
    installer: str  # INSTALLER content ("pip", "uv", "conda", ...) or ""
    directory: str  # the *.dist-info / *.egg-info / *.egg-link entry name
    editable: bool = False
    # Found in the base interpreter's site-packages, which a venv made with
    # ``--system-site-packages`` sees but does not own (uv does not see it either).
    system_site: bool = False


@value
class RecordEntry:
    """One row of a RECORD: the path (relative to site-packages for an installed
    distribution, ``../../../bin/x`` outside it; in a wheel, relative to the wheel
    root, ``<name>.data/scripts/x``), ``sha256=<urlsafe b64>`` or ``""``, and size."""

    path: str
    hash: str
    size: int | None


def parse_record(text: str) -> tuple[RecordEntry, ...]:
    """The rows of a RECORD file (CSV ``path,hash,size``); empty rows are skipped."""
    import csv  # with the first RECORD read: a plan's start reads none
    import io

    out: list[RecordEntry] = []
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0]:
            continue
        digest = row[1] if len(row) > 1 else ""
        size = row[2] if len(row) > 2 else ""
        out.append(RecordEntry(row[0], digest, int(size) if size.isdigit() else None))
    return tuple(out)


def read_record(site_packages: Path, dist: Distribution) -> tuple[RecordEntry, ...]:
    """The RECORD of an installed ``*.dist-info`` (empty for egg-info, egg-link or none)."""
    if not dist.directory.endswith(".dist-info"):
        return ()
    import csv  # for csv.Error (parse_record imports it)

    try:
        with open(f"{site_packages}{os.sep}{dist.directory}{os.sep}RECORD", encoding="utf-8") as f:
            return parse_record(f.read())
    except (OSError, UnicodeDecodeError, csv.Error):
        return ()


def find_site_packages(prefix: Path) -> tuple[Path | None, str | None]:
    """``(lib/pythonX.Y/site-packages, "X.Y")`` of a prefix, or ``(None, None)``.

    When several ``lib/python*`` directories exist, the one named by
    ``pyvenv.cfg`` wins, then the highest version.
    """
    lib = prefix / "lib"
    try:
        entries = os.listdir(lib)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    found: list[tuple[tuple[int, int], str]] = []
    for entry in entries:
        match = _PYTHON_DIR.match(entry)
        if match and (lib / entry / "site-packages").is_dir():
            found.append(((int(match.group(1)), int(match.group(2))), entry))
    if not found:
        return None, None
    wanted = _pyvenv_version(prefix)
    for version, entry in found:
        if wanted == version:
            return lib / entry / "site-packages", f"{version[0]}.{version[1]}"
    version, entry = max(found)
    return lib / entry / "site-packages", f"{version[0]}.{version[1]}"


def _pyvenv_version(prefix: Path) -> tuple[int, int] | None:
    try:
        text = (prefix / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            parts = value.strip().split(".")
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                return int(parts[0]), int(parts[1])
    return None


def read_metadata_headers(
    path: Path | str, *, dir_fd: int | None = None
) -> tuple[str, str, tuple[str, ...]] | None:
    """``(Name, Version, Requires-Dist)`` from a METADATA / PKG-INFO file, or None.

    Read as text mode would (UTF-8 with replacement, universal newlines), but with raw
    ``os.read``: for 50,000 dist-infos the text layer costs 3x the reading. Only the
    headers are read when they end within the first chunk (the body can be large).
    """
    try:
        data = _read_bytes(path, b"\n\n", b"\r\n\r\n", dir_fd=dir_fd)
    except OSError:
        return None
    text = data.decode("utf-8", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    end = 0 if text.startswith("\n") else text.find("\n\n")
    name = version = ""
    requires: list[str] = []
    # Only the three headers wanted, found by one regular expression (a METADATA has
    # dozens of Classifier lines). A folded continuation starts with a space or tab,
    # so it never matches; ASCII case folding is what str.lower() does to these keys.
    for key, header in re.findall(_HEADERS, text if end < 0 else text[:end], _HEADER_FLAGS):
        key = key.lower()
        if key == "name":
            name = header.strip()
        elif key == "version":
            version = header.strip()
        else:
            requires.append(header.strip())
    if not name or not version:
        return None
    return name, version, tuple(requires)


_HEADERS = r"^(name|version|requires-dist):(.*)"
_HEADER_FLAGS = re.IGNORECASE | re.ASCII | re.MULTILINE
_CHUNK = 1 << 14


def _read_bytes(
    path: Path | str, stop: bytes = b"", stop_crlf: bytes = b"", *, dir_fd: int | None = None
) -> bytes:
    """The file's bytes; with ``stop``, only the first chunk when it holds ``stop`` (or
    ``stop_crlf``, or a lone-CR blank line) -- what a line reader would stop at."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0), dir_fd=dir_fd)
    try:
        data = os.read(fd, _CHUNK)
        if stop and (stop in data or stop_crlf in data or b"\r\r" in data):
            return data
        if len(data) < _CHUNK:
            rest = os.read(fd, _CHUNK)
            if not rest:
                return data
            data += rest
        parts = [data]
        while chunk := os.read(fd, 1 << 20):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def _egg_info_requires(egg_info: Path) -> tuple[str, ...]:
    """Requirements from a legacy ``requires.txt`` (sections become extra markers)."""
    try:
        text = (egg_info / "requires.txt").read_text(encoding="utf-8")
    except OSError:
        return ()
    out: list[str] = []
    marker = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            extra, _, cond = section.partition(":")
            parts = []
            if extra:
                parts.append(f'extra == "{extra}"')
            if cond:
                parts.append(f"({cond})")
            marker = " and ".join(parts)
            continue
        out.append(f"{line}; {marker}" if marker else line)
    return tuple(out)


def _read_text(path: Path | str, *, dir_fd: int | None = None) -> str:
    """A small file's stripped text (UTF-8, universal newlines), "" when it is absent."""
    try:
        text = _read_bytes(path, dir_fd=dir_fd).decode("utf-8")
    except OSError:
        return ""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()


def read_distributions(
    site_packages: Path | None, cache: ReadCache | None = None
) -> dict[str, Distribution]:
    """Every distribution in ``site_packages`` by canonical name.

    With ``cache``, a dist-info is read from the cache when its directory's mtime is
    the cached one (installers never edit METADATA in place: an install writes a new
    directory), and the directory's cache table is replaced by what is listed now.
    """
    if site_packages is None:
        return {}
    # Plain string paths: pathlib's joins dominate the cost of reading 50,000 dist-infos.
    directory = str(site_packages)
    try:
        # Entries are read relative to the directory's descriptor (no walk of the whole
        # path per file), in the directory that was listed.
        fd = os.open(directory, _DIRECTORY_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    try:
        return _read_site(site_packages, directory, fd, cache)
    finally:
        os.close(fd)


_DIRECTORY_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def _read_site(
    site_packages: Path, directory: str, fd: int, cache: ReadCache | None
) -> dict[str, Distribution]:
    entries = sorted(os.listdir(fd))
    dists: dict[str, Distribution] = {}
    cached = cache.site_dists(directory) if cache is not None else {}
    table: dict[str, DistEntry] = {}
    reused = 0
    stat = os.stat
    for entry in entries:
        dist: Distribution | None = None
        if entry.endswith(".dist-info"):
            if cache is None:
                dist = _dist_info(fd, entry)
            else:
                try:
                    mtime = stat(entry, dir_fd=fd).st_mtime_ns
                except OSError:
                    continue
                hit = cached.get(entry)
                if type(hit) is list and len(hit) == 7 and hit[0] == mtime:
                    _, name, display, version, requires, installer, editable = hit
                    dist = Distribution(
                        name, display, version, tuple(requires), installer, entry, editable
                    )
                    table[entry] = hit
                    reused += 1
                else:
                    dist = _dist_info(fd, entry)
                    if dist is not None:
                        table[entry] = [
                            mtime,
                            dist.name,
                            dist.display_name,
                            dist.version,
                            list(dist.requires),
                            dist.installer,
                            dist.editable,
                        ]
        elif entry.endswith(".egg-info"):
            dist = _egg_info(site_packages / entry, entry)
        elif entry.endswith(".egg-link"):
            dist = _egg_link(site_packages / entry, entry)
        if dist is not None and dist.name not in dists:
            dists[dist.name] = dist
    if cache is not None:
        cache.set_site_dists(directory, table, reused=reused)
    return dists


def _dist_info(fd: int, entry: str) -> Distribution | None:
    """The dist-info ``entry`` of the directory open as ``fd``."""
    base = f"{entry}{os.sep}"
    headers = read_metadata_headers(base + "METADATA", dir_fd=fd)
    if headers is None:
        return None
    name, version, requires = headers
    return Distribution(
        name=canonical_name(name),
        display_name=name,
        version=version,
        requires=requires,
        installer=_read_text(base + "INSTALLER", dir_fd=fd),
        directory=entry,
        editable=_is_editable(base + "direct_url.json", fd),
    )


def _is_editable(direct_url: str, dir_fd: int | None = None) -> bool:
    # Parse it: pip writes `"editable": true`, uv compact JSON `"editable":true`.
    text = _read_text(direct_url, dir_fd=dir_fd)
    if not text:
        return False
    try:
        data = json.loads(text)
    except ValueError:
        return False
    dir_info = data.get("dir_info") if isinstance(data, dict) else None
    return isinstance(dir_info, dict) and dir_info.get("editable") is True


def _egg_info(path: Path, entry: str) -> Distribution | None:
    pkg_info = path / "PKG-INFO" if path.is_dir() else path
    headers = read_metadata_headers(pkg_info)
    if headers is None:
        return None
    name, version, requires = headers
    if path.is_dir():
        requires = requires or _egg_info_requires(path)
    return Distribution(
        name=canonical_name(name),
        display_name=name,
        version=version,
        requires=requires,
        installer=_read_text(path / "INSTALLER") if path.is_dir() else "",
        directory=entry,
    )


def _egg_link(path: Path, entry: str) -> Distribution | None:
    """A legacy ``setup.py develop`` install: metadata lives in the source tree."""
    source = Path(_read_text(path).splitlines()[0]) if _read_text(path) else None
    if source is None or not source.is_dir():
        return None
    for candidate in sorted(source.glob("*.egg-info")):
        dist = _egg_info(candidate, entry)
        if dist is not None:
            return Distribution(
                name=dist.name,
                display_name=dist.display_name,
                version=dist.version,
                requires=dist.requires,
                installer="",
                directory=entry,
                editable=True,
            )
    return None
