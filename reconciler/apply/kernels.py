"""Write Jupyter kernelspecs into the user kernels directory, atomically.

SageMaker Distribution's JupyterLab does not use nb_conda_kernels: an
environment's kernel must be registered in the user kernels dir with ``argv[0]``
the environment's absolute ``bin/python`` (NOTES.md). A kernelspec reconciler
did not write (no ``metadata.reconciler``) is never overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.manifest.model import Kernel
from reconciler.state.kernels import OWNER_KEY, kernels_dir, read_kernelspec

__all__ = ["kernelspec", "write_kernelspec"]


def kernelspec(kernel: Kernel, prefix: Path, manifest: Path, environment: str) -> dict[str, object]:
    """The kernel.json content for an environment."""
    return {
        "argv": [str(prefix / "bin" / "python"), "-m", "ipykernel_launcher", "-f",
                 "{connection_file}"],
        "display_name": kernel.display_name,
        "language": "python",
        "metadata": {
            "debugger": True,
            OWNER_KEY: {"manifest": str(manifest), "environment": environment},
        },
    }  # fmt: skip


def write_kernelspec(kernel: Kernel, prefix: Path, manifest: Path, environment: str) -> Path:
    """Register the kernel; returns its directory. Refuses to replace a foreign kernelspec."""
    existing = read_kernelspec(kernel.name)
    if existing.exists and not existing.owned:
        raise ReconcilerError(
            f"kernelspec {kernel.name!r} exists and was not written by reconciler",
            hint="rename the kernel in the manifest, or remove the existing kernelspec",
        )
    base = kernels_dir()
    base.mkdir(parents=True, exist_ok=True)
    target = base / kernel.name
    staging = Path(tempfile.mkdtemp(prefix=f".{kernel.name}.", dir=base))
    try:
        spec = kernelspec(kernel, prefix, manifest, environment)
        with (staging / "kernel.json").open("w", encoding="utf-8") as f:
            json.dump(spec, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(staging, 0o755)
        if target.exists():
            # Our own kernelspec: replace its kernel.json in one rename.
            os.replace(staging / "kernel.json", target / "kernel.json")
        else:
            os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
