"""A read cache for installed state, so the no-op path costs milliseconds.

Everything here is derived data, keyed so that a change on disk invalidates it:

* conda record details (``depends``, ``channel``, shipped dist-infos) by the
  record file's (mtime_ns, size): the JSON bodies can be megabytes;
* Python distributions by the dist-info directory's (mtime_ns), in one table per
  site-packages directory: installers create a new directory per install, so its
  METADATA never changes in place;
* conda MatchSpec results by (spec, name-version-build): a pure function,
  remembered so the no-op path need not import py-rattler (~50 ms).

It is stored as one JSON file under the state dir; a damaged file is rebuilt.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["DistEntry", "ReadCache"]


#: One cached distribution: the dist-info directory's mtime_ns, then what
#: :class:`reconciler.state.python.Distribution` holds besides the directory name.
DistEntry = list[Any]  # [mtime_ns, name, display_name, version, [requires], installer, editable]


class ReadCache:
    """In-memory view of the cache file; ``changed`` says whether to save it.

    Distributions are kept per site-packages directory (``dists[directory][entry]``):
    a directory's table is replaced as a whole after each listing, which forgets the
    packages that were removed, and the file holds no repeated directory paths.
    """

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        data = data or {}
        self.records: dict[str, Any] = dict(_mapping(data.get("records")))
        self.dists: dict[str, dict[str, DistEntry]] = {
            k: v for k, v in _mapping(data.get("dists")).items() if isinstance(v, dict)
        }
        self.matches: dict[str, bool] = {
            k: v for k, v in _mapping(data.get("matches")).items() if isinstance(v, bool)
        }
        self.changed = False
        self._seen_records: set[str] = set()
        self._records_by_dir: dict[str, set[str]] | None = None

    def get_record(self, key: str, stamp: list[int]) -> Any:
        """The cached value for ``key`` if its stamp matches, else None."""
        self._seen_records.add(key)
        hit = self.records.get(key)
        if isinstance(hit, list) and len(hit) == 2 and hit[0] == stamp:
            return hit[1]
        return None

    def put_record(self, key: str, stamp: list[int], value: Any) -> None:
        """Remember ``value`` for ``key`` at ``stamp``."""
        self.records[key] = [stamp, value]
        self.changed = True

    def site_dists(self, directory: str) -> Mapping[str, DistEntry]:
        """The cached distributions of a site-packages directory, by entry name (the
        caller checks each entry's stamp)."""
        return self.dists.get(directory, {})

    def set_site_dists(self, directory: str, table: dict[str, DistEntry], *, reused: int) -> None:
        """Replace the directory's table with the entries its listing has now; ``reused``
        of them came unchanged from :meth:`site_dists`, so an equal table is no change."""
        old = self.dists.get(directory)
        if old is None and not table:
            return
        if old is None or reused != len(table) or reused != len(old):
            self.changed = True
        self.dists[directory] = table

    def match(self, key: str) -> bool | None:
        """A remembered MatchSpec result."""
        return self.matches.get(key)

    def put_match(self, key: str, value: bool) -> None:
        """Remember a MatchSpec result."""
        self.matches[key] = value
        self.changed = True

    def prune(self, directory: str) -> None:
        """Forget the conda records of ``directory`` (a conda-meta directory that was just
        listed) that this run did not see: packages that were removed. (Site-packages
        tables are replaced whole by :meth:`set_site_dists`.)"""
        if self._records_by_dir is None:
            # Indexed once per run: pruning many environments stays linear.
            self._records_by_dir = {}
            for key in self.records:
                self._records_by_dir.setdefault(key.rpartition(os.sep)[0], set()).add(key)
        for key in self._records_by_dir.pop(directory.rstrip(os.sep), set()):
            if key not in self._seen_records:
                self.records.pop(key, None)
                self.changed = True

    def to_json(self) -> dict[str, Any]:
        """The cache as a JSON-ready mapping."""
        return {"records": self.records, "dists": self.dists, "matches": self.matches}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
