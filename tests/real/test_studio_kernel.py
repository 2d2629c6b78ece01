"""``%reconcile`` in the Studio image's own kind of kernel: CPython 3.12, IPython 8.37.0,
ipykernel 7.3.0 (SageMaker Distribution 4.4.1's), real wheels from PyPI.

The shim (:mod:`reconciler.kernel_shim`) is written by reconciler's Python (3.11 here)
and runs inside the image's kernel, on the image's interpreter and IPython: this test runs
the same session as tests/test_kernel_shim.py's image kernel there.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.real.kernel import KERNEL_PYTHON, build_kernel_venv
from tests.support.envs import env_python
from tests.test_kernel_shim import image_kernel_session

pytestmark = pytest.mark.real


def test_the_image_kernel_on_python_3_12_and_ipython_8_adds_and_imports(
    tmp_path: Path,
    kernel_wheels: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    monkeypatch: Any,
) -> None:
    venv = build_kernel_venv(tmp_path / "image-env", kernel_wheels, env=isolated)
    site = f"lib/python{KERNEL_PYTHON}/site-packages"
    probe = subprocess.run(
        [env_python(venv), "-c", "import sys, IPython, ipykernel; "
         "print('%d.%d' % sys.version_info[:2], IPython.__version__, ipykernel.__version__)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.split() == [KERNEL_PYTHON, "8.37.0", "7.3.0"]
    monkeypatch.delenv("RECONCILER_MANIFEST", raising=False)
    image_kernel_session(tmp_path, Path(isolated["HOME"]), venv, wheelhouse, site)
