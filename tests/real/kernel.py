"""The Studio image's own kernel for the real tier: CPython 3.12, IPython 8.37, ipykernel 7.3.

SageMaker Distribution 4.4.1 (``shared/data``) runs its kernels on CPython 3.12.13 with
IPython 8.37.0 and ipykernel 7.3.0; the rest of the suite runs kernels on this venv's
Python 3.11 and IPython 9. ``wheels.json``'s ``studio_kernel`` pins those releases and what
they need, for CPython 3.12. :func:`tests.real.stack.ensure_wheels` downloads them once
into :func:`kernel_wheels_dir`, a directory of the tier's cache of their own (the other
scenarios' ``find_links`` must not offer these newer releases);
:func:`build_kernel_venv` installs them offline into a venv of a CPython 3.12 found on
this machine (:func:`kernel_python`).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from tests.real.stack import HERE, Pin, cache_dir
from tests.support.envs import make_venv, pip_install

__all__ = [
    "KERNEL_PINS",
    "KERNEL_PYTHON",
    "build_kernel_venv",
    "kernel_python",
    "kernel_wheels_dir",
]

#: Environment variable naming a CPython 3.12 interpreter, where none is found by itself.
PYTHON_VARIABLE = "RECONCILER_TEST_PYTHON312"


def _load() -> tuple[str, tuple[Pin, ...]]:
    document = json.loads((HERE / "wheels.json").read_text(encoding="utf-8"))["studio_kernel"]
    return document["python"], tuple(Pin(**entry) for entry in document["wheels"])


#: The kernel's Python version and its pinned wheels (``wheels.json``: ``studio_kernel``).
KERNEL_PYTHON, KERNEL_PINS = _load()


def kernel_wheels_dir() -> Path:
    """Where the kernel's wheels are cached: ``studio-kernel/`` in the tier's cache."""
    return cache_dir() / "studio-kernel"


def kernel_python() -> Path:
    """A CPython :data:`KERNEL_PYTHON` interpreter: ``$RECONCILER_TEST_PYTHON312``, pyenv's,
    or one on PATH that runs (pyenv's shim on PATH fails unless that version is active)."""
    name = f"python{KERNEL_PYTHON}"
    candidates = [os.environ.get(PYTHON_VARIABLE, "")]
    # The account's own home: tests run with an isolated HOME.
    root = Path(os.environ.get("PYENV_ROOT") or Path(pwd.getpwuid(os.getuid()).pw_dir) / ".pyenv")
    candidates += [str(p) for p in sorted(root.glob(f"versions/{KERNEL_PYTHON}.*/bin/{name}"))]
    candidates.append(shutil.which(name) or "")
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == KERNEL_PYTHON:
            return Path(candidate)
    raise RuntimeError(
        f"no CPython {KERNEL_PYTHON} found (tried {PYTHON_VARIABLE}, {root}/versions, PATH): "
        f"install one (the Studio image's kernels run {KERNEL_PYTHON}), e.g. "
        f"`pyenv install {KERNEL_PYTHON}`, or set {PYTHON_VARIABLE} to its path"
    )


def build_kernel_venv(dest: Path, wheels: Path, env: Mapping[str, str] | None = None) -> Path:
    """A venv of :func:`kernel_python` at ``dest`` with exactly the pinned kernel
    distributions, installed offline from ``wheels``; nothing of reconciler's."""
    make_venv(dest, python=str(kernel_python()))
    pip_install(dest, [p.requirement for p in KERNEL_PINS], wheels, env)
    return dest
