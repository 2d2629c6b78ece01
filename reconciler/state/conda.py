"""Read a conda prefix's ``conda-meta/`` without spawning anything.

Names, versions and builds come from the record file names (conda itself ignores
a record whose name does not split that way). The JSON bodies can be megabytes
(``files``), so the few fields we need from them (``depends``, ``channel`` and
the dist-info directories the package ships) are kept in a cache keyed by the
record's (mtime, size); see :mod:`reconciler.state.cache`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from reconciler.state.cache import ReadCache
from reconciler.values import value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "CondaRecord",
    "Details",
    "RecordDetails",
    "read_conda_meta",
    "read_conda_records",
    "read_pinned",
]

# The dist-info/egg-info a conda package ships, as listed in its record's `files`. A
# string: compiled when a record's body is parsed (a cache miss), not at every import.
_DIST_RECORD = r"(?:^|/)site-packages/([^/]+\.(?:dist-info|egg-info))(?:/(?:RECORD|PKG-INFO))?$"


@value
class CondaRecord:
    """One installed conda package, as named by its ``conda-meta`` file."""

    name: str
    version: str
    build: str
    filename: str

    @property
    def nvb(self) -> str:
        """``name-version-build``, conda's own identifier."""
        return f"{self.name}-{self.version}-{self.build}"


@value
class RecordDetails:
    """What the planner needs from a record's JSON body."""

    depends: tuple[str, ...]
    channel: str
    dists: tuple[str, ...]  # dist-info / egg-info directory names shipped by the package


def split_record_filename(filename: str) -> CondaRecord | None:
    """``numpy-1.26.4-py311h_0.json`` -> CondaRecord, or None if it does not split in three."""
    if not filename.endswith(".json"):
        return None
    parts = filename[: -len(".json")].rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return CondaRecord(name=parts[0], version=parts[1], build=parts[2], filename=filename)


def read_conda_meta(prefix: Path) -> dict[str, CondaRecord]:
    """Installed conda records by package name; empty when ``prefix`` is not a conda env."""
    try:
        return _records(os.listdir(prefix / "conda-meta"))
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _records(filenames: Iterable[str]) -> dict[str, CondaRecord]:
    """The records named by a ``conda-meta`` listing, by package name."""
    records: dict[str, CondaRecord] = {}
    for filename in filenames:
        record = split_record_filename(filename)
        if record is not None:
            records[record.name] = record
    return records


def read_pinned(prefix: Path) -> tuple[str, ...]:
    """MatchSpecs from ``conda-meta/pinned`` (one per line, ``#`` comments)."""
    try:
        text = (prefix / "conda-meta" / "pinned").read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return ()
    specs = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(s for s in specs if s)


def _details_from_json(body: Mapping[str, Any]) -> RecordDetails:
    dists: list[str] = []
    search = re.compile(_DIST_RECORD).search
    for path in body.get("files") or ():
        match = search(str(path))
        if match and match.group(1) not in dists:
            dists.append(match.group(1))
    return RecordDetails(
        depends=tuple(str(d) for d in body.get("depends") or ()),
        channel=str(body.get("channel") or ""),
        dists=tuple(dists),
    )


class Details(Mapping[str, RecordDetails]):
    """Each record's :class:`RecordDetails` by package name, made at its first use from
    the cached entry: a plan reads only the shipped dist-infos of most records
    (:meth:`shipped`; 913 records in the SageMaker image)."""

    def __init__(self) -> None:
        self._values: dict[str, RecordDetails | list[Any]] = {}

    def __getitem__(self, name: str) -> RecordDetails:
        entry = self._values[name]
        if type(entry) is list:
            entry = self._values[name] = RecordDetails(
                tuple(entry[2]), str(entry[3]), tuple(entry[4])
            )
        assert isinstance(entry, RecordDetails)
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    def shipped(self) -> Iterator[tuple[str, Sequence[str]]]:
        """``(package name, dist-info directories it ships)`` of every record."""
        for name, entry in self._values.items():
            yield name, entry[4] if type(entry) is list else entry.dists  # type: ignore[union-attr]


_DIRECTORY_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


#: How much older than a read of ``conda-meta`` its directory's mtime and ctime must be
#: for that read to be taken again (``again``): an entry added in the same tick of
#: the kernel's coarse file clock as an earlier change may leave the mtime as it was.
SLACK_NS = 50_000_000


def read_conda_records(
    prefix: Path, cache: ReadCache, *, again: bool = False
) -> tuple[dict[str, CondaRecord], Details]:
    """:func:`read_conda_meta` and each record's details, a record's JSON body parsed only
    when its (mtime, size) is not the cached one; the directory's cache table is replaced
    by what is listed now (removed records leave it).

    ``again``: what this process (``cache``) read of the directory before is the answer
    while the directory's inode, mtime and ctime are the ones then (no record added,
    removed or renamed since), without a stat of each record: the re-read after a pip
    install, which writes no record (conda and py-rattler write a record under a new
    name, or over one in place: an apply that ran either reads every record)."""
    meta = f"{prefix}{os.sep}conda-meta"
    try:
        # Records are stat'ed relative to the directory's descriptor: no walk of the
        # whole path per file (913 records in the SageMaker image).
        fd = os.open(meta, _DIRECTORY_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return {}, Details()
    details = Details()
    made = details._values
    try:
        here = os.fstat(fd)
        stamp = (here.st_ino, here.st_mtime_ns, here.st_ctime_ns)
        listed = cache.listed(meta)
        if again and listed is not None and listed[0] == stamp:
            return listed[1], listed[2]
        read_at = time.time_ns()
        records = _records(os.listdir(fd))
        cached = cache.conda_records(meta)
        table: dict[str, list[Any]] = {}
        reused = 0
        stat = os.stat
        for name, record in records.items():
            filename = record.filename
            try:
                st = stat(filename, dir_fd=fd)
            except FileNotFoundError:
                made[name] = RecordDetails(depends=(), channel="", dists=())
                continue
            hit = cached.get(filename)
            if (
                type(hit) is list
                and len(hit) == 5
                and hit[0] == st.st_mtime_ns
                and hit[1] == st.st_size
            ):
                made[name] = hit
                table[filename] = hit
                reused += 1
                continue
            found = _read_details(f"{meta}{os.sep}{filename}")
            made[name] = found
            table[filename] = [
                st.st_mtime_ns, st.st_size, list(found.depends), found.channel, list(found.dists)
            ]  # fmt: skip
    finally:
        os.close(fd)
    cache.set_conda_records(meta, table, reused=reused)
    if max(here.st_mtime_ns, here.st_ctime_ns) < read_at - SLACK_NS:
        cache.note_listed(meta, stamp, records, details)
    return records, details


def _read_details(path: str) -> RecordDetails:
    try:
        with open(path, "rb") as f:
            body = json.load(f)
    except (OSError, ValueError):
        body = {}
    return _details_from_json(body if isinstance(body, dict) else {})
