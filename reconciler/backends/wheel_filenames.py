"""Wheel and sdist file names read as ``packaging.utils`` reads them, without importing it.

``packaging.utils`` imports ``packaging.tags``, and with it ``logging`` (and
``traceback``, ``textwrap``, ``tokenize``), ``platform`` and the manylinux checks:
~20 ms of CPU in the thread that prepares a plan's clash check while the resolver's
preview runs, more than the preview itself on a busy machine. The rules are
packaging's (26.3 and later: a name of word characters, dots and underscores without
``__``; a PEP 440 version; a build tag of digits and anything; three tag components,
none empty, each interpreter an identifier). A wheel's tags are
``interpreter-abi-platform`` strings, lower-cased: ``str()`` of packaging's ``Tag``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from reconciler.names import canonical_name

if TYPE_CHECKING:
    from packaging.version import Version

__all__ = ["InvalidFilename", "parse_sdist_filename", "parse_tag", "parse_wheel_filename"]

_BUILD = re.compile(r"(\d+)(.*)\Z", re.ASCII)
_NAME = re.compile(r"^[\w._]+\Z", re.UNICODE)


class InvalidFilename(ValueError):
    """Not a wheel (or sdist) file name packaging would read."""


def parse_tag(tag: str) -> frozenset[str]:
    """The tags of a (compressed) tag set: ``py2.py3-none-any`` is two."""
    components = [component.split(".") for component in tag.split("-")]
    if len(components) != 3 or any("" in parts for parts in components):
        raise InvalidFilename(f"invalid tag {tag!r}")
    interpreters, abis, platforms = components
    if not all(i.isidentifier() for i in interpreters):
        raise InvalidFilename(f"invalid interpreter in tag {tag!r}")
    return frozenset(f"{i}-{a}-{p}".lower() for i in interpreters for a in abis for p in platforms)


def parse_wheel_filename(
    filename: str,
) -> tuple[str, Version, tuple[int, str] | tuple[()], frozenset[str]]:
    """``(canonical name, version, build tag, tags)`` of a wheel file name."""
    from packaging.version import InvalidVersion, Version

    if not filename.endswith(".whl"):
        raise InvalidFilename(f"not a wheel: {filename!r}")
    stem = filename[:-4]
    dashes = stem.count("-")
    if dashes not in (4, 5):
        raise InvalidFilename(f"wrong number of parts: {filename!r}")
    parts = stem.split("-", dashes - 2)
    if "__" in parts[0] or _NAME.match(parts[0]) is None:
        raise InvalidFilename(f"invalid project name: {filename!r}")
    try:
        version = Version(parts[1])
    except InvalidVersion:
        raise InvalidFilename(f"invalid version: {filename!r}") from None
    build: tuple[int, str] | tuple[()] = ()
    if dashes == 5:
        match = _BUILD.match(parts[2])
        if match is None:
            raise InvalidFilename(f"invalid build number: {filename!r}")
        build = (int(match.group(1)), match.group(2))
    return canonical_name(parts[0]), version, build, parse_tag(parts[-1])


def parse_sdist_filename(filename: str) -> tuple[str, Version]:
    """``(canonical name, version)`` of an sdist file name (``.tar.gz`` or ``.zip``)."""
    from packaging.version import InvalidVersion, Version

    if filename.endswith(".tar.gz"):
        stem = filename[: -len(".tar.gz")]
    elif filename.endswith(".zip"):
        stem = filename[: -len(".zip")]
    else:
        raise InvalidFilename(f"not an sdist: {filename!r}")
    name, dash, version = stem.rpartition("-")
    if not dash or not name:
        raise InvalidFilename(f"no project name and version: {filename!r}")
    try:
        return canonical_name(name), Version(version)
    except InvalidVersion:
        raise InvalidFilename(f"invalid version: {filename!r}") from None
