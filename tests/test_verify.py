"""Verify after an install reads in full only the protected RECORDs that may list a
written path (reconciler.apply.verify), and finds what parsing every one finds.

The environments here are site-packages trees written file by file: every RECORD
layout below is one a hand, a tool or an old installer can leave behind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.apply import record_heads, verify
from reconciler.apply.record_heads import RecordHeads
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
    """The 40 bulk distributions share no row head with what was written: their RECORDs
    are never parsed row by row (the cost of verifying on an image)."""
    parsed = _counting_parses(monkeypatch)
    written, protected = _split(installed)
    verify.overwritten(installed, written, protected)
    # The near misses whose rows start like a written path's are parsed too;
    # prefix-of-path's row starts with another name (top.py.orig).
    near_misses = {"same-dir", "same-bytes", "no-hash"}
    assert sorted(parsed) == sorted({n for n, _ in OVERWRITTEN} | near_misses)


def test_a_written_path_whose_head_a_row_may_not_end_with_parses_every_record(
    installed: InstalledState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A written path with a comma in its first directory: a row listing it is quoted,
    and row heads cannot rule a RECORD out. Every protected one is parsed; the answer
    is the same."""
    site = installed.site_packages
    assert site is not None
    odd = "odd,dir/x.py"
    (site / "odd,dir").mkdir()
    (site / odd).write_bytes(NEW)
    record = "\n".join(_row(p, NEW) for p in WRITTEN) + f'\n"{odd}",{_hash(NEW)},{len(NEW)}\n'
    _dist(site, "newpkg", record)
    state = read_state(site.parent.parent.parent)
    parsed = _counting_parses(monkeypatch)
    written, protected = _split(state)
    found = verify.overwritten(state, written, protected)
    assert {(d.name, path) for d, path in found} == OVERWRITTEN
    assert sorted(parsed) == sorted(d.name for d in protected)


def _counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the distributions whose RECORDs verification parses, as it does."""
    parsed: list[str] = []
    real = verify.changed_files

    def counting(*args: object, **kwargs: object) -> list[str]:
        parsed.append(args[1].name)  # type: ignore[attr-defined]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(verify, "changed_files", counting)
    return parsed


def _settled() -> None:
    """Wait until every file made so far is older than the clock slack of a read."""
    import time

    time.sleep(record_heads.SLACK_NS / 1e9 + 0.02)


def _kept(
    state: InstalledState, path: Path | None
) -> tuple[list[Distribution], list[Distribution], RecordHeads]:
    """:func:`_split`, and the protected RECORDs' heads read (as while the installer runs)."""
    written, protected = _split(state)
    heads = RecordHeads(path)
    heads.warm(str(state.site_packages), [d.directory for d in protected])
    return written, protected, heads


def test_records_whose_heads_are_kept_are_not_read_again(
    installed: InstalledState, tmp_path: Path
) -> None:
    """Heads read ahead (while the installer runs), or by an earlier apply and kept in
    the state dir, answer for any written paths while each RECORD's stat holds; the
    overwritten files are those a full parse finds."""
    _settled()
    kept = tmp_path / "record-heads.json"
    written, protected, heads = _kept(installed, kept)
    assert heads.reads == len(protected)
    found = verify.overwritten(installed, written, protected, heads)
    assert found == files.overwritten(installed, written, protected)
    assert {(d.name, path) for d, path in found} == OVERWRITTEN
    assert heads.reads == len(protected)
    heads.save()
    later = RecordHeads(kept)
    assert verify.overwritten(installed, written, protected, later) == found
    assert later.reads == 0


def test_a_record_replaced_under_its_old_size_and_mtime_is_read_again(
    installed: InstalledState, tmp_path: Path
) -> None:
    """Other bytes of the same size, the mtime set back (``cp -p``, ``rsync -t``) and
    renamed into place: only the ctime tells, and the RECORD is read again."""
    _settled()
    kept = tmp_path / "record-heads.json"
    written, protected, heads = _kept(installed, kept)
    heads.save()
    record = installed.site_packages / "bulk_0-1.0.dist-info" / "RECORD"  # type: ignore[operator]
    text = record.read_bytes()
    first = text.split(b"\n", 1)[0]
    swapped = _row("shared/a.py", OLD).encode().ljust(len(first), b" ")[: len(first)]
    replacement = tmp_path / "RECORD"
    replacement.write_bytes(swapped + text[len(first) :])
    st = record.stat()
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    replacement.replace(record)
    assert (record.stat().st_size, record.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    later = RecordHeads(kept)
    found = verify.overwritten(installed, written, protected, later)
    assert ("bulk-0", "shared/a.py") in {(d.name, path) for d, path in found}
    assert found == files.overwritten(installed, written, protected)
    assert later.reads == 1
    # The same in the process that read the heads ahead (its answers kept in memory).
    reads = heads.reads
    assert verify.overwritten(installed, written, protected, heads) == found
    assert heads.reads == reads + 1


def test_records_given_new_ctimes_with_the_same_bytes_are_hashed_not_parsed(
    installed: InstalledState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host that unpacked the image anew: every RECORD has the size and mtime kept and
    a new ctime. Each is read again, and its bytes' CRC-32 matches the one kept, so its
    heads are the ones kept (no row is looked at), then kept under the new ctime."""
    _settled()
    kept = tmp_path / "record-heads.json"
    written, protected, heads = _kept(installed, kept)
    heads.save()
    found = files.overwritten(installed, written, protected)
    for dist in protected:
        record = installed.site_packages / dist.directory / "RECORD"  # type: ignore[operator]
        record.chmod(record.stat().st_mode)  # the ctime only
    _settled()
    parsed: list[bytes] = []
    real = record_heads.heads_of

    def counting(data: bytes) -> frozenset[bytes] | None:
        parsed.append(data)
        return real(data)

    monkeypatch.setattr(record_heads, "heads_of", counting)
    later = RecordHeads(kept)
    assert verify.overwritten(installed, written, protected, later) == found
    assert (later.reads, parsed) == (len(protected), [])
    later.save()
    again = RecordHeads(kept)
    assert verify.overwritten(installed, written, protected, again) == found
    assert again.reads == 0  # kept under the new ctimes


def test_a_record_changed_after_its_heads_were_kept_is_read_again(
    installed: InstalledState,
) -> None:
    """A bulk RECORD rewritten in place, to the same size, now lists a written path with
    another hash: verification sees the new bytes."""
    _settled()
    written, protected, heads = _kept(installed, None)
    record = installed.site_packages / "bulk_0-1.0.dist-info" / "RECORD"  # type: ignore[operator]
    text = record.read_bytes()
    first = text.split(b"\n", 1)[0]
    swapped = _row("shared/a.py", OLD).encode().ljust(len(first), b" ")[: len(first)]
    assert len(swapped) == len(first) and swapped.startswith(b"shared/a.py,sha256=")
    with record.open("r+b") as f:  # the same inode and size: only its times tell
        f.write(swapped)
    before = heads.reads
    found = verify.overwritten(installed, written, protected, heads)
    assert ("bulk-0", "shared/a.py") in {(d.name, path) for d, path in found}
    assert heads.reads == before + 1


def test_records_changed_just_before_they_were_read_are_not_kept(
    installed: InstalledState, tmp_path: Path
) -> None:
    # Made within the clock slack of the read: their times cannot show a later change.
    # (Touched now: writing the fixture's 43 RECORDs may itself outlast the slack.)
    for dist in installed.dists.values():
        os.utime(Path(str(installed.site_packages)) / dist.directory / "RECORD")
    kept = tmp_path / "record-heads.json"
    written, protected, heads = _kept(installed, kept)
    found = verify.overwritten(installed, written, protected, heads)
    assert {(d.name, path) for d, path in found} == OVERWRITTEN
    assert heads.reads == 2 * len(protected)
    heads.save()
    assert not kept.exists()


def test_a_damaged_heads_file_is_read_as_none_kept(
    installed: InstalledState, tmp_path: Path
) -> None:
    _settled()
    kept = tmp_path / "record-heads.json"
    written, protected, heads = _kept(installed, kept)
    heads.save()
    data = json.loads(kept.read_text())
    site = str(installed.site_packages)
    for entry in data["sites"][site].values():
        entry[3] = ["\u0100/"] if entry[3] is None else 7  # not what save writes
    kept.write_text(json.dumps(data))
    later = RecordHeads(kept)
    assert verify.overwritten(installed, written, protected, later) == files.overwritten(
        installed, written, protected
    )
    assert later.reads == len(protected)
    kept.write_text("{not json")
    again = RecordHeads(kept)
    assert verify.overwritten(installed, written, protected, again) == files.overwritten(
        installed, written, protected
    )


def test_only_the_records_asked_about_are_kept_for_their_site_packages(
    installed: InstalledState, tmp_path: Path
) -> None:
    """A RECORD no longer asked about (removed, or now owned) leaves the file; another
    site-packages' RECORDs stay."""
    _settled()
    kept = tmp_path / "record-heads.json"
    site = str(installed.site_packages)
    _, protected, heads = _kept(installed, kept)
    heads.save()
    data = json.loads(kept.read_text())
    data["sites"]["/elsewhere/site-packages"] = {"x-1.0.dist-info": [1, 2, 3, None]}
    kept.write_text(json.dumps(data))
    later = RecordHeads(kept)
    later.warm(site, [d.directory for d in protected[1:]])
    later.save()
    saved = json.loads(kept.read_text())["sites"]
    assert sorted(saved[site]) == sorted(d.directory for d in protected[1:])
    assert saved["/elsewhere/site-packages"] == {"x-1.0.dist-info": [1, 2, 3, None]}


# -- row heads: what a line-start search of each row finds --------------------------------


def _head(row: bytes) -> bytes | None:
    """A row's head, read plainly: see reconciler.apply.record_heads."""
    path = row.split(b",", 1)[0]
    if b"," not in row and not (b"/" in row and not row.startswith(b"../")):
        return None
    if row.startswith(b"../"):
        return path + b"," if b"," in row else None
    first, slash, _ = path.partition(b"/")
    return first + b"/" if slash else path + b","


_ROW_TEXT = st.text(alphabet='ab./,_-\n\r"\x0c\u00e9\u2028', max_size=60)
_PATH = st.text(alphabet="ab./_-,\u00e9", min_size=1, max_size=12)


@settings(max_examples=400, deadline=None)
@given(_ROW_TEXT, st.lists(_PATH, max_size=4))
def test_row_heads_answer_what_a_line_start_search_answers(text: str, paths: list[str]) -> None:
    data = text.encode()
    found = record_heads.heads_of(data)
    rows = data.split(b"\n")
    unsure = (
        any(c in data for c in (b'"', b"\x0c")) or "\u2028" in text
        or data.count(b"\r") != data.count(b"\r\n")
    )  # fmt: skip
    assert (found is None) == unsure
    if found is None:
        return
    assert found == {h for h in map(_head, rows) if h is not None}
    for head in record_heads.row_heads(paths):
        if record_heads.simple_head(head):
            assert (head in found) == any(row.startswith(head) for row in rows)


def test_row_heads_pass_over_rows_in_any_order() -> None:
    rows = [f"{'ab'[i % 2]}{i % 7}/m{i}.py,sha256=x,1" for i in range(2000)] + ["top.py,,"]
    data = ("\n".join(rows) + "\n").encode()
    assert record_heads.heads_of(data) == {f"{c}{n}/".encode() for c in "ab" for n in range(7)} | {
        b"top.py,"
    }
