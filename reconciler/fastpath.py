"""The no-op fast path: is everything exactly as it was when the manifest was last met?

Every app start runs ``reconciler apply``; nearly always nothing changed since
the last run. Re-planning costs imports (YAML, packaging, ...) that dominate the
run. This module, which imports nothing heavy, remembers a **stamp** of every
input the planner read when it last found (or made) a manifest fully met:

* the reconciler version and the manifest's bytes;
* per environment: the names of ``conda-meta/*.json`` records and of the
  ``site-packages`` entries (a package install, removal or version change
  renames or adds one), ``conda-meta/pinned`` and ``frozen``, ``pyvenv.cfg``,
  and the size and mtime of ``conda-meta/history`` (the image's identity);
* the kernelspec files the manifest registers;
* the tool's own state files (baseline, owned, journal) by size and mtime.

If the stamp computed now equals the remembered one, the plan would be the same
empty plan: ``apply`` prints its one line and ``plan`` what the full path printed
for the same options, without planning. Anything else (a
missing or unreadable cache, another manifest, any change) falls back to the
full planner, which is the authority. The cache is derived data.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence

# typing is not imported at run time: it costs more than the whole no-op answer.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["CACHE", "Hit", "Inputs", "matches", "remember"]

CACHE = os.path.join("cache", "noop.json")
FORMAT = 2
#: Entries kept: an apply and a few plan renderings of a few manifests.
KEPT = 16


class Inputs:
    """What a stamp covers: paths recorded by the last full run for one manifest."""

    def __init__(
        self,
        prefixes: Sequence[str],
        site_dirs: Sequence[str],
        files: Sequence[str],
        state_files: Sequence[str],
    ) -> None:
        self.prefixes = list(prefixes)
        self.site_dirs = list(site_dirs)
        self.files = list(files)  # read whole (kernelspecs)
        self.state_files = list(state_files)  # size + mtime

    def to_json(self) -> dict[str, list[str]]:
        """JSON-ready form."""
        return {
            "prefixes": self.prefixes,
            "site_dirs": self.site_dirs,
            "files": self.files,
            "state_files": self.state_files,
        }


class Hit:
    """A remembered no-op that still holds: its environment count and, for ``plan``,
    the exact output the full path printed."""

    def __init__(self, count: int, output: str | None) -> None:
        self.count = count
        self.output = output


def _listing(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return ["<missing>"]


def _content(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b"<missing>"


def _meta(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "<missing>"
    return f"{st.st_size}:{st.st_mtime_ns}"


def stamp(version: str, manifest: bytes, selection: Iterable[str], inputs: Inputs) -> str:
    """The hash of everything the no-op decision depends on."""
    h = hashlib.sha256()

    def add(*parts: str | bytes) -> None:
        # One update per call (50 site-packages of 1,000 entries): the same digest as
        # one update per part and separator.
        h.update(
            b"".join((part if isinstance(part, bytes) else part.encode()) + b"\0" for part in parts)
        )

    add(version, manifest, *sorted(selection))
    for prefix in inputs.prefixes:
        add("prefix", prefix, *_listing(os.path.join(prefix, "conda-meta")))
        for name in ("conda-meta/pinned", "conda-meta/frozen", "pyvenv.cfg"):
            add(_content(os.path.join(prefix, name)))
        add(_meta(os.path.join(prefix, "conda-meta", "history")))
    for site in inputs.site_dirs:
        add("site", site, *_listing(site))
    for path in inputs.files:
        add("file", path, _content(path))
    for path in inputs.state_files:
        add("state", path, _meta(path))
    return h.hexdigest()


def _key(manifest: bytes, selection: Iterable[str]) -> str:
    digest = hashlib.sha256(manifest).hexdigest()
    return f"{digest}:{','.join(sorted(selection))}"


def _load(state_dir: str) -> dict[str, Any]:
    try:
        with open(os.path.join(state_dir, CACHE), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def matches(
    state_dir: str, version: str, manifest_path: str, selection: Sequence[str]
) -> Hit | None:
    """A :class:`Hit` when the manifest is known to be met by the environments exactly
    as they are now; None when the full planner must decide."""
    try:
        with open(manifest_path, "rb") as f:
            manifest = f.read(1_048_577)
    except OSError:
        return None
    entry = _load(state_dir).get(_key(manifest, selection))
    if not isinstance(entry, dict) or not isinstance(entry.get("count"), int):
        return None
    try:
        inputs = Inputs(**entry["inputs"])
    except (KeyError, TypeError):
        return None
    if entry.get("stamp") != stamp(version, manifest, selection, inputs):
        return None
    output = entry.get("output")
    return Hit(entry["count"], output if isinstance(output, str) else None)


def _modified_since(inputs: Inputs, since_ns: int) -> bool:
    """True when anything the stamp covers was modified at or after ``since_ns``."""
    paths = [*inputs.site_dirs, *inputs.files, *inputs.state_files]
    for prefix in inputs.prefixes:
        paths.append(os.path.join(prefix, "conda-meta"))
        paths += [
            os.path.join(prefix, name)
            for name in ("conda-meta/pinned", "conda-meta/frozen", "conda-meta/history")
        ]
        paths.append(os.path.join(prefix, "pyvenv.cfg"))
    for path in paths:
        try:
            if os.stat(path).st_mtime_ns >= since_ns:
                return True
        except OSError:
            continue
    return False


def remember(
    state_dir: str,
    version: str,
    manifest: bytes,
    selection: Sequence[str],
    inputs: Inputs,
    count: int,
    *,
    output: str | None = None,
    unchanged_since_ns: int | None = None,
) -> None:
    """Record that the manifest is met now; best effort, and only if it changed.

    ``output``: what a no-op ``plan`` printed, replayed by the next one.
    ``unchanged_since_ns``: when the run that found the manifest met started; if
    anything the stamp covers was modified since, nothing is recorded (the run may
    have read the environment before that change).
    """
    from reconciler.state.store import write_json_atomic

    if unchanged_since_ns is not None and _modified_since(inputs, unchanged_since_ns):
        return
    entries = _load(state_dir)
    key = _key(manifest, selection)
    entry: dict[str, Any] = {
        "stamp": stamp(version, manifest, selection, inputs),
        "inputs": inputs.to_json(),
        "count": count,
    }
    if output is not None:
        entry["output"] = output
    if entries.get(key) == entry:
        return
    entries.pop(key, None)  # re-inserted last: the most recently remembered
    entries[key] = entry
    # Keep the file small: the most recent entries only.
    kept = dict(list(entries.items())[-KEPT:])
    try:
        from pathlib import Path

        write_json_atomic(
            Path(state_dir) / CACHE, {"format": FORMAT, "entries": kept}, derived=True
        )
    except OSError:
        return
