"""The no-op fast path: is everything exactly as it was when the manifest was last met?

Every app start runs ``reconciler apply``; nearly always nothing changed since
the last run. Re-planning costs imports (YAML, packaging, ...) that dominate the
run. This module, which imports nothing heavy, remembers a **stamp** of every
input the planner read when it last found (or made) a manifest fully met:

* the reconciler version and the manifest's bytes;
* per environment: the names of ``conda-meta/*.json`` records and of the
  ``site-packages`` entries (a package install, removal or version change
  renames or adds one), ``conda-meta/pinned`` and ``frozen``, ``pyvenv.cfg``;
* the kernelspec files the manifest registers;
* the tool's own state files (baseline, owned, journal) by size and mtime.

If the stamp computed now equals the remembered one, the plan would be the same
empty plan: the CLI prints its one line without planning. Anything else (a
missing or unreadable cache, another manifest, any change) falls back to the
full planner, which is the authority. The cache is derived data.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["CACHE", "Inputs", "matches", "remember"]

CACHE = os.path.join("cache", "noop.json")
FORMAT = 1


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
        for part in parts:
            h.update(part if isinstance(part, bytes) else part.encode())
            h.update(b"\0")

    add(version, manifest, *sorted(selection))
    for prefix in inputs.prefixes:
        add("prefix", prefix, *_listing(os.path.join(prefix, "conda-meta")))
        for name in ("conda-meta/pinned", "conda-meta/frozen", "pyvenv.cfg"):
            add(_content(os.path.join(prefix, name)))
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
) -> int | None:
    """The number of environments, when the manifest is known to be met by them exactly
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
    count: int = entry["count"]
    return count


def remember(
    state_dir: str,
    version: str,
    manifest: bytes,
    selection: Sequence[str],
    inputs: Inputs,
    count: int,
) -> None:
    """Record that the manifest is met now; best effort, and only if it changed."""
    from reconciler.state.store import write_json_atomic

    entries = _load(state_dir)
    key = _key(manifest, selection)
    entry = {
        "stamp": stamp(version, manifest, selection, inputs),
        "inputs": inputs.to_json(),
        "count": count,
    }
    if entries.get(key) == entry:
        return
    entries[key] = entry
    # Keep the file small: the most recent manifests only.
    kept = dict(list(entries.items())[-8:])
    try:
        from pathlib import Path

        write_json_atomic(Path(state_dir) / CACHE, {"format": FORMAT, "entries": kept})
    except OSError:
        return
