"""Wheel and sdist file names read as packaging reads them (reconciler.backends.wheel_filenames)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from reconciler.backends import wheel_filenames

KNOWN = (
    "numpy-2.3.4-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    "six-1.17.0-py2.py3-none-any.whl",
    "Pillow-11.0.0-1_a-CP312-cp312-MANYLINUX2014_X86_64.whl",
    "zope.interface-7.1-cp312-cp312-macosx_11_0_arm64.whl",
    "a__b-1.0-py3-none-any.whl",
    "pkg-1.0-py3-none.whl",
    "pkg-1.0-3x-none-any.whl",
    "pkg-1.0-py3..x-none-any.whl",
    "pkg-one-py3-none-any.whl",
    "pkg-1.0-x1-py3-none-any.whl",
    "-1.0-py3-none-any.whl",
    "pkg-1.0.tar.gz",
    "My.Pkg-2.0rc1.zip",
    "pkg.tar.gz",
    "-1.0.tar.gz",
    "pkg-one.zip",
)


def _packaging(filename: str) -> object:
    try:
        if filename.endswith(".whl"):
            name, version, build, tags = parse_wheel_filename(filename)
            return (name, version, build, frozenset(str(t) for t in tags))
        return parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return "invalid"


def _ours(filename: str) -> object:
    try:
        if filename.endswith(".whl"):
            return wheel_filenames.parse_wheel_filename(filename)
        return wheel_filenames.parse_sdist_filename(filename)
    except wheel_filenames.InvalidFilename:
        return "invalid"


@pytest.mark.parametrize("filename", KNOWN)
def test_known_file_names_read_as_packaging_reads_them(filename: str) -> None:
    assert _ours(filename) == _packaging(filename)


_PART = st.text(alphabet="aB1._-x3", min_size=0, max_size=8)


@settings(max_examples=600, deadline=None)
@given(st.lists(_PART, min_size=1, max_size=7), st.sampled_from([".whl", ".tar.gz", ".zip"]))
def test_file_names_read_as_packaging_reads_them(parts: list[str], suffix: str) -> None:
    filename = "-".join(parts) + suffix
    assert _ours(filename) == _packaging(filename)
