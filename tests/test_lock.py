"""The lock file (issue 11) on real venvs, a real HTTP index and real uv.

Each test serves its own copy of the standard wheelhouse from a PEP 503 index on
127.0.0.1 (:mod:`tests.support.servers`), so that it can publish a newer release,
tamper with a file or stop the server. The "image" is a venv; an image reset is a
pristine copy of it put back at the same path (additions gone, state dir kept).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reconciler.resources import load_schema
from tests.support.envs import make_venv
from tests.support.manifests import SITE, run_cli, write_manifest
from tests.support.servers import StaticServer, build_simple_index
from tests.support.wheels import build_wheel, build_wheelhouse


class Index:
    """A served copy of the standard wheelhouse that tests can publish to."""

    def __init__(self, root: Path) -> None:
        self.wheels = build_wheelhouse(root / "wheels")
        self.tree = root / "index"
        build_simple_index(self.wheels, self.tree)
        self.server = StaticServer(self.tree).start()

    @property
    def url(self) -> str:
        return f"{self.server.url}simple/"

    def publish(self, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
        build_wheel(self.wheels, name, version, requires)
        build_simple_index(self.wheels, self.tree)

    def sha256(self, filename: str) -> str:
        return hashlib.sha256((self.wheels / filename).read_bytes()).hexdigest()


@pytest.fixture
def index(
    tmp_path: Path, isolated: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Index]:
    """The served index, and uv's cache of this test alone (the home volume's cache): a
    port reused by another test must not answer from that test's cached pages."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    served = Index(tmp_path / "served")
    yield served
    served.server.stop()


class Image:
    """A venv at a fixed path with a pristine copy to reset it to."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = make_venv(prefix)
        self.pristine = prefix.with_name(prefix.name + ".pristine")
        shutil.copytree(self.prefix, self.pristine, symlinks=True)

    def reset(self) -> None:
        shutil.rmtree(self.prefix)
        shutil.copytree(self.pristine, self.prefix, symlinks=True)

    def dists(self) -> dict[str, str]:
        """``name -> version`` of the dist-info directories installed now."""
        out = {}
        for info in (self.prefix / SITE).glob("*.dist-info"):
            name, version = info.name[: -len(".dist-info")].rsplit("-", 1)
            out[name] = version
        return out


@pytest.fixture
def image(tmp_path: Path) -> Image:
    return Image(tmp_path / "env")


def manifest_for(path: Path, index_url: str, envs: dict[str, tuple[Path, list[str]]]) -> Path:
    environments = {name: {"prefix": prefix, "pip": pip} for name, (prefix, pip) in envs.items()}
    write_manifest(path, environments)
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "version: 1\n", f"version: 1\ndefaults:\n  pip: {{index_url: '{index_url}'}}\n", 1
    )
    path.write_text(text, encoding="utf-8")
    return path


def lock_doc(manifest: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads(manifest.with_suffix(".lock").read_text(encoding="utf-8"))
    return doc


def test_lock_is_deterministic_sorted_and_keeps_no_credentials(
    tmp_path: Path,
    isolated: dict[str, str],
    index: Index,
    image: Image,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret_url = index.server.url_with("team:s3cret", "simple/")
    manifest = manifest_for(tmp_path / "team.yaml", secret_url, {"base": (image.prefix, ["gamma"])})
    code, out, err = run_cli(capsys, "lock", manifest)
    assert (code, err) == (0, "")
    assert out == f"base: locked (it is not in the lock file)\nWrote {tmp_path / 'team.lock'}\n"
    first = (tmp_path / "team.lock").read_bytes()
    assert b"s3cret" not in first and b"team:" not in first
    doc = json.loads(first)
    jsonschema.validate(doc, load_schema("lock.v1.schema.json"))
    base = doc["environments"]["base"]
    assert [w["name"] for w in base["pip"]] == ["alpha", "beta", "gamma"]
    assert base["pip"][0] == {
        "filename": "alpha-2.0-py3-none-any.whl",
        "name": "alpha",
        "sha256": index.sha256("alpha-2.0-py3-none-any.whl"),
        "source": index.url,
        "version": "2.0",
    }
    assert base["entries"]["pip"] == ["gamma"]
    assert base["entries"]["indexes"] == [index.url]
    assert base["conda"] == []
    # One package a line: a version change is a one-line diff.
    lines = first.decode().splitlines()
    assert sum('"name": "alpha"' in line for line in lines) == 1
    assert image.dists() == {}  # lock installs nothing

    code, out, _ = run_cli(capsys, "lock", manifest)
    assert (code, out) == (0, f"base: unchanged\nUnchanged: {tmp_path / 'team.lock'}\n")
    (tmp_path / "team.lock").unlink()
    assert run_cli(capsys, "lock", manifest)[0] == 0
    assert (tmp_path / "team.lock").read_bytes() == first  # byte-identical from scratch


def test_apply_installs_the_locked_versions_not_a_newer_release(
    tmp_path: Path,
    isolated: dict[str, str],
    index: Index,
    image: Image,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest = manifest_for(tmp_path / "team.yaml", index.url, {"base": (image.prefix, ["gamma"])})
    assert run_cli(capsys, "lock", manifest)[0] == 0
    index.publish("alpha", "3.0")
    index.publish("beta", "3.0", ("alpha>=3",))
    # A cold cache: uv sees the new releases at once (the index pages were just rewritten).
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "cold-uv-cache"))

    code, out, _ = run_cli(capsys, "plan", manifest, "--json")
    env = json.loads(out)["environments"][0]
    assert (code, env["lock"], env["resolver_ran"]) == (0, "team.lock", False)
    assert {(c["name"], c["to"]) for c in env["changes"]} == {
        ("alpha", "2.0"), ("beta", "2.0"), ("gamma", "1.0"),
    }  # fmt: skip
    code, out, _ = run_cli(capsys, "plan", manifest)
    assert out.splitlines()[0] == f"base ({image.prefix}, venv) (from team.lock):"

    code, out, err = run_cli(capsys, "apply", manifest)
    assert code == 0, out + err
    assert image.dists() == {"alpha": "2.0", "beta": "2.0", "gamma": "1.0"}
    assert run_cli(capsys, "apply", manifest)[1].startswith("No changes: ")

    # The control: without the lock, the same manifest resolves to the new release.
    (tmp_path / "team.lock").unlink()
    image.reset()
    code, out, _ = run_cli(capsys, "plan", manifest, "--json")
    assert {(c["name"], c["to"]) for c in json.loads(out)["environments"][0]["changes"]} == {
        ("alpha", "3.0"), ("beta", "3.0"), ("gamma", "1.0"),
    }  # fmt: skip


def test_restore_after_an_image_reset_needs_no_network(
    tmp_path: Path,
    isolated: dict[str, str],
    index: Index,
    image: Image,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = manifest_for(
        tmp_path / "team.yaml", index.url, {"base": (image.prefix, ["gamma", "delta"])}
    )
    assert run_cli(capsys, "lock", manifest)[0] == 0
    assert run_cli(capsys, "apply", manifest)[0] == 0  # warms uv's cache (on the home volume)
    installed = image.dists()
    image.reset()
    assert image.dists() == {}
    index.server.stop()
    code, out, err = run_cli(capsys, "apply", manifest)
    assert code == 0, out + err
    assert f"base ({image.prefix}, venv) (from team.lock):" in out.splitlines()
    assert (
        image.dists()
        == installed
        == {"alpha": "2.0", "beta": "2.0", "delta": "1.1", "gamma": "1.0"}
    )


def test_stale_lock_rules_and_locked(
    tmp_path: Path,
    isolated: dict[str, str],
    index: Index,
    image: Image,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = manifest_for(
        tmp_path / "team.yaml", index.url, {"base": (image.prefix, ["alpha<2"])}
    )
    code, _, err = run_cli(capsys, "plan", manifest, "--locked")
    assert code == 1
    assert err == (
        "error: --locked: there is no lock file team.lock beside team.yaml; nothing was changed\n"
        "  hint: run `reconciler lock team.yaml` and commit team.lock with it\n"
    )
    assert run_cli(capsys, "lock", manifest)[0] == 0

    # 1. The manifest entries changed.
    manifest_for(manifest, index.url, {"base": (image.prefix, ["alpha<2", "delta==1.0"])})
    stale = (
        "team.lock is stale for environment 'base': its manifest entries changed (pip +delta==1.0)"
    )
    code, out, _ = run_cli(capsys, "plan", manifest, "--json")
    env = json.loads(out)["environments"][0]
    assert env["lock"] is None and env["resolver_ran"] is True
    assert f"{stale}; resolved afresh (`reconciler lock` updates the lock file)" in env["notices"]
    code, _, err = run_cli(capsys, "apply", manifest, "--locked")
    assert code == 1
    assert err.splitlines()[0] == f"error: --locked: {stale}; nothing was changed"
    assert image.dists() == {}
    assert json.loads((tmp_path / "team.lock").read_text())["environments"]["base"]["entries"][
        "pip"
    ] == ["alpha<2"]
    code, out, _ = run_cli(capsys, "lock", manifest)
    assert out.splitlines()[0] == "base: locked (its manifest entries changed (pip +delta==1.0))"
    assert run_cli(capsys, "plan", manifest, "--locked")[0] == 0

    # 2. The managed set changed (no baseline yet: a package installed by hand is managed).
    from tests.support.envs import pip_install

    pip_install(image.prefix, ["pyfoo==1.0"], index.wheels)
    code, _, err = run_cli(capsys, "plan", manifest, "--locked")
    assert code == 1
    assert f"the managed packages in {image.prefix} changed since it was locked" in err
    assert run_cli(capsys, "lock", manifest)[0] == 0

    # 3. The image changed under the environment.
    cfg = image.prefix / "pyvenv.cfg"
    cfg.write_text(cfg.read_text() + "prompt = new-image\n")
    code, _, err = run_cli(capsys, "apply", manifest, "--locked")
    assert code == 1
    assert f"the image under {image.prefix} changed since it was locked" in err
    assert image.dists() == {"pyfoo": "1.0"}


def test_lock_rewrites_only_stale_environments_unless_upgrading(
    tmp_path: Path, isolated: dict[str, str], index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = make_venv(tmp_path / "one"), make_venv(tmp_path / "two")
    envs = {"one": (one, ["beta"]), "two": (two, ["delta"])}
    manifest = manifest_for(tmp_path / "team.yaml", index.url, envs)
    assert run_cli(capsys, "lock", manifest)[0] == 0
    index.publish("alpha", "3.0")
    index.publish("delta", "2.0")
    envs["two"] = (two, ["delta", "gamma"])
    manifest_for(manifest, index.url, envs)
    _code, out, _ = run_cli(capsys, "lock", manifest)
    assert out.splitlines()[:2] == [
        "one: unchanged",
        "two: locked (its manifest entries changed (pip +gamma))",
    ]
    doc = lock_doc(manifest)["environments"]
    versions = {n: {w["name"]: w["version"] for w in e["pip"]} for n, e in doc.items()}  # type: ignore[attr-defined]
    # two's re-resolve keeps its locked delta 1.1 (it still fits); one is untouched.
    assert versions == {
        "one": {"alpha": "2.0", "beta": "2.0"},
        "two": {"alpha": "2.0", "beta": "2.0", "delta": "1.1", "gamma": "1.0"},
    }
    assert run_cli(capsys, "lock", manifest, "--upgrade-package", "alpha")[0] == 0
    doc = lock_doc(manifest)["environments"]
    versions = {n: {w["name"]: w["version"] for w in e["pip"]} for n, e in doc.items()}  # type: ignore[attr-defined]
    assert versions["one"] == {"alpha": "3.0", "beta": "2.0"}
    assert versions["two"]["delta"] == "1.1"
    assert run_cli(capsys, "lock", manifest, "--upgrade")[0] == 0
    doc = lock_doc(manifest)["environments"]
    assert {w["name"]: w["version"] for w in doc["two"]["pip"]}["delta"] == "2.0"  # type: ignore[index]


def test_a_hash_mismatch_installs_nothing(
    tmp_path: Path,
    isolated: dict[str, str],
    index: Index,
    image: Image,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest = manifest_for(tmp_path / "team.yaml", index.url, {"base": (image.prefix, ["beta"])})
    assert run_cli(capsys, "lock", manifest)[0] == 0
    lock = tmp_path / "team.lock"
    good = index.sha256("beta-2.0-py3-none-any.whl")
    lock.write_text(lock.read_text().replace(good, "0" * 64))
    before = sorted(p.name for p in (image.prefix / SITE).iterdir())
    code, out, _err = run_cli(capsys, "apply", manifest)
    assert code == 1
    failed = out.splitlines().index(
        f"base: failed: the file of beta==2.0 does not match the sha256 in the lock file; "
        f"nothing was installed into {image.prefix}"
    )
    assert out.splitlines()[failed + 1] == (
        "  hint: if it was republished on purpose, lock it again (`reconciler lock MANIFEST "
        "--upgrade-package beta`); otherwise check the package index"
    )
    assert sorted(p.name for p in (image.prefix / SITE).iterdir()) == before

    # The file on the index changed under the same name (republished), and uv's cache
    # does not hold it (the first attempt may or may not have downloaded alpha).
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "cold-uv-cache"))
    lock.write_text(lock.read_text().replace("0" * 64, good))
    served = index.tree / "files" / "alpha-2.0-py3-none-any.whl"
    served.write_bytes((index.wheels / "alpha-1.0-py3-none-any.whl").read_bytes())
    code, out, _ = run_cli(capsys, "apply", manifest)
    assert code == 1
    assert (
        "base: failed: the file of alpha==2.0 does not match the sha256 in the lock file; "
        f"nothing was installed into {image.prefix}"
    ) in out.splitlines()
    assert sorted(p.name for p in (image.prefix / SITE).iterdir()) == before


def test_a_locked_file_that_is_gone_installs_nothing(
    tmp_path: Path,
    isolated: dict[str, str],
    index: Index,
    image: Image,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = manifest_for(tmp_path / "team.yaml", index.url, {"base": (image.prefix, ["beta"])})
    assert run_cli(capsys, "lock", manifest)[0] == 0
    (index.wheels / "beta-2.0-py3-none-any.whl").unlink()
    (index.tree / "files" / "beta-2.0-py3-none-any.whl").unlink()
    build_simple_index(index.wheels, index.tree)
    code, out, _ = run_cli(capsys, "apply", manifest)
    assert code == 1
    first = next(line for line in out.splitlines() if line.startswith("base: failed: "))
    assert first.startswith("base: failed: a file in the lock file can no longer be found (")
    assert first.endswith(f"); nothing was installed into {image.prefix}")
    assert image.dists() == {}


def test_a_new_lock_is_applied_even_when_the_last_apply_was_a_no_op(
    tmp_path: Path,
    isolated: dict[str, str],
    index: Index,
    image: Image,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The no-op fast path (reconciler.entry) stamps the lock file too."""
    from reconciler.entry import main

    manifest = manifest_for(tmp_path / "team.yaml", index.url, {"base": (image.prefix, ["alpha"])})
    assert run_cli(capsys, "lock", manifest)[0] == 0
    assert main(["apply", str(manifest)]) == 0
    assert main(["apply", str(manifest)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("No changes: ")
    index.publish("alpha", "3.0")
    assert run_cli(capsys, "lock", manifest, "--upgrade")[0] == 0
    assert main(["apply", str(manifest)]) == 0
    assert image.dists() == {"alpha": "3.0"}


class _ExpiringHandler(SimpleHTTPRequestHandler):
    """Pages that expire at once, as a real index's do after their max-age (PyPI: 600 s)."""

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "max-age=0, must-revalidate")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_restore_offline_even_when_the_cached_index_pages_have_expired(
    tmp_path: Path,
    isolated: dict[str, str],
    index: Index,
    image: Image,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_ExpiringHandler, directory=str(index.tree))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    manifest = manifest_for(tmp_path / "team.yaml", url, {"base": (image.prefix, ["gamma"])})
    try:
        assert run_cli(capsys, "lock", manifest)[0] == 0
        assert run_cli(capsys, "apply", manifest)[0] == 0
    finally:
        server.shutdown()
        server.server_close()
    image.reset()
    code, out, err = run_cli(capsys, "apply", manifest)
    assert code == 0, out + err
    assert image.dists() == {"alpha": "2.0", "beta": "2.0", "gamma": "1.0"}


def _valid_lock() -> dict[str, object]:
    wheel = {"filename": "alpha-2.0-py3-none-any.whl", "name": "alpha", "sha256": "a" * 64,
             "source": "https://pypi.org/simple/", "version": "2.0"}  # fmt: skip
    record = {"build": "0", "build_number": 0, "channel": "https://conda.anaconda.org/c/",
              "depends": ["python"], "name": "pyfoo", "noarch": "python", "sha256": "b" * 64,
              "subdir": "noarch", "url": "https://x/noarch/pyfoo-2.0-0.tar.bz2",
              "version": "2.0"}  # fmt: skip
    entries = {"channels": [], "conda": [], "find_links": [], "indexes": [], "pip": ["alpha"]}
    env = {"conda": [record], "entries": entries, "image": "pyvenv:x", "managed_sha256": "c" * 64,
           "pip": [wheel]}  # fmt: skip
    return {"environments": {"base": env}, "format_version": "1", "manifest": "team.yaml"}


@pytest.mark.parametrize(
    "path, value",
    [
        (("format_version",), "2"),
        (("manifest",), 1),
        (("environments", "base", "image"), 3),
        (("environments", "base", "managed_sha256"), "nothex"),
        (("environments", "base", "entries", "pip"), "alpha"),
        (("environments", "base", "pip", 0, "name"), "--index-url=http://evil/"),
        (("environments", "base", "pip", 0, "version"), "2.0 --hash=sha256:x"),
        (("environments", "base", "pip", 0, "sha256"), "A" * 64),
        (("environments", "base", "pip", 0, "filename"), "../x.whl"),
        (("environments", "base", "conda", 0, "url"), "ftp://x/y"),
        (("environments", "base", "conda", 0, "build_number"), -1),
        (("environments", "base", "conda", 0, "noarch"), "yes"),
        (("environments", "base", "conda", 0, "name"), "PyFoo"),
        (("environments", "base", "conda", 0, "subdir"), "linux 64"),
        (("environments", "base", "extra"), 1),
    ],
)
def test_the_lock_reader_holds_the_schemas_rules(
    tmp_path: Path, path: tuple[object, ...], value: object
) -> None:
    """read_lock checks by hand (no jsonschema import on every start): the same verdicts."""
    from reconciler.errors import ReconcilerError
    from reconciler.lockfile.fresh import read_lock

    schema = load_schema("lock.v1.schema.json")
    good = _valid_lock()
    jsonschema.validate(good, schema)
    (tmp_path / "good.lock").write_text(json.dumps(good))
    assert read_lock(tmp_path / "good.lock") is not None
    bad: Any = json.loads(json.dumps(good))
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    (tmp_path / "bad.lock").write_text(json.dumps(bad))
    with pytest.raises(ReconcilerError, match=r"bad\.lock is not a reconciler lock file: "):
        read_lock(tmp_path / "bad.lock")


def test_a_locked_wheel_over_a_managed_file_is_refused_from_the_cached_record(
    tmp_path: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The file-clash check runs on a locked plan too, from the RECORD that `lock` cached
    by sha256: the wheel itself is gone from find-links, and the plan still refuses it."""
    from tests.support.envs import pip_install

    house = tmp_path / "house"
    build_wheel(house, "jwt", "1.3.1")
    build_wheel(house, "PyJWT", "2.8.0", module="jwt")
    prefix = make_venv(tmp_path / "env")
    pip_install(prefix, ["jwt==1.3.1"], house)
    module = prefix / SITE / "jwt" / "__init__.py"
    before = module.read_bytes()
    manifest = write_manifest(
        tmp_path / "team.yaml",
        {"main": {"prefix": prefix, "pip": ["PyJWT==2.8.0"]}},
        wheelhouse=house,
    )
    assert run_cli(capsys, "baseline", "capture", manifest)[0] == 0
    assert run_cli(capsys, "lock", manifest)[0] == 0
    (house / "pyjwt-2.8.0-py3-none-any.whl").unlink()
    code, out, _ = run_cli(capsys, "apply", manifest)
    assert code == 3, out
    assert "PyJWT 2.8.0 would overwrite jwt/__init__.py, which managed jwt 1.3.1 owns" in out
    assert f"main ({prefix}, venv) (from team.lock):" in out.splitlines()
    assert module.read_bytes() == before


def test_a_saved_plan_from_the_lock_applies_only_what_the_lock_holds(
    tmp_path: Path,
    isolated: dict[str, str],
    index: Index,
    image: Image,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = manifest_for(tmp_path / "team.yaml", index.url, {"base": (image.prefix, ["beta"])})
    assert run_cli(capsys, "lock", manifest)[0] == 0
    saved = tmp_path / "plan.json"
    assert run_cli(capsys, "plan", manifest, "--out", saved)[0] == 0
    doc = json.loads(saved.read_text())
    assert doc["environments"][0]["pip_locked"] == [
        f"alpha==2.0 --hash=sha256:{index.sha256('alpha-2.0-py3-none-any.whl')}",
        f"beta==2.0 --hash=sha256:{index.sha256('beta-2.0-py3-none-any.whl')}",
    ]
    # An edited plan file cannot add a hash-pinned line the lock never had.
    edited = json.loads(json.dumps(doc))
    edited["environments"][0]["pip_locked"].append(
        f"delta==1.0 --hash=sha256:{index.sha256('delta-1.0-py3-none-any.whl')}"
    )
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    code, _, err = run_cli(capsys, "apply", "--plan", tmp_path / "edited.json")
    assert code == 1
    assert err.splitlines()[0] == (
        "error: the saved plan for environment 'base' cannot be applied: it installs "
        f"'delta==1.0 --hash=sha256:{index.sha256('delta-1.0-py3-none-any.whl')}', which the "
        "lock file does not hold"
    )
    assert image.dists() == {}
    code, out, err = run_cli(capsys, "apply", "--plan", saved)
    assert code == 0, out + err
    assert image.dists() == {"alpha": "2.0", "beta": "2.0"}


def test_installer_pip_installs_the_locked_files_with_hashes(
    tmp_path: Path, isolated: dict[str, str], index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = make_venv(tmp_path / "env", with_pip=True)
    manifest = manifest_for(tmp_path / "team.yaml", index.url, {"base": (prefix, ["gamma"])})
    text = manifest.read_text().replace("defaults:\n", "defaults:\n  installer: pip\n", 1)
    manifest.write_text(text)
    code, out, err = run_cli(capsys, "lock", manifest)
    assert code == 0, out + err + manifest.read_text()
    index.publish("alpha", "3.0")
    code, out, err = run_cli(capsys, "apply", manifest)
    assert code == 0, out + err
    assert f"base ({prefix}, venv) (from team.lock):" in out.splitlines()
    installed = {p.name for p in (prefix / SITE).glob("*.dist-info")}
    assert {"alpha-2.0.dist-info", "beta-2.0.dist-info", "gamma-1.0.dist-info"} <= installed
    lock = tmp_path / "team.lock"
    lock.write_text(lock.read_text().replace(index.sha256("gamma-1.0-py3-none-any.whl"), "1" * 64))
    shutil.rmtree(prefix / SITE / "gamma")
    shutil.rmtree(prefix / SITE / "gamma-1.0.dist-info")
    code, out, _ = run_cli(capsys, "apply", manifest)
    assert code == 1
    assert (
        "base: failed: the file of gamma==1.0 does not match the sha256 in the lock file; "
        f"nothing was installed into {prefix}"
    ) in out.splitlines(), out
