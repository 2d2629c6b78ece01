"""reconciler.state.python reads METADATA headers with raw ``os.read``: the same answers
as a text-mode line reader (UTF-8 with replacement, universal newlines) on every shape
of file, the awkward ones included."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.state.python import _CHUNK, read_distributions, read_metadata_headers


def _text_mode_reference(path: Path) -> tuple[str, str, tuple[str, ...]] | None:
    """The line-by-line text-mode reader that read_metadata_headers replaced."""
    name = version = ""
    requires: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line in ("\n", "\r\n"):
                    break
                if line[:1] in (" ", "\t"):
                    continue
                key, sep, value = line.partition(":")
                if not sep:
                    continue
                key = key.lower()
                if key == "name":
                    name = value.strip()
                elif key == "version":
                    version = value.strip()
                elif key == "requires-dist":
                    requires.append(value.strip())
    except OSError:
        return None
    if not name or not version:
        return None
    return name, version, tuple(requires)


HEAD = b"Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.0\nRequires-Dist: alpha>=1\n"
LONG = b"Summary: " + b"x" * (_CHUNK + 100) + b"\n"

CASES = {
    "plain": HEAD + b"\nName: body-is-not-headers\nRequires-Dist: nope\n",
    "no body, no final newline": HEAD.rstrip(b"\n"),
    "crlf": HEAD.replace(b"\n", b"\r\n") + b"\r\nRequires-Dist: nope\r\n",
    "lone cr": HEAD.replace(b"\n", b"\r") + b"\rRequires-Dist: nope\r",
    "cr then crlf blank line": HEAD.replace(b"\n", b"\r") + b"\r\nRequires-Dist: nope\n",
    "lf then crlf blank line": HEAD + b"\r\nRequires-Dist: nope\n",
    "bom": b"\xef\xbb\xbf" + HEAD,
    "name first after bom": b"\xef\xbb\xbfName: a\nVersion: 1\n",
    "folded": HEAD + b"Summary: one\n  Requires-Dist: folded-not-a-header\n\tName: no\n\nx\n",
    "blank first line": b"\n" + HEAD,
    "whitespace-only line is not the end": HEAD + b" \nRequires-Dist: beta\n\nRequires-Dist: no\n",
    "invalid utf-8": b"Name: caf\xe9\nVersion: 1.0\xff\n\n\xfe\n",
    "headers past the first chunk": LONG + HEAD + b"\nRequires-Dist: nope\n",
    "multibyte at the chunk edge": b"Name: a\nSummary: " + b"y" * (_CHUNK - 18) + "é€".encode()
    + b"\nVersion: 2\n\nbody",
    "crlf split at the chunk edge": b"Name: a\nSummary: " + b"z" * (_CHUNK - 18)
    + b"\r\n\r\nVersion: 9\n",
    "blank line after the first chunk": LONG + b"Name: late\nVersion: 3\n\nVersion: 4\n",
    "body of many chunks": HEAD + b"\n" + b"long description\n" * 10_000,
    "empty": b"",
    "no name": b"Version: 1.0\n",
    "separator-less lines": b"garbage\nName: g\nVersion: 1\n",
    "spaces around the colon": b"Name : spaced\nName:  x \nVersion:\t5 \n",
}  # fmt: skip


@pytest.mark.parametrize("content", list(CASES.values()), ids=list(CASES))
def test_headers_as_a_text_mode_reader_reads_them(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "METADATA"
    path.write_bytes(content)
    assert read_metadata_headers(path) == _text_mode_reference(path)


def test_headers_of_what_is_not_a_readable_file(tmp_path: Path) -> None:
    assert read_metadata_headers(tmp_path / "missing") is None
    assert read_metadata_headers(tmp_path) is None  # a directory


def test_installer_text_as_text_mode_reads_it(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    for name, installer in (("a", b"pip\r\n"), ("b", b" uv \r x\r\n"), ("c", b"")):
        info = site / f"{name}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_bytes(f"Name: {name}\nVersion: 1.0\n".encode())
        (info / "INSTALLER").write_bytes(installer)
    dists = read_distributions(site)
    assert [dists[n].installer for n in "abc"] == ["pip", "uv \n x", ""]
