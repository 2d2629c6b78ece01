"""New private files without tempfile (reconciler.tempfiles): what mkstemp guarantees."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import tempfiles


def test_a_new_file_is_private_absolute_and_named_as_asked(tmp_path: Path) -> None:
    fd, path = tempfiles.mkstemp("reconciler-constraints-", ".txt", str(tmp_path))
    os.close(fd)
    made = Path(path)
    assert made.is_absolute() and made.parent == tmp_path
    assert made.name.startswith("reconciler-constraints-") and made.name.endswith(".txt")
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    other_fd, other = tempfiles.mkstemp("reconciler-constraints-", ".txt", str(tmp_path))
    os.close(other_fd)
    assert other != path


def test_a_name_taken_is_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names: Iterator[bytes] = iter([b"\0" * 6, b"\0" * 6, b"\1" * 6])
    monkeypatch.setattr(os, "urandom", lambda n: next(names))
    first_fd, first = tempfiles.mkstemp("x-", ".tmp", str(tmp_path))
    os.write(first_fd, b"first")
    os.close(first_fd)
    second_fd, second = tempfiles.mkstemp("x-", ".tmp", str(tmp_path))
    os.close(second_fd)
    assert second != first and Path(first).read_bytes() == b"first"


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a process where tempfile has not chosen a directory yet (pytest's has)."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)


@pytest.mark.usefixtures("fresh_process")
def test_the_temporary_directory_is_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    fd, path = tempfiles.mkstemp("x-", ".txt")
    os.close(fd)
    assert Path(path).parent == tmp_path


@pytest.mark.usefixtures("fresh_process")
def test_an_unusable_tmpdir_leaves_the_choice_to_tempfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setenv("TMPDIR", str(missing))
    fd, path = tempfiles.mkstemp("x-", ".txt")
    os.close(fd)
    assert Path(path).is_file() and Path(path).parent != missing
    os.unlink(path)


def test_a_directory_asked_for_that_cannot_hold_it_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        tempfiles.mkstemp("x-", ".txt", str(tmp_path / "missing"))


def test_a_temporary_directory_tempfile_has_settled_on_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a process that set ``tempfile.tempdir`` (a kernel running the magic), the file
    goes there, as tempfile.mkstemp would put it."""
    import tempfile

    chosen = tmp_path / "chosen"
    chosen.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(chosen))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    fd, path = tempfiles.mkstemp("x-", ".txt")
    os.close(fd)
    assert Path(path).parent == chosen


def test_replace_file_renames_a_whole_new_file_over_the_old(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "record"
    tempfiles.replace_file(str(target), b"first", ".record.")  # the directory is made
    old = target.stat().st_ino
    tempfiles.replace_file(str(target), b"second", ".record.")
    assert target.read_bytes() == b"second" and target.stat().st_ino != old
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["record"]


def test_replace_file_leaves_the_old_file_and_no_new_one_when_it_fails(tmp_path: Path) -> None:
    target = tmp_path / "record"
    target.mkdir()  # a directory where the file would go: the rename fails
    with pytest.raises(OSError):
        tempfiles.replace_file(str(target), b"data", ".record.")
    assert target.is_dir() and [p.name for p in tmp_path.iterdir()] == ["record"]


def test_new_file_holds_the_data_privately_in_the_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    path = Path(tempfiles.new_file("reconciler-constraints-", ".txt", b"alpha==1.0\n"))
    assert path.parent == tmp_path and path.name.startswith("reconciler-constraints-")
    assert path.read_bytes() == b"alpha==1.0\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
