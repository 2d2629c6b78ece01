"""Shared pytest fixtures: a local wheelhouse, a local conda channel, isolation.

Session-scoped (built once, a few hundred milliseconds):

* ``wheelhouse``: the standard wheels of :mod:`tests.support.wheels`.
* ``channel``: the standard ``file://`` conda channel of :mod:`tests.support.conda`
  (skips the test when py-rattler is not installed, e.g. on Python 3.9).
* ``uv_cache``: uv's cache directory for the session.

Function-scoped:

* ``isolated``: patches ``os.environ`` so that pip/uv/rattler spawned by the code
  under test never see the machine's global config, indexes or caches, and
  gives each test its own ``HOME`` (so ``~/.local`` user site, Jupyter's user
  kernels and ``~/.local/state`` are per test) and ``RECONCILER_STATE_DIR``.
  Returns a copy of the patched environment, for ``subprocess`` calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.conda import build_channel
from tests.support.envs import isolating_variables, leaky_variables
from tests.support.wheels import build_wheelhouse

#: Variables that would let a test reach the real user's data or config.
_USER_DIR_VARIABLES = (
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "JUPYTER_PATH",
    "JUPYTER_DATA_DIR",
    "JUPYTER_CONFIG_DIR",
    "JUPYTER_RUNTIME_DIR",
    "IPYTHONDIR",
)


@pytest.fixture(autouse=True)
def _fresh_index_reads() -> None:
    """Index pages an earlier test read in this process are forgotten: a later test's
    server may get the same port (a plan and a lock forget them too, a direct
    ``locate_wheel`` call does not)."""
    from reconciler.plan.planner import forget_index_reads

    forget_index_reads()


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory with the standard test wheels (``--find-links`` target)."""
    return build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="session")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the standard local conda channel (use ``channel.as_uri()`` for a URL)."""
    return build_channel(tmp_path_factory.mktemp("channel"))


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """uv's cache for the whole session (uv links by copy, so tests cannot corrupt it)."""
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture
def isolated(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, uv_cache: Path
) -> dict[str, str]:
    """Patch ``os.environ`` for isolation; return a copy of the patched environment.

    ``HOME``, ``RECONCILER_STATE_DIR`` and ``RATTLER_CACHE_DIR`` are fresh
    directories per test (rattler hardlinks from its cache, so a shared cache
    could be corrupted by a test editing an installed file in place).
    """
    for key in [*leaky_variables(os.environ), *_USER_DIR_VARIABLES]:
        monkeypatch.delenv(key, raising=False)
    for key, value in isolating_variables(uv_cache).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path_factory.mktemp("rattler-cache")))
    return dict(os.environ)
