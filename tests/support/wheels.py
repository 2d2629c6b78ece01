"""Hand-made wheels for tests: the builders live in :mod:`reconciler.demo.wheels` (the demo,
the tests and the benchmarks share them); see there for the standard wheelhouse."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from reconciler.demo.wheels import (
    STANDARD_WHEELS,
    WHEEL,
    build_wheel,
    build_wheelhouse,
    dist_files,
    dist_info_dir,
    escape_dist_name,
    import_name,
    metadata_text,
    record_hash,
    record_text,
    wheel_filename,
)

__all__ = [
    "STANDARD_WHEELS",
    "WHEEL",
    "build_wheel",
    "build_wheelhouse",
    "dist_files",
    "dist_info_dir",
    "escape_dist_name",
    "import_name",
    "metadata_text",
    "overwrite_in_place",
    "record_hash",
    "record_text",
    "wheel_filename",
]

T = TypeVar("T")


def overwrite_in_place(wheel: Path, variants: Sequence[T], build: Callable[[T], Path]) -> T:
    """Write over ``wheel`` in place (the same inode) with the first wheel ``build`` makes
    from ``variants`` that has its size, and put its mtime back: only the ctime tells
    the file changed. Returns that variant."""
    stat = wheel.stat()
    for variant in variants:
        twin = build(variant)
        if twin.stat().st_size == stat.st_size:
            break
    else:
        raise AssertionError("no rebuilt wheel of the same size")
    with wheel.open("r+b") as f:
        f.write(twin.read_bytes())
    os.utime(wheel, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    now = wheel.stat()
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (
        stat.st_ino,
        stat.st_size,
        stat.st_mtime_ns,
    )
    return variant
