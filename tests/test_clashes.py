"""File clashes are replacements (issue 9 item 3): a wheel that would write a file a
managed or foreign distribution owns is refused before anything is installed.

Real venvs and a hybrid venv + conda prefix, real uv installs, tiny wheels that
ship one top-level package under two distribution names (``jwt`` and ``PyJWT``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.plan import clashes
from reconciler.state.store import StateStore
from tests.support.envs import make_conda_prefix, make_venv, pip_install
from tests.support.manifests import SITE, run_cli, write_manifest
from tests.support.servers import build_simple_index, serve
from tests.support.wheels import build_wheel, record_hash

JWT_REASON = "PyJWT 2.8.0 would overwrite jwt/__init__.py, which managed jwt 1.3.1 owns"


@pytest.fixture
def jwt_house(tmp_path: Path) -> Path:
    """``jwt 1.3.1`` and ``PyJWT 2.8.0``: both ship the top-level package ``jwt``."""
    house = tmp_path / "jwt-house"
    build_wheel(house, "jwt", "1.3.1")
    build_wheel(house, "PyJWT", "2.8.0", module="jwt")
    build_wheel(house, "alpha", "1.0")
    build_wheel(house, "alpha", "2.0")
    return house


def _cli(capsys: pytest.CaptureFixture[str], state: Path, *argv: str | Path) -> tuple[int, str]:
    code, out, err = run_cli(capsys, "--state-dir", state, *argv)
    return code, out + err


def _changes(out: str) -> list[dict[str, Any]]:
    return [c for e in json.loads(out)["environments"] for c in e["changes"]]


def _jwt_image(tmp_path: Path, jwt_house: Path) -> tuple[Path, Path]:
    """A venv whose managed jwt 1.3.1 owns ``jwt/__init__.py``, and a manifest asking for
    PyJWT 2.8.0 (whose wheel writes that file) from the wheelhouse: (prefix, manifest)."""
    prefix = make_venv(tmp_path / "env")
    pip_install(prefix, ["jwt==1.3.1"], jwt_house)
    manifest = write_manifest(
        tmp_path / "m.yaml",
        {"main": {"prefix": prefix, "pip": ["PyJWT==2.8.0"]}},
        wheelhouse=jwt_house,
    )
    return prefix, manifest


def test_a_wheel_over_a_managed_package_is_refused_and_nothing_is_written(
    tmp_path: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str], jwt_house: Path
) -> None:
    prefix, manifest = _jwt_image(tmp_path, jwt_house)
    module = prefix / SITE / "jwt" / "__init__.py"
    before = module.read_bytes()
    state = tmp_path / "state"
    assert _cli(capsys, state, "baseline", "capture", manifest)[0] == 0

    # Without the check, uv installs PyJWT over jwt's module and verify passes (exit 0).
    code, out = _cli(capsys, state, "apply", manifest)
    assert module.read_bytes() == before, "apply overwrote the managed jwt/__init__.py"
    assert code == 3, out
    assert JWT_REASON in out
    assert not list((prefix / SITE).glob("PyJWT-*.dist-info"))

    code, out = _cli(capsys, state, "plan", "--json", manifest)
    assert code == 3
    assert _changes(out) == [
        {
            "action": "install",
            "manager": "pip",
            "name": "pyjwt",
            "from": None,
            "to": "2.8.0",
            "requested": True,
            "refused": True,
            "reason": JWT_REASON,
            "required_by": [],
        }
    ]


def test_foreign_owner_and_an_owned_upgrade_over_its_own_files(
    tmp_path: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str], jwt_house: Path
) -> None:
    prefix = make_venv(tmp_path / "env")
    state = tmp_path / "state"
    manifest = write_manifest(
        tmp_path / "m.yaml",
        {"main": {"prefix": prefix, "pip": ["alpha==1.0"]}},
        wheelhouse=jwt_house,
    )
    assert _cli(capsys, state, "apply", manifest)[0] == 0  # alpha 1.0 is owned now
    pip_install(prefix, ["jwt==1.3.1"], jwt_house)  # by hand: foreign
    write_manifest(
        manifest,
        {"main": {"prefix": prefix, "pip": ["alpha==2.0", "PyJWT==2.8.0"]}},
        wheelhouse=jwt_house,
    )
    code, out = _cli(capsys, state, "plan", "--json", manifest)
    assert code == 3
    by_name = {c["name"]: c for c in _changes(out)}
    assert by_name["alpha"]["action"] == "upgrade" and not by_name["alpha"]["refused"]
    assert by_name["pyjwt"]["reason"] == (
        "PyJWT 2.8.0 would overwrite jwt/__init__.py, which foreign jwt 1.3.1 owns"
    )
    # alpha 2.0 rewrites alpha/__init__.py, its own file: allowed and applied.
    write_manifest(
        manifest, {"main": {"prefix": prefix, "pip": ["alpha==2.0"]}}, wheelhouse=jwt_house
    )
    assert _cli(capsys, state, "apply", manifest)[0] == 0
    assert (prefix / SITE / "alpha" / "__init__.py").read_text() == '__version__ = "2.0"\n'


def test_a_wheel_over_conda_files_in_a_hybrid_prefix(
    tmp_path: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    channel: Path,
) -> None:
    prefix = make_conda_prefix(
        tmp_path / "env", channel, ["libfoo ==1.0", "pyfoo ==1.0"], hybrid=True
    )
    house = tmp_path / "house"
    build_wheel(house, "pyfoo-fork", "1.1", module="pyfoo")  # over the conda package's dist
    build_wheel(  # over a conda file that no RECORD lists
        house,
        "foo-data",
        "1.0",
        extra={"foo_data-1.0.data/data/share/libfoo/VERSION": b"hacked\n"},
    )
    state = tmp_path / "state"
    manifest = write_manifest(
        tmp_path / "m.yaml",
        {"main": {"prefix": prefix, "pip": ["pyfoo-fork==1.1", "foo-data==1.0"]}},
        wheelhouse=house,
    )
    version_file = prefix / "share" / "libfoo" / "VERSION"
    before = version_file.read_bytes()
    code, out = _cli(capsys, state, "plan", "--json", manifest)
    assert code == 3
    reasons = {c["name"]: c["reason"] for c in _changes(out)}
    assert reasons == {
        "pyfoo-fork": "pyfoo-fork 1.1 would overwrite pyfoo/__init__.py, which managed conda "
        "package pyfoo 1.0 owns",
        "foo-data": "foo-data 1.0 would overwrite share/libfoo/VERSION, which managed conda "
        "package libfoo 1.0 owns",
    }
    assert _cli(capsys, state, "apply", manifest)[0] == 3
    assert version_file.read_bytes() == before


def test_the_wheel_on_an_index_is_read_with_range_requests(
    tmp_path: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str], jwt_house: Path
) -> None:
    prefix = make_venv(tmp_path / "env")
    pip_install(prefix, ["jwt==1.3.1"], jwt_house)
    root = build_simple_index(jwt_house, tmp_path / "index")
    state = tmp_path / "state"
    with serve(root) as server:
        manifest = write_manifest(
            tmp_path / "m.yaml",
            {"main": {"prefix": prefix, "pip": ["PyJWT==2.8.0"]}},
            defaults={"pip": {"index_url": server.url_with("u:secret", "simple/")}},
        )
        code, out = _cli(capsys, state, "plan", "--json", manifest)
        wheel_gets = [
            r for r in server.requests() if r.path.endswith("pyjwt-2.8.0-py3-none-any.whl")
        ]
        assert code == 3, out
        assert [c["reason"] for c in _changes(out)] == [JWT_REASON]
        assert wheel_gets and all(r.range for r in wheel_gets)  # never the whole wheel
        # The RECORD is cached by the wheel's sha256: a second plan reads no wheel.
        assert _cli(capsys, state, "plan", "--json", manifest)[0] == 3
        again = [r for r in server.requests() if r.path.endswith("pyjwt-2.8.0-py3-none-any.whl")]
        assert again == wheel_gets
    assert list((state / "cache" / "records").glob("*.json"))


def test_an_altered_saved_plan_cannot_overwrite_a_managed_file(
    tmp_path: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str], jwt_house: Path
) -> None:
    prefix, manifest = _jwt_image(tmp_path, jwt_house)
    state = tmp_path / "state"
    saved = tmp_path / "plan.json"
    assert _cli(capsys, state, "plan", "--out", saved, manifest)[0] == 3
    document = json.loads(saved.read_text())
    for env in document["environments"]:
        for change in env["changes"]:
            change["refused"], change["reason"] = False, ""
    saved.write_text(json.dumps(document))
    before = (prefix / SITE / "jwt" / "__init__.py").read_bytes()

    code, out = _cli(capsys, state, "apply", "--plan", saved)
    assert code == 1
    assert f"the saved plan for environment 'main' cannot be applied: {JWT_REASON}" in out
    assert (prefix / SITE / "jwt" / "__init__.py").read_bytes() == before


def test_the_noop_path_reads_no_wheel(
    tmp_path: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    jwt_house: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = make_venv(tmp_path / "env")
    state = tmp_path / "state"
    manifest = write_manifest(
        tmp_path / "m.yaml",
        {"main": {"prefix": prefix, "pip": ["alpha==1.0"]}},
        wheelhouse=jwt_house,
    )
    calls: list[str] = []
    real = clashes.LazyWheelRecords.record

    def counting(self: Any, python: Path, name: str, *args: Any) -> Any:
        calls.append(name)
        return real(self, python, name, *args)

    monkeypatch.setattr(clashes.LazyWheelRecords, "record", counting)
    assert _cli(capsys, state, "apply", manifest)[0] == 0
    assert calls == ["alpha"]  # the install was checked
    assert _cli(capsys, state, "plan", manifest)[0] == 0
    assert _cli(capsys, state, "apply", manifest)[0] == 0
    assert calls == ["alpha"]  # nothing to install: no wheel located, no RECORD read


def test_the_same_bytes_in_a_shared_namespace_file_are_no_clash(
    tmp_path: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Old-style namespace packages (``backports/__init__.py``) ship identical files."""
    house = tmp_path / "house"
    for name in ("nsone", "nstwo"):
        build_wheel(house, name, "1.0", module="backports", extra={f"{name}.py": b""})
    prefix = make_venv(tmp_path / "env")
    pip_install(prefix, ["nsone==1.0"], house)
    state = tmp_path / "state"
    manifest = write_manifest(
        tmp_path / "m.yaml", {"main": {"prefix": prefix, "pip": ["nstwo==1.0"]}}, wheelhouse=house
    )
    code, out = _cli(capsys, state, "apply", manifest)
    assert code == 0, out
    assert (prefix / SITE / "nstwo.py").is_file()


def test_a_console_script_over_a_managed_one_is_refused(
    tmp_path: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    house = tmp_path / "house"
    scripts = b"[console_scripts]\ntool = {}:main\n"
    for name in ("toolone", "tooltwo"):
        build_wheel(
            house,
            name,
            "1.0",
            extra={f"{name}-1.0.dist-info/entry_points.txt": scripts.replace(b"{}", name.encode())},
        )
    prefix = make_venv(tmp_path / "env")
    pip_install(prefix, ["toolone==1.0"], house)
    before = (prefix / "bin" / "tool").read_bytes()
    state = tmp_path / "state"
    manifest = write_manifest(
        tmp_path / "m.yaml", {"main": {"prefix": prefix, "pip": ["tooltwo==1.0"]}}, wheelhouse=house
    )
    code, out = _cli(capsys, state, "apply", manifest)
    assert (prefix / "bin" / "tool").read_bytes() == before
    assert code == 3
    assert "tooltwo 1.0 would overwrite bin/tool, which managed toolone 1.0 owns" in out


def test_verify_after_apply_names_an_overwritten_managed_file(
    tmp_path: Path, isolated: dict[str, str], jwt_house: Path
) -> None:
    """The check before installing is the rule; verify after it is the safety net: an
    apply whose plan missed a clash (here: no wheel reader at all) fails verification."""
    from reconciler.apply.execute import apply
    from reconciler.manifest.loader import load_manifest
    from reconciler.plan.planner import Backends

    prefix, manifest = _jwt_image(tmp_path, jwt_house)
    store = StateStore(tmp_path / "state")
    default = Backends.default()
    blind = Backends(default.conda, default.pip, wheels=None)
    result = apply(load_manifest(manifest), store, blind)
    [env] = result.results
    assert env.status == "failed"
    assert env.message.startswith(
        f"verification of main ({prefix}) failed: jwt/__init__.py of managed jwt 1.3.1 "
        "was overwritten"
    )


class _Misread:
    """The real wheel reader, except that it reads ``jwt/__init__.py`` as another file
    of ``jwt/`` (a plan whose reader was wrong about one file): the clash check lets
    the install through, and only verification can find the overwritten file."""

    def __init__(self) -> None:
        self._real = clashes.LazyWheelRecords()

    def record(self, python: Path, name: str, version: str, settings: Any) -> Any:
        from reconciler.state.python import RecordEntry

        rows = self._real.record(python, name, version, settings)
        if rows is None:
            return None
        return tuple(
            RecordEntry("jwt/_planned.py", r.hash, r.size) if r.path == "jwt/__init__.py" else r
            for r in rows
        )


def test_verify_after_apply_names_an_overwritten_file_read_ahead(
    tmp_path: Path, isolated: dict[str, str], jwt_house: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The protected RECORDs' row heads read while the installer ran (jwt's: it was old
    enough) answer for verification: it still names the overwritten file, and reads no
    RECORD's heads itself."""
    import threading
    import time

    from reconciler.apply import record_heads
    from reconciler.apply.execute import apply
    from reconciler.manifest.loader import load_manifest
    from reconciler.plan.planner import Backends

    prefix, manifest = _jwt_image(tmp_path, jwt_house)
    store = StateStore(tmp_path / "state")
    time.sleep(record_heads.SLACK_NS / 1e9 + 0.02)  # jwt's RECORD can be kept
    readers: list[str] = []
    real = record_heads.heads_of

    def counting(data: bytes) -> Any:
        readers.append(threading.current_thread().name)
        return real(data)

    monkeypatch.setattr(record_heads, "heads_of", counting)
    default = Backends.default()
    misread = Backends(default.conda, default.pip, wheels=_Misread())
    result = apply(load_manifest(manifest), store, misread)
    [env] = result.results
    assert env.status == "failed"
    assert env.message.startswith(
        f"verification of main ({prefix}) failed: jwt/__init__.py of managed jwt 1.3.1 "
        "was overwritten"
    )
    assert readers and set(readers) == {"record-scan"}


def test_install_paths_map_wheel_schemes() -> None:
    from reconciler.state.python import RecordEntry

    entries = [
        RecordEntry("pkg/__init__.py", record_hash(b""), 0),
        RecordEntry("pkg/__pycache__/x.cpython-311.pyc", "", None),
        RecordEntry("pkg-1.0.data/scripts/tool", "", None),
        RecordEntry("pkg-1.0.data/purelib/other/m.py", "", None),
        RecordEntry("pkg-1.0.data/data/share/pkg/x", "", None),
        RecordEntry("pkg-1.0.data/headers/h.h", "", None),
    ]
    site = "lib/python3.11/site-packages"
    assert clashes.install_paths(entries, site, "3.11") == (
        (f"{site}/pkg/__init__.py", "pkg/__init__.py", record_hash(b"")),
        ("bin/tool", "bin/tool", ""),
        (f"{site}/other/m.py", "other/m.py", ""),
        ("share/pkg/x", "share/pkg/x", ""),
        ("include/site/python3.11/pkg/h.h", "include/site/python3.11/pkg/h.h", ""),
    )


def test_sigterm_while_reading_a_wheel_listing_stops_at_once(
    tmp_path: Path, isolated: dict[str, str], jwt_house: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.support.manifests import REPO

    prefix = make_venv(tmp_path / "env")
    root = build_simple_index(jwt_house, tmp_path / "index")
    state = tmp_path / "state"
    with serve(root) as server:
        server.script("/files/pyjwt-2.8.0-py3-none-any.whl", then="stall", ranges=True)
        manifest = write_manifest(
            tmp_path / "m.yaml",
            {"main": {"prefix": prefix, "pip": ["PyJWT==2.8.0"]}},
            defaults={"pip": {"index_url": f"{server.url}simple/"}},
        )
        env = {**isolated, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "--state-dir", str(state), "apply", str(manifest)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not any(r.path.endswith(".whl") for r in server.requests()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert proc.returncode == 1, out + err
    assert "stopped by SIGTERM while reading http://127.0.0.1:" in out + err
    assert not list((prefix / SITE).glob("PyJWT-*"))


def test_a_held_back_request_that_clashes_is_refused_and_still_held_back(
    tmp_path: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str], jwt_house: Path
) -> None:
    # The clash check and the newest-release question run side by side: both are said.
    build_wheel(jwt_house, "PyJWT", "2.9.0", ["packaging>=22.0"], module="jwt")
    build_wheel(jwt_house, "packaging", "21.3")
    prefix = make_venv(tmp_path / "env")
    pip_install(prefix, ["jwt==1.3.1", "packaging==21.3"], jwt_house)
    state = tmp_path / "state"
    manifest = write_manifest(
        tmp_path / "m.yaml", {"main": {"prefix": prefix, "pip": ["PyJWT"]}}, wheelhouse=jwt_house
    )
    assert _cli(capsys, state, "baseline", "capture", manifest)[0] == 0
    code, out = _cli(capsys, state, "plan", "--json", manifest)
    assert code == 3, out
    assert _changes(out) == [
        {
            "action": "install",
            "manager": "pip",
            "name": "pyjwt",
            "from": None,
            "to": "2.8.0",
            "requested": True,
            "refused": True,
            "reason": JWT_REASON,
            "required_by": [],
            "held_back": {
                "newest": "2.9.0",
                "by": [
                    {
                        "name": "packaging",
                        "version": "21.3",
                        "requirement": "packaging>=22.0",
                        "status": "managed",
                    }
                ],
            },
        }
    ]


def test_the_clash_checks_existence_test_answers_as_lexists(tmp_path: Path) -> None:
    """Each directory above a path is looked at once; the answers are lexists' own."""
    from reconciler.plan.clashes import _Existing

    prefix = tmp_path / "prefix"
    (prefix / "lib" / "pkg").mkdir(parents=True)
    (prefix / "lib" / "pkg" / "a.py").write_text("")
    (prefix / "lib" / "link").symlink_to(prefix / "lib" / "pkg")
    (prefix / "lib" / "dangling").symlink_to(prefix / "nowhere")
    (prefix / "lib" / "file").write_text("")
    outside = tmp_path / "outside.txt"
    outside.write_text("")
    paths = [
        "lib/pkg/a.py", "lib/pkg/b.py", "lib/link/a.py", "lib/link/b.py", "lib/dangling",
        "lib/dangling/a.py", "lib/file", "lib/file/a.py", "lib/new/deep/er/a.py", "lib",
        "x.py", "../outside.txt", "../prefix/lib/pkg/a.py", str(outside), str(outside) + "x",
        "lib/file/.", "lib/./pkg//a.py", "lib/pkg/", "./x.py", "lib/new/../pkg/a.py", "/",
        "//" + str(outside).lstrip("/"), "///" + str(outside).lstrip("/"), "", ".", "./",
    ]  # fmt: skip
    exists = _Existing(str(prefix))
    for _ in range(2):  # the second time from what was kept
        assert [exists(p) for p in paths] == [os.path.lexists(prefix / p) for p in paths]
    assert [exists.full(p) for p in paths] == [str(prefix / p) for p in paths]
