"""A read cache for installed state, so the no-op path costs milliseconds.

Everything here is derived data, keyed so that a change on disk invalidates it:

* conda record details (``depends``, ``channel``, shipped dist-infos) by the
  record file's (mtime_ns, size): the JSON bodies can be megabytes;
* Python distributions by the dist-info directory's (mtime_ns): installers
  create a new directory per install, so its METADATA never changes in place;
* conda MatchSpec results by (spec, name-version-build): a pure function,
  remembered so the no-op path need not import py-rattler (~50 ms).

It is stored as one JSON file under the state dir; a damaged file is rebuilt.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["ReadCache"]


class ReadCache:
    """In-memory view of the cache file; ``changed`` says whether to save it."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        data = data or {}
        self.records: dict[str, Any] = dict(_mapping(data.get("records")))
        self.dists: dict[str, Any] = dict(_mapping(data.get("dists")))
        self.matches: dict[str, bool] = {
            k: v for k, v in _mapping(data.get("matches")).items() if isinstance(v, bool)
        }
        self.changed = False
        self._seen_records: set[str] = set()
        self._seen_dists: set[str] = set()
        self._by_dir: dict[str, set[str]] | None = None

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

    def get_dist(self, key: str, stamp: list[int]) -> Any:
        """The cached distribution for ``key`` if its stamp matches, else None."""
        self._seen_dists.add(key)
        hit = self.dists.get(key)
        if isinstance(hit, list) and len(hit) == 2 and hit[0] == stamp:
            return hit[1]
        return None

    def put_dist(self, key: str, stamp: list[int], value: Any) -> None:
        """Remember a distribution for ``key`` at ``stamp``."""
        self.dists[key] = [stamp, value]
        self.changed = True

    def match(self, key: str) -> bool | None:
        """A remembered MatchSpec result."""
        return self.matches.get(key)

    def put_match(self, key: str, value: bool) -> None:
        """Remember a MatchSpec result."""
        self.matches[key] = value
        self.changed = True

    def prune(self, directory: str) -> None:
        """Forget the entries of ``directory`` (a conda-meta or site-packages directory that
        was just listed) that this run did not see: packages that were removed."""
        if self._by_dir is None:
            # Indexed once per run: pruning 50 environments of 1,000 packages stays linear.
            self._by_dir = {}
            for table in (self.records, self.dists):
                for key in table:
                    self._by_dir.setdefault(os.path.dirname(key), set()).add(key)
        for key in self._by_dir.pop(directory.rstrip("/"), set()):
            if key not in self._seen_records and key not in self._seen_dists:
                self.records.pop(key, None)
                self.dists.pop(key, None)
                self.changed = True

    def to_json(self) -> dict[str, Any]:
        """The cache as a JSON-ready mapping."""
        return {"records": self.records, "dists": self.dists, "matches": self.matches}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
