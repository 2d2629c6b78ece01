"""Real environments for the demo and the tests: venvs, conda prefixes and hybrids.

Everything here is offline: uv runs with ``UV_NO_CONFIG=1`` and ``--no-index``
against a local wheelhouse, rattler solves against a local ``file://``
channel (see :mod:`reconciler.demo.conda`).

Gotchas this module handles:

* ``rattler.install(records, prefix)`` makes the prefix equal to ``records``
  (it removes every other conda package), so additive installs
  (:func:`conda_install_more`) pass the union of installed and new records.
* rattler and uv hardlink files from their caches into environments. Editing
  an installed file in place (as tests do) would corrupt the cache, so
  :func:`make_conda_prefix` uses a throwaway rattler cache per call and
  :func:`isolated_env` sets ``UV_LINK_MODE=copy``.
* rattler writes an empty ``conda-meta/history`` and a ``CACHEDIR.TAG`` in the
  prefix; :func:`make_conda_prefix` rewrites the history as an image build would.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.demo.conda import PYTHON_VERSION

__all__ = [
    "IMAGE_BUILD_TIME",
    "env_python",
    "history_block",
    "history_line",
    "install_records",
    "isolated_env",
    "isolating_variables",
    "leaky_variables",
    "make_conda_prefix",
    "make_venv",
    "pip_install",
    "solve_local",
    "uv_bin",
]

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
    """Install ``requirements`` into ``prefix`` from ``wheelhouse`` only, with uv (setting up
    an "image" or a test environment).

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
    """Run a py-rattler coroutine to completion (the interpreter waits for it at exit:
    :func:`reconciler.backends.conda._settle_at_exit`)."""
    from reconciler.backends.conda import _settle_at_exit

    _settle_at_exit()
    return asyncio.run(coro)


def solve_local(channel_dir: Path, specs: Sequence[str], **kwargs: Any) -> list[Any]:
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


def install_records(records: list[Any], prefix: Path, **kwargs: Any) -> None:
    """``rattler.install`` with a throwaway package cache (see module docstring)."""
    import rattler

    with tempfile.TemporaryDirectory(prefix="rattler-pkgs-") as cache:
        _run(rattler.install(records, prefix, cache_dir=Path(cache), show_progress=False, **kwargs))


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
    records = solve_local(channel_dir, specs)
    install_records(records, path)
    history = history_block("image build", (history_line(r) for r in records))
    (path / "conda-meta" / "history").write_text(history)
    return path
