"""reconciler.state.python at scale: METADATA headers read with raw ``os.read`` give the
same answers as a text-mode line reader (UTF-8 with replacement, universal newlines) on
every shape of file, and the read cache's per-directory tables (site-packages and
conda-meta) follow every change."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import reconciler.state.conda as conda_module
import reconciler.state.python as python_module
from reconciler.state.cache import ReadCache
from reconciler.state.conda import read_conda_records
from reconciler.state.python import _CHUNK, read_distributions, read_metadata_headers
from reconciler.state.store import StateStore
from tests.support.manifests import write_dist_info


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
    "keys in any case": b"NAME: Up\nvErSiOn: 1\nREQUIRES-DIST: a\nrequires-dist: b; x == ':'\n",
    "lookalike keys": "N\u0391ME: greek\nName: n\nVERSİON: 2\nVersion: 1\n"
    "\u212aey: kelvin\n".encode(),
    "many classifiers": HEAD + b"".join(b"Classifier: T :: %d\n" % i for i in range(400)) + b"\n",
    "form feed and line separator": "Name: a\x0cVersion: 9\nVersion: 1\u2028Name: b\n".encode(),
    "empty values": b"Name:\nVersion: 1\n",
    "a name without a colon": b"Name foo\nName: bar\nVersion: 1\n",
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


# -- the read cache's site-packages tables ---------------------------------------------------


def _bump(path: Path) -> None:
    """A later mtime, as the next install would leave (file systems with coarse mtimes)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_site_table_follows_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site-packages"
    write_dist_info(site, "alpha", "1.0", ["beta>=1"], installer="pip")
    beta = write_dist_info(site, "beta", "2.0")
    store = StateStore(tmp_path / "state")
    reads: list[str] = []
    original = python_module._dist_info

    def counted(fd: int, entry: str) -> Any:
        reads.append(entry)
        return original(fd, entry)

    monkeypatch.setattr(python_module, "_dist_info", counted)

    def read() -> tuple[dict[str, Any], ReadCache]:
        cache = store.read_cache()
        dists = read_distributions(site, cache)
        store.save_read_cache(cache)
        return {
            n: (d.version, d.requires, d.installer, d.editable) for n, d in dists.items()
        }, cache

    first, cache = read()
    assert first == {"alpha": ("1.0", ("beta>=1",), "pip", False), "beta": ("2.0", (), "", False)}
    assert (sorted(reads), cache.changed) == (["alpha-1.0.dist-info", "beta-2.0.dist-info"], True)

    reads.clear()
    again, cache = read()
    assert (again, reads, cache.changed) == (first, [], False)

    # A file added to a dist-info changes its directory's mtime: that one is read again.
    (beta / "direct_url.json").write_text(
        json.dumps({"url": "file:///x", "dir_info": {"editable": True}})
    )
    _bump(beta)
    edited, cache = read()
    assert (edited["beta"], reads, cache.changed) == (
        ("2.0", (), "", True),
        ["beta-2.0.dist-info"],
        True,
    )

    # A removed dist-info leaves the table; the other entries stay cached.
    reads.clear()
    for f in beta.iterdir():
        f.unlink()
    beta.rmdir()
    gone, cache = read()
    assert (sorted(gone), reads, cache.changed) == (["alpha"], [], True)
    assert list(store.read_cache().dists[str(site)]) == ["alpha-1.0.dist-info"]


def test_a_cache_of_the_earlier_layout_is_read_afresh(tmp_path: Path) -> None:
    """Before the per-directory tables, ``dists`` was keyed by the dist-info's full path."""
    site = tmp_path / "site-packages"
    info = write_dist_info(site, "alpha", "1.0")
    stamp = info.stat().st_mtime_ns
    old = {str(info): [[stamp], ["alpha", "alpha", "9.9", [], "", False]]}
    store = StateStore(tmp_path / "state")
    (store.root / "cache").mkdir(parents=True)
    (store.root / "cache" / "read-cache.json").write_text(
        json.dumps({"format": 1, "records": {}, "dists": old, "matches": {}})
    )
    cache = store.read_cache()
    assert read_distributions(site, cache)["alpha"].version == "1.0"
    assert cache.changed
    store.save_read_cache(cache)
    assert store.read_cache().dists == {
        str(site): {info.name: [stamp, "alpha", "alpha", "1.0", [], "", False]}
    }


def _record(prefix: Path, nvb: str, depends: list[str]) -> Path:
    path = prefix / "conda-meta" / f"{nvb}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"depends": depends, "channel": "local", "files": []}))
    return path


def test_conda_table_follows_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each conda-meta directory has its table: a changed record is read again, a removed
    one leaves the table, and a prefix nested in another (an env under /opt/conda/envs)
    keeps its own."""
    outer, nested = tmp_path / "conda", tmp_path / "conda" / "envs" / "x"
    _record(outer, "zlib-1.3-h0", [])
    openssl = _record(outer, "openssl-3.0-h1", ["zlib"])
    _record(nested, "zlib-1.2-h0", [])
    store = StateStore(tmp_path / "state")
    parsed: list[str] = []
    original = conda_module._read_details
    monkeypatch.setattr(conda_module, "_read_details", lambda p: parsed.append(p) or original(p))

    def read(prefix: Path) -> tuple[dict[str, tuple[str, ...]], bool]:
        cache = store.read_cache()
        _, details = read_conda_records(prefix, cache)
        store.save_read_cache(cache)
        return {n: d.depends for n, d in details.items()}, cache.changed

    assert read(outer) == ({"zlib": (), "openssl": ("zlib",)}, True)
    assert read(nested) == ({"zlib": ()}, True)
    parsed.clear()
    assert read(outer) == ({"zlib": (), "openssl": ("zlib",)}, False)
    assert parsed == []

    openssl.write_text(json.dumps({"depends": ["zlib >=1.3"], "files": []}))  # another size
    assert read(outer) == ({"zlib": (), "openssl": ("zlib >=1.3",)}, True)
    assert parsed == [str(openssl)]
    openssl.unlink()
    assert read(outer) == ({"zlib": ()}, True)
    tables = store.read_cache().records
    assert {d: sorted(t) for d, t in tables.items()} == {
        str(outer / "conda-meta"): ["zlib-1.3-h0.json"],
        str(nested / "conda-meta"): ["zlib-1.2-h0.json"],
    }
    # A cache of the earlier layout (one entry per record path) is taken over, its stamps
    # checked as any entry's.
    zlib = outer / "conda-meta" / "zlib-1.3-h0.json"
    stamp = [zlib.stat().st_mtime_ns, zlib.stat().st_size]
    earlier = {str(zlib): [stamp, [["kept"], "", []]]}
    earlier[str(openssl)] = [[1, 2], [[], "", []]]  # gone since
    earlier[str(nested / "conda-meta" / "zlib-1.2-h0.json")] = [[0, 2], [["stale"], "", []]]
    (store.root / "cache" / "read-cache.json").write_text(
        json.dumps({"format": 1, "records": earlier})
    )
    parsed.clear()
    assert read(outer) == ({"zlib": ("kept",)}, True)
    assert read(nested) == ({"zlib": ()}, True)
    assert parsed == [str(nested / "conda-meta" / "zlib-1.2-h0.json")]
    assert {d: sorted(t) for d, t in store.read_cache().records.items()} == {
        str(outer / "conda-meta"): ["zlib-1.3-h0.json"],
        str(nested / "conda-meta"): ["zlib-1.2-h0.json"],
    }


def test_a_read_again_of_an_unchanged_conda_meta_stats_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``again`` (the re-read after a pip install) takes this process's earlier read while
    conda-meta lists what it listed then; a record added, or a directory changed within
    the clock slack before the earlier read, and the records are read again."""
    prefix = tmp_path / "env"
    _record(prefix, "zlib-1.3-h0", [])
    time.sleep(conda_module.SLACK_NS / 1e9 + 0.01)  # changed longer than the slack ago
    stats: list[str] = []
    real_stat = os.stat

    def counting(path: Any, *args: Any, **kwargs: Any) -> Any:
        stats.append(str(path))
        return real_stat(path, *args, **kwargs)

    cache = ReadCache()
    first, _ = read_conda_records(prefix, cache)
    monkeypatch.setattr(conda_module.os, "stat", counting)
    again, details = read_conda_records(prefix, cache, again=True)
    assert again == first and stats == []
    assert read_conda_records(prefix, cache)[0] == first and stats == ["zlib-1.3-h0.json"]

    _record(prefix, "openssl-3.0-h1", ["zlib"])  # the directory changes: now
    stats.clear()
    records, details = read_conda_records(prefix, cache, again=True)
    assert sorted(records) == ["openssl", "zlib"] and len(stats) == 2
    assert details["openssl"].depends == ("zlib",)
    stats.clear()  # that read was within the slack of the change: it is not taken again
    assert sorted(read_conda_records(prefix, cache, again=True)[0]) == ["openssl", "zlib"]
    assert len(stats) == 2


def test_a_missing_site_packages_or_a_file_in_its_place_holds_nothing(tmp_path: Path) -> None:
    info = write_dist_info(tmp_path / "site-packages", "alpha", "1.0")
    assert read_distributions(tmp_path / "missing", ReadCache()) == {}
    assert read_distributions(info / "METADATA", ReadCache()) == {}


# -- baselines ------------------------------------------------------------------------------


def test_baseline_values_are_strings_even_when_hand_edited(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    prefix = tmp_path / "env"
    path = store.env_dir(prefix) / "baseline.json"
    path.parent.mkdir(parents=True)
    packages: dict[str, Any] = {
        "pip:alpha": {"name": "alpha", "manager": "pip", "version": "1.0", "build": ""},
        "pip:beta": {"name": "beta", "manager": "pip", "version": 2.5, "build": 0},
    }
    document = {"format": 1, "prefix": str(prefix), "captured_at": "t", "packages": packages}
    path.write_text(json.dumps(document))
    baseline = store.baseline(prefix)
    assert baseline is not None
    assert dict(baseline.packages) == {
        "pip:alpha": {"name": "alpha", "manager": "pip", "version": "1.0", "build": ""},
        "pip:beta": {"name": "beta", "manager": "pip", "version": "2.5", "build": "0"},
    }
    del packages["pip:beta"]
    path.write_text(json.dumps(document))
    again = store.baseline(prefix)
    assert again is not None and dict(again.packages) == {"pip:alpha": packages["pip:alpha"]}


# -- the fingerprint saved plans are checked against ------------------------------------------


def test_fingerprint_digest_is_the_one_saved_plans_hold(tmp_path: Path) -> None:
    """Hashed in one piece now; the digest must stay what plans saved before recorded."""
    import hashlib

    from reconciler.state.environment import read_state

    prefix = tmp_path / "env"
    site = prefix / "lib" / "python3.11" / "site-packages"
    write_dist_info(site, "Beta_Two", "2.0")
    write_dist_info(site, "alpha", "1.0+local")
    (prefix / "conda-meta").mkdir()
    (prefix / "conda-meta" / "zlib-1.3-h0.json").write_text("{}")
    (prefix / "conda-meta" / "abc-0.1-py_0.json").write_text("{}")
    (prefix / "conda-meta" / "pinned").write_text("zlib 1.3\nabc\n")
    h = hashlib.sha256()  # the line-by-line hashing the digest was defined by
    for filename in ("abc-0.1-py_0.json", "zlib-1.3-h0.json"):
        h.update(filename.encode() + b"\0")
    h.update(b"\1")
    h.update(b"alpha==1.0+local:alpha-1.0+local.dist-info\0")
    h.update(b"beta-two==2.0:Beta_Two-2.0.dist-info\0")
    h.update(b"\1" + b"zlib 1.3\nabc")
    assert read_state(prefix).fingerprint == h.hexdigest()
