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


def _dead_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_new_file_is_named_by_its_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    path = Path(tempfiles.new_file(tempfiles.LOCKED, ".txt", b"alpha==1.0\n"))
    assert path.name.startswith(f"{tempfiles.LOCKED}{os.getpid()}-")


def test_leftovers_of_a_killed_process_are_removed_once_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A constraints or locked file whose process is gone and that is older than a day is
    removed; one of a live process (this one, its parent), a new one, one without a pid,
    another user's kind of file, a directory or a link of such a name are kept."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    dead = _dead_pid()
    old = os.path.getmtime(tmp_path) - tempfiles.LEFTOVER_SECONDS - 60
    names = {
        f"{tempfiles.CONSTRAINTS}{dead}-00aa11bb22cc.txt": True,
        f"{tempfiles.LOCKED}{dead}-00aa11bb22cc.txt": True,
        f"{tempfiles.CONSTRAINTS}{os.getpid()}-00aa11bb22cc.txt": False,
        f"{tempfiles.CONSTRAINTS}{os.getppid()}-00aa11bb22cc.txt": False,
        f"{tempfiles.CONSTRAINTS}00aa11bb22cc.txt": False,  # named before pids were
        f"{tempfiles.CONSTRAINTS}{dead}-00aa11bb22cc.json": False,
        f"other-{dead}-00aa11bb22cc.txt": False,
    }
    for name in names:
        (tmp_path / name).write_text("alpha==1.0\n", encoding="utf-8")
        os.utime(tmp_path / name, (old, old))
    fresh = tmp_path / f"{tempfiles.CONSTRAINTS}{dead}-33dd44ee55ff.txt"
    fresh.write_text("alpha==1.0\n", encoding="utf-8")
    directory = tmp_path / f"{tempfiles.CONSTRAINTS}{dead}-66aa77bb88cc.txt"
    directory.mkdir()
    link = tmp_path / f"{tempfiles.LOCKED}{dead}-99aa00bb11cc.txt"
    link.symlink_to(tmp_path / "elsewhere")
    for made in (directory, link):
        os.utime(made, (old, old), follow_symlinks=False)

    assert tempfiles.remove_leftovers() == 2

    left = {p.name for p in tmp_path.iterdir()}
    assert left == {n for n, gone in names.items() if not gone} | {
        fresh.name,
        directory.name,
        link.name,
    }


def test_names_anyone_may_give_a_file_in_the_directory_are_kept_without_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared temporary directory holds what others name: a pid no process can have,
    digits that are not ASCII, a pid too long, this user's or not; none raises, none is
    removed (only new_file's own names of a dead process are)."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    old = os.path.getmtime(tmp_path) - tempfiles.LEFTOVER_SECONDS - 60
    for pid in ("99999999999999999999", "9999999999", "\u00b2", "\u0663\u0664", "-5", ""):
        made = tmp_path / f"{tempfiles.CONSTRAINTS}{pid}-00aa11bb22cc.txt"
        made.write_text("alpha==1.0\n", encoding="utf-8")
        os.utime(made, (old, old))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert tempfiles.remove_leftovers() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_apply_that_installs_removes_the_leftovers(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What an apply killed by SIGKILL left in the temporary directory (its constraints
    file) is removed by the next apply that installs, which leaves none of its own."""
    from tests.support.envs import make_venv
    from tests.support.manifests import run_cli, write_manifest

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temporary))
    left = temporary / f"{tempfiles.CONSTRAINTS}{_dead_pid()}-00aa11bb22cc.txt"
    left.write_text("alpha==1.0\n", encoding="utf-8")
    old = os.path.getmtime(left) - tempfiles.LEFTOVER_SECONDS - 60
    os.utime(left, (old, old))
    venv = make_venv(tmp_path / "venv")
    manifest = write_manifest(
        tmp_path / "m.yaml", {"main": {"prefix": venv, "pip": ["delta"]}}, wheelhouse=wheelhouse
    )

    code, out, err = run_cli(capsys, "--state-dir", tmp_path / "state", "apply", manifest)

    assert (code, err) == (0, ""), out + err
    assert list(temporary.iterdir()) == []
