"""Jupyter kernelspecs in the user kernels directory (no jupyter import on this path)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from reconciler.values import value

__all__ = ["KernelSpecState", "kernels_dir", "read_kernelspec"]

OWNER_KEY = "reconciler"


def kernels_dir() -> Path:
    """The user kernels directory, by jupyter_core's rule on Linux.

    ``$JUPYTER_DATA_DIR/kernels``, else ``$XDG_DATA_HOME/jupyter/kernels``, else
    ``~/.local/share/jupyter/kernels``.
    """
    data = os.environ.get("JUPYTER_DATA_DIR")
    if data:
        return Path(data).expanduser() / "kernels"
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path("~/.local/share").expanduser()
    return base / "jupyter" / "kernels"


@value
class KernelSpecState:
    """What is registered under a kernel name."""

    name: str
    exists: bool
    python: str | None = None  # argv[0]
    display_name: str | None = None
    owned: bool = False  # written by reconciler (metadata.reconciler)


def read_kernelspec(name: str) -> KernelSpecState:
    """The kernelspec ``name`` in the user kernels dir."""
    path = kernels_dir() / name / "kernel.json"
    try:
        with path.open(encoding="utf-8") as f:
            spec = json.load(f)
    except FileNotFoundError:
        return KernelSpecState(name=name, exists=False)
    except (OSError, ValueError):
        return KernelSpecState(name=name, exists=True)
    if not isinstance(spec, dict):
        return KernelSpecState(name=name, exists=True)
    argv = spec.get("argv")
    metadata = spec.get("metadata")
    return KernelSpecState(
        name=name,
        exists=True,
        python=str(argv[0]) if isinstance(argv, list) and argv else None,
        display_name=spec.get("display_name"),
        owned=isinstance(metadata, dict) and OWNER_KEY in metadata,
    )
