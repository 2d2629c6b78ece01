"""The lock file (``team.lock`` beside ``team.yaml``): exact, hash-checked additions per image.

:mod:`~reconciler.lockfile.model` holds the values and the one text form,
:mod:`~reconciler.lockfile.fresh` reads a lock and says whether it holds,
:mod:`~reconciler.lockfile.resolve` makes an environment's entry,
:mod:`~reconciler.lockfile.resolver` plans from it (the ``LockedResolver``), and
:mod:`~reconciler.lockfile.writer` runs ``reconciler lock``. Only the model is
imported here: the backends use it, and it imports nothing.
"""

from __future__ import annotations

from reconciler.lockfile.model import (
    FORMAT_VERSION,
    Entries,
    LockedEnvironment,
    LockedRecord,
    LockedWheel,
    LockFile,
    dumps,
    lock_path,
)

__all__ = [
    "FORMAT_VERSION",
    "Entries",
    "LockFile",
    "LockedEnvironment",
    "LockedRecord",
    "LockedWheel",
    "dumps",
    "lock_path",
]
