"""Locked conda records (issue 11): a real hybrid venv + conda prefix, a local file:// channel.

Each test copies the standard channel (:mod:`tests.support.conda`) so that it can
publish a newer build or take a package away; the rattler cache is per test
(``isolated``), as it would be on the home volume.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from reconciler.resources import load_schema
from reconciler.state.environment import read_state
from tests.support.conda import PackageSpec, index_channel
from tests.support.envs import make_conda_prefix
from tests.support.manifests import run_cli, write_manifest


@pytest.fixture
def own_channel(channel: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "channel"
    shutil.copytree(channel, copy)
    return index_channel(copy)


def _conda(prefix: Path) -> dict[str, str]:
    return {name: r.version for name, r in read_state(prefix).conda.items()}


def test_locked_conda_records_are_installed_exactly_and_hash_checked(
    tmp_path: Path, isolated: dict[str, str], own_channel: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", own_channel, [], hybrid=True)
    pristine = tmp_path / "env.pristine"
    shutil.copytree(prefix, pristine, symlinks=True)
    manifest = write_manifest(
        tmp_path / "team.yaml",
        {"base": {"prefix": prefix, "conda": ["pyfoo", "condaonly"]}},
        channel=own_channel,
    )
    code, out, err = run_cli(capsys, "lock", manifest)
    assert (code, err) == (0, ""), out
    doc = json.loads((tmp_path / "team.lock").read_text(encoding="utf-8"))
    jsonschema.validate(doc, load_schema("lock.v1.schema.json"))
    base = doc["environments"]["base"]
    assert base["pip"] == []
    assert [r["name"] for r in base["conda"]] == ["condaonly", "libfoo", "pyfoo"]  # not python
    pyfoo = base["conda"][2]
    package = own_channel / "noarch" / "pyfoo-2.0-0.tar.bz2"
    assert pyfoo == {
        "build": "0",
        "build_number": 0,
        "channel": own_channel.as_uri() + "/",
        "depends": ["python", "libfoo >=2"],
        "name": "pyfoo",
        "noarch": "python",
        "sha256": hashlib.sha256(package.read_bytes()).hexdigest(),
        "subdir": "noarch",
        "url": package.as_uri(),
        "version": "2.0",
    }

    # A newer build published after the lock is not installed.
    PackageSpec("condaonly", "1.2", with_version_file=True).build(own_channel)
    index_channel(own_channel)
    code, out, err = run_cli(capsys, "plan", manifest, "--json")
    env = json.loads(out)["environments"][0]
    assert (env["lock"], env["resolver_ran"]) == ("team.lock", False)
    code, out, err = run_cli(capsys, "apply", manifest)
    assert code == 0, out + err
    assert _conda(prefix) | {"python": "-"} == {
        "condaonly": "1.1", "libfoo": "2.0", "pyfoo": "2.0", "python": "-",
    }  # fmt: skip
    assert (prefix / "share" / "condaonly" / "VERSION").read_text() == "1.1\n"

    # Image reset, then a restore with the packages gone from the channel: rattler's cache.
    shutil.rmtree(prefix)
    shutil.copytree(pristine, prefix, symlinks=True)
    for name in ("condaonly-1.1-0", "libfoo-2.0-0", "pyfoo-2.0-0"):
        (own_channel / "noarch" / f"{name}.tar.bz2").unlink()
    code, out, err = run_cli(capsys, "apply", manifest, "--locked")
    assert code == 0, out + err
    assert _conda(prefix)["condaonly"] == "1.1"

    # A record whose hash differs from its file: nothing is linked.
    shutil.rmtree(prefix)
    shutil.copytree(pristine, prefix, symlinks=True)
    lock = tmp_path / "team.lock"
    doc["environments"]["base"]["conda"][0]["url"] = (
        own_channel / "noarch" / "condaonly-1.2-0.tar.bz2"
    ).as_uri()
    lock.write_text(json.dumps(doc), encoding="utf-8")
    before = sorted(p.name for p in (prefix / "conda-meta").iterdir())
    code, out, _ = run_cli(capsys, "apply", manifest)
    assert code == 1
    assert (
        "base: failed: the file of conda package condaonly-1.1-0 does not match the sha256 in "
        f"the lock file; nothing was installed into {prefix}"
    ) in out.splitlines()
    assert sorted(p.name for p in (prefix / "conda-meta").iterdir()) == before


def test_relocking_keeps_locked_conda_versions_and_drops_what_is_no_longer_needed(
    tmp_path: Path, isolated: dict[str, str], own_channel: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", own_channel, ["libfoo ==1.0"], hybrid=True)

    def lock(conda: list[str]) -> dict[str, str]:
        manifest = write_manifest(
            tmp_path / "team.yaml",
            {"base": {"prefix": prefix, "conda": conda}},
            channel=own_channel,
        )
        code, out, err = run_cli(capsys, "lock", manifest)
        assert code == 0, out + err
        doc = json.loads((tmp_path / "team.lock").read_text(encoding="utf-8"))
        return {r["name"]: r["version"] for r in doc["environments"]["base"]["conda"]}

    assert lock(["condaonly"]) == {"condaonly": "1.1"}
    PackageSpec("condaonly", "1.2", with_version_file=True).build(own_channel)
    index_channel(own_channel)
    # Stale (a new entry): re-resolved, but the locked condaonly 1.1 still fits and stays.
    assert lock(["condaonly", "pytorchy"]) == {"condaonly": "1.1", "pytorchy": "2.0"}
    assert lock(["pytorchy"]) == {"pytorchy": "2.0"}  # condaonly is no longer needed
    assert lock(["pytorchy", "condaonly"]) == {"condaonly": "1.2", "pytorchy": "2.0"}
