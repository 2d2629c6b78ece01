"""The wheel tags a target interpreter accepts, best first, without importing it.

``packaging.tags`` computes tags for the running interpreter only. The target's
implementation, version, ABI flags and platform come from a one-time probe
(``python -I -c``, standard library only), cached in ``<cache_dir>/tags.json``
by the interpreter's real path, size and mtime; the running interpreter itself
(a venv's ``bin/python`` is usually a link to it) needs no process. On the same
platform the platform tags are packaging's own (manylinux levels included).

Tags are ``interpreter-abi-platform`` strings (``str()`` of packaging's ``Tag``).
The list computed from a probe is kept beside it in ``tags.json``, with what else it
depends on (packaging's version; the running interpreter, its glibc, platform and
system release, which packaging reads for the manylinux and macOS levels): a plan
with the tags cached imports neither ``packaging.tags`` nor, through it, ``logging``
and ``platform`` (~20 ms of CPU while the preview runs, and ~1,000 tags built).
Where packaging reads more (a PEP 600 ``_manylinux`` module, musl), nothing is kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import sysconfig
from pathlib import Path
from typing import Any

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
    "with_tags",
]

_PROBE = (
    "import json, sys, sysconfig; print(json.dumps({"
    "'impl': sys.implementation.name, 'version': list(sys.version_info[:2]), "
    "'soabi': sysconfig.get_config_var('SOABI') or '', "
    "'platform': sysconfig.get_platform(), "
    "'free_threaded': bool(sysconfig.get_config_var('Py_GIL_DISABLED')), "
    "'debug': hasattr(sys, 'gettotalrefcount')}))"
)


def target_tags(python: Path, cache_dir: Path | None = None) -> tuple[str, ...]:
    """The tags ``python`` accepts, best first, as its own ``packaging.tags.sys_tags``.

    The interpreter is probed once (a short ``python -c``, stdlib only) and the
    answer cached in ``<cache_dir>/tags.json`` by its real path, size and mtime,
    with the tags computed from it.
    """
    key, cached, hit = _cached(python, cache_dir)
    probe = hit if hit is not None else _run_probe(python, key)
    kept, tags = with_tags(probe)
    if cache_dir is not None and (hit is None or kept is not probe):
        remember_probe(cache_dir, key, kept, cached)
    return tags


def cached_tags(python: Path, cache_dir: Path) -> tuple[str, ...] | None:
    """:func:`target_tags` from ``<cache_dir>/tags.json`` alone: None when it does not
    hold ``python`` and its tags (nothing is probed, computed or written)."""
    try:
        hit = _cached(python, cache_dir)[2]
    except BackendError:
        return None
    return None if hit is None else _stored(hit, _computed_for())


def tags_of_probe(probe: dict[str, Any]) -> tuple[str, ...]:
    """The tags of a probe's answer (see :func:`probe_uncached`)."""
    return with_tags(probe)[1]


def with_tags(probe: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``probe`` with its tags kept in it (what :func:`remember_probe` writes), and the
    tags: those kept when they were computed as they would be now, else computed (and
    kept only where everything packaging reads for them is known here)."""
    computed_for = _computed_for()
    tags = _stored(probe, computed_for)
    if tags is not None:
        return probe, tags
    tags = _computed(probe)
    if computed_for is None:
        return {k: v for k, v in probe.items() if k != "tags"}, tags
    return {**probe, "tags": {"for": computed_for, "tags": list(tags)}}, tags


def _stored(probe: dict[str, Any], computed_for: str | None) -> tuple[str, ...] | None:
    """The tags kept in ``probe`` for ``computed_for`` (:func:`_computed_for` now)."""
    kept = probe.get("tags")
    if computed_for is None or not isinstance(kept, dict) or kept.get("for") != computed_for:
        return None
    tags = kept.get("tags")
    if not isinstance(tags, list) or not tags or not all(isinstance(t, str) for t in tags):
        return None
    return tuple(tags)


def _computed_for() -> str | None:
    """What a probe's tags depend on besides the probe: packaging's version, and the
    running interpreter (its binary, C library and platform, the system's release)
    whose platform tags packaging takes when the target's platform is the same. None
    where packaging reads more than that: a ``_manylinux`` module overriding the
    manylinux checks (PEP 600), or a Linux C library other than glibc (musl's version
    is read from the dynamic loader): there the tags are computed at each run."""
    import importlib.util

    import packaging  # its __init__ only

    if importlib.util.find_spec("_manylinux") is not None:
        return None
    try:
        real = os.path.realpath(sys.executable)
        st = os.stat(real)
        binary = f"{real}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        binary = "?"
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):
        libc = ""
    if sys.platform.startswith("linux") and not libc.startswith("glibc"):
        return None
    system = os.uname() if hasattr(os, "uname") else None
    release = f"{system.release}:{system.machine}" if system is not None else "?"
    with SYSCONFIG_LOCK:
        platform = sysconfig.get_platform()
    return f"{packaging.__version__};{binary};{libc};{release};{platform}"


def _computed(probe: dict[str, Any]) -> tuple[str, ...]:
    from packaging.tags import compatible_tags, cpython_tags, generic_tags, platform_tags

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
    return tuple(dict.fromkeys(str(t) for t in tags))


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


def probe_uncached(python: Path, cache_dir: Path) -> tuple[str, dict[str, Any]] | None:
    """``(cache key, probe)`` of ``python`` when ``<cache_dir>/tags.json`` does not hold
    it with its tags: the cached probe, else the probe run now; nothing is written
    (:func:`remember_probe` writes it). None when the cache holds both (then
    :func:`cached_tags` answers)."""
    key, _, hit = _cached(python, cache_dir)
    if hit is not None:
        return None if _stored(hit, _computed_for()) is not None else (key, hit)
    return key, _run_probe(python, key)


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
