"""``reconciler bundle``: an offline wheelhouse, downloaded by the real pip from a local index
on 127.0.0.1 (the test venv's own dependencies, repackaged), then a Studio start from it with
the index gone."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from reconciler import __version__
from reconciler.bundle import SAGEMAKER, Target, expand_platform, target_requirements
from tests.support.envs import make_venv, pip_install
from tests.support.repackage import wheelhouse_for
from tests.support.servers import build_simple_index, serve
from tests.support.wheels import build_wheel
from tests.test_lifecycle import STUDIO, _generate, _start, _studio

RECONCILER = str(Path(sys.executable).parent / "reconciler")
PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
WHEEL = f"env_reconciler-{__version__}-py3-none-any.whl"


def _runtime_names() -> list[str]:
    dist = md.distribution("env-reconciler")
    return [r.split(";")[0] for r in target_requirements(dist, Target())]


@pytest.fixture(scope="session")
def dependencies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of reconciler's runtime dependencies, repackaged from the test venv (not
    reconciler itself: the bundle must bring its own)."""
    from packaging.requirements import Requirement

    names = [Requirement(r).name for r in _runtime_names()]
    return wheelhouse_for(names, tmp_path_factory.mktemp("dependencies"))


def _bundle(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RECONCILER, "bundle", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _names(directory: Path) -> dict[str, str]:
    """{project: version} of the wheels in ``directory``."""
    return {
        str(name): str(version)
        for name, version, _, _ in (parse_wheel_filename(p.name) for p in directory.glob("*.whl"))
    }


def test_default_targets_and_platform_expansion() -> None:
    assert Target("3.12", "manylinux_2_28_x86_64") == SAGEMAKER
    tags = expand_platform("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64" and tags[-1] == "manylinux1_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64"} <= set(tags)
    assert "manylinux_2_29_x86_64" not in tags
    assert expand_platform("macosx_11_0_arm64") == ["macosx_11_0_arm64"]
    # This project's own markers are evaluated for the target, not for this interpreter.
    dist = md.distribution("env-reconciler")
    old = [r.split(">")[0] for r in target_requirements(dist, Target("3.9", SAGEMAKER.platform))]
    new = [r.split(">")[0] for r in target_requirements(dist, SAGEMAKER)]
    assert "py-rattler" not in old and "py-rattler" in new
    assert all(";" not in r for r in new)


def test_bundle_from_a_local_index_then_an_offline_studio_start(
    tmp_path: Path,
    isolated: dict[str, str],
    dependencies: Path,
    wheelhouse: Path,
    channel: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The machine's pip configuration must not leak in: a higher "packaging" on find-links
    # and an index that does not answer, both set the way pip.conf and PIP_* set them.
    decoy = tmp_path / "decoy"
    build_wheel(decoy, "packaging", "99.0")
    env = {**isolated, "PIP_FIND_LINKS": str(decoy), "PIP_INDEX_URL": "http://127.0.0.1:9/"}
    bundle = tmp_path / "bundle"
    index = build_simple_index(dependencies, tmp_path / "index")
    with serve(index) as server:
        url = f"{server.url}simple/"
        proc = _bundle(env, str(bundle), "--python-version", PY, "--platform",
                       "manylinux_2_28_x86_64", "--index-url", url)  # fmt: skip
        assert any(r.path.startswith("/files/") for r in server.requests())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    count = len(list(bundle.glob("*.whl")))
    assert proc.stdout.splitlines()[0] == (
        f"Wrote {count} wheels to {bundle}: {WHEEL} and its dependencies for "
        f"Python {PY} on manylinux_2_28_x86_64."
    )
    assert _names(bundle) == {"env-reconciler": __version__, **_names(dependencies)}
    assert _names(bundle)["packaging"] == md.version("packaging") != "99.0"
    with zipfile.ZipFile(bundle / WHEEL) as zf:
        names = set(zf.namelist())
        assert {"reconciler/__init__.py", "reconciler/schemas/manifest.v1.schema.json",
                "reconciler/lifecycle.py", f"env_reconciler-{__version__}.dist-info/RECORD",
                f"env_reconciler-{__version__}.dist-info/entry_points.txt"} <= names  # fmt: skip
        assert not any("__pycache__" in n for n in names)
        assert b'__distribution__ = "env-reconciler"' in zf.read("reconciler/__init__.py")

    # The index is gone: a Studio start installs reconciler from the bundle alone.
    body = STUDIO.split("  dl:")[0]
    image, studio_env, script = _studio(tmp_path, isolated, channel, wheelhouse, body)
    script.write_text(
        _generate(tmp_path / "manifest.yaml", capsys, "--wheel", str(bundle),
                  "--python", sys.executable)
    )  # fmt: skip
    _, out = _start(script, studio_env)
    assert f"installing env-reconciler {__version__}" in out
    assert "ERROR" not in out and "Applied 1 environment; log: " in out
    assert (image / "conda-meta" / "condaonly-1.1-0.json").exists()


def test_bundle_from_find_links_only_and_clear_failures(
    tmp_path: Path, isolated: dict[str, str], dependencies: Path
) -> None:
    bundle = tmp_path / "bundle"
    proc = _bundle(isolated, str(bundle), "--python-version", PY, "--no-index",
                   "--find-links", str(dependencies))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _names(bundle) == {"env-reconciler": __version__, **_names(dependencies)}

    # Nothing for the target: pip's own reason, in one line.
    other = tmp_path / "other"
    proc = _bundle(isolated, str(other), "--python-version", "3.8", "--no-index",
                   "--find-links", str(dependencies))  # fmt: skip
    assert proc.returncode == 1
    first = proc.stderr.splitlines()[0]
    assert first.startswith(
        "error: pip could not download reconciler's dependencies for Python 3.8 on "
        "manylinux_2_28_x86_64: "
    ), proc.stderr
    assert "No matching distribution found for" in first or "Could not find" in first

    # Installed from the bundle (a regular install, not this editable one) into a venv
    # without pip: it runs, and bundle says what is missing before writing anything.
    venv = make_venv(tmp_path / "venv")
    pip_install(venv, ["env-reconciler"], bundle, env=isolated)
    proc = subprocess.run(
        [str(venv / "bin" / "reconciler"), "bundle", str(tmp_path / "nopip"), "--no-index",
         "--find-links", str(dependencies)],
        env=isolated, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    python = venv / "bin" / "python"
    assert (proc.returncode, proc.stderr) == (
        1,
        f"error: bundle downloads with pip, and {python} has no pip\n"
        f"  hint: {python} -m ensurepip, then run `reconciler bundle` again\n",
    )
    assert not (tmp_path / "nopip").exists()

    proc = _bundle(isolated, str(tmp_path / "none"), "--no-index")
    assert (proc.returncode, proc.stderr) == (
        1,
        "error: --no-index needs --find-links: there would be nowhere to download from\n"
        "  hint: add --find-links DIR (a directory of wheels)\n",
    )
    assert not (tmp_path / "none").exists()
    proc = _bundle(isolated, str(tmp_path / "none"), "--python-version", "3.12.1")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == "error: --python-version 3.12.1: expected X.Y, e.g. 3.12"
