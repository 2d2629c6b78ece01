"""Hand-made wheels for tests: the builders live in :mod:`reconciler.demo.wheels` (the demo,
the tests and the benchmarks share them); see there for the standard wheelhouse."""

from __future__ import annotations

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
    "record_hash",
    "record_text",
    "wheel_filename",
]
