"""A read cache for installed state, so the no-op path costs milliseconds.

Everything here is derived data, keyed so that a change on disk invalidates it:

* conda record details (``depends``, ``channel``, shipped dist-infos) by the
  record file's (mtime_ns, size), in one table per ``conda-meta`` directory: the
  JSON bodies can be megabytes;
* Python distributions by the dist-info directory's (mtime_ns), in one table per
  site-packages directory: installers create a new directory per install, so its
  METADATA never changes in place;
* conda MatchSpec results by (spec, name-version-build): a pure function,
  remembered so the no-op path need not import py-rattler (~50 ms);
* PEP 508 requirement parses, specifier and marker results
  (:mod:`reconciler.plan.requirements`), pure functions of their text, kept under
  the ``packaging`` version that made them: a warm plan parses nothing and imports
  neither packaging's parser nor its markers (~25 ms, and ~20 ms of parsing on a
  real stack).

It is stored as one JSON file under the state dir, a section to a line
(:meth:`ReadCache.encode`): a save encodes again only the sections that changed and
writes the others' lines as it read them (the image's conda records are half of its
~420 KB, and a plan that parsed one new requirement changed only the requirement
tables). A damaged file is rebuilt.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["SECTIONS", "ReadCache", "RequirementTables"]  # (and, to the type checker, the entries)

#: The sections of the cache file, in the order :meth:`ReadCache.encode` writes them.
SECTIONS = ("records", "dists", "matches", "requirements")

TYPE_CHECKING = False  # typing is not imported at run time (a plan reads the cache first)
if TYPE_CHECKING:
    from typing import Any

    #: One cached conda record: the record file's mtime_ns and size, then what
    #: :class:`reconciler.state.conda.RecordDetails` holds.
    CondaEntry = list[Any]  # [mtime_ns, size, [depends], channel, [dists]]

    #: One cached distribution: the dist-info directory's mtime_ns, then what
    #: :class:`reconciler.state.python.Distribution` holds besides the directory name:
    #: [mtime_ns, name, display_name, version, [requires], installer, editable].
    DistEntry = list[Any]


class ReadCache:
    """In-memory view of the cache file; ``changed`` says whether to save it.

    Conda records and distributions are kept per directory (``records[conda-meta
    directory][file name]``, ``dists[site-packages directory][entry]``): a directory's
    table is replaced as a whole after each listing, which forgets the packages that were
    removed, and the file holds no repeated directory paths.
    """

    def __init__(self, data: Mapping[str, Any] | None = None, *, text: bytes = b"") -> None:
        """``data``: the cache file's JSON; ``text``: its bytes (a section taken whole from
        them is saved again as those bytes while it does not change)."""
        data = data or {}
        records = _mapping(data.get("records"))
        self.records: dict[str, dict[str, CondaEntry]] = {
            k: v for k, v in records.items() if isinstance(v, dict)
        }
        converted = _earlier_records(records)
        for directory, table in converted.items():
            self.records.setdefault(directory, table)
        dists = _mapping(data.get("dists"))
        self.dists: dict[str, dict[str, DistEntry]] = {
            k: v for k, v in dists.items() if isinstance(v, dict)
        }
        matches = _mapping(data.get("matches"))
        self.matches: dict[str, bool] = {k: v for k, v in matches.items() if isinstance(v, bool)}
        self.requirements = RequirementTables(_mapping(data.get("requirements")))
        whole = {  # the sections taken as the file has them (nothing dropped or converted)
            "records": not converted and _whole(data.get("records"), self.records),
            "dists": _whole(data.get("dists"), self.dists),
            "matches": _whole(data.get("matches"), self.matches),
            "requirements": self.requirements.whole,
        }
        #: section -> its line in ``text``, for the sections taken whole.
        self._lines = {k: v for k, v in _lines(text).items() if whole[k]}
        #: The sections changed since the cache was read.
        self._dirty: set[str] = {"records"} if converted else set()  # saved in this layout
        #: ``conda-meta`` directory -> (its inode, mtime and ctime, and what was read of
        #: it then): this process's reads, not saved (see ``read_conda_records(again=)``).
        self._listed: dict[str, tuple[tuple[int, int, int], Any, Any]] = {}

    @property
    def changed(self) -> bool:
        """Whether anything was added or replaced since the cache was read."""
        return bool(self._dirty) or self.requirements.changed

    def conda_records(self, directory: str) -> Mapping[str, CondaEntry]:
        """The cached records of a ``conda-meta`` directory, by file name (the caller
        checks each entry's stamp)."""
        return self.records.get(directory, {})

    def set_conda_records(
        self, directory: str, table: dict[str, CondaEntry], *, reused: int
    ) -> None:
        """Replace the directory's table with the records its listing has now; ``reused``
        of them came unchanged from :meth:`conda_records`."""
        if _replace(self.records, directory, table, reused):
            self._dirty.add("records")

    def listed(self, directory: str) -> tuple[tuple[int, int, int], Any, Any] | None:
        """This process's last read of a ``conda-meta`` directory (:meth:`note_listed`)."""
        return self._listed.get(directory)

    def note_listed(
        self, directory: str, stamp: tuple[int, int, int], records: Any, details: Any
    ) -> None:
        """Remember a read of a ``conda-meta`` directory whose stamp was ``stamp``."""
        self._listed[directory] = (stamp, records, details)

    def site_dists(self, directory: str) -> Mapping[str, DistEntry]:
        """The cached distributions of a site-packages directory, by entry name (the
        caller checks each entry's stamp)."""
        return self.dists.get(directory, {})

    def set_site_dists(self, directory: str, table: dict[str, DistEntry], *, reused: int) -> None:
        """Replace the directory's table with the entries its listing has now; ``reused``
        of them came unchanged from :meth:`site_dists`, so an equal table is no change."""
        if _replace(self.dists, directory, table, reused):
            self._dirty.add("dists")

    def match(self, key: str) -> bool | None:
        """A remembered MatchSpec result."""
        return self.matches.get(key)

    def put_match(self, key: str, value: bool) -> None:
        """Remember a MatchSpec result."""
        self.matches[key] = value
        self._dirty.add("matches")

    def to_json(self) -> dict[str, Any]:
        """The cache as a JSON-ready mapping."""
        return {
            "records": self.records,
            "dists": self.dists,
            "matches": self.matches,
            "requirements": self.requirements.to_json(),
        }

    def encode(self, header: str) -> bytes:
        """The cache file: ``{`` and ``header`` (its leading members, ``"format":1``) on
        the first line, then a line per section (``,"records":{...}``), then ``}``. A
        section unchanged since it was read is its line as read (compact JSON holds no
        line break: each line is one section's member)."""
        import json  # (imported by the state store that calls this)

        lines = [b"{" + header.encode("utf-8")]
        changed = self._dirty | ({"requirements"} if self.requirements.changed else set())
        sections = self.to_json()
        for name in SECTIONS:
            line = None if name in changed else self._lines.get(name)
            if line is None:
                body = json.dumps(sections[name], separators=(",", ":"), check_circular=False)
                line = f',"{name}":{body}'.encode()
            lines.append(line)
        lines.append(b"}\n")
        return b"\n".join(lines)


class RequirementTables:
    """The requirement answers of :mod:`reconciler.plan.requirements`, by exact input:

    * ``parsed``: requirement text -> ``[name, [extras], specifier, marker, url,
      clauses as written]`` (``packaging``'s own renderings; marker and url may be
      None), or None for a text packaging cannot parse;
    * ``contains``: ``specifier NUL version`` -> whether the version is in it
      (pre-releases allowed);
    * ``markers``: ``environment key NUL marker NUL extra`` -> whether it holds.

    Entries are only ever added (the answers cannot change); the tables are dropped
    whole when they were made by another ``packaging`` version or another
    :data:`FORMAT` (the way reconciler asks: pre-releases allowed, the target's
    Python version in the marker environment; bumped when that changes), and when
    they grow past :data:`LIMIT` entries (started afresh, not pruned). Like the rest
    of the state dir (owner-only files), the cache is trusted input.
    """

    FORMAT = 2
    LIMIT = 200_000

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        import packaging  # the package's __init__ only: its version, nothing else

        self.version = f"{packaging.__version__} (format {self.FORMAT})"
        data = data if data and data.get("packaging") == self.version else {}
        #: Checked where read (:func:`reconciler.plan.requirements.parse`): a damaged
        #: row is parsed again, without a pass over every row at each load.
        self.parsed: dict[str, Any] = dict(_mapping(data.get("parsed")))
        self.contains: dict[str, bool] = _booleans(data.get("contains"))
        self.markers: dict[str, bool] = _booleans(data.get("markers"))
        self.changed = False
        #: Whether the tables are the data's, nothing dropped (its lines may be kept).
        self.whole = all(
            _whole(data.get(name), kept)
            for name, kept in (
                ("parsed", self.parsed), ("contains", self.contains), ("markers", self.markers)
            )
        )  # fmt: skip

    def size(self) -> int:
        """How many answers the tables hold."""
        return len(self.parsed) + len(self.contains) + len(self.markers)

    def added(self) -> None:
        """Note an added answer (the tables start afresh past :data:`LIMIT`)."""
        self.changed = True
        if self.size() > self.LIMIT:
            self.parsed, self.contains, self.markers = {}, {}, {}

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {  # copies: a thread of a long-lived process (a kernel) may be adding
            "packaging": self.version,
            "parsed": dict(self.parsed),
            "contains": dict(self.contains),
            "markers": dict(self.markers),
        }


def _booleans(value: Any) -> dict[str, bool]:
    return {k: v for k, v in _mapping(value).items() if isinstance(v, bool)}


def _replace(tables: dict[str, Any], directory: str, table: dict[str, Any], reused: int) -> bool:
    """Put ``table`` in ``tables`` for ``directory``; whether that changed anything."""
    old = tables.get(directory)
    if old is None and not table:
        return False
    tables[directory] = table
    return old is None or reused != len(table) or reused != len(old)


def _earlier_records(records: Mapping[str, Any]) -> dict[str, dict[str, CondaEntry]]:
    """The entries of the earlier layout (``{record path: [[mtime_ns, size], [depends,
    channel, dists]]}``) as per-directory tables: an upgrade does not parse every record
    again (their stamps are checked as any entry's)."""
    out: dict[str, dict[str, CondaEntry]] = {}
    for path, value in records.items():
        if not (isinstance(value, list) and len(value) == 2):
            continue
        stamp, details = value
        shapes = [len(v) if isinstance(v, list) else 0 for v in (stamp, details)]
        if shapes == [2, 3]:
            directory, _, filename = path.rpartition(os.sep)
            out.setdefault(directory, {})[filename] = [*stamp, *details]
    return out


def _lines(text: bytes) -> dict[str, bytes]:
    """Section -> its line, when ``text`` (valid JSON) is laid out as
    :meth:`ReadCache.encode` writes it: nothing otherwise (an earlier file is encoded
    whole at its first save)."""
    lines = text.split(b"\n")
    if len(lines) != len(SECTIONS) + 3 or lines[-2:] != [b"}", b""]:
        return {}
    out = {}
    for name, line in zip(SECTIONS, lines[1:-2], strict=True):
        if not line.startswith(f',"{name}":'.encode()):
            return {}
        out[name] = line
    return out


def _whole(value: Any, kept: Mapping[str, Any]) -> bool:
    """Whether ``kept`` is all of ``value``, a mapping: nothing of it was dropped."""
    return isinstance(value, dict) and len(value) == len(kept)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
