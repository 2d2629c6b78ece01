"""Verify after an install reads in full only the protected RECORDs that may list a
written path (reconciler.apply.verify), and finds what parsing every one finds.

The environments here are site-packages trees written file by file: every RECORD
layout below is one a hand, a tool or an old installer can leave behind.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from reconciler.apply import verify
from reconciler.state import files
from reconciler.state.environment import InstalledState, read_state
from reconciler.state.python import Distribution
from tests.support.manifests import SITE, write_dist_info

OLD, NEW = b"old\n", b"new content\n"


def _hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _row(path: str, data: bytes) -> str:
    return f"{path},{_hash(data)},{len(data)}"


def _dist(site: Path, name: str, record: str) -> None:
    info = write_dist_info(site, name, "1.0")
    (info / "RECORD").write_bytes(record.encode("utf-8"))


#: What the just-installed ``newpkg`` wrote (each file now holds NEW).
WRITTEN = ("shared/a.py", "top.py", "../../../bin/tool", "newpkg/__init__.py")

#: Protected distributions: each lists one written path with the hash of OLD (so it
#: was overwritten) in another layout, or is a near miss that was not overwritten.
PROTECTED = {
    "first-row": _row("shared/a.py", OLD) + "\nfirst_row/x.py,,\n",
    "middle-row": "middle_row/x.py,,\n" + _row("shared/a.py", OLD) + "\n",
    "crlf-rows": "crlf_rows/x.py,,\r\n" + _row("top.py", OLD) + "\r\n",
    "cr-rows": "cr_rows/x.py,,\r" + _row("top.py", OLD) + "\r",
    "quoted-row": f'cr_rows/y.py,,\n"top.py",{_hash(OLD)},{len(OLD)}\n',
    "script-row": "script_row/x.py,,\n" + _row("../../../bin/tool", OLD) + "\n",
    "form-feed": "form_feed/x.py,,\x0c" + _row("newpkg/__init__.py", OLD) + "\n",
    "unicode-break": "uni/\u00e9.py,,\u2028" + _row("newpkg/__init__.py", OLD) + "\n",
    "no-final-newline": "nfn/x.py,,\n" + _row("shared/a.py", OLD),
    # Near misses: the same directory but another file; the same bytes; no hash.
    "same-dir": "same_dir/x.py,,\n" + _row("shared/b.py", OLD) + "\n",
    "same-bytes": "same_bytes/x.py,,\n" + _row("top.py", NEW) + "\n",
    "no-hash": "no_hash/x.py,,\nshared/a.py,,\n",
    "prefix-of-path": "pp/x.py,,\n" + _row("top.py.orig", OLD) + "\n",
}

OVERWRITTEN = {
    ("first-row", "shared/a.py"),
    ("middle-row", "shared/a.py"),
    ("crlf-rows", "top.py"),
    ("cr-rows", "top.py"),
    ("quoted-row", "top.py"),
    ("script-row", "bin/tool"),
    ("form-feed", "newpkg/__init__.py"),
    ("unicode-break", "newpkg/__init__.py"),
    ("no-final-newline", "shared/a.py"),
}


@pytest.fixture
def installed(tmp_path: Path) -> InstalledState:
    prefix = tmp_path / "env"
    site = prefix / SITE
    site.mkdir(parents=True)
    (prefix / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.7\n", encoding="utf-8")
    for path in WRITTEN:
        target = site / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(NEW)
    _dist(site, "newpkg", "\n".join(_row(p, NEW) for p in WRITTEN) + "\n")
    for name, record in PROTECTED.items():
        _dist(site, name, record)
    for n in range(40):  # the bulk of an image: nothing in common with what was written
        _dist(site, f"bulk-{n}", "".join(_row(f"bulk_{n}/m{i}.py", OLD) + "\n" for i in range(50)))
    return read_state(prefix)


def _split(state: InstalledState) -> tuple[list[Distribution], list[Distribution]]:
    written = [state.dists["newpkg"]]
    return written, [d for d in state.dists.values() if d.name != "newpkg"]


def test_the_overwritten_files_are_those_a_full_parse_finds(installed: InstalledState) -> None:
    written, protected = _split(installed)
    found = verify.overwritten(installed, written, protected)
    assert {(d.name, path) for d, path in found} == OVERWRITTEN
    assert found == files.overwritten(installed, written, protected)


def test_only_records_that_may_list_a_written_path_are_parsed(
    installed: InstalledState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 40 bulk distributions share no row start with what was written: their RECORDs
    are searched once, never parsed row by row (the cost of verifying on an image)."""
    parsed: list[str] = []
    real = verify.changed_files

    def counting(*args: object, **kwargs: object) -> list[str]:
        parsed.append(args[1].name)  # type: ignore[attr-defined]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(verify, "changed_files", counting)
    written, protected = _split(installed)
    verify.overwritten(installed, written, protected)
    # The near misses whose rows start like a written path's are parsed too;
    # prefix-of-path's row starts with another name (top.py.orig).
    near_misses = {"same-dir", "same-bytes", "no-hash"}
    assert sorted(parsed) == sorted({n for n, _ in OVERWRITTEN} | near_misses)


def test_a_written_wheel_with_very_many_top_level_names_parses_every_record(
    installed: InstalledState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "_MAX_HEADS", 2)
    written, protected = _split(installed)
    found = verify.overwritten(installed, written, protected)
    assert {(d.name, path) for d, path in found} == OVERWRITTEN


def _read_ahead(
    state: InstalledState,
) -> tuple[list[Distribution], list[Distribution], verify.RecordScan]:
    """:func:`_split`, and a read-ahead of the protected RECORDs for :data:`WRITTEN`
    started (as while the installer runs)."""
    written, protected = _split(state)
    scan = verify.RecordScan(state, protected, WRITTEN)
    assert scan.begin()
    return written, protected, scan


def _settled() -> None:
    """Wait until every file made so far is older than the read-ahead's clock slack."""
    import time

    time.sleep(verify.RecordScan.SLACK_NS / 1e9 + 0.02)


def _counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    read: list[str] = []
    real = verify._may_list

    def counting(state: InstalledState, dist: Distribution, *args: object) -> bool:
        read.append(dist.name)
        return real(state, dist, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(verify, "_may_list", counting)
    return read


def test_records_read_while_installing_give_the_same_answer_unread_again(
    installed: InstalledState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RECORDs read ahead (as while the installer runs) and unchanged since are not
    read again after it; the overwritten files are those a full parse finds."""
    _settled()
    written, protected, scan = _read_ahead(installed)
    read = _counting_reads(monkeypatch)
    found = verify.overwritten(installed, written, protected, scan)
    assert {(d.name, path) for d, path in found} == OVERWRITTEN
    assert found == files.overwritten(installed, written, protected)
    assert read == []


def test_a_record_changed_after_it_was_read_ahead_is_read_again(
    installed: InstalledState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk RECORD rewritten after the read-ahead, in place and to the same size, now
    lists a written path with another hash: verification sees the new bytes."""
    _settled()
    written, protected, scan = _read_ahead(installed)
    scan.answers(verify._row_heads(WRITTEN))  # the read-ahead is over
    record = installed.site_packages / "bulk_0-1.0.dist-info" / "RECORD"  # type: ignore[operator]
    text = record.read_bytes()
    first = text.split(b"\n", 1)[0]
    swapped = _row("shared/a.py", OLD).encode().ljust(len(first), b" ")[: len(first)]
    assert len(swapped) == len(first) and swapped.startswith(b"shared/a.py,sha256=")
    with record.open("r+b") as f:  # the same inode and size: only its times tell
        f.write(swapped)
    read = _counting_reads(monkeypatch)
    found = verify.overwritten(installed, written, protected, scan)
    assert ("bulk-0", "shared/a.py") in {(d.name, path) for d, path in found}
    assert read == ["bulk-0"]


def test_records_changed_just_before_the_read_ahead_are_read_again(
    installed: InstalledState, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Made within the clock slack of the read: their times cannot show a later change.
    written, protected, scan = _read_ahead(installed)
    read = _counting_reads(monkeypatch)
    found = verify.overwritten(installed, written, protected, scan)
    assert {(d.name, path) for d, path in found} == OVERWRITTEN
    assert sorted(read) == sorted(d.name for d in protected)


def test_a_write_the_read_ahead_did_not_expect_reads_every_record_again(
    installed: InstalledState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-ahead searched for the planned wheel's paths; the installed one wrote
    another top-level name too (shared/): its answers cannot rule a RECORD out."""
    _settled()
    written, protected = _split(installed)
    scan = verify.RecordScan(installed, protected, [p for p in WRITTEN if p != "shared/a.py"])
    assert scan.begin()
    read = _counting_reads(monkeypatch)
    found = verify.overwritten(installed, written, protected, scan)
    assert {(d.name, path) for d, path in found} == OVERWRITTEN
    assert sorted(read) == sorted(d.name for d in protected)
