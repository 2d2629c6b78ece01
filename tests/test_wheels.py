"""reconciler.backends.wheels: locating a resolved wheel and reading its RECORD.

Real files and a real HTTP index on 127.0.0.1 (tests/support/servers.py), with and
without range support.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.tags import sys_tags

from reconciler.backends import wheel_tags, wheels
from reconciler.backends.lazy_zip import CHUNK
from reconciler.backends.wheels import (
    WheelFile,
    locate_wheel,
    parse_record,
    read_record,
    target_tags,
)
from reconciler.errors import BackendError
from reconciler.manifest.model import PipSettings
from tests.support.envs import make_venv
from tests.support.servers import build_simple_index, serve
from tests.support.wheels import build_wheel, overwrite_in_place, record_hash

SYS_TAGS = tuple(sys_tags())
TAGS = tuple(str(t) for t in SYS_TAGS)  # as reconciler names tags: interpreter-abi-platform
PLATFORM = next(t.platform for t in SYS_TAGS if t.platform != "any")
INTERP = next(t.interpreter for t in SYS_TAGS if t.interpreter.startswith("cp"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _retagged(wheel: Path, tag: str) -> Path:
    """A copy of ``wheel`` whose file name carries ``tag`` (``cp311-cp311-linux_x86_64``)."""
    name, version = wheel.name.split("-")[:2]
    target = wheel.with_name(f"{name}-{version}-{tag}.whl")
    shutil.copyfile(wheel, target)
    return target


def test_find_links_picks_the_best_tag_for_the_target(tmp_path: Path) -> None:
    house = tmp_path / "house"
    generic = build_wheel(house, "alpha", "1.0")
    specific = _retagged(generic, f"{INTERP}-{INTERP}-{PLATFORM}")
    _retagged(generic, "cp27-cp27m-win32")  # not installable here
    build_wheel(house, "alpha", "2.0")

    found = locate_wheel("Alpha", "1.0", PipSettings(find_links=(str(house),), no_index=True), TAGS)

    assert found == WheelFile(
        "alpha",
        "1.0",
        specific.name,
        specific.resolve().as_uri(),
        _sha256(specific),
        str(house),
    )
    # Only the generic wheel is compatible with a target that has no platform tags here.
    pure = tuple(t for t in TAGS if t.endswith("-any"))
    found = locate_wheel("alpha", "1.0", PipSettings(find_links=(house.as_uri(),)), pure)
    assert found is not None and found.filename == generic.name
    assert found.path == generic.resolve()
    assert (
        locate_wheel("alpha", "3.0", PipSettings(find_links=(str(house),), no_index=True), TAGS)
        is None
    )


@pytest.mark.parametrize("json_pages", [False, True], ids=["html", "json"])
def test_index_gives_url_sha256_and_metadata(tmp_path: Path, json_pages: bool) -> None:
    wheel = build_wheel(tmp_path / "house", "beta", "2.0", ["alpha>=2"])
    root = build_simple_index(tmp_path / "house", tmp_path / "index", json_pages=json_pages)
    with serve(root) as server:
        index = server.url_with("user:s3cret", "simple/")
        found = locate_wheel("beta", "2.0", PipSettings(index_url=index), TAGS)
        requests = server.requests()

    assert found is not None
    assert found.filename == wheel.name
    assert found.sha256 == _sha256(wheel)
    assert found.url == f"{server.url}files/{wheel.name}"
    assert found.metadata_url == f"{server.url}files/{wheel.name}.metadata"
    assert found.source == f"http://***@127.0.0.1:{server.port}/simple/"
    expected = "Basic " + base64.b64encode(b"user:s3cret").decode()
    assert [(r.path, r.authorization) for r in requests] == [("/simple/beta/", expected)]
    assert "s3cret" not in repr(found.source)


def test_the_first_index_with_the_project_decides(tmp_path: Path) -> None:
    build_wheel(tmp_path / "internal", "alpha", "1.0")
    build_wheel(tmp_path / "public", "alpha", "1.0")
    build_wheel(tmp_path / "public", "alpha", "2.0")
    build_wheel(tmp_path / "public", "delta", "1.0")
    internal = build_simple_index(tmp_path / "internal", tmp_path / "i1")
    public = build_simple_index(tmp_path / "public", tmp_path / "i2")
    with serve(internal) as first, serve(public) as second:
        settings = PipSettings(
            index_url=f"{first.url}simple/", extra_index_urls=(f"{second.url}simple/",)
        )
        alpha1 = locate_wheel("alpha", "1.0", settings, TAGS)
        alpha2 = locate_wheel("alpha", "2.0", settings, TAGS)
        delta = locate_wheel("delta", "1.0", settings, TAGS)

    assert alpha1 is not None and alpha1.source == f"{first.url}simple/"
    assert alpha2 is None  # the internal index has alpha: the public 2.0 is never taken
    assert delta is not None and delta.source == f"{second.url}simple/"


def test_index_errors_are_clear(tmp_path: Path) -> None:
    build_wheel(tmp_path / "house", "alpha", "1.0")
    root = build_simple_index(tmp_path / "house", tmp_path / "index")
    with serve(root) as server:
        server.script("/simple/alpha/", 500, then=500)
        with pytest.raises(BackendError) as caught:
            locate_wheel(
                "alpha", "1.0", PipSettings(index_url=server.url_with("u:pw", "simple/")), TAGS
            )
        attempts = len(server.requests())
    assert caught.value.message == (
        f"cannot read http://***@127.0.0.1:{server.port}/simple/alpha/: HTTP 500 (after 3 attempts)"
    )
    assert attempts == 3


def _record_rows(wheel: Path) -> list[tuple[str, str, int | None]]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith("RECORD"))
        text = archive.read(name).decode()
    return [(e.path, e.hash, e.size) for e in parse_record(text)]


def test_record_of_a_local_wheel(tmp_path: Path) -> None:
    build_wheel(tmp_path, "epsilon-pkg", "1.0", dist_name="Epsilon-Pkg")
    found = locate_wheel(
        "epsilon-pkg", "1.0", PipSettings(find_links=(str(tmp_path),), no_index=True), TAGS
    )
    assert found is not None
    entries = read_record(found)
    assert [e.path for e in entries] == [
        "Epsilon_Pkg-1.0.dist-info/METADATA",
        "Epsilon_Pkg-1.0.dist-info/WHEEL",
        "epsilon_pkg/__init__.py",
        "Epsilon_Pkg-1.0.dist-info/RECORD",
    ]
    assert entries[2] == wheels.RecordEntry(
        "epsilon_pkg/__init__.py", record_hash(b'__version__ = "1.0"\n'), 20
    )
    assert entries[3].hash == "" and entries[3].size is None


def _big_wheel(dest: Path) -> Path:
    """A wheel whose central directory is larger than the first range request."""
    wheel = build_wheel(dest, "bigpkg", "1.0")
    with zipfile.ZipFile(wheel, "a") as archive:
        for i in range(1500):
            archive.writestr(f"bigpkg/data/file_{i:05d}_with_a_longish_name.txt", b"x")
    return wheel


@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
def test_remote_record_is_read_with_range_requests(tmp_path: Path, big: bool) -> None:
    wheel = (
        _big_wheel(tmp_path / "house") if big else build_wheel(tmp_path / "house", "alpha", "1.0")
    )
    root = build_simple_index(tmp_path / "house", tmp_path / "index")
    cache = tmp_path / "cache"
    name = "bigpkg" if big else "alpha"
    with serve(root) as server:
        found = locate_wheel(name, "1.0", PipSettings(index_url=f"{server.url}simple/"), TAGS)
        assert found is not None
        entries = read_record(found, cache)
        wheel_requests = [r for r in server.requests() if r.path.endswith(".whl")]
        again = read_record(found, cache)
        after = [r for r in server.requests() if r.path.endswith(".whl")]

    assert [(e.path, e.hash, e.size) for e in entries] == _record_rows(wheel)
    assert all(r.range is not None for r in wheel_requests)
    assert wheel_requests[0].range == f"bytes=-{CHUNK}"
    if big:
        assert wheel.stat().st_size > CHUNK
        assert len(wheel_requests) >= 2  # the rest of the central directory, the RECORD
    else:
        assert len(wheel_requests) == 1  # the tail holds everything
    assert again == entries and after == wheel_requests  # cached by sha256
    assert (cache / "records" / f"{_sha256(wheel)}.json").is_file()


def test_remote_record_without_range_support_downloads_into_the_cache(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "house", "alpha", "1.0")
    root = build_simple_index(tmp_path / "house", tmp_path / "index")
    cache = tmp_path / "cache"
    with serve(root) as server:
        server.ranges = False
        found = locate_wheel("alpha", "1.0", PipSettings(index_url=f"{server.url}simple/"), TAGS)
        assert found is not None
        entries = read_record(found, cache)
        wheel_requests = [r for r in server.requests() if r.path.endswith(".whl")]

    assert [(e.path, e.hash, e.size) for e in entries] == _record_rows(wheel)
    # One request: the range request answered with the whole file is the download.
    assert len(wheel_requests) == 1
    assert list((cache / "wheels").iterdir()) == []  # the download is removed after reading


def test_a_wheel_whose_hash_differs_from_the_index_is_an_error(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "house", "alpha", "1.0")
    root = build_simple_index(tmp_path / "house", tmp_path / "index", bad_hashes=[wheel.name])
    with serve(root) as server:
        server.ranges = False
        found = locate_wheel("alpha", "1.0", PipSettings(index_url=f"{server.url}simple/"), TAGS)
        assert found is not None
        with pytest.raises(BackendError) as caught:
            read_record(found, tmp_path / "cache")
    assert caught.value.message == (
        f"cannot read the file list of {wheel.name} from {server.url}simple/: "
        "its sha256 differs from the one the index advertises"
    )


def _copied_venv(venv: Path) -> Path:
    """A venv whose interpreter is a copy (``--copies``): another real path than this
    interpreter's, so its tags are probed by running it."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--copies", str(venv)], check=True
    )
    return venv


def _counting_probes(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The arguments of every tag probe process started from now on (the probes run)."""
    started: list[object] = []
    real_run = wheel_tags.run

    def counting(*args: Any, **kwargs: Any) -> Any:
        started.append(args)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(wheel_tags, "run", counting)
    return started


def test_target_tags_probe_once_and_match_the_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copied interpreter (--copies) has another real path: the probe process runs.
    venv = _copied_venv(tmp_path / "venv")
    cache = tmp_path / "cache"
    started = _counting_probes(monkeypatch)
    first = target_tags(venv / "bin" / "python", cache)
    second = target_tags(venv / "bin" / "python", cache)
    assert first == TAGS == second
    assert len(started) == 1
    # A symlinked venv python is the running interpreter: no process at all.
    linked = make_venv(tmp_path / "linked")
    assert target_tags(linked / "bin" / "python") == TAGS
    assert len(started) == 1


def test_listing_names_the_scripts_the_installer_generates(tmp_path: Path) -> None:
    entry_points = b"[console_scripts]\ntool = toolpkg:main\n[gui_scripts]\ngtool = toolpkg:gui\n"
    build_wheel(
        tmp_path, "toolpkg", "1.0", extra={"toolpkg-1.0.dist-info/entry_points.txt": entry_points}
    )
    found = locate_wheel("toolpkg", "1.0", PipSettings(find_links=(str(tmp_path),)), TAGS)
    assert found is not None
    assert wheels.read_listing(found).scripts == ("tool", "gtool")
    rows = wheels.WheelRecords().record(
        Path(sys.executable),
        "toolpkg",
        "1.0",
        PipSettings(find_links=(str(tmp_path),), no_index=True),
    )
    assert rows is not None
    assert [r.path for r in rows][-2:] == [
        "toolpkg-1.0.data/scripts/tool",
        "toolpkg-1.0.data/scripts/gtool",
    ]


def test_a_stalled_index_gives_up_within_its_bounds(tmp_path: Path) -> None:
    from reconciler.backends.http import HttpClient
    from tests.support.servers import STALL

    build_wheel(tmp_path / "house", "alpha", "1.0")
    root = build_simple_index(tmp_path / "house", tmp_path / "index")
    with serve(root) as server:
        server.script("/simple/alpha/", STALL, then=STALL)
        started = time.monotonic()
        with pytest.raises(BackendError) as caught:
            locate_wheel(
                "alpha",
                "1.0",
                PipSettings(index_url=f"{server.url}simple/"),
                TAGS,
                client=HttpClient(timeout=0.3),
            )
        elapsed = time.monotonic() - started
        attempts = len(server.requests())
    assert caught.value.message == (
        f"cannot read {server.url}simple/alpha/: timed out (after 3 attempts)"
    )
    assert attempts == 3
    assert elapsed < 0.3 * 3 + 0.5 + 1.0 + 2.0  # three timeouts, two backoffs, slack


def test_local_directories_group_files_as_packaging_parses_them(tmp_path: Path) -> None:
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    from reconciler.backends import local_dirs

    names = [
        "Foo.Bar-1.0-py3-none-any.whl",
        "foo_bar-2.0-1-py3-none-any.whl",
        "foo-bar-3.0.tar.gz",
        "foo_bar-4.0.zip",
        "foo-bar-baz-1.0.tar.gz",  # project foo-bar-baz, not foo-bar
        "foo_bar-x-y.whl",  # grouped under foo-bar, then refused by the full parse
        "README.txt",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    for name in names:
        try:
            if name.endswith(".whl"):
                project = str(parse_wheel_filename(name)[0])
            else:
                project = str(parse_sdist_filename(name)[0])
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
        assert name in local_dirs.project_files(tmp_path, project), name
    assert local_dirs.project_files(tmp_path, "foo-bar") == (
        "Foo.Bar-1.0-py3-none-any.whl",
        "foo-bar-3.0.tar.gz",
        "foo_bar-2.0-1-py3-none-any.whl",
        "foo_bar-4.0.zip",
        "foo_bar-x-y.whl",
    )
    assert local_dirs.project_files(tmp_path / "missing", "foo-bar") == ()


def test_a_wheel_added_to_find_links_is_seen_by_the_next_lookup(tmp_path: Path) -> None:
    house = tmp_path / "house"
    build_wheel(house, "alpha", "1.0")
    settings = PipSettings(find_links=(str(house),), no_index=True)
    assert locate_wheel("alpha", "2.0", settings, TAGS) is None
    listed = house.stat().st_mtime_ns

    build_wheel(house, "alpha", "2.0")
    # The listing is kept while the directory's mtime stays (a coarse clock may keep it
    # within one tick: each plan starts by forgetting listings, below).
    os.utime(house, ns=(listed, listed))
    assert locate_wheel("alpha", "2.0", settings, TAGS) is None
    os.utime(house, ns=(listed + 1, listed + 1))
    found = locate_wheel("alpha", "2.0", settings, TAGS)
    assert found is not None and found.filename == "alpha-2.0-py3-none-any.whl"

    build_wheel(house, "alpha", "3.0")
    os.utime(house, ns=(listed + 1, listed + 1))
    wheels.forget_pages()  # what every plan starts with
    found = locate_wheel("alpha", "3.0", settings, TAGS)
    assert found is not None and found.filename == "alpha-3.0-py3-none-any.whl"


def test_a_local_wheels_record_is_kept_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.backends import wheel_records

    house, cache = tmp_path / "house", tmp_path / "cache"
    wheel = build_wheel(house, "alpha", "1.0", extra={"alpha/aa.txt": b"data\n"})
    settings = PipSettings(find_links=(str(house),), no_index=True)
    found = locate_wheel("alpha", "1.0", settings, TAGS, hash_local=False)
    assert found is not None and found.sha256 is None  # a local wheel is not hashed

    paths = [e.path for e in read_record(found, cache)]
    assert "alpha/aa.txt" in paths
    assert wheel_records.local_record_cache_file(cache, wheel.resolve()).is_file()

    # Read again without opening the zip: the rows come from the cache.
    def no_zip(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the cached rows were not used")

    monkeypatch.setattr(zipfile, "ZipFile", no_zip)
    assert [e.path for e in read_record(found, cache)] == paths
    monkeypatch.undo()

    # Overwritten in place (same inode) by a wheel of the same size, its mtime put
    # back: only the ctime tells, and the rows are read anew.
    other = overwrite_in_place(
        wheel,
        ("bb", "cc", "dd", "ee", "ff", "gg", "hh", "ii", "jj", "kk"),
        lambda name: build_wheel(
            tmp_path / name, "alpha", "1.0", extra={f"alpha/{name}.txt": b"data\n"}
        ),
    )
    changed = [e.path for e in read_record(found, cache)]
    assert f"alpha/{other}.txt" in changed and "alpha/aa.txt" not in changed
    assert [e.path for e in read_record(found, cache)] == changed


def test_preparing_leaves_a_fault_to_the_read_that_needs_it(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    records = wheels.WheelRecords(cache)
    missing = tmp_path / "env" / "bin" / "python"
    records.prepare(missing)  # ahead of the clash check, while a preview runs: silent
    with pytest.raises(BackendError) as caught:
        records.record(missing, "alpha", "1.0", PipSettings(no_index=True))
    assert caught.value.message.startswith(f"cannot read the interpreter {missing}: ")

    # Preparing only reads the tags cache: nothing is probed or written (a refused
    # plan leaves the state dir as it was).
    here = Path(sys.executable)
    records.prepare(here)
    assert not cache.exists() and sys.executable not in records._tags
    assert records.record(here, "alpha", "1.0", PipSettings(no_index=True)) is None
    assert (cache / "tags.json").is_file()
    again = wheels.WheelRecords(cache)
    again.prepare(here)
    assert again._tags[sys.executable] == target_tags(here)


def _prepared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path, list[object], wheels.WheelRecords]:
    """A copied venv's interpreter prepared (its probe run once, nothing written):
    ``(python, cache dir, the probes started, the reader)``."""
    python = _copied_venv(tmp_path / "venv") / "bin" / "python"
    cache = tmp_path / "cache"
    started = _counting_probes(monkeypatch)
    records = wheels.WheelRecords(cache)
    records.prepare(python)
    assert len(started) == 1 and not cache.exists()
    return python, cache, started, records


def test_what_was_prepared_and_never_read_is_kept_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plan whose pip changes were all refused reads no wheel: plan asks for the tags
    # worked out beside its preview to be kept, so the next one neither probes nor
    # computes them.
    python, cache, started, records = _prepared(tmp_path, monkeypatch)
    records.keep_prepared()
    assert wheel_tags.cached_tags(python, cache) == TAGS
    again = wheels.WheelRecords(cache)
    again.prepare(python)
    assert again._tags[str(python)] == TAGS and len(started) == 1
    again.keep_prepared()  # nothing pending: nothing written, nothing raised


def test_preparing_probes_ahead_and_the_first_read_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copied interpreter needs the probe process: prepare (while a preview runs)
    # starts it, writes nothing; the first read keeps that answer without a second one.
    python, cache, started, records = _prepared(tmp_path, monkeypatch)
    assert records.record(python, "alpha", "1.0", PipSettings(no_index=True)) is None
    assert len(started) == 1
    assert records._tags[str(python)] == TAGS
    assert wheels.WheelRecords(cache)._target_tags(python) == TAGS  # from tags.json
    assert len(started) == 1


def test_the_tags_computed_are_kept_beside_the_probe(tmp_path: Path) -> None:
    """tags.json keeps the tags with the probe: a later run reads them without
    packaging.tags (and logging and platform with it); tags kept for another packaging,
    interpreter or C library, or an entry of an earlier version without them, are
    computed again, the same, and kept."""
    cache = tmp_path / "cache"
    here = Path(sys.executable)
    assert target_tags(here, cache) == TAGS
    code = (
        "import sys; from pathlib import Path; from reconciler.backends import wheel_tags; "
        f"tags = wheel_tags.cached_tags(Path({sys.executable!r}), Path({str(cache)!r})); "
        "print(len(tags), 'packaging.tags' in sys.modules, 'logging' in sys.modules)"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )  # fmt: skip
    assert fresh.stdout.split() == [str(len(TAGS)), "False", "False"]

    entries = json.loads((cache / "tags.json").read_text())
    [entry] = entries.values()
    assert entry["tags"]["tags"] == list(TAGS)
    entry["tags"]["for"] = "another packaging;another interpreter;glibc 1.0;linux-x86_64"
    (cache / "tags.json").write_text(json.dumps(entries))
    assert wheel_tags.cached_tags(here, cache) is None
    assert target_tags(here, cache) == TAGS
    del entry["tags"]
    (cache / "tags.json").write_text(json.dumps(entries))
    records = wheels.WheelRecords(cache)
    assert records.record(here, "alpha", "1.0", PipSettings(no_index=True)) is None
    assert wheel_tags.cached_tags(here, cache) == TAGS


def test_tags_are_not_kept_where_a_manylinux_module_decides(tmp_path: Path) -> None:
    """A PEP 600 ``_manylinux`` module on the path overrides packaging's manylinux
    checks: the tags follow it, and none are kept (it can change at any run)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "_manylinux.py").write_text("def manylinux_compatible(*args):\n    return False\n")
    cache = tmp_path / "cache"
    code = (
        "import sys; from pathlib import Path; from packaging.tags import sys_tags; "
        "from reconciler.backends.wheel_tags import target_tags; "
        f"tags = target_tags(Path(sys.executable), Path({str(cache)!r})); "
        "print(tags == tuple(str(t) for t in sys_tags()), any('manylinux' in t for t in tags))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": f"{lib}{os.pathsep}{Path(__file__).parents[1]}"},
    )  # fmt: skip
    assert done.stdout.split() == ["True", "False"]
    [entry] = json.loads((cache / "tags.json").read_text()).values()
    assert "tags" not in entry


def test_environments_planned_at_once_share_one_reader_and_one_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The planner prepares each environment in its own thread at once: they must share
    # one WheelRecords, or the probe one thread prepared is lost and runs again (an
    # apply of three environments probed the image's interpreter twice).
    import threading

    from reconciler.plan.clashes import LazyWheelRecords

    venv = _copied_venv(tmp_path / "venv")
    python = venv / "bin" / "python"
    started = _counting_probes(monkeypatch)
    real_init = wheels.WheelRecords.__init__

    def slow_init(self: wheels.WheelRecords, *args: Any) -> None:
        time.sleep(0.1)  # widen the window between "none made yet" and "made"
        real_init(self, *args)

    monkeypatch.setattr(wheels.WheelRecords, "__init__", slow_init)
    lazy = LazyWheelRecords(tmp_path / "cache")
    gate = threading.Barrier(3)

    def prepare(target: Path) -> None:
        gate.wait()
        if target != python:
            time.sleep(0.02)  # the copied interpreter's thread comes first
        lazy.prepare(target)

    threads = [
        threading.Thread(target=prepare, args=(target,))
        for target in (python, Path(sys.executable), Path(sys.executable))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert lazy.record(python, "alpha", "1.0", PipSettings(no_index=True)) is None
    assert len(started) == 1


def test_a_probe_of_one_interpreter_holds_up_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While another environment's interpreter is being probed (a process, in one
    # thread), the running interpreter's tags are answered in another thread at once.
    import threading

    venv = _copied_venv(tmp_path / "venv")
    entered, other_done = threading.Event(), threading.Event()
    waited: list[bool] = []
    real_run = wheel_tags.run

    def slow(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        waited.append(other_done.wait(timeout=20))  # False: the other thread was held up
        return real_run(*args, **kwargs)

    monkeypatch.setattr(wheel_tags, "run", slow)
    records = wheels.WheelRecords(tmp_path / "cache")
    probing = threading.Thread(target=records._target_tags, args=(venv / "bin" / "python",))
    probing.start()
    assert entered.wait(timeout=20)
    here = make_venv(tmp_path / "linked") / "bin" / "python"
    assert records._target_tags(here) == TAGS
    other_done.set()
    probing.join()
    assert waited == [True]
    assert records._tags[str(venv / "bin" / "python")] == TAGS
