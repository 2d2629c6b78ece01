"""The row heads of installed RECORD files, kept by each file's identity.

Verification after an install asks, of every managed and foreign distribution,
whether its RECORD may list a path an installed wheel wrote (only those are
parsed; see :mod:`reconciler.apply.verify`). A row's *head* is how it starts: the
path's first directory with its slash (``pkg/``), or, for a file at the top or
outside site-packages, the whole path and the comma (``six.py,``,
``../../../bin/tool,``). A RECORD may list a written path only if one of its rows
has that path's head, so the set of a RECORD's heads answers the question for any
wheel. An image's RECORDs are tens of megabytes and hardly change: their heads are
kept in the state dir's cache (``record-heads.json``), and a RECORD is read again
when its size, mtime or ctime is not the one kept. The ctime is what no tool can
set back (``cp -p``, ``rsync -t`` and ``os.utime`` restore an mtime, and set the
ctime to now): other bytes of the same size under a restored mtime are read again.
Not the device or inode, which a restarted Studio app's new mount of the same image
files may change. A host that unpacked the image anew gives them new ctimes, and
that app's first apply reads every RECORD again; when one has the size and mtime
kept, and its bytes the CRC-32 kept, its heads are the ones kept (the checksum costs
a fifth of finding the heads: 8 against 38 ms for the bench image's 21 MB; SHA-256
costs 15 ms with the CPU's SHA instructions and 58 ms without). It guards against
accidents, as the ctime does, not against someone who writes RECORDs: they could
change the files they list as well.

A set is kept only when the file's mtime and ctime were older than the read by
:data:`SLACK_NS`: a write made since would have given it a newer ctime (the
kernel's file clock lags the wall clock by less than a tick), so the bytes read are
the bytes there while the stamp holds. A RECORD whose rows the line-start reading
cannot split with certainty (quoted rows; line breaks other than ``\\n`` and
``\\r\\n``, which ``str.splitlines`` also breaks at) has no set: it may list
anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any, TypeGuard

__all__ = ["RecordHeads", "heads_of", "row_heads", "simple_head"]

#: How much older than the read a RECORD's mtime and ctime must be to be kept.
SLACK_NS = 50_000_000

#: Bytes after which ``str.splitlines`` (which RECORD parsing uses) starts a row,
#: besides ``\n``; a double quote means quoted (csv) rows. The non-ASCII ones are
#: looked for only in a RECORD that is not all ASCII (a search for them is slow).
_UNSURE = (b'"', b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")
_UNSURE_NON_ASCII = tuple(c.encode() for c in "\x85\u2028\u2029")

#: A run of rows under one head, from where it is matched: the first row's head
#: (``../``-paths to their comma, any other path to its first slash or comma), then
#: every following row that starts with the same bytes (which is then its head too).
#: A row without a slash or a comma has no head.
_RUN = re.compile(rb"(\.\./[^,\n]*,|(?!\.\./)[^/,\n]*[/,])[^\n]*(?:\n\1[^\n]*)*")

#: Entries kept in the cache file at most (an image has about a thousand).
LIMIT = 100_000
FORMAT = 4  # entries: [size, mtime_ns, ctime_ns, heads or None, CRC-32 of the bytes]


def row_heads(paths: Iterable[str]) -> frozenset[bytes]:
    """The heads of the rows that would list ``paths`` (RECORD paths, relative to
    site-packages)."""
    heads = set()
    for path in paths:
        first, slash, _ = path.partition("/")
        heads.add(f"{first}/" if slash and first != ".." else f"{path},")
    return frozenset(h.encode() for h in heads)


def simple_head(head: bytes) -> bool:
    """Whether a row starts with ``head`` exactly when its own head is ``head``: true of
    every head :func:`row_heads` makes unless its path has a comma or a line break where
    a row's head could not end (then the RECORD must be parsed)."""
    if b"\n" in head:
        return False
    if head.startswith(b"../"):
        return head.endswith(b",") and b"," not in head[:-1]
    return b"/" not in head[:-1] and b"," not in head[:-1]


def heads_of(data: bytes) -> frozenset[bytes] | None:
    """The heads of the rows of RECORD bytes ``data``; None when its rows cannot be
    split at ``\\n`` with certainty (see the module docstring).

    Rows under one head usually come together: each such run is one C-level match
    (:data:`_RUN`), so a RECORD costs about one pass over its bytes, not a Python step
    per row, in any order of its rows.
    """
    if any(c in data for c in _UNSURE):
        return None
    if not data.isascii() and any(c in data for c in _UNSURE_NON_ASCII):
        return None
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None
    found: set[bytes] = set()
    pos = 0
    while True:
        run = _RUN.match(data, pos)
        if run is not None:
            found.add(run.group(1))
            pos = run.end()  # the end of the run's last row
        newline = data.find(b"\n", pos)
        if newline < 0:
            return frozenset(found)
        pos = newline + 1


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class RecordHeads:
    """:func:`heads_of` of installed RECORDs, kept in ``path`` (None: in memory only).

    Thread-safe: the environments of an apply verify at once, and a read-ahead warms
    the sets while the installer runs. The file is read at the first question and
    written by :meth:`save`; for each site-packages directory asked about, only the
    RECORDs asked about are kept (the others were removed or are not protected).
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._loaded: dict[str, dict[str, list[Any]]] | None = None
        self._asked: dict[str, dict[str, list[Any]]] = {}
        self._changed = False
        #: RECORD path -> (stamp, heads) answered in this process: the read-ahead's
        #: answers, for verification's second question of the same file.
        self._answered: dict[str, tuple[list[int], frozenset[bytes] | None]] = {}
        #: How many RECORDs were read (not answered from the cache): for the tests.
        self.reads = 0

    def of(self, site: str, directory: str) -> frozenset[bytes] | None:
        """The heads of ``<site>/<directory>/RECORD``; None when it may list anything.
        An unreadable RECORD has none (nothing in it can be parsed either)."""
        record = f"{site}{os.sep}{directory}{os.sep}RECORD"
        try:
            now = _stamp(os.stat(record))
        except OSError:
            return frozenset()
        answered = self._answered.get(record)
        if answered is not None and answered[0] == now:
            return answered[1]
        known = None  # an entry of the same size and mtime: the bytes may be the same
        with self._lock:
            table = self._asked.setdefault(site, {})
            entry = table.get(directory) or self._tables().get(site, {}).get(directory)
            if _valid(entry) and entry[:3] == now:
                try:
                    heads = _decode(entry[3])
                except UnicodeEncodeError:  # not what save wrote: read the file again
                    pass
                else:
                    table[directory] = entry
                    self._answered[record] = (now, heads)
                    return heads
            elif _valid(entry) and entry[:2] == now[:2]:
                known = entry
        newest = time.time_ns() - SLACK_NS
        try:
            with open(record, "rb", buffering=0) as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except OSError:
            return frozenset()
        import zlib  # when a RECORD is read, not at each apply's import

        digest = f"{zlib.crc32(data):08x}"
        reused = False
        if known is not None and known[4] == digest:
            with contextlib.suppress(UnicodeEncodeError):  # not what save wrote: found below
                heads, reused = _decode(known[3]), True
        if not reused:
            heads = heads_of(data)
        with self._lock:
            self.reads += 1
            if st.st_mtime_ns < newest and st.st_ctime_ns < newest:
                encoded = None if heads is None else sorted(h.decode("latin-1") for h in heads)
                self._asked.setdefault(site, {})[directory] = [*_stamp(st), encoded, digest]
                self._answered[record] = (_stamp(st), heads)
                self._changed = True
        return heads

    def warm(self, site: str, directories: Collection[str]) -> None:
        """Ask about each of ``directories`` now (a read-ahead while the installer runs)."""
        for directory in directories:
            self.of(site, directory)

    def save(self) -> None:
        """Write the file when a set was read or one was dropped; best effort (derived)."""
        with self._lock:
            if self._path is None:
                return
            loaded = self._tables()
            dropped = any(len(self._asked[s]) < len(loaded.get(s, {})) for s in self._asked)
            if not (self._changed or dropped):
                return
            # Copies: a read-ahead of a failed install's environment may still be adding.
            tables = {site: dict(table) for site, table in {**loaded, **self._asked}.items()}
            if sum(len(t) for t in tables.values()) > LIMIT:
                tables = {site: tables[site] for site in self._asked}
        from reconciler.state.store import write_json_atomic

        try:
            write_json_atomic(self._path, {"format": FORMAT, "sites": tables}, derived=True)
        except OSError:
            return

    def _tables(self) -> dict[str, dict[str, list[Any]]]:
        if self._loaded is None:
            self._loaded = _load(self._path)
        return self._loaded


def _load(path: Path | None) -> dict[str, dict[str, list[Any]]]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    sites = data.get("sites")
    if not isinstance(sites, dict):
        return {}
    return {s: t for s, t in sites.items() if isinstance(t, dict)}


def _valid(entry: object) -> TypeGuard[list[Any]]:
    return (
        isinstance(entry, list)
        and len(entry) == 5
        and all(isinstance(n, int) for n in entry[:3])
        and isinstance(entry[4], str)
        and (
            entry[3] is None
            or (isinstance(entry[3], list) and all(isinstance(h, str) for h in entry[3]))
        )
    )


def _decode(heads: list[str] | None) -> frozenset[bytes] | None:
    return None if heads is None else frozenset(h.encode("latin-1") for h in heads)
