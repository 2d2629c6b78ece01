"""The wheel tags a target interpreter accepts, best first, without importing it.

``packaging.tags`` computes tags for the running interpreter only. The target's
implementation, version, ABI flags and platform come from a one-time probe
(``python -I -c``, standard library only), cached in ``<cache_dir>/tags.json``
by the interpreter's real path, size and mtime; the running interpreter itself
(a venv's ``bin/python`` is usually a link to it) needs no process. On the same
platform the platform tags are packaging's own (manylinux levels included).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import sysconfig
from pathlib import Path
from typing import Any

from packaging.tags import Tag, compatible_tags, cpython_tags, generic_tags, platform_tags

from reconciler.backends.pip_args import SYSCONFIG_LOCK
from reconciler.backends.process import run
from reconciler.errors import BackendError

__all__ = [
    "cached_tags",
    "probe_key",
    "probe_uncached",
    "remember_probe",
    "tags_of_probe",
    "target_tags",
]

_PROBE = (
    "import json, sys, sysconfig; print(json.dumps({"
    "'impl': sys.implementation.name, 'version': list(sys.version_info[:2]), "
    "'soabi': sysconfig.get_config_var('SOABI') or '', "
    "'platform': sysconfig.get_platform(), "
    "'free_threaded': bool(sysconfig.get_config_var('Py_GIL_DISABLED')), "
    "'debug': hasattr(sys, 'gettotalrefcount')}))"
)


def target_tags(python: Path, cache_dir: Path | None = None) -> tuple[Tag, ...]:
    """The tags ``python`` accepts, best first, as its own ``packaging.tags.sys_tags``.

    The interpreter is probed once (a short ``python -c``, stdlib only) and the
    answer cached in ``<cache_dir>/tags.json`` by its real path, size and mtime.
    """
    return tags_of_probe(_probe(python, cache_dir))


def cached_tags(python: Path, cache_dir: Path) -> tuple[Tag, ...] | None:
    """:func:`target_tags` from ``<cache_dir>/tags.json`` alone: None when it does not
    hold ``python`` (no probe runs, nothing is written)."""
    try:
        hit = _cached(python, cache_dir)[2]
    except BackendError:
        return None
    return None if hit is None else tags_of_probe(hit)


def tags_of_probe(probe: dict[str, Any]) -> tuple[Tag, ...]:
    """The tags of a probe's answer (see :func:`probe_uncached`)."""
    major, minor = (int(v) for v in probe["version"])
    version = (major, minor)
    with SYSCONFIG_LOCK:  # packaging's platform tags read sysconfig
        here = probe["platform"] == sysconfig.get_platform()
        platforms = list(platform_tags()) if here else []  # manylinux levels included
    if not here:
        platforms = [str(probe["platform"]).replace("-", "_").replace(".", "_")]
    if probe["impl"] == "cpython":
        abi = f"cp{major}{minor}{'t' if probe['free_threaded'] else ''}"
        abi += "d" if probe["debug"] else ""
        tags = [*cpython_tags(version, [abi], platforms)]
        interpreter = f"cp{major}{minor}"
    else:
        short = {"pypy": "pp"}.get(str(probe["impl"]), str(probe["impl"]))
        interpreter = f"{short}{major}{minor}"
        soabi = str(probe["soabi"]).replace("-", "_").replace(".", "_")
        tags = [*generic_tags(interpreter, [soabi] if soabi else [], platforms)]
    tags += compatible_tags(version, interpreter, platforms)
    return tuple(dict.fromkeys(tags))


def _cached(
    python: Path, cache_dir: Path | None
) -> tuple[str, dict[str, dict[str, Any]], dict[str, Any] | None]:
    """(cache key of ``python``, the cache's entries, the entry for ``python`` or None)."""
    try:
        real = os.path.realpath(python)
        st = os.stat(real)
    except OSError as exc:
        raise BackendError(
            f"cannot read the interpreter {python}: {exc.strerror or exc}",
            hint="check that the environment's bin/python exists",
        ) from exc
    key = f"{real}:{st.st_size}:{st.st_mtime_ns}"
    cached: dict[str, dict[str, Any]] = {}
    if cache_dir is not None:
        cached = _entries(cache_dir)
        hit = cached.get(key)
        if isinstance(hit, dict) and {"impl", "version", "platform"} <= hit.keys():
            return key, cached, hit
    return key, cached, None


def _entries(cache_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        loaded = json.loads((cache_dir / "tags.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _probe(python: Path, cache_dir: Path | None) -> dict[str, Any]:
    key, cached, hit = _cached(python, cache_dir)
    if hit is not None:
        return hit
    probe = _run_probe(python, key)
    if cache_dir is not None:
        remember_probe(cache_dir, key, probe, cached)
    return probe


def probe_uncached(python: Path, cache_dir: Path) -> tuple[str, dict[str, Any]] | None:
    """``(cache key, probe)`` of ``python`` when ``<cache_dir>/tags.json`` does not
    hold it: the probe runs, nothing is written (:func:`remember_probe` writes it).
    None when the cache holds it (then :func:`cached_tags` answers)."""
    key, _, hit = _cached(python, cache_dir)
    return None if hit is not None else (key, _run_probe(python, key))


def probe_key(python: Path) -> str:
    """The cache key of ``python`` now (its real path, size and mtime)."""
    return _cached(python, None)[0]


def remember_probe(
    cache_dir: Path,
    key: str,
    probe: dict[str, Any],
    cached: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Add ``probe`` under ``key`` to ``<cache_dir>/tags.json`` (best effort)."""
    from reconciler.state.store import write_json_atomic

    if cached is None:
        cached = _entries(cache_dir)
    # Only interpreters that still exist: the file cannot grow without bound.
    kept = {k: v for k, v in cached.items() if os.path.exists(k.rsplit(":", 2)[0])}
    with contextlib.suppress(OSError):  # derived data: a lost or damaged file is probed again
        write_json_atomic(cache_dir / "tags.json", {**kept, key: probe}, derived=True)


def _run_probe(python: Path, key: str) -> dict[str, Any]:
    real = key.rsplit(":", 2)[0]
    if real == os.path.realpath(sys.executable):
        return _here()
    done = run([python, "-I", "-c", _PROBE], timeout=30)
    if done.returncode != 0:
        raise BackendError(
            f"cannot probe {python} for its wheel tags: "
            f"{done.stderr.strip()[:200] or done.exit_text}",
            hint="check that the environment's interpreter runs",
        )
    probe: dict[str, Any] = json.loads(done.stdout)
    return probe


def _here() -> dict[str, Any]:
    """What :data:`_PROBE` prints, for the running interpreter (no process needed)."""
    with SYSCONFIG_LOCK:  # the first sysconfig.get_config_var sets sysconfig up
        return _here_unlocked()


def _here_unlocked() -> dict[str, Any]:
    return {
        "impl": sys.implementation.name,
        "version": list(sys.version_info[:2]),
        "soabi": sysconfig.get_config_var("SOABI") or "",
        "platform": sysconfig.get_platform(),
        "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "debug": hasattr(sys, "gettotalrefcount"),
    }
