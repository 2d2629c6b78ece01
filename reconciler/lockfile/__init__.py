"""The lock file (``team.lock`` beside ``team.yaml``): exact, hash-checked additions per image.

:mod:`~reconciler.lockfile.model` holds the values and the one text form,
:mod:`~reconciler.lockfile.fresh` reads a lock and says whether it holds,
:mod:`~reconciler.lockfile.resolve` makes an environment's entry,
:mod:`~reconciler.lockfile.resolver` plans from it (the ``LockedResolver``), and
:mod:`~reconciler.lockfile.writer` runs ``reconciler lock``. Where the lock file is
lives here; the model's names load on first use: a plan without a lock file never
builds the model's classes.
"""

from __future__ import annotations

from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from reconciler.lockfile.model import (
        FORMAT_VERSION,
        Entries,
        LockedEnvironment,
        LockedRecord,
        LockedWheel,
        LockFile,
        dumps,
    )

__all__ = [
    "FORMAT_VERSION",
    "Entries",
    "LockFile",
    "LockedEnvironment",
    "LockedRecord",
    "LockedWheel",
    "dumps",
    "has_lock_file",
    "lock_path",
]


def lock_path(manifest: Path) -> Path:
    """``team.yaml`` -> ``team.lock`` (``.yml`` too; any other name gets ``.lock`` added)."""
    if manifest.suffix in (".yaml", ".yml"):
        return manifest.with_suffix(".lock")
    return manifest.with_name(manifest.name + ".lock")


def has_lock_file(manifest: Path) -> bool:
    """False only when there is certainly no lock file beside ``manifest`` (then a plan
    is made exactly as without a lock); any other answer of the file system is True,
    for :func:`reconciler.lockfile.fresh.read_lock` to read or report."""
    try:
        lock_path(manifest).stat()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True


def __getattr__(name: str) -> Any:
    if name in __all__:
        from reconciler.lockfile import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
