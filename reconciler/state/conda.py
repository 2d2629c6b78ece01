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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.state.cache import ReadCache
from reconciler.values import value

__all__ = [
    "CondaRecord",
    "RecordDetails",
    "read_conda_meta",
    "read_pinned",
    "record_details",
]

# The dist-info/egg-info a conda package ships, as listed in its record's `files`.
_DIST_RECORD = re.compile(
    r"(?:^|/)site-packages/([^/]+\.(?:dist-info|egg-info))(?:/(?:RECORD|PKG-INFO))?$"
)


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
    meta = prefix / "conda-meta"
    try:
        names = os.listdir(meta)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    records: dict[str, CondaRecord] = {}
    for filename in names:
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
    for path in body.get("files") or ():
        match = _DIST_RECORD.search(str(path))
        if match and match.group(1) not in dists:
            dists.append(match.group(1))
    return RecordDetails(
        depends=tuple(str(d) for d in body.get("depends") or ()),
        channel=str(body.get("channel") or ""),
        dists=tuple(dists),
    )


def record_details(prefix: Path, record: CondaRecord, cache: ReadCache) -> RecordDetails:
    """Details of ``record``, parsing its JSON body only when the cache is stale."""
    path = f"{prefix}{os.sep}conda-meta{os.sep}{record.filename}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return RecordDetails(depends=(), channel="", dists=())
    stamp = [st.st_mtime_ns, st.st_size]
    hit = cache.get_record(path, stamp)
    if isinstance(hit, list) and len(hit) == 3:
        return RecordDetails(depends=tuple(hit[0]), channel=str(hit[1]), dists=tuple(hit[2]))
    try:
        with open(path, "rb") as f:
            body = json.load(f)
    except (OSError, ValueError):
        body = {}
    details = _details_from_json(body if isinstance(body, dict) else {})
    cache.put_record(path, stamp, [list(details.depends), details.channel, list(details.dists)])
    return details
