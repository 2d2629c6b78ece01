"""Real environments for tests: venvs, conda prefixes, hybrids, and tree hashes.

Everything here is offline: uv runs with ``UV_NO_CONFIG=1`` and ``--no-index``
against a local wheelhouse, rattler solves against a local ``file://``
channel (see :mod:`tests.support.conda`).

Gotchas this module handles:

* ``rattler.install(records, prefix)`` makes the prefix equal to ``records``
  (it removes every other conda package), so additive installs
  (:func:`conda_install_more`) pass the union of installed and new records.
* rattler and uv hardlink files from their caches into environments. A test
  that edits an installed file in place would corrupt the cache, so
  :func:`make_conda_prefix` uses a throwaway rattler cache per call and
  :func:`isolated_env` sets ``UV_LINK_MODE=copy``.
* rattler writes an empty ``conda-meta/history`` and a ``CACHEDIR.TAG`` in the
  prefix; :func:`make_conda_prefix` rewrites the history as an image build would.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.conda import PYTHON_VERSION

#: Environment variables dropped by :func:`isolated_env` (prefix match).
_LEAKY_PREFIXES = ("PIP_", "UV_", "CONDA_", "RATTLER_")
_LEAKY_NAMES = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONNOUSERSITE")

#: Timestamp of the history block :func:`make_conda_prefix` writes.
IMAGE_BUILD_TIME = "2026-01-01 00:00:00"

_FALLBACK_CACHE: list[Path] = []


def uv_bin() -> str:
    """Path of the ``uv`` executable shipped by the ``uv`` Python package."""
    import uv

    return str(uv.find_uv_bin())


def _fallback_cache_dir() -> Path:
    """A per-process uv cache directory, removed at exit."""
    if not _FALLBACK_CACHE:
        path = Path(tempfile.mkdtemp(prefix="reconciler-uv-cache-"))
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        _FALLBACK_CACHE.append(path)
    return _FALLBACK_CACHE[0]


def _default_uv_cache_dir() -> str:
    """The current uv cache if already isolated (``UV_NO_CONFIG=1``), else a temp dir."""
    if os.environ.get("UV_NO_CONFIG") == "1" and os.environ.get("UV_CACHE_DIR"):
        return os.environ["UV_CACHE_DIR"]
    return str(_fallback_cache_dir())


def isolating_variables(uv_cache_dir: Path | None = None) -> dict[str, str]:
    """The variables :func:`isolated_env` sets (without the copy of ``os.environ``)."""
    return {
        "UV_NO_CONFIG": "1",
        "UV_CACHE_DIR": str(uv_cache_dir) if uv_cache_dir else _default_uv_cache_dir(),
        "UV_LINK_MODE": "copy",
        "UV_PYTHON_DOWNLOADS": "never",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        # No __pycache__ from merely running an environment's python: keeps tree_hash stable.
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def leaky_variables(environ: Mapping[str, str]) -> list[str]:
    """Names in ``environ`` that could point pip/uv/conda at indexes or other environments."""
    return [key for key in environ if key.startswith(_LEAKY_PREFIXES) or key in _LEAKY_NAMES]


def isolated_env(uv_cache_dir: Path | None = None) -> dict[str, str]:
    """A copy of ``os.environ`` that keeps pip and uv away from global config and indexes.

    Drops ``PIP_*``/``UV_*``/``CONDA_*``/``RATTLER_*``, ``VIRTUAL_ENV`` and
    ``PYTHONPATH``-like variables (this machine sets ``PIP_FIND_LINKS``), then sets
    ``UV_NO_CONFIG=1``, ``PIP_CONFIG_FILE=os.devnull``,
    ``PIP_DISABLE_PIP_VERSION_CHECK=1``, ``UV_LINK_MODE=copy``,
    ``PYTHONDONTWRITEBYTECODE=1`` and
    ``UV_CACHE_DIR`` (``uv_cache_dir``; by default the current one when
    ``os.environ`` is already isolated, as under the ``isolated`` fixture, else
    a per-process temp dir).
    """
    env = dict(os.environ)
    for key in leaky_variables(env):
        del env[key]
    env.update(isolating_variables(uv_cache_dir))
    return env


def env_python(prefix: Path) -> Path:
    """The interpreter of a venv or conda prefix (``<prefix>/bin/python``)."""
    return Path(prefix) / "bin" / "python"


def make_venv(
    path: Path,
    *,
    system_site_packages: bool = False,
    with_pip: bool = False,
    python: str | None = None,
) -> Path:
    """Create a venv at ``path`` with ``python -m venv`` (default ``sys.executable``).

    ``with_pip`` uses the bundled ensurepip wheel (offline, ~4.5 s; pip 23.2.1 on 3.11); otherwise
    ``--without-pip`` (~50 ms).
    """
    path = Path(path)
    cmd = [python or sys.executable, "-m", "venv"]
    if system_site_packages:
        cmd.append("--system-site-packages")
    if not with_pip:
        cmd.append("--without-pip")
    subprocess.run([*cmd, str(path)], check=True, env=isolated_env(), capture_output=True)
    return path


def pip_install(
    prefix: Path,
    requirements: Sequence[str],
    wheelhouse: Path,
    env: Mapping[str, str] | None = None,
    *,
    extra_args: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Install ``requirements`` into ``prefix`` from ``wheelhouse`` only, with uv (test setup).

    Runs ``uv pip install --python <prefix>/bin/python --no-index --find-links
    <wheelhouse>``; raises ``CalledProcessError`` (with uv's output) on failure.
    """
    cmd = [
        uv_bin(), "pip", "install", "--python", str(env_python(prefix)),
        "--no-index", "--find-links", str(wheelhouse), *extra_args, *requirements,
    ]  # fmt: skip
    result = subprocess.run(
        cmd, env=dict(env) if env is not None else isolated_env(), capture_output=True, text=True
    )
    if result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, cmd, output=result.stdout, stderr=result.stderr
        )
    return result


# -- conda prefixes -----------------------------------------------------------------------


def _run(coro: Any) -> Any:
    """Run a py-rattler coroutine to completion."""
    return asyncio.run(coro)


def _solve(channel_dir: Path, specs: Sequence[str], **kwargs: Any) -> list[Any]:
    """Solve ``specs`` against the local channel only (noarch + this platform)."""
    import rattler

    with tempfile.TemporaryDirectory(prefix="rattler-repodata-") as cache:
        return list(
            _run(
                rattler.solve(
                    [Path(channel_dir).resolve().as_uri()],
                    list(specs),
                    gateway=rattler.Gateway(cache_dir=Path(cache)),
                    platforms=[rattler.Subdir("noarch"), rattler.Subdir.current()],
                    **kwargs,
                )
            )
        )


def _install(records: list[Any], prefix: Path, **kwargs: Any) -> None:
    """``rattler.install`` with a throwaway package cache (see module docstring)."""
    import rattler

    with tempfile.TemporaryDirectory(prefix="rattler-pkgs-") as cache:
        _run(rattler.install(records, prefix, cache_dir=Path(cache), show_progress=False, **kwargs))


def installed_records(prefix: Path) -> list[Any]:
    """The ``rattler.PrefixRecord`` of every ``conda-meta/*.json`` in ``prefix``."""
    import rattler

    meta = Path(prefix) / "conda-meta"
    return [rattler.PrefixRecord.from_path(p) for p in sorted(meta.glob("*.json"))]


def history_line(record: Any, sign: str = "+") -> str:
    """``+file:///.../channel/noarch::name-version-build`` as conda writes it."""
    channel = str(record.channel).rstrip("/")
    dist = f"{record.name.normalized}-{record.version}-{record.build}"
    return f"{sign}{channel}/{record.subdir}::{dist}"


def history_block(
    cmd: str, lines: Iterable[str], specs: Sequence[str] = (), when: str = IMAGE_BUILD_TIME
) -> str:
    """One ``conda-meta/history`` block: header, ``# cmd:``, ``-`` then ``+`` lines, specs."""
    block = [f"==> {when} <==", f"# cmd: {cmd}", *sorted(lines, key=lambda x: (x[0] == "+", x))]
    if specs:
        block.append(f"# update specs: {list(specs)!r}")
    return "\n".join(block) + "\n"


def make_conda_prefix(
    path: Path, channel_dir: Path, specs: Sequence[str], *, hybrid: bool = False
) -> Path:
    """Create a conda prefix at ``path`` with ``specs`` solved against ``channel_dir``.

    With ``hybrid=True`` the prefix is first made a venv (:func:`make_venv`) and
    the fake ``python`` record is added, so noarch python packages land in the
    venv's ``lib/python3.X/site-packages`` and its ``bin/python`` imports them.
    ``conda-meta/history`` gets one block, as an image build writes it.
    """
    path = Path(path)
    specs = list(specs)
    if hybrid:
        make_venv(path)
        specs.append(f"python =={PYTHON_VERSION}")
    records = _solve(channel_dir, specs)
    _install(records, path)
    history = history_block("image build", (history_line(r) for r in records))
    (path / "conda-meta" / "history").write_text(history)
    return path


def conda_install_more(
    prefix: Path, channel_dir: Path, specs: Sequence[str], *, pin_installed: bool = True
) -> list[str]:
    """Add ``specs`` to an existing prefix, as a hand-run ``conda install`` would.

    Installed records are pinned (``pin_installed=False``: only preferred, so
    they may move), the result is installed together with every installed
    record the solve did not touch, and a history block stamped with the
    current time is appended. Returns the history lines (``+``/``-``) of the change.
    """
    prefix = Path(prefix)
    installed = installed_records(prefix)
    key = "pinned_packages" if pin_installed else "locked_packages"
    solved = _solve(channel_dir, specs, **{key: installed})
    solved_names = {r.name.normalized for r in solved}
    keep = [r for r in installed if r.name.normalized not in solved_names]
    _install(solved + keep, prefix, installed_packages=installed)

    before = {(r.name.normalized, str(r.version), r.build): r for r in installed}
    after = {(r.name.normalized, str(r.version), r.build): r for r in solved + keep}
    changes = [history_line(after[k]) for k in after.keys() - before.keys()]
    changes += [history_line(before[k], "-") for k in before.keys() - after.keys()]
    history = prefix / "conda-meta" / "history"
    previous = history.read_text() if history.is_file() else ""
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    block = history_block(f"conda install {' '.join(specs)}", changes, specs, when)
    history.write_text(previous + block)
    return sorted(changes)


# -- comparing environments ---------------------------------------------------------------


def tree_hash(*paths: Path) -> str:
    """sha256 over relative path, mode, size and content of every file below ``paths``.

    Symlinks are hashed by their target (not followed); directories by name,
    so an added empty directory changes the hash too. ``__pycache__``
    directories are included: callers wanting byte-identical trees get them.
    """
    digest = hashlib.sha256()
    for root in paths:
        root = Path(root)
        digest.update(f"root\0{len(paths)}\0".encode())
        entries = [root] if not root.is_dir() or root.is_symlink() else sorted(root.rglob("*"))
        for entry in entries:
            rel = entry.relative_to(root).as_posix() if entry != root else "."
            info = entry.lstat()
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                digest.update(f"L\0{rel}\0{os.readlink(entry)}\0".encode())
            elif stat.S_ISDIR(info.st_mode):
                digest.update(f"D\0{rel}\0{mode:o}\0".encode())
            else:
                digest.update(f"F\0{rel}\0{mode:o}\0{info.st_size}\0".encode())
                with entry.open("rb") as handle:
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
    return digest.hexdigest()
