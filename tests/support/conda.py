"""Hand-made conda packages for tests: the builders live in :mod:`reconciler.demo.conda` (the
demo and the tests share them); see there for the standard channel."""

from __future__ import annotations

from reconciler.demo.conda import (
    PYTHON_VERSION,
    STANDARD_PACKAGES,
    PackageSpec,
    build_channel,
    build_conda_package,
    index_channel,
    package_filename,
    rattler_available,
)

__all__ = [
    "PYTHON_VERSION",
    "STANDARD_PACKAGES",
    "PackageSpec",
    "build_channel",
    "build_conda_package",
    "index_channel",
    "package_filename",
    "rattler_available",
]
