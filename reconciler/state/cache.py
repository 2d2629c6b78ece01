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

    def prune(self, prefix: str) -> None:
        """Forget entries under ``prefix`` that this run did not see (removed packages)."""
        head = prefix.rstrip("/") + "/"
        for table, seen in ((self.records, self._seen_records), (self.dists, self._seen_dists)):
            stale = [k for k in table if k.startswith(head) and k not in seen]
            for key in stale:
                del table[key]
                self.changed = True

    def to_json(self) -> dict[str, Any]:
        """The cache as a JSON-ready mapping."""
        return {"records": self.records, "dists": self.dists, "matches": self.matches}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
