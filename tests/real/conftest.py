"""Fixtures of the real-package tier (marker ``real``): pinned PyPI wheels, a real image.

Session-scoped (built once):

* ``real_wheels``: exactly the pinned wheels, as links into the wheel cache
  (:func:`tests.real.stack.ensure_wheels`), which is filled from the index on the
  first run only: the only network use of the suite.
* ``kernel_wheels``: the same for the Studio kernel's cp312 wheels (:mod:`tests.real.kernel`).
* ``image_master``: a venv of the 54 pinned image distributions, installed
  offline from the cache (never handed to a test: tests get clones).
* ``conda_master``: the same as a hybrid venv + conda prefix.

Function-scoped:

* ``image``: a :class:`Real` on a clone of ``image_master``, baseline captured.
* ``conda_image``: the same on a clone of ``conda_master``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.real.kernel import KERNEL_PINS, KERNEL_PYTHON, kernel_wheels_dir
from tests.real.scenario import REPO, Real
from tests.real.stack import (
    SITE,
    Fetched,
    build_image_venv,
    cache_dir,
    clone_env,
    conda_from_venv,
    ensure_wheels,
    exact_wheels,
    linked_trees,
    platform_supported,
)
from tests.support.envs import isolated_env

_FETCHED: list[Fetched] = []


@pytest.fixture(scope="session")
def real_fetch() -> Fetched:
    """Fill the wheel cache (downloads only what is missing) and say what was fetched."""
    if not platform_supported():
        pytest.skip("the pinned real wheels are for CPython 3.11 on Linux x86_64")
    fetched = ensure_wheels(cache_dir())
    _FETCHED.append(fetched)
    return fetched


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per wheel cache: how many files this run downloaded (0 when warm)."""
    for fetched in _FETCHED:
        terminalreporter.write_line(
            f"real tier: downloaded {fetched.fetched} of {fetched.fetched + fetched.cached} "
            f"pinned wheels into {fetched.directory}"
        )


@pytest.fixture(scope="session")
def real_wheels(real_fetch: Fetched, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exactly the pinned real wheels (``find_links`` of every scenario): links into the cache."""
    return exact_wheels(real_fetch.directory, tmp_path_factory.mktemp("real-wheels") / "pinned")


@pytest.fixture(scope="session")
def kernel_wheels(real_fetch: Fetched, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exactly the Studio kernel's pinned cp312 wheels (:mod:`tests.real.kernel`), cached in a
    directory of their own."""
    fetched = ensure_wheels(kernel_wheels_dir(), KERNEL_PINS, python_version=KERNEL_PYTHON)
    _FETCHED.append(fetched)
    dest = tmp_path_factory.mktemp("kernel-wheels") / "pinned"
    return exact_wheels(fetched.directory, dest, KERNEL_PINS)


@pytest.fixture(scope="session")
def image_master(
    real_wheels: Path, tmp_path_factory: pytest.TempPathFactory, uv_cache: Path
) -> Path:
    """The managed image as a venv (read-only: tests work on clones)."""
    return build_image_venv(
        tmp_path_factory.mktemp("real-image") / "venv", real_wheels, env=isolated_env(uv_cache)
    )


@pytest.fixture(scope="session")
def conda_master(image_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The managed image as a hybrid venv + conda prefix (read-only)."""
    return conda_from_venv(image_master, tmp_path_factory.mktemp("real-conda") / "prefix")


def _real(master: Path, wheels: Path, isolated: dict[str, str], tmp_path: Path) -> Iterator[Real]:
    prefix = clone_env(master, tmp_path / "image")
    env = {**isolated, "PYTHONPATH": str(REPO)}
    entries = frozenset(e.name for e in (prefix / SITE).iterdir()) - linked_trees(master)
    real = Real(prefix, wheels, env, tmp_path, entries)
    captured = real.run("baseline", "capture", real.manifest([]))
    assert captured.returncode == 0, captured.stderr
    yield real
    shutil.rmtree(prefix, ignore_errors=True)  # ~25 MB of copies per test; pytest keeps 3 runs


@pytest.fixture
def image(
    image_master: Path, real_wheels: Path, isolated: dict[str, str], tmp_path: Path
) -> Iterator[Real]:
    """A clone of the venv image with its baseline captured."""
    yield from _real(image_master, real_wheels, isolated, tmp_path)


@pytest.fixture
def conda_image(
    conda_master: Path, real_wheels: Path, isolated: dict[str, str], tmp_path: Path
) -> Iterator[Real]:
    """A clone of the conda image with its baseline captured."""
    yield from _real(conda_master, real_wheels, isolated, tmp_path)
